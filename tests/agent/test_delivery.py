"""Delivery against hand-written vendors: retries, final rejections, wrong keys,
and one misbehaving vendor never breaking the broadcast to the others."""

from __future__ import annotations

import json

import protocol
from agent import Agent

from .conftest import FakeVendor


async def test_contact_update_reaches_every_vendor_once(agent: Agent, serve) -> None:
    vendors = []
    for i in range(5):
        vendor, url = await serve(FakeVendor(f"V{i}"))
        await agent.add_vendor(url, share=["email"])
        vendors.append(vendor)
    broadcast = await agent.set_profile({"email": "ann@example.org", "phone": "+441234567"})
    assert [r.status for r in broadcast.results] == ["delivered"] * 5
    for vendor in vendors:
        updates = vendor.of_type(protocol.ContactUpdate)
        assert len(updates) == 1
        # only the fields this vendor may see
        assert updates[0].body.changes.to_wire() == {"email": "ann@example.org"}
    assert all(row["status"] == "delivered" for row in agent.outbox())


async def _vendors(agent: Agent, serve, *modes: str) -> list[FakeVendor]:
    vendors = []
    for i, mode in enumerate(modes):
        vendor, url = await serve(FakeVendor(f"{mode}-{i}"))
        await agent.add_vendor(url, share=["email", "postal_address"])
        vendor.mode = mode
        vendors.append(vendor)
    return vendors


async def test_misbehaving_vendors_never_break_the_broadcast(agent: Agent, serve) -> None:
    modes = ("ok", "500", "429", "garbage", "hang", "drop", "wrongkey", "ok")
    vendors = await _vendors(agent, serve, *modes)
    broadcast = await agent.set_profile({"email": "ann@example.org"})
    by_vendor = {r.vendor: r for r in broadcast.results}
    assert len(by_vendor) == len(modes)
    for vendor in vendors:
        result = by_vendor[vendor.name]
        if vendor.mode == "ok":
            assert result.status == "delivered", result
        elif vendor.mode == "wrongkey":
            # a receipt validly signed by another key: a key change, held, not retried
            assert (result.status, result.vendor_status) == ("failed", "key-changed"), result
            assert "pinned" in (result.detail or "")
        else:
            assert result.status == "pending", result
            assert result.detail
            assert result.next_attempt is not None
    # a wrongly signed receipt does not count, and is not kept as proof
    wrongkey = vendors[modes.index("wrongkey")]
    wrong = by_vendor[wrongkey.name]
    receipts = {row["message_id"] for row in agent.store.rows("SELECT * FROM receipts")}
    assert wrong.message_id not in receipts
    assert agent.vendor(wrongkey.name)["status"] == "key-changed"
    hits = wrongkey.hits
    # fixed, the others answer (duplicate where they had applied it already), and
    # every CRM holds one copy; the vendor whose key changed gets nothing more
    for vendor in vendors:
        vendor.mode = "ok"
    results = await agent.deliver(patience=5)
    assert {r.status for r in results} == {"delivered"}
    assert wrong.message_id not in {r.message_id for r in results}
    assert wrongkey.hits == hits
    assert {row["status"] for row in agent.outbox()} == {"delivered", "failed"}
    for vendor in vendors:
        assert len(vendor.of_type(protocol.ContactUpdate)) == 1, vendor.name
    later = await agent.set_profile({"email": "ann@example.net"})
    assert wrongkey.name not in {r.vendor for r in later.results} and wrongkey.hits == hits


async def test_retry_resends_the_same_bytes(agent: Agent, serve) -> None:
    [vendor] = await _vendors(agent, serve, "ok")
    vendor.fail_first = 2
    broadcast = await agent.set_profile({"email": "ann@example.org"}, patience=5)
    [result] = broadcast.results
    assert result.status == "delivered" and result.attempts == 3
    sent = agent.store.one("SELECT jws FROM outbox WHERE id = ?", (result.message_id,))
    assert vendor.seen[result.message_id] == sent["jws"]


async def test_retry_after_is_honoured(agent: Agent, serve) -> None:
    [vendor] = await _vendors(agent, serve, "429")
    vendor.retry_after = "120"
    broadcast = await agent.set_profile({"email": "ann@example.org"})
    [result] = broadcast.results
    row = agent.store.one("SELECT * FROM outbox WHERE id = ?", (result.message_id,))
    from agent._store import from_ts
    assert (from_ts(row["next_attempt"]) - from_ts(row["updated"])).total_seconds() >= 120
    assert row["status"] == "pending" and row["http_status"] == 429
    # not due yet: deliver sends nothing
    assert await agent.deliver() == []
    assert vendor.hits == 2  # the relationship request, then the 429


