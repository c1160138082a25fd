#!/usr/bin/env python3
"""The whole slim-node benchmark in one go, on one machine; writes its table into BENCHMARKS.md.

    python3 bench/run.py            # builds the release binary first
    python3 bench/run.py --no-build # uses target/release/slim-node as it is

1. raw SLIM ceiling: `slim-node slim-bench` (two apps, one group session, MLS on, the node's
   reliability settings and in-flight window) for each payload size;
2. slim-node end to end: `slim-node loadgen` -> receiver (moderator) -> SLIM server ->
   participant (`--sink bench`), small requests (one span, like the seed's curl body) and
   100-span requests, 1 and 16 clients, closed loop; one client at 500 req/s; then 16 clients
   at half the peak rate;
3. ratios of 2 to 1, CPU seconds per 10k requests and peak RSS of every process, idle RSS,
   and RSS under overload (participant frozen, outbox full);
4. forwarding: the same chain with the participant forwarding over OTLP/HTTP (`--sink otlp:`)
   into Rotel's blackhole exporter, 100-span requests, 16 clients; and the peer without a
   mesh: loadgen -> Rotel -> (OTLP/HTTP) -> Rotel blackhole. Rotel is the collector binary the
   `rotel` package ships (.ci/deps.sh installs it into .ci/venv);
5. storing: the same chain with the participant keeping everything (`--sink store:`), then
   every span paged back through its query API (`POST /api/traces/fetch`, limit 10,000);
6. a member that hangs: the same chain with a second participant, 100-span requests, 16
   clients, once with both live, once with the second frozen (SIGSTOP) before the load starts,
   and once frozen 2 s into the load: what the live participant gets in each.
   `python3 bench/run.py --only members` runs just this part;
7. the node's own telemetry: small requests, 16 clients, closed loop, with the metrics on (the
   default) and `--telemetry off`, alternating, five runs each; then, one client at 200 req/s,
   the receiver's request-duration histogram at /metrics against loadgen's own count and p99. `python3 bench/run.py --only telemetry` runs just this part;
8. history in object storage (SeaweedFS's `weed` from .ci/venv): spans stored per second with
   `store:…;location=s3://…`, bytes per span here and in the bucket for real-shaped spans
   (bench/realistic_traces.py, the OpenTelemetry SDK from .ci/venv), and paging from the bucket by
   `slim-node query` with a cold and a warm cache. `python3 bench/run.py --only archive` runs just this part;
9. against a plain collector hop (issue 26): Rotel -> Rotel, the mesh hop and forwarding, 100-span
   and 1-span requests, the chain without the time bound, twice and alternating (means), then the
   store; the four ratios against their targets. `python3 bench/run.py --only hop` runs just this part.
Every process is started fresh for each run. Only the Python standard library is used.
"""

import argparse
import json
import os
import platform
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / "target" / "release" / "slim-node"
SEED_REQ_PER_S = 1192  # the seed design in Python, 16 clients, seed's curl body (measured here)
TICK = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024
RUN_SECONDS = 10
ROTEL = next(ROOT.glob(".ci/venv/lib/python*/site-packages/rotel/rotel-agent"), None)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    """User + system CPU seconds of a running process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_kib(pid, key):
    """VmRSS (now) or VmHWM (peak) of a running process, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def health(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
            return json.load(r)
    except Exception:
        return None


def wait_for(what, check, timeout=90):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise SystemExit(f"bench: timed out waiting for {what}")


def run_measured(args, log):
    """Runs a slim-node command to its end; returns (stdout, cpu seconds, peak RSS KiB)."""
    with open(log, "w") as err:
        proc = subprocess.Popen([str(BIN), *args], stdout=subprocess.PIPE, stderr=err, text=True)
        out = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"bench: {' '.join(args[:1])} failed ({proc.returncode}); see {log}")
    return out, usage.ru_utime + usage.ru_stime, usage.ru_maxrss


def stop_process(proc):
    """SIGTERM, and SIGKILL after 30 s."""
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


class Mesh:
    """A SLIM server, a participant with the bench sink (or `sink`) and a receiving moderator."""

    def __init__(self, work, queue_max_bytes=None, sink=None, participant_args=(), others=(), server_args=(),
                 node_args=(), env=None):
        self.work = Path(tempfile.mkdtemp(dir=work))
        self.env = dict(os.environ, SLIM_NODE_SECRET=secrets.token_hex(24), SLIM_NODE_LOG="warn", **(env or {}))
        slim = free_port()
        self.http, grpc = free_port(), free_port()
        self.summary = self.work / "bench.json"
        self.procs = {}
        self.start("server", ["server", "--endpoint", f"127.0.0.1:{slim}", *server_args])
        url = f"http://127.0.0.1:{slim}"
        wait_for("the SLIM server", lambda: socket.socket().connect_ex(("127.0.0.1", slim)) == 0)
        self.participant_health = free_port()
        self.start("participant", ["node", "--role", "participant", "--name", "bench/otel/participant",
                                   "--slim", url, "--sink", sink or f"bench:{self.summary}",
                                   "--health", f"127.0.0.1:{self.participant_health}",
                                   "--data-dir", str(self.work / "participant-state"), *participant_args,
                                   *node_args])
        # More participants (`others`: labels), each with a bench sink of its own.
        for label in others:
            self.start(label, ["node", "--role", "participant", "--name", f"bench/otel/{label}", "--slim", url,
                               "--sink", f"bench:{self.work / (label + '.json')}",
                               "--data-dir", str(self.work / f"{label}-state")])
        invites = [a for label in others for a in ("--invite", f"bench/otel/{label}")]
        receiver = ["node", "--role", "moderator", "--name", "bench/otel/receiver", "--slim", url,
                    "--channel", "bench/otel/telemetry", "--invite", "bench/otel/participant", *invites,
                    "--otlp-http", f"127.0.0.1:{self.http}", "--otlp-grpc", f"127.0.0.1:{grpc}",
                    "--data-dir", str(self.work / "receiver-state"), *node_args]
        if queue_max_bytes:
            receiver += ["--queue-max-bytes", str(queue_max_bytes)]
        self.start("moderator", receiver)
        wait_for("the group to form", lambda: (health(self.http) or {}).get("node", {}).get("state") == "active")

    def start(self, name, args):
        out = open(self.work / f"{name}.out", "w")
        err = open(self.work / f"{name}.err", "w")
        self.procs[name] = subprocess.Popen([str(BIN), *args], stdout=out, stderr=err, env=self.env)

    def cpu(self):
        return {n: cpu_seconds(p.pid) for n, p in self.procs.items()}

    def peak_rss(self):
        return {n: rss_kib(p.pid, "VmHWM") for n, p in self.procs.items()}

    def rss(self):
        return {n: rss_kib(p.pid, "VmRSS") for n, p in self.procs.items()}

    def delivered(self):
        try:
            return json.loads(self.summary.read_text())
        except (OSError, ValueError):
            return {}

    def sink_delivered(self):
        """Messages the participant's first sink delivered, from its /health."""
        h = health(self.participant_health) or {}
        sinks = h.get("sinks") or [{}]
        return sinks[0].get("delivered", 0)

    def stop(self):
        names = ["moderator", *[n for n in self.procs if n not in ("moderator", "server")], "server"]
        for name in names:
            p = self.procs[name]
            if p.poll() is None:
                p.send_signal(signal.SIGCONT)
                p.send_signal(signal.SIGTERM)
        for p in self.procs.values():
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()


