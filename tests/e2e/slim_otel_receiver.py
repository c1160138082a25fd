"""A peer that uses SLIM the way agntcy/slim-otel's receiver (receiver/slimreceiver) does.

    slim_otel_receiver.py --slim URL --name ORG/NS/APP --secret S [--signals traces,metrics,logs]

What it copies from slim-otel:
- one app (Direction RECV, shared-secret identity with id = its name, subscribed to its name);
- it invites nobody: listen_for_session with 1 s timeouts, forever; each new session is kept in
  a list that refuses a second session with the same id or the same destination (channel) name
  (that one is logged and never read), and is read by a task of its own, so several sessions
  (one per signal, from one or several exporters) are served at once;
- each session: get_message with 1 s timeouts; "session closed" ends it (removed and deleted),
  a timeout goes on, any other error is logged and reading goes on;
- the signal of a message is found by trial decoding only (payload_type and metadata are
  ignored): traces, then metrics, then logs, each tried only if that signal has a pipeline
  (--signals), with the Collector's pdata rules (a known field with the wrong wire type or an id
  of the wrong size fails; unknown fields are skipped). None fits: logged, dropped.
- nothing is ever sent back: no acknowledgement, no reply.

stdout: JSON lines: {"event": ...} for sessions, and per message {"channel", "signal" (null when
undetermined), "bytes", "sha256", "metadata", "payload_type", "source", "session_id",
"services", "items"}.
"""

import argparse
import asyncio
import sys

import slim_peer as sp


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--slim", required=True)
    p.add_argument("--name", required=True, help="ORG/NS/APP (slim-otel's receiver-name)")
    p.add_argument("--secret", required=True)
    p.add_argument("--signals", default="traces,metrics,logs",
                   help="signals with a pipeline (a consumer), comma-separated")
    p.add_argument("--connect-timeout", type=float, default=15.0)
    return p.parse_args()


async def main():
    sp.json_lines()
    args = parse_args()
    s = sp.slim()
    order = [sig for sig in sp.SIGNALS if sig in args.signals.split(",")]
    connected = await sp.connect_or_report(args.slim, args.connect_timeout)
    if connected is None:
        return 1
    service, conn = connected
    app = sp.create_app(service, conn, args.name, args.secret, s.Direction.RECV)
    sp.emit({"event": "listening", "name": args.name, "signals": order})

    sessions = {}  # session id -> channel
    tasks = set()
    while True:
        try:
            session = await app.listen_for_session_async(sp.secs(1))
        except Exception:  # noqa: BLE001  (timeouts are expected)
            continue
        try:
            sid, channel = session.session_id(), sp.name_str(session.destination())
        except Exception as err:  # noqa: BLE001
            sp.emit({"event": "session_rejected", "reason": f"{err}"})
            continue
        if sid in sessions or channel in sessions.values():
            sp.emit({"event": "session_rejected", "channel": channel, "session_id": sid,
                     "reason": "a session with this id or name exists"})
            continue
        sessions[sid] = channel
        sp.emit({"event": "session", "channel": channel, "session_id": sid,
                 "source": sp.name_str(session.source())})
        task = asyncio.create_task(handle(app, session, sid, channel, order, sessions))
        tasks.add(task)
        task.add_done_callback(tasks.discard)


async def handle(app, session, sid, channel, order, sessions):
    count = 0
    try:
        while True:
            try:
                msg = await session.get_message_async(sp.secs(1))
            except Exception as err:  # noqa: BLE001
                if "session closed" in str(err):
                    return
                if "receive timeout waiting for message" in str(err):
                    continue
                sp.emit({"event": "receive_error", "channel": channel, "session_id": sid, "error": f"{err}"})
                continue
            count += 1
            payload = bytes(msg.payload)
            signal = sp.detect_signal(payload, order)
            line = {
                "channel": channel,
                "session_id": sid,
                "signal": signal,
                "bytes": len(payload),
                "sha256": sp.sha256(payload),
                "metadata": dict(msg.context.metadata),
                "payload_type": msg.context.payload_type,
                "source": sp.name_str(msg.context.source_name),
            }
            if signal:
                line.update(sp.summary(signal, payload))
            sp.emit(line)
    finally:
        sessions.pop(sid, None)
        try:
            await asyncio.wait_for(app.delete_session_and_wait_async(session), 5)
        except Exception:  # noqa: BLE001
            pass
        sp.emit({"event": "session_closed", "channel": channel, "session_id": sid, "messages": count})


if __name__ == "__main__":
    try:
        sys.exit(asyncio.run(main()))
    except KeyboardInterrupt:
        sys.exit(0)
