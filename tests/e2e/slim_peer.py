"""Shared parts of the Python SLIM peers the end-to-end tests drive (slim_otel_exporter.py,
slim_otel_receiver.py, rogue_member.py), on the PyPI `slim-bindings` package (UniFFI; 3.3.8
wraps SLIM 3.4.6, the version slim-node embeds).

Output: one JSON object per line on stdout. SLIM's own tracing writes to the process's stdout,
so `json_lines()` moves file descriptor 1 to stderr before SLIM starts and keeps a private copy
of the real stdout for the JSON lines.
"""

import asyncio
import datetime
import hashlib
import json
import os
import sys

_OUT = None


def json_lines():
    """Call first: from now on fd 1 (SLIM's logs) goes to stderr; `emit` writes the real stdout."""
    global _OUT
    if _OUT is None:
        sys.stdout.flush()
        _OUT = os.fdopen(os.dup(1), "w", buffering=1)
        os.dup2(2, 1)
        sys.stdout = sys.stderr
    os.environ.setdefault("RUST_LOG", os.environ.get("SLIM_LOG", "warn"))


def emit(obj):
    _OUT.write(json.dumps(obj, sort_keys=True) + "\n")
    _OUT.flush()


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def secs(s):
    return datetime.timedelta(seconds=s)


# --- SLIM -------------------------------------------------------------------------------------

def slim():
    import slim_bindings

    return slim_bindings


def connect(url):
    """The process-wide service, connected once to `url` (as slim-otel's InitAndConnect does:
    initialize_with_defaults, then the global service connects). Returns (service, conn_id)."""
    s = slim()
    s.initialize_with_defaults()
    service = s.get_global_service()
    conn = service.connect(s.new_insecure_client_config(url))
    return service, conn


async def connect_or_report(url, timeout):
    """Connects to the SLIM server at `url` off the event loop (the bindings block); on failure
    prints {"error": ..., "stage": "connect"} and returns None."""
    loop = asyncio.get_running_loop()
    try:
        return await asyncio.wait_for(loop.run_in_executor(None, connect, url), timeout)
    except Exception as err:  # noqa: BLE001
        emit({"error": f"connect: {err}", "stage": "connect"})
        return None


def parse_name(text):
    """`org/ns/app` -> Name (exactly three non-empty parts, as slim-otel's SplitID wants)."""
    parts = text.split("/")
    if len(parts) != 3 or not all(parts):
        raise ValueError(f"names are org/namespace/app, got {text!r}")
    return slim().Name(*parts)


def name_str(name):
    return "/".join(name.components())


def create_app(service, conn, name, secret, direction):
    """An app with shared-secret identity (provider and verifier, id = the name as text) that
    subscribes to its own name on `conn`: slim-otel's CreateApp. The blocking variant: the
    bindings' create_app_*_async needs a Tokio context that a Python event loop is not."""
    s = slim()
    provider = s.IdentityProviderConfig.SHARED_SECRET(id=name, data=secret)
    verifier = s.IdentityVerifierConfig.SHARED_SECRET(id=name, data=secret)
    app = service.create_app_with_direction(parse_name(name), provider, verifier, direction)
    app.subscribe(parse_name(name), conn)
    return app


def jwt_identity(key, trust, subject, duration=3600):
    """A JWT identity (provider, verifier) for a member with its own Ed25519 key.

    key: the member's private key (PEM file); its tokens carry sub = iss = `subject` and, as
    SLIM's signer stamps it, kid = sub. trust: a JWKS file listing every member's public key
    with kid = the member's name (`slim-node trust-list` writes one). The verifier selects a
    token's key by its kid, so a token whose sub names another member fails its signature
    check. SLIM names the app's id after the sub (xxh3 of it), whatever name the app has."""
    s = slim()
    provider = s.IdentityProviderConfig.JWT(config=s.ClientJwtAuth(
        key=s.JwtKeyType.ENCODING(key=s.JwtKeyConfig(
            algorithm=s.JwtAlgorithm.ED_DSA, format=s.JwtKeyFormat.PEM,
            key=s.JwtKeyData.FILE(path=key))),
        audience=None, issuer=subject, subject=subject, duration=secs(duration)))
    verifier = s.IdentityVerifierConfig.JWT(config=s.JwtAuth(
        key=s.JwtKeyType.DECODING(key=s.JwtKeyConfig(
            algorithm=s.JwtAlgorithm.ED_DSA, format=s.JwtKeyFormat.JWKS,
            key=s.JwtKeyData.FILE(path=trust))),
        audience=None, issuer=None, subject=None, duration=secs(duration)))
    return provider, verifier


def create_app_with_identity(service, conn, name, identity, direction):
    """`create_app` with an explicit (provider, verifier), e.g. from `jwt_identity`."""
    provider, verifier = identity
    app = service.create_app_with_direction(parse_name(name), provider, verifier, direction)
    app.subscribe(parse_name(name), conn)
    return app


def group_config(mls, max_retries=None, interval=None):
    s = slim()
    return s.SessionConfig(
        session_type=s.SessionType.GROUP,
        max_retries=max_retries,
        interval=interval,
        metadata={},
        mls_settings=(
            s.MlsSettings(header_integrity_validation_percent=100, max_seen_control_message_ids_size=None)
            if mls
            else None
        ),
    )


def is_timeout(err):
    text = str(err).lower()
    return "timeout" in text or "timed out" in text or type(err).__name__ == "Timeout"


def is_closed(err):
    return "closed" in str(err).lower()


# --- OTLP ---------------------------------------------------------------------------------------

SIGNALS = ("traces", "metrics", "logs")