def loadgen(mesh, items, clients, rate=None, seconds=RUN_SECONDS):
    args = ["loadgen", "--endpoint", f"http://127.0.0.1:{mesh.http}", "--items", str(items),
            "--clients", str(clients), "--duration", str(seconds), "--json"]
    if rate:
        args += ["--rate", str(int(rate))]
    out, cpu, peak = run_measured(args, mesh.work / "loadgen.err")
    report = json.loads(out)
    report["cpu_s"], report["peak_rss_kib"] = cpu, peak
    return report


def end_to_end(work, name, items, clients, rate=None, node_args=()):
    mesh = Mesh(work, node_args=node_args)
    try:
        time.sleep(2)
        idle = mesh.rss()
        before = mesh.cpu()
        report = loadgen(mesh, items, clients, rate)
        # Delivery is complete when the sink saw every request that was taken.
        wait_for("delivery", lambda: mesh.delivered().get("messages", 0) >= report["ok"], timeout=120)
        after = mesh.cpu()
        peak = mesh.peak_rss()
        got = mesh.delivered()
    finally:
        mesh.stop()
    per_10k = lambda cpu: cpu / max(report["ok"], 1) * 10_000
    taken_per_s = report["ok"] / report["seconds"]
    # What reached the participant per second, first arrival to last: a receiver can take
    # faster than the chain delivers for a while (into its outbox), so the end-to-end rate is
    # the lower of the two.
    e2e_per_s = min(taken_per_s, got["messages_per_s"])
    row = {
        "name": name, "items": items, "clients": clients, "rate": rate,
        "req_per_s": taken_per_s,
        "delivered_per_s": got["messages_per_s"],
        "e2e_req_per_s": e2e_per_s,
        "items_per_s": e2e_per_s * items,
        "answers": report["answers"],
        "request_bytes": report["bytes"] / max(report["requests"], 1),
        "answer_p50": report["latency_ms"]["p50"], "answer_p99": report["latency_ms"]["p99"],
        "e2e_p50": got["latency_ms"]["p50"], "e2e_p99": got["latency_ms"]["p99"],
        "delivered": got["messages"], "taken": report["ok"],
        "cpu_per_10k": {n: per_10k(after[n] - before[n]) for n in after} | {"loadgen": per_10k(report["cpu_s"])},
        "peak_rss_mib": {n: kib / 1024 for n, kib in peak.items()} | {"loadgen": report["peak_rss_kib"] / 1024},
        "idle_rss_mib": {n: kib / 1024 for n, kib in idle.items()},
    }
    print(f"bench: {name}: {row['req_per_s']:.0f} req/s taken, {row['delivered_per_s']:.0f} delivered, e2e p50 {row['e2e_p50']:.2f} ms p99 "
          f"{row['e2e_p99']:.2f} ms, delivered {row['delivered']}/{row['taken']}", file=sys.stderr)
    return row


class Rotel:
    """A Rotel collector: OTLP/HTTP in, `exporter` out."""

    def __init__(self, work, name, exporter):
        if ROTEL is None:
            raise SystemExit("bench: no rotel-agent in .ci/venv: run .ci/deps.sh")
        self.http = free_port()
        self.work = Path(work)
        args = [str(ROTEL), "start", "--otlp-http-endpoint", f"127.0.0.1:{self.http}",
                "--otlp-grpc-endpoint", f"127.0.0.1:{free_port()}",
                "--pid-file", str(self.work / f"{name}.pid"), *exporter]
        self.proc = subprocess.Popen(args, stdout=open(self.work / f"{name}.out", "w"),
                                     stderr=open(self.work / f"{name}.err", "w"))
        wait_for(f"rotel {name}", lambda: socket.socket().connect_ex(("127.0.0.1", self.http)) == 0)

    def stop(self):
        stop_process(self.proc)


def forwarding(work, items=100, clients=16, sink_opts=""):
    """loadgen -> receiver -> SLIM -> participant --sink otlp:http://rotel -> Rotel blackhole."""
    work = Path(tempfile.mkdtemp(dir=work))
    blackhole = Rotel(work, "blackhole", ["--exporter", "blackhole"])
    mesh = Mesh(work, sink=f"otlp:http://127.0.0.1:{blackhole.http}{sink_opts}")
    try:
        time.sleep(2)
        before = mesh.cpu() | {"rotel": cpu_seconds(blackhole.proc.pid)}
        started = time.time()
        report = loadgen(mesh, items, clients)
        wait_for("forwarding", lambda: mesh.sink_delivered() >= report["ok"], timeout=300)
        done = time.time()
        after = mesh.cpu() | {"rotel": cpu_seconds(blackhole.proc.pid)}
        peak = mesh.peak_rss()
        sink = (health(mesh.participant_health) or {}).get("sinks", [{}])[0]
    finally:
        mesh.stop()
        blackhole.stop()
    taken_per_s = report["ok"] / report["seconds"]
    # Forwarded per second, from the first request sent to the backend's last 2xx.
    forwarded_per_s = report["ok"] / max(done - started, 1e-9)
    row = {"name": "forwarding over OTLP/HTTP", "items": items, "clients": clients,
           "req_per_s": taken_per_s, "forwarded_per_s": forwarded_per_s,
           "e2e_req_per_s": min(taken_per_s, forwarded_per_s), "taken": report["ok"],
           "delivered": sink.get("delivered", 0), "retried": sink.get("retried", 0),
           "dropped": sink.get("dropped", {}),
           "cpu_per_10k": {n: (after[n] - before[n]) / max(report["ok"], 1) * 10_000 for n in after}
           | {"loadgen": report["cpu_s"] / max(report["ok"], 1) * 10_000},
           "peak_rss_mib": {n: kib / 1024 for n, kib in peak.items()}}
    print(f"bench: forwarding: {taken_per_s:.0f} req/s taken, {forwarded_per_s:.0f} forwarded, "
          f"delivered {row['delivered']}/{row['taken']}", file=sys.stderr)
    return row


def storing(work, items=100, clients=16):
    """loadgen -> receiver -> SLIM -> participant --sink store: ; then page everything back."""
    work = Path(tempfile.mkdtemp(dir=work))
    api = free_port()
    # Paging speed, not the per-client query rate limit (`--query-api-rate`, 50 pages/s).
    mesh = Mesh(work, sink=f"store:{work / 'store'}",
                participant_args=["--query-api", f"127.0.0.1:{api}", "--query-api-rate", "0"])
    try:
        time.sleep(2)
        before = mesh.cpu()
        started = time.time()
        report = loadgen(mesh, items, clients)
        wait_for("storing", lambda: mesh.sink_delivered() >= report["ok"], timeout=300)
        done = time.time()
        after = mesh.cpu()
        detail = (health(mesh.participant_health) or {}).get("sinks", [{}])[0].get("detail", {})
        paged, pages, paging_s = page_all(api)
        peak = mesh.peak_rss()
    finally:
        mesh.stop()
    stored_per_s = report["ok"] / max(done - started, 1e-9)
    row = {"name": "storing", "items": items, "clients": clients,
           "req_per_s": report["ok"] / report["seconds"], "stored_per_s": stored_per_s,
           "e2e_req_per_s": min(report["ok"] / report["seconds"], stored_per_s),
           "taken": report["ok"], "stored_items": detail.get("traces", 0), "store_bytes": detail.get("bytes", 0),
           "paged": paged, "pages": pages, "paged_per_s": paged / max(paging_s, 1e-9),
           "cpu_per_10k": {n: (after[n] - before[n]) / max(report["ok"], 1) * 10_000 for n in after},
           "peak_rss_mib": {n: kib / 1024 for n, kib in peak.items()}}
    print(f"bench: storing: {row['req_per_s']:.0f} req/s taken, {stored_per_s:.0f} stored; "
          f"{paged} spans paged back in {pages} pages at {row['paged_per_s']:.0f}/s", file=sys.stderr)
    return row


