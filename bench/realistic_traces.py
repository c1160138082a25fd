#!/usr/bin/env python3
"""Traces shaped like a real shop's, made with the OpenTelemetry Python SDK and sent over OTLP/HTTP
(protobuf), for measuring what a span costs to keep: bytes per span depend on the data, and
generated spans that differ only in their ids compress to almost nothing.

    .ci/venv/bin/python bench/realistic_traces.py --endpoint http://127.0.0.1:4318 --traces 20000

Each trace is a request through five services (frontend, checkout, cart, payment, a database
and a cache), 4 to 12 spans, with the semantic-convention attributes an instrumented service
records (routes, URLs with ids, status codes, user agents, SQL with values, peer addresses),
random ids from the SDK, durations drawn from a long-tailed distribution, and an error now and
then. The random generator is seeded, so every run sends the same shapes. Prints the number of
spans sent as JSON; exits non-zero if an export failed.
"""

import argparse
import json
import random
import sys
import time

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

SERVICES = {
    "frontend": "2.14.0",
    "checkout": "1.9.3",
    "cart": "3.0.1",
    "payment": "0.8.12",
}
ROUTES = ["/api/cart", "/api/checkout", "/api/products/{id}", "/api/recommendations", "/api/orders/{id}"]
AGENTS = [
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "okhttp/4.12.0",
]
FAILED = []


def provider(service, endpoint, rng):
    resource = Resource.create({
        "service.name": service,
        "service.version": SERVICES[service],
        "service.namespace": "shop",
        "deployment.environment.name": "production",
        "host.name": f"ip-10-0-{rng.randint(0, 255)}-{rng.randint(0, 255)}.eu-west-1.compute.internal",
        "k8s.namespace.name": "shop",
        "k8s.pod.name": f"{service}-{rng.getrandbits(32):08x}-{rng.getrandbits(20):05x}",
        "cloud.provider": "aws",
        "cloud.region": "eu-west-1",
    })
    exporter = OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces", timeout=30)
    export = exporter.export

    def checked(spans):
        result = export(spans)
        if result.name != "SUCCESS":
            FAILED.append(result.name)
        return result

    exporter.export = checked
    p = TracerProvider(resource=resource)
    p.add_span_processor(BatchSpanProcessor(exporter, max_queue_size=65536, max_export_batch_size=512,
                                            schedule_delay_millis=200))
    return p


def ms(rng, median):
    """A duration in nanoseconds, long-tailed around `median` milliseconds."""
    return int(rng.lognormvariate(0, 0.8) * median * 1_000_000)


def one_trace(tracers, rng, now):
    route = rng.choice(ROUTES)
    item = rng.randint(1, 99_999)
    path = route.replace("{id}", str(item))
    user = f"u-{rng.randint(1, 5_000_000)}"
    status = rng.choices([200, 200, 200, 200, 201, 404, 500], k=1)[0]
    total = ms(rng, 40)
    t0 = now
    fe = tracers["frontend"]
    root = fe.start_span(f"GET {route}", kind=SpanKind.SERVER, start_time=t0, attributes={
        "http.request.method": "GET", "http.route": route, "url.path": path, "url.scheme": "https",
        "http.response.status_code": status, "user_agent.original": rng.choice(AGENTS),
        "client.address": f"203.0.113.{rng.randint(1, 254)}", "server.address": "shop.example.com",
        "enduser.id": user, "network.protocol.version": "2",
    })
    ctx = _ctx(root)
    at = t0 + ms(rng, 1)
    for _ in range(rng.randint(1, 3)):
        service = rng.choice(["checkout", "cart", "payment"])
        d = min(ms(rng, 12), max(total - (at - t0), 1_000_000))
        client = fe.start_span(f"POST /{service}.v1.{service.title()}Service/Handle", kind=SpanKind.CLIENT,
                               context=ctx, start_time=at, attributes={
                                   "rpc.system": "grpc", "rpc.service": f"{service}.v1.{service.title()}Service",
                                   "rpc.method": "Handle", "server.address": f"{service}.shop.svc.cluster.local",
                                   "server.port": 8080, "rpc.grpc.status_code": 0 if status < 500 else 13})
        server = tracers[service].start_span(f"{service}.v1.{service.title()}Service/Handle", kind=SpanKind.SERVER,
                                             context=_ctx(client), start_time=at + 200_000, attributes={
                                                 "rpc.system": "grpc", "rpc.method": "Handle",
                                                 "client.address": f"10.1.{rng.randint(0, 63)}.{rng.randint(2, 254)}"})
        inner = at + 300_000
        for _ in range(rng.randint(0, 3)):
            dd = ms(rng, 2)
            if rng.random() < 0.6:
                span = tracers[service].start_span("SELECT shop.orders", kind=SpanKind.CLIENT, context=_ctx(server),
                                                   start_time=inner, attributes={
                                                       "db.system.name": "postgresql", "db.namespace": "shop",
                                                       "db.operation.name": "SELECT", "db.collection.name": "orders",
                                                       "db.query.text": f"SELECT id, total, status FROM orders WHERE user_id = '{user}' AND id > {rng.randint(1, 10**7)} LIMIT 20",
                                                       "server.address": "orders-db.shop.svc.cluster.local", "server.port": 5432})
            else:
                span = tracers[service].start_span("GET", kind=SpanKind.CLIENT, context=_ctx(server),
                                                   start_time=inner, attributes={
                                                       "db.system.name": "redis", "db.operation.name": "GET",
                                                       "db.query.text": f"GET session:{user}:{rng.getrandbits(48):012x}",
                                                       "server.address": "cache.shop.svc.cluster.local", "server.port": 6379})
            span.end(end_time=inner + dd)
            inner += dd + 50_000
        if status >= 500 and service == "payment":
            server.set_status(Status(StatusCode.ERROR, "card declined by issuer"))
            server.add_event("exception", {"exception.type": "PaymentDeclined",
                                           "exception.message": f"issuer refused authorization {rng.getrandbits(40):010x}"})
        server.end(end_time=max(inner, at + d - 200_000))
        client.end(end_time=max(inner + 100_000, at + d))
        at = max(inner + 100_000, at + d) + ms(rng, 0.3)
    if status >= 500:
        root.set_status(Status(StatusCode.ERROR))
    root.end(end_time=max(at, t0 + total))


def _ctx(span):
    from opentelemetry import trace
    return trace.set_span_in_context(span)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--endpoint", required=True, help="OTLP/HTTP base URL")
    ap.add_argument("--traces", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=25)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    providers = {s: provider(s, args.endpoint, rng) for s in SERVICES}
    tracers = {s: p.get_tracer("shop.instrumentation", "1.0.0") for s, p in providers.items()}
    counted = {"spans": 0}
    for p in providers.values():
        p.add_span_processor(_Counter(counted))
    now = time.time_ns() - args.traces * 1_000_000
    for i in range(args.traces):
        one_trace(tracers, rng, now)
        now += rng.randint(100_000, 1_900_000)
        if i % 1000 == 999:
            # The batch processor drops spans when its queue is full: keep it short.
            for p in providers.values():
                p.force_flush()
    for p in providers.values():
        p.shutdown()
    print(json.dumps({"spans": counted["spans"], "traces": args.traces, "failed_exports": len(FAILED)}))
    sys.exit(1 if FAILED else 0)


class _Counter(SpanProcessor):
    def __init__(self, counted):
        self.counted = counted

    def on_end(self, span):
        self.counted["spans"] += 1


if __name__ == "__main__":
    main()
