"""A peer that uses SLIM the way agntcy/slim-otel's exporter (exporter/slimexporter) does.

    slim_otel_exporter.py --slim URL --name ORG/NS/APP --secret S
        --channel SIGNAL=ORG/NS/CHANNEL (repeatable) --invite ORG/NS/APP (repeatable) [--no-mls]

What it copies from slim-otel:
- one connection to the SLIM server, shared by every app (InitAndConnect);
- one app per signal, Direction SEND, shared-secret identity with id = the app's name, subscribed
  to its name on that connection (CreateApp). slim-otel names them `exporter-names.{traces,
  metrics,logs}`: give `--name SIGNAL=ORG/NS/APP` per signal; a bare `--name ORG/NS/APP` is used
  for every signal without one;
- per `--channel`: a group session on the channel with max_retries 10, interval 1 s, MLS per
  `mls-enabled` (here --mls, the default, or --no-mls), created and waited for, then for each
  participant set_route + invite_and_wait, in order; a failure ends start-up (exit 1);
- each app also accepts invitations (listen_for_session, 1 s timeouts) and publishes to those
  sessions too;
- each request is published to every session of its signal, one after the other, with
  publish_and_wait(bytes, payload_type None, metadata None): the raw protobuf bytes, no
  payload type (receivers see "msg"), no metadata. A "Session already closed or dropped" error
  drops that session; any other error stops that request (the Collector would retry it).
  slim-otel waits on each publish without a bound; --publish-timeout (default 30 s) bounds it
  here and reports {"error": ...} instead of hanging;
- at the end every session is deleted (delete_session_and_wait), as the exporter's shutdown does.

stdin: lines `SIGNAL PATH` (PATH: a file of raw protobuf bytes). stdout: JSON lines:
{"event": ...} while starting, {"published": {...}} or {"error": ...} per line read, and
{"done": true, ...} after EOF once every publish completed.
"""

import argparse
import asyncio
import sys
import time

import slim_peer as sp


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--slim", required=True, help="SLIM server URL, e.g. http://127.0.0.1:46357")
    p.add_argument("--name", action="append", required=True,
                   help="ORG/NS/APP for every signal, or SIGNAL=ORG/NS/APP (repeatable)")
    p.add_argument("--secret", required=True, help="shared secret (SLIM wants 32 bytes or more)")
    p.add_argument("--channel", action="append", default=[], help="SIGNAL=ORG/NS/CHANNEL (repeatable)")
    p.add_argument("--invite", action="append", default=[], help="participant to invite to every channel")
    p.add_argument("--mls", action=argparse.BooleanOptionalAction, default=True,
                   help="MLS on the channels (slim-otel's mls-enabled; its examples all set true)")
    p.add_argument("--signals", default=None,
                   help="signals with a pipeline (an app each), comma-separated; default: the "
                        "signals of --channel, or all three without any")
    p.add_argument("--connect-timeout", type=float, default=15.0)
    p.add_argument("--publish-timeout", type=float, default=30.0,
                   help="give up on one publish_and_wait after this long (slim-otel waits forever: "
                        "a session whose other members all left never completes); 0: wait forever")
    return p.parse_args()