async def test_gone_marks_the_vendor_ended(agent: Agent, serve) -> None:
    gone, ok = await _vendors(agent, serve, "gone", "ok")
    broadcast = await agent.set_profile({"email": "ann@example.org"})
    by_vendor = {r.vendor: r for r in broadcast.results}
    assert by_vendor[gone.name].status == "failed"
    assert by_vendor[ok.name].status == "delivered"
    assert agent.vendor(gone.name)["status"] == "ended"
    # later broadcasts skip it
    broadcast = await agent.set_profile({"email": "ann@example.net"})
    assert [r.vendor for r in broadcast.results] == [ok.name]


async def test_a_final_rejection_is_not_retried(agent: Agent, serve) -> None:
    [vendor] = await _vendors(agent, serve, "ok")
    # a vendor that forgot us answers 410 with a signed receipt
    vendor.relationships.clear()
    broadcast = await agent.set_profile({"email": "ann@example.org"})
    [result] = broadcast.results
    assert result.status == "failed" and result.receipt_status == "rejected"
    assert "unknown-relationship" in (result.detail or "")
    assert await agent.deliver() == []


async def test_problem_documents_and_rejections_are_final(agent: Agent, serve) -> None:
    bad, invalid = await _vendors(agent, serve, "bad-request", "invalid")
    broadcast = await agent.set_profile({"email": "ann@example.org"})
    by_vendor = {r.vendor: r for r in broadcast.results}
    assert by_vendor[bad.name].status == "rejected"
    assert by_vendor[bad.name].detail == "the payload is not JSON (urn:vrm:problem:malformed)"
    assert by_vendor[invalid.name].status == "rejected"
    assert by_vendor[invalid.name].receipt_status == "rejected"
    assert by_vendor[invalid.name].detail == "invalid-body"
    # the signed rejection is kept as proof; neither is retried
    assert agent.store.one("SELECT status FROM receipts WHERE message_id = ?",
                           (by_vendor[invalid.name].message_id,))["status"] == "rejected"
    assert await agent.deliver() == []
    assert agent.vendor(bad.name)["status"] == "active"


async def test_messages_expire(home, serve) -> None:
    from datetime import timedelta

    from .conftest import FAST, PASSPHRASE, now

    offset = timedelta()
    agent = await Agent.init(home, passphrase=PASSPHRASE, scrypt_n=2**10, limits=FAST,
                             clock=lambda: now() + offset)
    try:
        [vendor] = await _vendors(agent, serve, "500")
        broadcast = await agent.set_profile({"email": "ann@example.org"})
        assert broadcast.results[0].status == "pending"
        offset = timedelta(days=8)
        assert await agent.deliver() == []
        [row] = [r for r in agent.outbox() if r["type"] == "contact.update"]
        assert row["status"] == "expired"
    finally:
        await agent.close()


async def test_outbox_rows_are_json_ready(agent: Agent, serve) -> None:
    await _vendors(agent, serve, "ok", "500")
    await agent.set_profile({"email": "ann@example.org"})
    json.dumps(agent.outbox())
    json.dumps([r.to_json() for r in await agent.deliver()])


async def test_messages_to_one_vendor_keep_their_order(agent: Agent, serve) -> None:
    vendor, url = await serve(FakeVendor("Slow"))
    # 429 with Retry-After: the request is certainly not due again for 2 s, however
    # slow this machine is (a 500 falls due again after the test's 20 ms backoff).
    vendor.mode, vendor.retry_after = "429", "2"
    added = await agent.add_vendor(url, share=["email"])
    assert added["status"] == "pending"
    vendor.mode = "ok"
    # the request is not due yet; the update must wait behind it, not overtake it
    await agent.set_profile({"email": "ann@example.org"})
    assert vendor.effects == []
    results = await agent.deliver(patience=5)
    assert [r.type for r in results] == ["relationship.request", "contact.update"]
    assert [m.type for m in vendor.effects] == ["relationship.request", "contact.update"]
    assert agent.vendor("Slow")["status"] == "active"


async def test_a_vendor_that_is_down(agent: Agent, aiohttp_server, serve) -> None:
    down = FakeVendor("Down")
    server = await aiohttp_server(down.app())
    await agent.add_vendor(str(server.make_url("")).rstrip("/"), share=["email"])
    [up] = await _vendors(agent, serve, "ok")
    await server.close()
    broadcast = await agent.set_profile({"email": "ann@example.org"})
    by_vendor = {r.vendor: r for r in broadcast.results}
    assert by_vendor[up.name].status == "delivered"
    assert by_vendor["Down"].status == "pending"
    assert "connection refused" in (by_vendor["Down"].detail or "")
    row = agent.store.one("SELECT * FROM outbox WHERE id = ?", (by_vendor["Down"].message_id,))
    assert row["attempts"] == 1 and row["last_error"] == by_vendor["Down"].detail