def request_class(signal):
    if signal == "traces":
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as m

        return m.ExportTraceServiceRequest
    if signal == "metrics":
        from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2 as m

        return m.ExportMetricsServiceRequest
    if signal == "logs":
        from opentelemetry.proto.collector.logs.v1 import logs_service_pb2 as m

        return m.ExportLogsServiceRequest
    raise ValueError(f"unknown signal {signal!r}")


# Expected wire type of each protobuf field type (FieldDescriptor.TYPE_*).
_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5
_WIRE = {
    1: _I64, 6: _I64, 16: _I64,  # double, fixed64, sfixed64
    2: _I32, 7: _I32, 15: _I32,  # float, fixed32, sfixed32
    3: _VARINT, 4: _VARINT, 5: _VARINT, 13: _VARINT, 17: _VARINT, 18: _VARINT, 8: _VARINT, 14: _VARINT,
    9: _LEN, 12: _LEN, 11: _LEN,  # string, bytes, message
}
# pdata's TraceID / SpanID refuse any other length than these (or empty).
_ID_SIZES = {"trace_id": 16, "span_id": 8, "parent_span_id": 8}


class _Bad(Exception):
    pass


def _varint(buf, pos):
    result = shift = 0
    while True:
        if pos >= len(buf) or shift >= 64:
            raise _Bad("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7


def _skip(buf, pos, wire):
    if wire == _VARINT:
        return _varint(buf, pos)[1]
    if wire == _I64:
        pos += 8
    elif wire == _I32:
        pos += 4
    elif wire == _LEN:
        n, pos = _varint(buf, pos)
        pos += n
    else:
        raise _Bad(f"unsupported wire type {wire}")
    if pos > len(buf):
        raise _Bad("truncated field")
    return pos


def _check(desc, buf):
    """Walks `buf` as message `desc` the way the Collector's pdata unmarshaler does: a known
    field with the wrong wire type is an error, unknown fields are skipped, ids must have
    their size, nested messages are checked too (strings are not checked for UTF-8: Go)."""
    pos = 0
    while pos < len(buf):
        tag, pos = _varint(buf, pos)
        number, wire = tag >> 3, tag & 7
        if number <= 0:
            raise _Bad("illegal tag")
        field = desc.fields_by_number.get(number)
        if field is None:
            pos = _skip(buf, pos, wire)
            continue
        expected = _WIRE[field.type]
        repeated = getattr(field, "is_repeated", None)
        if repeated is None:
            repeated = field.label == 3
        if wire != expected and not (repeated and expected != _LEN and wire == _LEN):
            raise _Bad(f"wrong wire type {wire} for {desc.name}.{field.name}")
        if wire == _LEN:
            n, pos = _varint(buf, pos)
            if pos + n > len(buf):
                raise _Bad("truncated field")
            body = buf[pos:pos + n]
            pos += n
            if field.type == 11:
                _check(field.message_type, body)
            elif field.type == 12 and field.name in _ID_SIZES and len(body) not in (0, _ID_SIZES[field.name]):
                raise _Bad(f"invalid length for {field.name}")
        else:
            pos = _skip(buf, pos, wire)


def decodes_as(signal, payload):
    try:
        _check(request_class(signal).DESCRIPTOR, bytes(payload))
        return True
    except (_Bad, RecursionError):
        return False


def detect_signal(payload, order=SIGNALS):
    """slim-otel's receiver: the first of traces, metrics, logs (those with a consumer) whose
    unmarshaler accepts the payload; None when none does."""
    for signal in order:
        if decodes_as(signal, payload):
            return signal
    return None


def summary(signal, payload):
    """service.name values and item counts of a payload decoded as `signal` (best effort)."""
    try:
        req = request_class(signal)()
        req.ParseFromString(bytes(payload))
    except Exception:
        return {}
    services, items = [], 0
    resources = {"traces": "resource_spans", "metrics": "resource_metrics", "logs": "resource_logs"}[signal]
    for r in getattr(req, resources):
        for kv in r.resource.attributes:
            if kv.key == "service.name":
                services.append(kv.value.string_value)
        if signal == "traces":
            items += sum(len(s.spans) for s in r.scope_spans)
        elif signal == "metrics":
            items += sum(len(s.metrics) for s in r.scope_metrics)
        else:
            items += sum(len(s.log_records) for s in r.scope_logs)
    return {"services": services, "items": items}


def service_request(signal, service_name):
    """A small valid OTLP export request of `signal` from `service_name`, as protobuf bytes."""
    import time

    now = time.time_ns()
    req = request_class(signal)()
    if signal == "traces":
        rs = req.resource_spans.add()
        _service(rs.resource, service_name)
        span = rs.scope_spans.add().spans.add()
        span.trace_id = os.urandom(16)
        span.span_id = os.urandom(8)
        span.name = f"{service_name}-span"
        span.start_time_unix_nano = now
        span.end_time_unix_nano = now + 1000
    elif signal == "metrics":
        rm = req.resource_metrics.add()
        _service(rm.resource, service_name)
        metric = rm.scope_metrics.add().metrics.add()
        metric.name = f"{service_name}.gauge"
        point = metric.gauge.data_points.add()
        point.as_int = 1
        point.time_unix_nano = now
    else:
        rl = req.resource_logs.add()
        _service(rl.resource, service_name)
        record = rl.scope_logs.add().log_records.add()
        record.time_unix_nano = now
        record.body.string_value = f"{service_name} log"
    return req.SerializeToString()


def _service(resource, name):
    kv = resource.attributes.add()
    kv.key = "service.name"
    kv.value.string_value = name