async def main():
    sp.json_lines()
    args = parse_args()
    s = sp.slim()

    names = {}
    for item in args.name:
        signal, _, name = item.rpartition("=")
        names[signal or "*"] = name
    channels = []
    for item in args.channel:
        signal, sep, channel = item.partition("=")
        if not sep or signal not in sp.SIGNALS:
            sys.exit(f"--channel wants SIGNAL=ORG/NS/CHANNEL, got {item!r}")
        sp.parse_name(channel)
        channels.append((signal, channel))
    if args.signals:
        signals = [x for x in args.signals.split(",") if x]
    else:
        signals = sorted({sig for sig, _ in channels}, key=sp.SIGNALS.index) or list(sp.SIGNALS)

    connected = await sp.connect_or_report(args.slim, args.connect_timeout)
    if connected is None:
        return 1
    service, conn = connected
    sp.emit({"event": "connected", "slim": args.slim, "conn_id": conn})

    apps, sessions = {}, {sig: [] for sig in signals}
    for signal in signals:
        name = names.get(signal, names.get("*"))
        if not name:
            sp.emit({"error": f"no --name for {signal}", "stage": "app"})
            return 1
        apps[signal] = sp.create_app(service, conn, name, args.secret, s.Direction.SEND)
        sp.emit({"event": "app", "signal": signal, "name": name})

    # createSessionsAndInvite, per signal, channel by channel.
    for signal, channel in channels:
        if signal not in apps:
            continue
        app = apps[signal]
        try:
            config = sp.group_config(args.mls, max_retries=10, interval=sp.secs(1))
            session = await app.create_session_and_wait_async(config, sp.parse_name(channel))
            sp.emit({"event": "session_created", "signal": signal, "channel": channel,
                     "session_id": session.session_id(), "mls": args.mls})
            for participant in args.invite:
                started = time.monotonic()
                await app.set_route_async(sp.parse_name(participant), conn)
                await session.invite_and_wait_async(sp.parse_name(participant))
                sp.emit({"event": "invited", "signal": signal, "channel": channel,
                         "participant": participant,
                         "ms": round((time.monotonic() - started) * 1000, 1)})
        except Exception as err:  # noqa: BLE001
            sp.emit({"error": f"{err}", "stage": "start", "signal": signal, "channel": channel})
            return 1
        add_session(sessions[signal], signal, session)

    stop = asyncio.Event()
    listeners = [asyncio.create_task(listen(apps[sig], sig, sessions[sig], stop)) for sig in signals]

    published = errors = 0
    while True:
        line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        if not line:
            break
        line = line.strip()
        if not line:
            continue
        signal, _, path = line.partition(" ")
        path = path.strip()
        if signal not in sessions:
            sp.emit({"error": f"no app for signal {signal!r}", "line": line})
            errors += 1
            continue
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as err:
            sp.emit({"error": f"{err}", "line": line})
            errors += 1
            continue
        ok = await publish_to_all(signal, sessions[signal], data, path, args.publish_timeout)
        published += ok
        errors += not ok

    stop.set()
    await asyncio.gather(*listeners, return_exceptions=True)
    # shutdown: DeleteAll, then the apps go.
    for signal in signals:
        for entry in sessions[signal]:
            try:
                await asyncio.wait_for(apps[signal].delete_session_and_wait_async(entry["session"]), 5)
            except Exception as err:  # noqa: BLE001
                sp.emit({"event": "delete_failed", "signal": signal, "error": f"{err}"})
    sp.emit({"done": True, "published": published, "errors": errors})
    return 0


def add_session(session_list, signal, session):
    """SessionsList.AddSession: no two sessions with the same id or destination. Entries keep
    the id and name, as slim-otel's maps do: a closed session no longer tells them."""
    sid, dest = session.session_id(), sp.name_str(session.destination())
    if any(e["id"] == sid or e["channel"] == dest for e in session_list):
        sp.emit({"event": "session_rejected", "signal": signal, "channel": dest,
                 "session_id": sid, "reason": "already have a session for it"})
        return False
    session_list.append({"id": sid, "channel": dest, "session": session})
    return True


async def listen(app, signal, session_list, stop):
    """listenForSessions: every invitation joins that signal's sessions."""
    while not stop.is_set():
        try:
            session = await app.listen_for_session_async(sp.secs(1))
        except Exception:  # noqa: BLE001  (timeouts, as slim-otel ignores every error here)
            continue
        try:
            added = add_session(session_list, signal, session)
        except Exception:  # noqa: BLE001  (closed before we looked)
            continue
        if added:
            entry = session_list[-1]
            sp.emit({"event": "joined", "signal": signal, "channel": entry["channel"],
                     "session_id": entry["id"]})


async def publish_to_all(signal, session_list, data, path, timeout):
    """PublishToAll: publish_and_wait on each session in turn."""
    started = time.monotonic()
    done, closed = [], []
    for entry in list(session_list):
        sid, session = entry["id"], entry["session"]
        try:
            waiting = session.publish_and_wait_async(data, None, None)
            await (asyncio.wait_for(waiting, timeout) if timeout > 0 else waiting)
            done.append(entry["channel"])
        except asyncio.TimeoutError:
            sp.emit({"error": f"publish_and_wait did not complete in {timeout} s", "signal": signal,
                     "path": path, "session_id": sid, "channel": entry["channel"]})
            drop(session_list, closed)
            return False
        except Exception as err:  # noqa: BLE001
            if "Session already closed or dropped" in str(err):
                closed.append(sid)
                continue
            sp.emit({"error": f"{err}", "signal": signal, "path": path, "session_id": sid,
                     "channel": entry["channel"]})
            drop(session_list, closed)
            return False
    drop(session_list, closed)
    sp.emit({"published": {"signal": signal, "path": path, "bytes": len(data), "sha256": sp.sha256(data),
                           "channels": done, "closed_sessions": closed,
                           "ms": round((time.monotonic() - started) * 1000, 1)}})
    return True


def drop(session_list, sids):
    session_list[:] = [e for e in session_list if e["id"] not in sids]


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
