"""agent._views through the Agent: a relationship's history with receipts
verified again, and intents with their offers and statuses."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import protocol
from agent import Agent

from .conftest import FAST, PASSPHRASE, FakeVendor


async def test_history_lists_what_was_sent_and_whether_each_receipt_verifies(
        agent: Agent, serve) -> None:
    vendor, url = await serve(FakeVendor("Bikes4U"))
    await agent.set_profile({"email": "ann@example.org", "postal_address.locality": "Berlin"})
    await agent.add_vendor(url, share=["email", "postal_address"])
    await agent.set_profile({"postal_address.locality": "Hamburg", "email": None})
    history = agent.vendor_history("Bikes4U")
    assert [(e["direction"], e["type"], e["status"]) for e in history] == [
        ("sent", "relationship.request", "delivered"), ("sent", "contact.update", "delivered")]
    assert history[0]["fields"] == ["email", "postal_address.locality"]
    assert history[1]["fields"] == ["email (removed)", "postal_address.locality"]
    for entry in history:
        assert entry["receipt"]["status"] == "accepted"
        assert entry["receipt"]["verifies"] is True and entry["receipt"]["why"] is None

    # A stored receipt whose signature was spoiled, and one validly signed by
    # another key, no longer count as the vendor's word.
    store = agent.store
    first, second = (e["message_id"] for e in history)
    raw = json.loads(store.one("SELECT jws FROM receipts WHERE message_id = ?", (first,))["jws"])
    raw["signature"] = ("A" if raw["signature"][0] != "A" else "B") + raw["signature"][1:]
    other = protocol.SigningKey.generate()
    stranger = protocol.Receipt(id=protocol.new_message_id(), sender=other.did,
                                to=agent.vendor(1)["pairwise_did"],
                                created=datetime.now(timezone.utc), thread=second,
                                body=protocol.ReceiptBody(status="accepted"))
    with store.transaction() as conn:
        conn.execute("UPDATE receipts SET jws = ? WHERE message_id = ?",
                     (json.dumps(raw).encode(), first))
        conn.execute("UPDATE receipts SET jws = ? WHERE message_id = ?",
                     (protocol.sign(stranger, other), second))
    spoiled, foreign = (e["receipt"] for e in agent.vendor_history(1))
    assert spoiled["verifies"] is False and "does not verify" in spoiled["why"]
    assert foreign["verifies"] is False and "pinned key" in foreign["why"]


async def test_intents_carry_their_offers_and_statuses(home, serve) -> None:
    moment = [datetime.now(timezone.utc)]
    agent = await Agent.init(home, passphrase=PASSPHRASE, scrypt_n=2**10, limits=FAST,
                             clock=lambda: moment[0])
    try:
        vendor, url = await serve(FakeVendor("Bikes4U"))
        await agent.add_vendor(url)
        needed_by = (moment[0] + timedelta(days=10)).date()
        bike = await agent.intent("Touring bike", category="bicycles", budget=("800", "eur"),
                                  needed_by=needed_by, locality="Hamburg")
        lamp = await agent.intent("Bike lamp")
        [bike_copy, lamp_copy] = vendor.of_type(protocol.Intent)
        vendor.offer(bike_copy, "Trek 520", "749.00")
        vendor.offer(lamp_copy, "Lamp", "20.00")
        await agent.sync()
        listed = {i["summary"]: i for i in agent.intents()}
        assert listed["Touring bike"] | {"offers": None} == {
            "id": bike.id, "summary": "Touring bike", "category": "bicycles",
            "budget": {"max": "800", "currency": "EUR"}, "needed_by": needed_by.isoformat(),
            "location": "Hamburg", "created": listed["Touring bike"]["created"],
            "status": "open", "vendors": 1, "delivered": 1, "offers": None}
        [offer] = listed["Touring bike"]["offers"]
        assert (offer["summary"], offer["price"], offer["status"]) == ("Trek 520", "749.00",
                                                                       "live")
        await agent.cancel_intent(lamp.id)
        listed = {i["summary"]: i for i in agent.intents()}
        assert listed["Bike lamp"]["status"] == "cancelled"
        assert [o["status"] for o in listed["Bike lamp"]["offers"]] == ["cancelled"]
        assert listed["Touring bike"]["status"] == "open"
        # Past the needed-by day, the intent is expired (its offer has no end).
        moment[0] += timedelta(days=11)
        listed = {i["summary"]: i for i in agent.intents()}
        assert listed["Touring bike"]["status"] == "expired"
        assert [o["status"] for o in listed["Touring bike"]["offers"]] == ["live"]
    finally:
        await agent.close()


def test_an_offer_past_valid_until_is_expired() -> None:
    from agent._views import offer_status

    now = datetime(2026, 6, 1, 12, tzinfo=timezone.utc)
    assert offer_status({"valid_until": "2026-06-01T11:59:59Z"}, cancelled=False,
                        now=now) == "expired"
    assert offer_status({"valid_until": "2026-06-01T12:00:01Z"}, cancelled=False,
                        now=now) == "live"
    assert offer_status({"valid_until": "not a time"}, cancelled=False, now=now) == "live"
    assert offer_status({"valid_until": None}, cancelled=True, now=now) == "cancelled"