def page_all(api):
    """Pages every span of the query API on port `api` (protobuf, limit 10,000): (spans, pages, seconds)."""
    paged, pages, cursor, started = 0, 0, None, time.time()
    while True:
        body = {"startTimeUnixNano": 0, "limit": 10_000} | ({"cursor": cursor} if cursor else {})
        request = urllib.request.Request(f"http://127.0.0.1:{api}/api/traces/fetch", data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json",
                                                  "Accept": "application/x-protobuf"})
        try:
            with urllib.request.urlopen(request, timeout=120) as answer:
                if answer.headers.get("slim-node-partial"):
                    raise SystemExit("bench: a partial page: the bucket did not give every segment")
                raw = answer.read()
        except urllib.error.HTTPError as err:
            # Asked to wait (rate limit, busy): as any client would, then the same page again.
            if err.code not in (429, 503):
                raise
            time.sleep(min(float(err.headers.get("Retry-After") or 1), 5))
            continue
        # Count resource entries (field 1) and read nextCursor (1000) and hasMore (1001).
        entries, cursor, more = protobuf_page(raw)
        paged, pages = paged + entries, pages + 1
        if not more:
            return paged, pages, time.time() - started


WEED = ROOT / ".ci" / "venv" / "bin" / "weed"
VENV_PYTHON = ROOT / ".ci" / "venv" / "bin" / "python"
# `weed mini`'s port flags besides the S3 port (each gets a free port).
WEED_PORTS = ["admin.port", "admin.port.grpc", "debug.port", "filer.port", "filer.port.grpc", "master.port",
              "master.port.grpc", "metricsPort", "volume.port", "volume.port.grpc", "s3.port.grpc",
              "s3.port.iceberg", "s3.port.lance", "webdav.port"]


class Seaweed:
    """SeaweedFS's S3 server (`weed mini`, from .ci/venv) on loopback, with the bucket `telemetry`."""

    KEY = ("bench-s3-key", "bench-s3-secret-0123456789")

    def __init__(self, work):
        self.dir = Path(tempfile.mkdtemp(dir=work))
        self.s3 = free_port()
        args = [str(WEED), "mini", f"-dir={self.dir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-metricsIp=127.0.0.1",
                f"-s3.port={self.s3}", "-bucket=telemetry", "-webdav=false", "-admin.ui=false",
                *[f"-{flag}={free_port()}" for flag in WEED_PORTS]]
        log = open(self.dir / "weed.log", "w")
        env = dict(os.environ, AWS_ACCESS_KEY_ID=self.KEY[0], AWS_SECRET_ACCESS_KEY=self.KEY[1])
        self.proc = subprocess.Popen(args, stdout=log, stderr=log, stdin=subprocess.DEVNULL, env=env)
        wait_for("SeaweedFS", lambda: socket.socket().connect_ex(("127.0.0.1", self.s3)) == 0)

    def env(self):
        return {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{self.s3}", "AWS_ACCESS_KEY_ID": self.KEY[0],
                "AWS_SECRET_ACCESS_KEY": self.KEY[1], "AWS_REGION": "us-east-1"}

    def stop(self):
        stop_process(self.proc)


def store_detail(mesh):
    return ((health(mesh.participant_health) or {}).get("sinks") or [{}])[0].get("detail", {})


def send_real_shaped(mesh, traces):
    """bench/realistic_traces.py (the OpenTelemetry Python SDK) into the mesh's receiver: spans sent."""
    out = subprocess.run([str(VENV_PYTHON), str(ROOT / "bench" / "realistic_traces.py"), "--endpoint",
                          f"http://127.0.0.1:{mesh.http}", "--traces", str(traces)],
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"bench: realistic_traces.py failed ({out.returncode}): {out.stdout}{out.stderr[-2000:]}")
    return json.loads(out.stdout)["spans"]


def archive(work, traces=20_000):
    """The store with its history in object storage (SeaweedFS): spans stored per second with
    `location=`, bytes per span here and in the bucket for real-shaped spans (the OTel SDK) and
    for loadgen's, and paging from the bucket by `slim-node query` with a cold and a warm cache."""
    s3 = Seaweed(work)
    try:
        # 1. Throughput: loadgen's 100-span requests, 16 clients, closed loop, sealing every 2 s.
        mesh = Mesh(work, sink=f"store:{Path(work) / 'archive-load'};location=s3://telemetry/load;seal-after=2s",
                    env=s3.env())
        try:
            time.sleep(2)
            before = mesh.cpu()
            started = time.time()
            report = loadgen(mesh, 100, 16)
            wait_for("storing", lambda: mesh.sink_delivered() >= report["ok"], timeout=300)
            stored_at = time.time()
            after = mesh.cpu()
            spans = report["ok"] * 100
            wait_for("archiving", lambda: store_detail(mesh).get("archived", 0) >= spans
                     and store_detail(mesh).get("archive", {}).get("waiting_items") == 0, timeout=600)
            in_bucket_s = time.time() - stored_at
            load = store_detail(mesh)
            peak = mesh.peak_rss()
        finally:
            mesh.stop()
        row = {"taken": report["ok"], "stored_spans_per_s": spans / max(stored_at - started, 1e-9),
               "in_bucket_after_s": in_bucket_s, "cpu_per_10k": {n: (after[n] - before[n]) / max(report["ok"], 1) * 10_000
                                                                  for n in after},
               "peak_rss_mib": {n: kib / 1024 for n, kib in peak.items()},
               "loadgen_bucket_bytes_per_span": load["archive"]["bytes"] / max(load["archive"]["items"], 1)}
        # 2. Real-shaped spans kept locally (no location): bytes per span in the store.
        mesh = Mesh(work, sink=f"store:{Path(work) / 'archive-local'}")
        try:
            sent = send_real_shaped(mesh, traces)
            wait_for("storing real-shaped spans", lambda: store_detail(mesh).get("traces", 0) >= sent, timeout=300)
            local = store_detail(mesh)
        finally:
            mesh.stop()
        row |= {"real_spans": sent, "local_bytes_per_span": local["bytes"] / max(local["traces"], 1)}
        # 3. The same spans sealed into the bucket.
        mesh = Mesh(work, sink=f"store:{Path(work) / 'archive-real'};location=s3://telemetry/real;seal-after=1s",
                    env=s3.env())
        try:
            sent = send_real_shaped(mesh, traces)
            wait_for("archiving real-shaped spans", lambda: store_detail(mesh).get("archived", 0) >= sent
                     and store_detail(mesh).get("archive", {}).get("waiting_items") == 0, timeout=600)
            sealed = store_detail(mesh)["archive"]
        finally:
            mesh.stop()
        row |= {"segments": sealed["segments"], "bucket_bytes_per_span": sealed["bytes"] / max(sealed["items"], 1)}
        # 4. A read-only node with an empty directory pages them from the bucket: cold, then warm.
        api = free_port()
        reader_dir = Path(tempfile.mkdtemp(dir=work))
        env = dict(os.environ, SLIM_NODE_LOG="warn", **s3.env())
        with open(reader_dir / "query.err", "w") as err:
            reader = subprocess.Popen([str(BIN), "query", "--sink", f"store:{reader_dir};location=s3://telemetry/real",
                                       "--query-api", f"127.0.0.1:{api}", "--query-api-rate", "0"],
                                      stdout=subprocess.DEVNULL, stderr=err, env=env)
        try:
            wait_for("slim-node query", lambda: socket.socket().connect_ex(("127.0.0.1", api)) == 0)
            cold = page_all(api)
            warm = page_all(api)
            reader_peak = rss_kib(reader.pid, "VmHWM") / 1024
        finally:
            stop_process(reader)
        if cold[0] != sent or warm[0] != sent:
            raise SystemExit(f"bench: paged {cold[0]} and {warm[0]} spans of {sent}")
        row |= {"cold_spans_per_s": cold[0] / max(cold[2], 1e-9), "warm_spans_per_s": warm[0] / max(warm[2], 1e-9),
                "pages": cold[1], "reader_peak_rss_mib": reader_peak}
    finally:
        s3.stop()
    print(f"bench: archive: {row['stored_spans_per_s']:.0f} spans/s stored with location=; real-shaped spans "
          f"{row['local_bytes_per_span']:.0f} B here, {row['bucket_bytes_per_span']:.1f} B in the bucket; paging "
          f"{row['cold_spans_per_s']:.0f}/s cold, {row['warm_spans_per_s']:.0f}/s warm", file=sys.stderr)
    return row


