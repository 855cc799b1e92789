"""The Agent methods behind issue 11 §1's commands (what the web dashboard will
call), in-process against small loopback vendors: the cases that need a clock
or a vendor a real one never is."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

import protocol
from agent import Agent, UsageError, nps_class

from .conftest import FAST, PASSPHRASE, FakeVendor


def test_nps_classes() -> None:
    assert [nps_class(s) for s in (0, 6, 7, 8, 9, 10)] == [
        "detractor", "detractor", "passive", "passive", "promoter", "promoter"]
    for wrong in (-1, 11, True, 7.5):
        with pytest.raises(ValueError):
            nps_class(wrong)  # type: ignore[arg-type]


async def test_intents_expire_and_offers_lapse(agent: Agent, serve, home: Path) -> None:
    shop, url = await serve(FakeVendor("Shop"))
    await agent.add_vendor(url)
    soon = (datetime.now(timezone.utc) + timedelta(days=2)).date()
    sent = await agent.intent("Touring bike", needed_by=soon)
    [intent] = shop.of_type(protocol.Intent)
    offer = protocol.Offer(
        id=protocol.new_message_id(), sender=shop.did, to=intent.sender,
        created=datetime.now(timezone.utc), thread=intent.id,
        body=protocol.OfferBody(summary="Trek", price=protocol.Price(amount="1", currency="EUR"),
                                valid_until=datetime.now(timezone.utc) + timedelta(days=1)))
    shop.outgoing.setdefault(intent.sender, []).append(protocol.FlattenedJWS.model_validate(
        protocol.loads(protocol.sign(offer, shop.key))))
    await agent.sync()
    [listed] = agent.intents()
    assert (listed["id"], listed["status"], listed["told"], listed["offers"]) == (
        sent.id, "open", 1, 1)
    assert [o["status"] for o in agent.offers(intent=sent.id[:6])] == ["live"]
    await agent.close()
    async with await Agent.open(home, passphrase=PASSPHRASE, limits=FAST,
                                clock=lambda: datetime.now(timezone.utc) + timedelta(days=5)
                                ) as future:
        assert [i["status"] for i in future.intents()] == ["expired"]
        assert [o["status"] for o in future.offers()] == ["expired"]
        with pytest.raises(UsageError, match="no vendor matches"):
            future.offers(vendor="Nobody")


async def test_preferences_with_no_vendor_are_recorded(agent: Agent) -> None:
    sent = await agent.set_preferences(channels={"post": False})
    assert sent.message_ids == ()
    sent = await agent.set_preferences(marketing=True)
    assert agent.preferences() == {"channels": {"post": False}, "marketing": True}
    with pytest.raises(UsageError, match="not a channel"):
        await agent.set_preferences(channels={"pigeon": True})
    with pytest.raises(UsageError, match="preferences"):
        await agent.set_preferences()


async def test_terms_travel_with_every_request(agent: Agent, serve) -> None:
    shop, url = await serve(FakeVendor("Shop"))
    await agent.set_profile({"email": "ann@example.org"})
    await agent.set_terms(["myterms:nostalking"])
    await agent.add_vendor(url, share=["email"])
    [request] = shop.of_type(protocol.RelationshipRequest)
    assert request.body.terms == ["myterms:nostalking"]
    await agent.set_terms(["myterms:nostalking", "myterms:sd-1"])
    restated = shop.of_type(protocol.RelationshipRequest)[-1]
    assert restated.body.terms == ["myterms:nostalking", "myterms:sd-1"]
    assert restated.body.profile.email == "ann@example.org"
    for wrong in (["NoStalking"], [f"myterms:{i}" for i in range(33)], ["myterms:a b"]):
        with pytest.raises(UsageError):
            await agent.set_terms(wrong)
    assert agent.terms() == ["myterms:nostalking", "myterms:sd-1"]


async def test_unset_postal_address_and_receipts_checked_again(agent: Agent, serve,
                                                               home: Path) -> None:
    shop, url = await serve(FakeVendor("Shop"))
    await agent.set_profile({"postal_address.locality": "Leeds",
                             "postal_address.country": "GB", "email": "a@b.example"})
    await agent.add_vendor(url, share=["postal_address"])
    unset = await agent.unset_profile(["postal_address"])
    assert sorted(unset.changed or ()) == ["postal_address.country", "postal_address.locality"]
    [update] = shop.of_type(protocol.ContactUpdate)
    assert update.body.changes.to_wire() == {
        "postal_address": {"locality": None, "country": None}}
    assert (await agent.unset_profile(["postal_address"])).changed == ()
    message_id = unset.message_ids[0]
    assert agent.receipt(message_id[:5])["verified"] is True
    with sqlite3.connect(home / "vrm.db") as db:  # another key signs it now
        db.execute("UPDATE receipts SET jws = ? WHERE message_id = ?",
                   (FakeVendor("Other").receipt(update.sender, message_id, "accepted"),
                    message_id))
    receipt = agent.receipt(message_id)
    assert receipt["verified"] is False and "not known" in receipt["verify_detail"]
    history = agent.vendor_history("Shop")
    assert [m["receipt"]["verified"] for m in history["messages"]] == [True, False]
    with pytest.raises(UsageError, match="no message"):
        agent.find_receipt("zzzzzz")
