"""The agent against real vendor_adapter apps on loopback, several at once."""

from __future__ import annotations

from pathlib import Path

from agent import Agent, Limits

from .conftest import FAST, PASSPHRASE


async def test_move_intent_offers_and_end_with_real_vendors(agent: Agent, shops) -> None:
    running = await shops(4, prefix="/v/3")
    await agent.set_profile({"email": "ada@example.org", "postal_address.locality": "Berlin"})
    for shop in running:
        added = await agent.add_vendor(shop.url, share=["email", "postal_address"])
        assert added["status"] == "active", added
    moved = await agent.set_profile({"postal_address.locality": "Leeds",
                                     "postal_address.country": "GB"})
    assert [r.status for r in moved.results] == ["delivered"] * 4
    for shop in running:
        [contact] = shop.crm.contacts()
        assert (contact["locality"], contact["country"], contact["email"]) == (
            "Leeds", "GB", "ada@example.org")

    intent = await agent.intent("Touring bike", category="bicycles", budget=("800", "EUR"))
    assert {r.status for r in intent.results} == {"delivered"}
    for shop in running[:2]:
        [lead] = shop.crm.leads()
        await shop.vendor.make_offer(lead["id"], summary=f"{shop.name} Trek 520",
                                     price="749.00", currency="EUR")
    synced = await agent.sync()
    assert [r.status for r in synced] == ["ok"] * 4
    offers = agent.offers()
    assert sorted(o["vendor"] for o in offers) == ["Shop0", "Shop1"]
    assert {o["intent_summary"] for o in offers} == {"Touring bike"}
    assert (await agent.sync())[0].new_messages == 0

    result = await agent.end_vendor("Shop0", erase=True)
    assert result is not None and result.status == "delivered"
    [erased] = running[0].crm.contacts()
    assert erased["erased"] and erased["email"] is None and erased["status"] == "ended"
    assert "Shop0" not in {row["vendor"] for row in agent.shared()}
    assert agent.vendor("Shop0")["status"] == "ended"
    # later broadcasts leave the ended vendor out
    again = await agent.set_profile({"email": "ada@example.net"})
    assert sorted(r.vendor for r in again.results) == ["Shop1", "Shop2", "Shop3"]


async def test_crash_between_outbox_write_and_delivery(agent: Agent, home: Path, shops) -> None:
    running = await shops(3)
    for shop in running:
        await agent.add_vendor(shop.url, share=["email"])
    before = [len(shop.crm.activities()) for shop in running]
    await agent.set_profile({"email": "ada@example.org"}, send=False)
    await agent.close()  # the crash
    reopened = await Agent.open(home, passphrase=PASSPHRASE, limits=FAST)
    try:
        results = await reopened.deliver()
        assert [r.status for r in results] == ["delivered"] * 3
        # delivering again (as a retry after a lost answer would) changes nothing
        reopened.store.db.execute("UPDATE outbox SET status = 'pending'")
        again = await reopened.deliver()
        assert {r.receipt_status for r in again} == {"duplicate"}
    finally:
        await reopened.close()
    after = [len(shop.crm.activities()) for shop in running]
    assert [a - b for a, b in zip(after, before)] == [1, 1, 1]
    for shop in running:
        assert [c["email"] for c in shop.crm.contacts()] == ["ada@example.org"]
        assert set(shop.copies().values()) == {1}


async def test_many_vendors_at_once(home: Path, shops) -> None:
    agent = await Agent.init(home, passphrase=PASSPHRASE, scrypt_n=2**10,
                             limits=Limits(max_connections=8))
    try:
        running = await shops(12)
        for shop in running:
            await agent.add_vendor(shop.url, share=["email"])
        done: list[int] = []
        broadcast = await agent.set_profile({"email": "ada@example.org"},
                                            progress=lambda d, t, r: done.append(d))
        assert len(broadcast.results) == 12 and sorted(done) == list(range(1, 13))
        assert {r.status for r in broadcast.results} == {"delivered"}
    finally:
        await agent.close()