def archive_table(a, when, storing_row=None):
    ratio = ""
    if storing_row:
        without = storing_row['stored_per_s'] * storing_row['items']
        ratio = f" ({a['stored_spans_per_s'] / max(without, 1e-9):.2f}× the store without a location in the same run: {without:,.0f})"
    cpu = a["cpu_per_10k"]
    return "\n".join([
        f"Run {when}; SeaweedFS (`weed mini`) on the same machine; release build.", "",
        "| measure | value |", "|---|---|",
        f"| spans stored per second with `location=` (loadgen, 100-span requests, 16 clients, 10 s, sealing every 2 s) | "
        f"{a['stored_spans_per_s']:,.0f}{ratio} |",
        f"| ... all of it in the bucket | {a['in_bucket_after_s']:.1f} s after the last was stored |",
        f"| ... CPU s per 10k requests (participant, moderator) / participant peak RSS | "
        f"{cpu.get('participant', 0):.2f}, {cpu.get('moderator', 0):.2f} / {a['peak_rss_mib'].get('participant', 0):.0f} MiB |",
        f"| bytes per span, real-shaped spans ({a['real_spans']:,} from the OTel Python SDK, `bench/realistic_traces.py`): local store | "
        f"{a['local_bytes_per_span']:.0f} B |",
        f"| ... in the bucket ({a['segments']} segments, zstd) | {a['bucket_bytes_per_span']:.1f} B |",
        f"| bytes per span in the bucket, loadgen's spans (identical but for ids and times: not a real figure) | "
        f"{a['loadgen_bucket_bytes_per_span']:.1f} B |",
        f"| paging from the bucket, `slim-node query` with an empty directory, cold cache ({a['pages']} pages: limit 10,000, 4 MiB at most) | "
        f"{a['cold_spans_per_s']:,.0f} spans/s |",
        f"| ... warm cache | {a['warm_spans_per_s']:,.0f} spans/s (reader peak RSS {a['reader_peak_rss_mib']:.0f} MiB) |",
    ])


def protobuf_page(raw):
    """(entries, nextCursor, hasMore) of a protobuf fetch answer."""
    def varint(i):
        shift = value = 0
        while True:
            b = raw[i]
            value |= (b & 0x7F) << shift
            i, shift = i + 1, shift + 7
            if b < 0x80:
                return value, i
    i, entries, cursor, more = 0, 0, None, False
    while i < len(raw):
        key, i = varint(i)
        field, wire = key >> 3, key & 7
        if wire == 2:
            n, i = varint(i)
            if field == 1:
                entries += 1
            elif field == 1000:
                cursor = raw[i:i + n].decode()
            i += n
        elif wire == 0:
            v, i = varint(i)
            if field == 1001:
                more = bool(v)
        else:
            raise ValueError(f"unexpected wire type {wire}")
    return entries, cursor, more


def rotel_pair(work, items=100, clients=16):
    """The peer without a mesh: loadgen -> Rotel -> OTLP/HTTP -> Rotel blackhole."""
    work = Path(tempfile.mkdtemp(dir=work))
    blackhole = Rotel(work, "blackhole", ["--exporter", "blackhole"])
    front = Rotel(work, "front", ["--exporter", "otlp", "--otlp-exporter-protocol", "http",
                                  "--otlp-exporter-endpoint", f"http://127.0.0.1:{blackhole.http}"])
    try:
        before = {"front": cpu_seconds(front.proc.pid), "blackhole": cpu_seconds(blackhole.proc.pid)}
        args = ["loadgen", "--endpoint", f"http://127.0.0.1:{front.http}", "--items", str(items),
                "--clients", str(clients), "--duration", str(RUN_SECONDS), "--json"]
        out, cpu, _ = run_measured(args, work / "loadgen.err")
        report = json.loads(out)
        time.sleep(1)
        after = {"front": cpu_seconds(front.proc.pid), "blackhole": cpu_seconds(blackhole.proc.pid)}
    finally:
        front.stop()
        blackhole.stop()
    ok = max(report["ok"], 1)
    row = {"name": "Rotel → Rotel blackhole", "req_per_s": report["ok"] / report["seconds"],
           "answers": report["answers"],
           "cpu_per_10k": {n: (after[n] - before[n]) / ok * 10_000 for n in after} | {"loadgen": cpu / ok * 10_000}}
    print(f"bench: rotel pair: {row['req_per_s']:.0f} req/s, answers {report['answers']}", file=sys.stderr)
    return row


def ceiling(work, size, messages):
    mesh_dir = Path(tempfile.mkdtemp(dir=work))
    slim = free_port()
    with open(mesh_dir / "server.err", "w") as err:
        server = subprocess.Popen([str(BIN), "server", "--endpoint", f"127.0.0.1:{slim}"],
                                  stdout=subprocess.DEVNULL, stderr=err)
    try:
        wait_for("the SLIM server", lambda: socket.socket().connect_ex(("127.0.0.1", slim)) == 0)
        before = cpu_seconds(server.pid)
        out, cpu, peak = run_measured(["slim-bench", "--slim", f"http://127.0.0.1:{slim}", "--size",
                                       str(int(size)), "--messages", str(messages), "--json"],
                                      mesh_dir / "slim-bench.err")
        server_cpu = cpu_seconds(server.pid) - before
    finally:
        server.terminate()
        server.wait()
    report = json.loads(out)
    report["cpu_per_10k"] = {"server": server_cpu / messages * 10_000, "slim-bench": cpu / messages * 10_000}
    report["peak_rss_mib"] = peak / 1024
    print(f"bench: ceiling {int(size)} B: {report['messages_per_s']:.0f} msg/s, p99 "
          f"{report['latency_ms']['p99']:.2f} ms", file=sys.stderr)
    return report


def overload(work):
    """The participant frozen (SIGSTOP): the outbox fills to its bound, receivers answer 503."""
    queue = 64 * 1024 * 1024
    mesh = Mesh(work, queue_max_bytes=queue)
    try:
        mesh.procs["participant"].send_signal(signal.SIGSTOP)
        report = loadgen(mesh, 100, 16, seconds=15)
        peak = mesh.peak_rss()["moderator"] / 1024
    finally:
        mesh.stop()
    print(f"bench: overload: moderator peak RSS {peak:.1f} MiB, answers {report['answers']}", file=sys.stderr)
    return {"queue_mib": queue / 2**20, "moderator_peak_rss_mib": peak, "answers": report["answers"]}


