"""Webhook forwarding, end to end: a vendor behind a real aiohttp server, a
receiver process verifying every delivery with ``standardwebhooks``."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import protocol
from vendor_adapter.forward import Webhook

from .conftest import QUICK, Receiver, queue_rows, wait_for


async def test_every_event_arrives_once_per_id_in_order_across_a_receiver_restart(
        forwarding_inbox: Any, receiver: Receiver) -> None:
    inbox = await forwarding_inbox([Webhook(receiver.url, secret=receiver.secret,
                                            schedule=QUICK)])
    people = [inbox.person() for _ in range(6)]
    sent: dict[str, list[str]] = {p.did: [] for p in people}

    async def talk(person: Any, start: int, count: int) -> None:
        for n in range(start, start + count):
            if n == 0:
                raw = person.request(given_name=f"P{n}", email="p@example.org")
            else:
                raw = person.message("contact.update", {"changes": {"given_name": f"P{n}"}})
            message_id = json.loads(protocol.b64url_decode(
                json.loads(raw)["payload"], what="p"))["id"]
            receipt = await inbox.send(person, raw)
            assert receipt["status"] == "accepted"
            sent[person.did].append(message_id)

    await asyncio.gather(*(talk(p, 0, 4) for p in people))
    receiver.kill()  # mid-stream: events keep coming while nobody listens
    await asyncio.gather(*(talk(p, 4, 4) for p in people))
    await wait_for(lambda: bool(queue_rows(inbox.vendor.db_path)), what="a queued event")
    await asyncio.sleep(0.3)  # some attempts fail against the closed port
    receiver.start()  # the same port again
    await wait_for(lambda: len(receiver.events()) == 6 * 8, what="every event", timeout=60)
    await wait_for(lambda: not queue_rows(inbox.vendor.db_path), what="an empty queue")

    events = receiver.events()
    # None was accepted twice under two ids: one id per (type, causing message).
    assert len({(e["type"], e["message_id"]) for e in events}) == len(events)
    assert len({e["id"] for e in events}) == len(events)
    # Order per contact held (the first arrival of each id, in arrival order).
    for did, message_ids in sent.items():
        assert [e["message_id"] for e in events if e["did"] == did] == message_ids
        types = [e["type"] for e in events if e["did"] == did]
        assert types == ["contact.created"] + ["contact.updated"] * 7
    # Every delivery verified, and the outage was seen (and retried) by the relay.
    assert all(verified for _, verified in receiver.attempts())
    (status,) = inbox.vendor.forwarding.status()
    assert status.delivered == 48 and status.queued == 0 and status.failed == 0
    assert status.last_error is not None
