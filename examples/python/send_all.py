#!/usr/bin/env python3
"""Send traces, metrics and logs with the real OpenTelemetry Python SDK to a slim-node receiver,
over OTLP/HTTP (protobuf, gzip) and OTLP/gRPC (gzip). Exits non-zero if any export failed.

    python send_all.py --http http://127.0.0.1:4318 --grpc http://127.0.0.1:4317 [--service NAME]

Requirements (pinned in requirements.txt): opentelemetry-sdk,
opentelemetry-exporter-otlp-proto-http, opentelemetry-exporter-otlp-proto-grpc.
"""

import argparse
import logging
import sys

from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcLogs
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcMetrics
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpans
from opentelemetry.exporter.otlp.proto.http import Compression as HttpCompression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpLogs
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpMetrics
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpans
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

RESULTS = []


def checked(exporter, label):
    """Record the result of every export of `exporter` under `label`."""
    export = exporter.export

    def recording(*args, **kwargs):
        result = export(*args, **kwargs)
        RESULTS.append((label, result.name))
        return result

    exporter.export = recording
    return exporter


def send(transport, spans, metrics, logs, resource):
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(SimpleSpanProcessor(checked(spans, f"{transport} traces")))
    tracer = tracer_provider.get_tracer("slim-node-example")
    with tracer.start_as_current_span(f"checkout via {transport}") as span:
        span.set_attribute("order.id", 1234)
        span.set_attribute("transport", transport)
        with tracer.start_as_current_span("charge card"):
            pass
    tracer_provider.shutdown()

    reader = PeriodicExportingMetricReader(checked(metrics, f"{transport} metrics"), export_interval_millis=3_600_000)
    meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
    counter = meter_provider.get_meter("slim-node-example").create_counter("orders", unit="{order}")
    counter.add(3, {"transport": transport})
    meter_provider.force_flush()
    meter_provider.shutdown()

    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(checked(logs, f"{transport} logs")))
    logger = logging.getLogger(f"slim-node-example.{transport}")
    logger.propagate = False
    logger.addHandler(LoggingHandler(level=logging.INFO, logger_provider=logger_provider))
    logger.warning("order 1234 placed via %s", transport)
    logger_provider.shutdown()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--http", help="OTLP/HTTP base URL, e.g. http://127.0.0.1:4318")
    parser.add_argument("--grpc", help="OTLP/gRPC endpoint, e.g. http://127.0.0.1:4317")
    parser.add_argument("--service", default="slim-node-python-example")
    args = parser.parse_args()
    resource = Resource.create({"service.name": args.service})
    if args.http:
        base = args.http.rstrip("/")
        gz = HttpCompression.Gzip
        send("http", HttpSpans(endpoint=f"{base}/v1/traces", compression=gz),
             HttpMetrics(endpoint=f"{base}/v1/metrics", compression=gz),
             HttpLogs(endpoint=f"{base}/v1/logs", compression=gz), resource)
    if args.grpc:
        from grpc import Compression as GrpcCompression
        gz = GrpcCompression.Gzip
        send("grpc", GrpcSpans(endpoint=args.grpc, insecure=True, compression=gz),
             GrpcMetrics(endpoint=args.grpc, insecure=True, compression=gz),
             GrpcLogs(endpoint=args.grpc, insecure=True, compression=gz), resource)
    for label, result in RESULTS:
        print(f"{label}: {result}")
    failed = [r for r in RESULTS if r[1] != "SUCCESS"]
    if failed or not RESULTS:
        print(f"FAILED: {failed or 'nothing was exported'}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