def with_a_member_frozen(work, frozen, items=100, clients=16, server_args=()):
    """loadgen -> receiver -> SLIM -> two participants; the second frozen (SIGSTOP) `frozen`:
    None (never), "before" (before the load, once the moderator has found it gone and the
    server has dropped its connection), or "during" (2 s into the load). Returns what the
    live participant got."""
    mesh = Mesh(work, others=["member-2"], server_args=server_args)
    try:
        wait_for("every member live", lambda: (health(mesh.http) or {}).get("status") == "ok")
        member = mesh.procs["member-2"]
        if frozen == "before":
            member.send_signal(signal.SIGSTOP)
            wait_for("the moderator to find the member gone",
                     lambda: (health(mesh.http) or {}).get("node", {}).get("state") == "inviting")
            # The server drops it once it has not answered a ping (2 s + 3 s by default).
            time.sleep(6)
        elif frozen == "during":
            timer = __import__("threading").Timer(2.0, lambda: member.send_signal(signal.SIGSTOP))
            timer.start()
        report = loadgen(mesh, items, clients)
        wait_for("delivery", lambda: mesh.delivered().get("messages", 0) >= report["ok"], timeout=180)
        got = mesh.delivered()
        peak = mesh.peak_rss()["moderator"] / 1024
    finally:
        mesh.stop()
    taken_per_s = report["ok"] / report["seconds"]
    row = {"frozen": frozen, "server_args": list(server_args), "req_per_s": taken_per_s, "delivered_per_s": got["messages_per_s"],
           "e2e_req_per_s": min(taken_per_s, got["messages_per_s"]), "e2e_p99": got["latency_ms"]["p99"],
           "answers": report["answers"], "delivered": got["messages"], "taken": report["ok"],
           "moderator_peak_rss_mib": peak}
    print(f"bench: member frozen {frozen}: {row['e2e_req_per_s']:.0f} req/s to the live participant, "
          f"delivered {row['delivered']}/{row['taken']}, answers {row['answers']}", file=sys.stderr)
    return row


# The server drops a client that stopped answering after its keepalive interval + timeout.
QUICK_KEEPALIVE = ("--keepalive-interval", "1s", "--keepalive-timeout", "1s")


def members(work):
    rows = [with_a_member_frozen(work, frozen) for frozen in (None, "before", "during")]
    return rows + [with_a_member_frozen(work, "during", server_args=QUICK_KEEPALIVE)]


def members_table(rows, when):
    base = rows[0]["e2e_req_per_s"]
    label = {None: "both members live", "before": "second member frozen before the load",
             "during": "second member frozen 2 s into the 10 s load"}
    out = [f"Run {when}; 100-span requests, 16 clients, closed loop, 10 s; what the live participant got.", "",
           "| run | req/s to the live member | ratio to both live | e2e p99 ms | delivered / taken | answers | moderator peak RSS MiB |",
           "|---|---|---|---|---|---|---|"]
    for r in rows:
        quick = " (server keepalive 1 s + 1 s)" if r.get("server_args") else ""
        out.append(f"| {label[r['frozen']]}{quick} | {r['e2e_req_per_s']:,.0f} | {r['e2e_req_per_s'] / base:.2f}× | "
                   f"{r['e2e_p99']:.2f} | {r['delivered']} / {r['taken']} | {r['answers']} | {r['moderator_peak_rss_mib']:.1f} |")
    before = rows[1]["e2e_req_per_s"] / base
    out += ["", "| target | measured | met |", "|---|---|---|",
            f"| live members' throughput with one member frozen within 10 % of none frozen | {before:.2f}× | "
            f"{'yes' if before >= 0.9 else 'no'} |"]
    return "\n".join(out)


def replace_section(md, begin, end, body):
    text = md.read_text() if md.exists() else ""
    if begin not in text:
        text += f"\n{begin}\n{end}\n"
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    md.write_text(f"{head}{begin}\n{body}\n{end}{tail}")


def machine():
    cpu = re.search(r"model name\s*:\s*(.*)", Path("/proc/cpuinfo").read_text())
    rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
    return (f"{cpu.group(1) if cpu else platform.processor()}, {os.cpu_count()} cores, "
            f"Linux {platform.release()}, {rustc}, release build")


