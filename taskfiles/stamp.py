#!/usr/bin/env python3
"""Print an OTLP sample (OTLP/JSON or protobuf) with its times moved to now.

    python3 taskfiles/stamp.py examples/traces.json | curl ... --data-binary @-
    python3 taskfiles/stamp.py examples/logs.pb logs | curl ... --data-binary @-

Every time in the request (a span's start and end and its events' times, a data point's start
and time and its exemplars' times, a log record's time and observed time) is shifted by the
same amount, so that the latest of them is now: durations and order stay as the sample has
them, and `task fetch` (the last 15 minutes) finds what `task example:*` sent. The files in
examples/ are left as they are. Standard library only.
"""

import json
import sys
import time

JSON_TIME_KEYS = {"timeUnixNano", "startTimeUnixNano", "endTimeUnixNano", "observedTimeUnixNano"}


def stamp_json(data: bytes, now: int) -> bytes:
    request = json.loads(data)
    found = []

    def walk(node, visit):
        if isinstance(node, dict):
            for key, value in node.items():
                if key in JSON_TIME_KEYS and int(value or 0) != 0:
                    visit(node, key)
                else:
                    walk(value, visit)
        elif isinstance(node, list):
            for value in node:
                walk(value, visit)

    walk(request, lambda node, key: found.append(int(node[key])))
    if found:
        shift = now - max(found)

        def move(node, key):
            node[key] = str(int(node[key]) + shift)  # 64-bit integers as strings, as OTLP/JSON has them

        walk(request, move)
    return json.dumps(request, separators=(",", ":")).encode()


# Protobuf: the fixed64 time fields by path of field numbers, per signal (opentelemetry-proto).
# Each entry: field number -> either a sub-table (a nested message) or None (a fixed64 time).
EXEMPLAR = {2: None}
POINT = {2: None, 3: None}  # start_time_unix_nano, time_unix_nano
METRIC = {
    5: {1: {**POINT, 5: EXEMPLAR}},  # gauge.data_points (NumberDataPoint.exemplars = 5)
    7: {1: {**POINT, 5: EXEMPLAR}},  # sum
    9: {1: {**POINT, 8: EXEMPLAR}},  # histogram (exemplars = 8)
    10: {1: {**POINT, 11: EXEMPLAR}},  # exponential_histogram (exemplars = 11)
    11: {1: POINT},  # summary
}
SPAN = {7: None, 8: None, 11: {1: None}}  # start, end, events[].time_unix_nano
LOG_RECORD = {1: None, 11: None}  # time_unix_nano, observed_time_unix_nano
PATHS = {
    "traces": {1: {2: {2: SPAN}}},
    "metrics": {1: {2: {2: METRIC}}},
    "logs": {1: {2: {2: LOG_RECORD}}},
}


def varint(data: bytes, pos: int):
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def time_offsets(data: bytes, start: int, end: int, table: dict, out: list):
    """Appends the offsets of the fixed64 time fields `table` names in data[start:end]."""
    pos = start
    while pos < end:
        key, pos = varint(data, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            _, pos = varint(data, pos)
        elif wire == 1:
            if field in table and table[field] is None:
                out.append(pos)
            pos += 8
        elif wire == 2:
            length, pos = varint(data, pos)
            if isinstance(table.get(field), dict):
                time_offsets(data, pos, pos + length, table[field], out)
            pos += length
        elif wire == 5:
            pos += 4
        else:
            raise ValueError(f"unexpected wire type {wire} at byte {pos}")


def stamp_protobuf(data: bytes, signal: str, now: int) -> bytes:
    offsets = []
    time_offsets(data, 0, len(data), PATHS[signal], offsets)
    times = {o: int.from_bytes(data[o : o + 8], "little") for o in offsets}
    times = {o: t for o, t in times.items() if t != 0}
    out = bytearray(data)
    if times:
        shift = now - max(times.values())
        for o, t in times.items():
            out[o : o + 8] = (t + shift).to_bytes(8, "little")  # same width: nothing else moves
    return bytes(out)


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit("usage: stamp.py FILE.json | stamp.py FILE.pb traces|metrics|logs")
    path = sys.argv[1]
    with open(path, "rb") as f:
        data = f.read()
    now = time.time_ns()
    if path.endswith(".json"):
        body = stamp_json(data, now)
    else:
        signal = sys.argv[2] if len(sys.argv) == 3 else ""
        if signal not in PATHS:
            sys.exit("a protobuf file needs its signal: traces, metrics or logs")
        body = stamp_protobuf(data, signal, now)
    sys.stdout.buffer.write(body)


if __name__ == "__main__":
    main()