def table(results):
    c = results["ceiling"]
    rows = {r["name"]: r for r in results["e2e"]}
    f0 = lambda x: f"{x:,.0f}"
    f2 = lambda x: f"{x:.2f}"
    out = [f"Run {results['when']} on {results['machine']}.", "",
           "### Raw SLIM ceiling (`slim-node slim-bench`: two apps, group session, MLS on, window 256)", "",
           "| payload | msg/s | p50 ms | p99 ms | CPU s/10k msgs (server, bench) |", "|---|---|---|---|---|"]
    for label, r in c.items():
        out.append(f"| {label} ({r['size']} B) | {f0(r['messages_per_s'])} | {f2(r['latency_ms']['p50'])} | "
                   f"{f2(r['latency_ms']['p99'])} | {f2(r['cpu_per_10k']['server'])}, {f2(r['cpu_per_10k']['slim-bench'])} |")
    out += ["", "### slim-node end to end (loadgen → receiver → SLIM → participant `--sink bench`)", "",
            "| run | clients | req/s taken / delivered | spans/s | ratio to ceiling (req/s) | e2e p50 / p99 ms | answer p50 / p99 ms "
            "| delivered / taken | CPU s per 10k req (mod, server, part, loadgen) | peak RSS MiB (mod, server, part) |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results["e2e"]:
        ceil = c["small" if r["items"] == 1 else "100 spans"]["messages_per_s"]
        cpu = r["cpu_per_10k"]
        rss = r["peak_rss_mib"]
        out.append(
            f"| {r['name']} | {r['clients']}{' @ ' + f0(r['rate']) + '/s' if r['rate'] else ''} | {f0(r['req_per_s'])} / {f0(r['delivered_per_s'])} | "
            f"{f0(r['items_per_s'])} | {r['e2e_req_per_s'] / ceil:.2f}× | {f2(r['e2e_p50'])} / {f2(r['e2e_p99'])} | "
            f"{f2(r['answer_p50'])} / {f2(r['answer_p99'])} | {r['delivered']} / {r['taken']} | "
            f"{f2(cpu['moderator'])}, {f2(cpu['server'])}, {f2(cpu['participant'])}, {f2(cpu['loadgen'])} | "
            f"{rss['moderator']:.1f}, {rss['server']:.1f}, {rss['participant']:.1f} |")
    small16 = rows["small, closed loop"]
    idle = results["e2e"][0]["idle_rss_mib"]
    o = results["overload"]
    out += ["", "### Against the targets", "",
            "| target | measured | met |", "|---|---|---|",
            f"| req/s at 16 clients ≥ 1.0× raw SLIM msg/s (small) | {small16['e2e_req_per_s'] / c['small']['messages_per_s']:.2f}× | "
            f"{'yes' if small16['e2e_req_per_s'] >= c['small']['messages_per_s'] else 'no'} |",
            f"| req/s at 16 clients ≥ 1.0× raw SLIM msg/s (100 spans) | "
            f"{rows['100 spans, closed loop']['e2e_req_per_s'] / c['100 spans']['messages_per_s']:.2f}× | "
            f"{'yes' if rows['100 spans, closed loop']['e2e_req_per_s'] >= c['100 spans']['messages_per_s'] else 'no'} |",
            f"| ≥ 20× the seed's {SEED_REQ_PER_S:,} req/s (small, 16 clients) | {small16['e2e_req_per_s'] / SEED_REQ_PER_S:.1f}× | "
            f"{'yes' if small16['e2e_req_per_s'] >= 20 * SEED_REQ_PER_S else 'no'} |"]
    half = rows.get("small, half the peak rate")
    if half:
        out.append(f"| e2e p99 < 10 ms at half the peak rate | {f2(half['e2e_p99'])} ms | {'yes' if half['e2e_p99'] < 10 else 'no'} |")
    one = rows["small, one client"]
    paced = rows["small, one client at 500/s"]
    out += [f"| e2e p99 < 2 ms at 1 client | closed loop {f2(one['e2e_p99'])} ms; at 500 req/s {f2(paced['e2e_p99'])} ms | "
            f"{'yes' if one['e2e_p99'] < 2 else 'no'} |",
            f"| idle RSS < 40 MiB per node | moderator {idle['moderator']:.1f}, participant {idle['participant']:.1f}, "
            f"server {idle['server']:.1f} MiB | {'yes' if max(idle.values()) < 40 else 'no'} |",
            f"| RSS under overload ≤ queue ({o['queue_mib']:.0f} MiB) + 50 MiB | moderator peak {o['moderator_peak_rss_mib']:.1f} MiB "
            f"(answers {o['answers']}) | {'yes' if o['moderator_peak_rss_mib'] <= o['queue_mib'] + 50 else 'no'} |"]
    fwd, peer, bench_row = results["forwarding"], results["rotel_pair"], rows["100 spans, closed loop"]
    fcpu = fwd["cpu_per_10k"]
    out += ["", "### Forwarding (100-span requests, 16 clients, closed loop)", "",
            "| run | req/s | ratio to the bench-sink row | ratio to Rotel → Rotel | CPU s per 10k req |", "|---|---|---|---|---|",
            f"| slim-node → participant `--sink bench` (the row above) | {f0(bench_row['e2e_req_per_s'])} | 1.00× | "
            f"{bench_row['e2e_req_per_s'] / peer['req_per_s']:.2f}× | mod {f2(bench_row['cpu_per_10k']['moderator'])}, "
            f"part {f2(bench_row['cpu_per_10k']['participant'])} |",
            f"| slim-node → participant `--sink otlp:` → Rotel blackhole | {f0(fwd['e2e_req_per_s'])} (taken {f0(fwd['req_per_s'])}, "
            f"forwarded {f0(fwd['forwarded_per_s'])}; delivered {fwd['delivered']} / {fwd['taken']}) | "
            f"{fwd['e2e_req_per_s'] / bench_row['e2e_req_per_s']:.2f}× | {fwd['e2e_req_per_s'] / peer['req_per_s']:.2f}× | "
            f"mod {f2(fcpu['moderator'])}, part {f2(fcpu['participant'])}, rotel {f2(fcpu['rotel'])} |",
            f"| loadgen → Rotel → Rotel blackhole (no mesh) | {f0(peer['req_per_s'])} | — | 1.00× | "
            f"front {f2(peer['cpu_per_10k']['front'])}, blackhole {f2(peer['cpu_per_10k']['blackhole'])} |",
            "", "| target | measured | met |", "|---|---|---|",
            f"| forwarding ≥ 0.8× the bench-sink row | {fwd['e2e_req_per_s'] / bench_row['e2e_req_per_s']:.2f}× | "
            f"{'yes' if fwd['e2e_req_per_s'] >= 0.8 * bench_row['e2e_req_per_s'] else 'no'} |"]
    st = results.get("storing")
    if st:
        scpu = st["cpu_per_10k"]
        out += ["", "### Storing (100-span requests, 16 clients, closed loop), then paging it all back", "",
                "| run | req/s taken / stored | spans/s stored | ratio to the bench-sink row | CPU s per 10k req (mod, part) | participant peak RSS MiB | store |",
                "|---|---|---|---|---|---|---|",
                f"| participant `--sink store:` | {f0(st['req_per_s'])} / {f0(st['stored_per_s'])} | {f0(st['e2e_req_per_s'] * st['items'])} | "
                f"{st['e2e_req_per_s'] / bench_row['e2e_req_per_s']:.2f}× | {f2(scpu['moderator'])}, {f2(scpu['participant'])} | "
                f"{st['peak_rss_mib']['participant']:.1f} | {st['stored_items']:,} spans in {st['store_bytes'] / 2**20:.1f} MiB "
                f"({st['store_bytes'] / max(st['stored_items'], 1):.0f} B each) |",
                "", f"Paging back: {st['paged']:,} spans in {st['pages']} pages of up to 10,000 (protobuf), "
                f"{f0(st['paged_per_s'])} spans/s."]
    return "\n".join(out)


def latency(work, runs=2):
    """16 clients, 100-span requests, closed loop: the outbox bounded by time (the default) and
    without the bound (`--queue-max-delay 0s`), alternating."""
    rows = []
    for _ in range(runs):
        rows.append(end_to_end(work, "bounded by time (default)", 100, 16))
        rows.append(end_to_end(work, "no time bound", 100, 16, node_args=["--queue-max-delay", "0s"]))
    return rows


def latency_table(rows, when):
    out = [f"Run {when} (`python3 bench/run.py --only latency`, release build): 16 clients, 100-span requests, "
           "closed loop, 10 s, alternating.", "",
           "| run | req/s (taken / delivered) | e2e p50 / p99 ms | answer p99 ms | CPU s per 10k req (mod, server, part) | moderator peak RSS MiB |",
           "|---|---|---|---|---|---|"]
    for r in rows:
        c = r["cpu_per_10k"]
        out.append(f"| {r['name']} | {r['e2e_req_per_s']:,.0f} ({r['req_per_s']:,.0f} / {r['delivered_per_s']:,.0f}) | "
                   f"{r['e2e_p50']:.1f} / {r['e2e_p99']:.1f} | {r['answer_p99']:.1f} | "
                   f"{c['moderator']:.2f}, {c['server']:.2f}, {c['participant']:.2f} | {r['peak_rss_mib']['moderator']:.0f} |")
    bound = [r for r in rows if r["name"].startswith("bounded")]
    free = [r for r in rows if not r["name"].startswith("bounded")]
    mean = lambda rs, k: sum(r[k] for r in rs) / max(len(rs), 1)
    ratio = mean(bound, "e2e_req_per_s") / max(mean(free, "e2e_req_per_s"), 1e-9)
    worst = max(r["e2e_p99"] for r in bound)
    out += ["", "| target | measured | met |", "|---|---|---|",
            f"| e2e p99 ≤ 100 ms at 16 clients, 100 spans | worst {worst:.1f} ms | {'yes' if worst <= 100 else 'no'} |",
            f"| throughput within 5 % of no time bound | {ratio:.2f}× (means) | {'yes' if ratio >= 0.95 else 'no'} |"]
    return "\n".join(out)


def hop_targets(results):
    """Against a plain collector hop (issue 26): the four ratios, with every process's CPU."""
    rows = {r["name"]: r for r in results["e2e"]}
    f2 = lambda x: f"{x:.2f}"
    met = lambda ok: "yes" if ok else "no"
    cpu = lambda c: ", ".join(f"{n} {v:.2f}" for n, v in c.items())
    out = ["", "### Against a plain collector hop (Rotel → Rotel, same run)", "",
           "| target | measured | met | CPU s per 10k req |", "|---|---|---|---|"]
    for label, bench_row, fwd, peer in [
            ("100 spans", rows["100 spans, closed loop"], results["forwarding"], results["rotel_pair"]),
            ("1 span", rows["small, closed loop"], results.get("forwarding_small"), results.get("rotel_pair_small"))]:
        if not (fwd and peer):
            continue
        r_fwd = fwd["e2e_req_per_s"] / peer["req_per_s"]
        r_hop = bench_row["e2e_req_per_s"] / peer["req_per_s"]
        out += [f"| forwarding (mesh + `--sink otlp:` into Rotel's blackhole) ≥ 1.0× Rotel → Rotel, {label} | "
                f"{r_fwd:.2f}× ({fwd['e2e_req_per_s']:,.0f} against {peer['req_per_s']:,.0f} req/s) | {met(r_fwd >= 1.0)} | "
                f"{cpu(fwd['cpu_per_10k'])}; Rotel pair: {cpu(peer['cpu_per_10k'])} |",
                f"| the mesh hop (`--sink bench`) ≥ 1.2× Rotel → Rotel, {label} | {r_hop:.2f}× | {met(r_hop >= 1.2)} | "
                f"{cpu(bench_row['cpu_per_10k'])} |"]
    st = results.get("storing")
    bench_row = rows["100 spans, closed loop"]
    if st:
        r_st = st["e2e_req_per_s"] / bench_row["e2e_req_per_s"]
        out.append(f"| a store that keeps up: ≥ 0.8× the bench-sink row (spans stored/s) | {r_st:.2f}× "
                   f"({st['store_bytes'] / max(st['stored_items'], 1):.0f} B per span, participant peak RSS "
                   f"{st['peak_rss_mib']['participant']:.0f} MiB) | {met(r_st >= 0.8)} | {cpu(st['cpu_per_10k'])} |")
    unbound = rows.get("100 spans, closed loop, no time bound")
    if unbound:
        within = bench_row["e2e_req_per_s"] / unbound["e2e_req_per_s"]
        out.append(f"| bounded latency: 16 clients, 100 spans, e2e p99 ≤ 100 ms, throughput within 5 % of no time bound | "
                   f"p99 {f2(bench_row['e2e_p99'])} ms (without the bound {f2(unbound['e2e_p99'])} ms); "
                   f"{within:.2f}× the throughput | {met(bench_row['e2e_p99'] <= 100 and within >= 0.95)} | "
                   f"{cpu(bench_row['cpu_per_10k'])} |")
    return out


def hop(work, rounds=2):
    """The issue-26 comparison alone: Rotel -> Rotel, the mesh hop (`--sink bench`) and
    forwarding into Rotel's blackhole, 100-span and 1-span requests, the same chain without the
    time bound, each peer next to the runs it is compared with, `rounds` times (runs move by
    about 10 %: the table has the means); then the store, once."""
    runs = []
    for _ in range(rounds):
        runs.append({
            "rotel_pair": rotel_pair(work),
            "e2e": [end_to_end(work, "100 spans, closed loop", 100, 16),
                    end_to_end(work, "100 spans, closed loop, no time bound", 100, 16,
                               node_args=["--queue-max-delay", "0s"]),
                    end_to_end(work, "small, closed loop", 1, 16)],
            "forwarding": forwarding(work),
            "rotel_pair_small": rotel_pair(work, items=1),
            "forwarding_small": forwarding(work, items=1),
        })
    merged = {key: mean_row([r[key] for r in runs]) for key in runs[0] if key != "e2e"}
    merged["e2e"] = [mean_row([r["e2e"][i] for r in runs]) for i in range(len(runs[0]["e2e"]))]
    return merged | {"rounds": runs, "storing": storing(work)}


def mean_row(rows):
    """One row standing for `rows` (the same run repeated): rates and CPU are their means,
    latencies and memory their worst."""
    out = dict(rows[0])
    for key, value in rows[0].items():
        if key in ("e2e_p50", "e2e_p99", "answer_p50", "answer_p99"):
            out[key] = max(r[key] for r in rows)
        elif key == "cpu_per_10k":
            out[key] = {n: sum(r[key][n] for r in rows) / len(rows) for n in value}
        elif key == "peak_rss_mib":
            out[key] = {n: max(r[key][n] for r in rows) for n in value}
        elif key.endswith("_per_s"):
            out[key] = sum(r[key] for r in rows) / len(rows)
    out["runs"] = len(rows)
    return out


def hop_table(results, when):
    rows = {r["name"]: r for r in results["e2e"]}
    rate = lambda r: f"{r['e2e_req_per_s']:,.0f}"
    n = len(results.get("rounds", [])) or 1
    # One rate per round of the row `pick` chooses.
    each = lambda pick: " / ".join(f"{pick(r).get('e2e_req_per_s', pick(r)['req_per_s']):,.0f}"
                                   for r in results.get("rounds", []))
    out = [f"Run {when} (`python3 bench/run.py --only hop`, release build): 16 clients, closed loop, 10 s each; "
           + (f"the chains {n} times, alternating, means below (latencies and memory: the worst); the store once."
              if n > 1 else "each chain once (the full bench run)."), "",
           "| run | 100 spans req/s | 1 span req/s |", "|---|---|---|",
           f"| loadgen → Rotel → Rotel blackhole | {results['rotel_pair']['req_per_s']:,.0f} | "
           f"{results['rotel_pair_small']['req_per_s']:,.0f} |",
           f"| loadgen → receiver → SLIM → participant `--sink bench` | {rate(rows['100 spans, closed loop'])} | "
           f"{rate(rows['small, closed loop'])} |",
           f"| … → participant `--sink otlp:` → Rotel blackhole (until every request answered 200 was forwarded) | "
           f"{rate(results['forwarding'])} | {rate(results['forwarding_small'])} |",
           f"| … → participant `--sink store:` (until every request answered 200 was stored) | "
           f"{rate(results['storing'])} | — |"]
    if results.get("rounds"):
        out += ["", f"Each round (req/s): Rotel → Rotel 100 spans {each(lambda r: r['rotel_pair'])}, "
                f"1 span {each(lambda r: r['rotel_pair_small'])}; "
                f"forwarding 100 spans {each(lambda r: r['forwarding'])}, 1 span {each(lambda r: r['forwarding_small'])}; "
                f"mesh hop 100 spans {each(lambda r: r['e2e'][0])}, 1 span {each(lambda r: r['e2e'][2])}."]
    return "\n".join(out + hop_targets(results))


def scrape(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        return r.read().decode()


def duration_histogram(text):
    """(count, [(le, cumulative count)]) of the receiver's OTLP/HTTP trace exports answered 200."""
    buckets, count = [], None
    for line in text.splitlines():
        if not line.startswith("http_server_request_duration_seconds") or 'http_route="/v1/traces"' not in line \
                or 'http_response_status_code="200"' not in line:
            continue
        series, value = line.rsplit(" ", 1)
        if series.startswith("http_server_request_duration_seconds_bucket"):
            le = re.search(r'le="([^"]+)"', series).group(1)
            buckets.append((float("inf") if le == "+Inf" else float(le), float(value)))
        elif series.startswith("http_server_request_duration_seconds_count"):
            count = float(value)
    return count, sorted(buckets)


def telemetry_load(work, on, rate=None, clients=16, items=1):
    """One closed-loop (or `rate`) run of `items`-span requests with the metrics on or off."""
    mesh = Mesh(work, node_args=() if on else ("--telemetry", "off"))
    try:
        time.sleep(2)
        before = mesh.cpu()
        report = loadgen(mesh, items, clients, rate)
        wait_for("delivery", lambda: mesh.delivered().get("messages", 0) >= report["ok"], timeout=120)
        after = mesh.cpu()
        text = scrape(mesh.http) if on else None
    finally:
        mesh.stop()
    per_10k = lambda name: (after[name] - before[name]) / max(report["ok"], 1) * 10_000
    row = {"on": on, "rate": rate, "clients": clients, "items": items, "req_per_s": report["ok"] / report["seconds"],
           "taken": report["ok"], "answer_p50_ms": report["latency_ms"]["p50"],
           "answer_p99_ms": report["latency_ms"]["p99"],
           "cpu_per_10k": per_10k("moderator") + per_10k("participant")}
    if text is not None:
        count, buckets = duration_histogram(text)
        bounds = [le for le, _ in buckets]
        p99 = next(le for le, n in buckets if n >= 0.99 * count)
        p50 = next(le for le, n in buckets if n >= 0.5 * count)
        load = report["latency_ms"]["p99"] / 1000
        load_bucket = next(le for le in bounds if load <= le)
        row |= {"histogram_count": count, "server_p50_le_s": p50, "server_p99_le_s": p99,
                "loadgen_p99_le_s": load_bucket,
                "buckets_apart": abs(bounds.index(p99) - bounds.index(load_bucket))}
    print(f"bench: telemetry {'on' if on else 'off'}: {row['req_per_s']:.0f} req/s, "
          f"{row['cpu_per_10k']:.2f} CPU s per 10k (both nodes)", file=sys.stderr)
    return row


TELEMETRY_ROUNDS = 5


def telemetry(work):
    runs = [telemetry_load(work, on) for _ in range(TELEMETRY_ROUNDS) for on in (True, False)]
    med = lambda on, key: sorted(r[key] for r in runs if r["on"] == on)[TELEMETRY_ROUNDS // 2]
    # One client at a low rate: nothing queues, so what loadgen measures beyond the server's
    # own time is the loopback and the two processes' wake-ups.
    paced = [telemetry_load(work, True, rate=200, clients=1, items=items) for items in (1, 1000)]
    return {"runs": runs, "median_on": med(True, "req_per_s"), "median_off": med(False, "req_per_s"),
            "cpu_on": med(True, "cpu_per_10k"), "cpu_off": med(False, "cpu_per_10k"), "paced": paced}


def telemetry_table(t, when):
    ms = lambda le: "+Inf" if le == float("inf") else f"{le * 1000:g} ms"
    slower = (t["median_off"] - t["median_on"]) / t["median_off"] * 100
    costlier = (t["cpu_on"] - t["cpu_off"]) / t["cpu_off"] * 100
    return "\n".join([
        f"Measured {when} (`python3 bench/run.py --only telemetry`): small requests, 16 clients, closed loop,"
        f" 10 s, {TELEMETRY_ROUNDS} runs each way, alternating; medians. CPU: receiver and participant together.",
        "",
        "| | req/s taken | CPU s per 10k requests |",
        "|---|---:|---:|",
        f"| metrics on (default) | {t['median_on']:,.0f} | {t['cpu_on']:.3f} |",
        f"| `--telemetry off` | {t['median_off']:,.0f} | {t['cpu_off']:.3f} |",
        f"| on against off | {-slower:+.1f} % | {costlier:+.1f} % |",
        "",
        "Each run (req/s, CPU s per 10k): " + "; ".join(
            f"{'on' if r['on'] else 'off'} {r['req_per_s']:,.0f}, {r['cpu_per_10k']:.3f}" for r in t["runs"]) + ".",
        "",
        "The request-duration histogram at /metrics against loadgen: in the closed-loop runs with the metrics on,"
        " p99 " + ", ".join(f"{ms(r['server_p99_le_s'])} (server bucket) for {r['answer_p99_ms']:.2f} ms (loadgen)"
                           for r in t["runs"] if r["on"]) + "; buckets apart: "
        + ", ".join(str(r["buckets_apart"]) for r in t["runs"] if r["on"]) + ". One client at 200 req/s:",
        "",
        "| requests of | counted at /metrics / taken by loadgen | server p50 bucket | server p99 bucket | loadgen p50 | loadgen p99 (its bucket) | buckets apart at p99 |",
        "|---|---|---|---|---|---|---|",
        *[f"| {p['items']:,} span(s) | {p['histogram_count']:,.0f} / {p['taken']:,} | up to {ms(p['server_p50_le_s'])}"
          f" | up to {ms(p['server_p99_le_s'])} | {p['answer_p50_ms']:.2f} ms"
          f" | {p['answer_p99_ms']:.2f} ms (up to {ms(p['loadgen_p99_le_s'])}) | {p['buckets_apart']} |" for p in t["paced"]],
    ])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--no-build", action="store_true", help="use target/release/slim-node as it is")
    ap.add_argument("--out", default=str(ROOT / "BENCHMARKS.md"), help="the file whose table is replaced")
    ap.add_argument("--only", choices=["members", "telemetry", "archive", "latency", "hop"],
                    help="run one part only, and replace only its table")
    args = ap.parse_args()
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "-p", "slim-node"], cwd=ROOT, check=True)
    work = tempfile.mkdtemp(prefix="slim-node-bench-")
    md = Path(args.out)
    markers = lambda part: (f"<!-- bench:{part}:begin -->", f"<!-- bench:{part}:end -->")
    now = time.strftime("%Y-%m-%d %H:%M")
    # The parts that run alone: what they measure, and their table.
    parts = {
        "telemetry": (lambda: {"telemetry": telemetry(work)}, lambda r: telemetry_table(r["telemetry"], now)),
        "latency": (lambda: {"latency": latency(work)}, lambda r: latency_table(r["latency"], now)),
        "archive": (lambda: {"storing": storing(work), "archive": archive(work)},
                    lambda r: archive_table(r["archive"], now, r["storing"])),
        "members": (lambda: {"members": members(work)}, lambda r: members_table(r["members"], now)),
        "hop": (lambda: hop(work), lambda r: hop_table(r, now)),
    }
    if args.only:
        measure, render = parts[args.only]
        results = measure()
        (Path(work) / "results.json").write_text(json.dumps(results, indent=2))
        replace_section(md, *markers(args.only), render(results))
        print(f"bench: {args.only} table written to {md}; raw results in {work}/results.json", file=sys.stderr)
        return
    e2e = [end_to_end(work, "small, one client", 1, 1),
           end_to_end(work, "small, one client at 500/s", 1, 1, rate=500),
           end_to_end(work, "small, closed loop", 1, 16),
           end_to_end(work, "100 spans, one client", 100, 1),
           end_to_end(work, "100 spans, closed loop", 100, 16),
           end_to_end(work, "100 spans, closed loop, no time bound", 100, 16, node_args=["--queue-max-delay", "0s"])]
    peak = e2e[2]["req_per_s"]
    e2e.append(end_to_end(work, "small, half the peak rate", 1, 16, rate=peak / 2))
    sizes = {"small": e2e[0]["request_bytes"], "100 spans": e2e[3]["request_bytes"]}
    results = {
        "when": time.strftime("%Y-%m-%d %H:%M"),
        "machine": machine(),
        "ceiling": {"small": ceiling(work, sizes["small"], 30_000),
                    "100 spans": ceiling(work, sizes["100 spans"], 10_000)},
        "e2e": e2e,
        "overload": overload(work),
        "forwarding": forwarding(work),
        "rotel_pair": rotel_pair(work),
        "forwarding_small": forwarding(work, items=1),
        "rotel_pair_small": rotel_pair(work, items=1),
        "storing": storing(work),
        "members": members(work),
        "telemetry": telemetry(work),
        "archive": archive(work),
        "latency": latency(work),
    }
    (Path(work) / "results.json").write_text(json.dumps(results, indent=2))
    replace_section(md, "<!-- bench:begin -->", "<!-- bench:end -->", table(results))
    for part, (_, render) in parts.items():
        replace_section(md, *markers(part), render(results))
    print(f"bench: table written to {md}; raw results in {work}/results.json", file=sys.stderr)


if __name__ == "__main__":
    main()
