"""The person-level API: intents and offers, ending relationships, who knows what, export."""

from __future__ import annotations

import json
from datetime import date

import pytest

import protocol
from agent import Agent, UsageError

from .conftest import FakeVendor


async def test_intent_sync_and_offers(agent: Agent, serve) -> None:
    bikes, bikes_url = await serve(FakeVendor("Bikes4U"))
    books, books_url = await serve(FakeVendor("Books", types=("relationship.request",)))
    await agent.add_vendor(bikes_url)
    await agent.add_vendor(books_url)
    broadcast = await agent.intent("Touring bike", category="bicycles", budget=("800", "eur"),
                                   needed_by=date(2027, 6, 1))
    assert [r.vendor for r in broadcast.results] == ["Bikes4U"]  # Books takes no intents
    [intent] = bikes.of_type(protocol.Intent)
    assert intent.body.budget.to_wire() == {"max": "800", "currency": "EUR"}
    for i in range(3):  # three offers: more than one page
        bikes.offer(intent, summary=f"Bike {i}", amount=f"7{i}9.00")
    results = await agent.sync()
    by_vendor = {r.vendor: r for r in results}
    assert by_vendor["Bikes4U"].status == "ok" and by_vendor["Bikes4U"].new_messages == 3
    offers = agent.offers()
    assert sorted(o["summary"] for o in offers) == ["Bike 0", "Bike 1", "Bike 2"]
    assert {o["intent_summary"] for o in offers} == {"Touring bike"}
    assert {o["intent_id"] for o in offers} == {broadcast.id}
    # the cursor is kept: a second sync brings nothing new, and nothing twice
    again = await agent.sync()
    assert {r.new_messages for r in again} == {0}
    assert len(agent.offers()) == 3
    json.dumps(agent.offers())


async def test_forged_offers_are_dropped(agent: Agent, serve) -> None:
    vendor, url = await serve(FakeVendor("Bikes4U"))
    await agent.add_vendor(url)
    await agent.intent("Touring bike")
    [intent] = vendor.of_type(protocol.Intent)
    real_key = vendor.key
    vendor.key = protocol.SigningKey.generate()
    vendor.offer(intent, summary="forged")  # signed by a key that is not pinned
    vendor.key = real_key
    vendor.offer(intent, summary="real")
    await agent.sync()
    assert [o["summary"] for o in agent.offers()] == ["real"]


async def test_intent_to_named_vendors(agent: Agent, serve) -> None:
    a, url_a = await serve(FakeVendor("A"))
    b, url_b = await serve(FakeVendor("B"))
    await agent.add_vendor(url_a)
    await agent.add_vendor(url_b)
    broadcast = await agent.intent("Touring bike", to=["B"])
    assert [r.vendor for r in broadcast.results] == ["B"]
    assert not a.of_type(protocol.Intent)
    with pytest.raises(UsageError, match="budget"):
        await agent.intent("x", budget=("cheap", "EUR"))


async def test_end_vendor_with_erase_and_shared_view(agent: Agent, serve) -> None:
    await agent.set_profile({"email": "ann@example.org", "phone": "+441234567"})
    a, url_a = await serve(FakeVendor("A"))
    b, url_b = await serve(FakeVendor("B"))
    await agent.add_vendor(url_a, share=["email", "phone"])
    await agent.add_vendor(url_b, share=["email"])
    await agent.set_profile({"email": "ann@example.net", "postal_address.locality": "Leeds"})
    shared = {(row["vendor"], row["field"]): row for row in agent.shared()}
    assert set(shared) == {("A", "email"), ("A", "phone"), ("B", "email")}
    assert shared[("A", "email")]["message_type"] == "contact.update"
    assert shared[("A", "phone")]["message_type"] == "relationship.request"
    assert all(row["receipt_id"] for row in shared.values())
    result = await agent.end_vendor("A", erase=True)
    assert result is not None and result.status == "delivered"
    [end] = a.of_type(protocol.RelationshipEnd)
    assert end.body.erase is True
    assert agent.vendor("A")["status"] == "ended" and agent.vendor("A")["erased"]
    assert {row["vendor"] for row in agent.shared()} == {"B"}
    await agent.end_vendor("B")
    assert {row["vendor"] for row in agent.shared()} == {"B"}  # B keeps what it was told
    with pytest.raises(UsageError, match="already ended"):
        await agent.end_vendor("B")
    # ended vendors get nothing more
    broadcast = await agent.set_profile({"email": "ann@example.com"})
    assert broadcast.results == []


async def test_profile_checks(agent: Agent) -> None:
    with pytest.raises(UsageError, match="not a profile field"):
        await agent.set_profile({"mail": "x"})
    with pytest.raises(UsageError, match="postal_address.locality"):
        await agent.set_profile({"postal_address": "x"})
    with pytest.raises(UsageError, match="phone"):
        await agent.set_profile({"phone": "0123"})
    await agent.set_profile({"email": "ann@example.org", "phone": "+441234567"})
    await agent.set_profile({"phone": ""})
    assert agent.profile() == {"email": "ann@example.org"}


async def test_export_is_complete_json(agent: Agent, serve) -> None:
    vendor, url = await serve(FakeVendor("A"))
    await agent.set_profile({"email": "ann@example.org"})
    await agent.add_vendor(url, share=["email"])
    await agent.intent("Touring bike")
    [intent] = vendor.of_type(protocol.Intent)
    vendor.offer(intent)
    await agent.sync()
    data = json.loads(json.dumps(agent.export()))
    assert data["profile"] == {"email": "ann@example.org"}
    assert [v["name"] for v in data["vendors"]] == ["A"]
    assert len(data["receipts"]) == 2 and len(data["inbox"]) == 1
    # receipts are the raw signed bytes: anyone can check them against the vendor key
    raw = data["receipts"][0]["jws"].encode()
    pairwise = data["vendors"][0]["pairwise_did"]
    receipt = protocol.parse(raw, now=protocol.parse_time(data["exported"][:19] + "Z"),
                             keys=protocol.pinned_keys(vendor.key.public), recipient=pairwise)
    assert receipt.type == "receipt"
    assert all("sealed" in key for key in data["keys"]["sealed"])


async def test_feedback_preferences_and_cancel(agent: Agent, serve) -> None:
    a, url_a = await serve(FakeVendor("A"))
    b, url_b = await serve(FakeVendor("B"))
    await agent.add_vendor(url_a)
    await agent.add_vendor(url_b)
    sent = await agent.intent("Touring bike")
    cancelled = await agent.cancel_intent(sent.id, reason="bought one")
    assert [r.status for r in cancelled.results] == ["delivered", "delivered"]
    [cancel] = a.of_type(protocol.IntentCancel)
    assert cancel.thread == a.of_type(protocol.Intent)[0].id
    prefs = await agent.set_preferences(channels={"email": True, "sms": False},
                                        marketing=False)
    assert len(prefs.results) == 2
    assert b.of_type(protocol.PreferencesUpdate)[0].body.marketing is False
    rated = await agent.feedback("B", 9, comment="Great service")
    assert [r.vendor for r in rated.results] == ["B"]
    assert b.of_type(protocol.Feedback)[0].body.score == 9
    with pytest.raises(UsageError, match="feedback"):
        await agent.feedback("B", 11)
    with pytest.raises(UsageError, match="no intent"):
        await agent.cancel_intent("nope")


async def test_a_profile_set_that_changes_nothing_sends_nothing(agent: Agent, serve) -> None:
    vendor, url = await serve(FakeVendor("A"))
    await agent.set_profile({"email": "ann@example.org"})
    await agent.add_vendor(url, share=["email", "phone"])
    leftover = await agent.set_profile({"phone": "+441234567"}, send=False)
    same = await agent.set_profile({"email": "ann@example.org"})
    assert same.changed == () and same.message_ids == () and same.results == []
    assert same.to_json()["changed"] == []
    # nothing new was sent, but what was due went ("the next command carries on")
    updates = vendor.of_type(protocol.ContactUpdate)
    assert [u.id for u in updates] == list(leftover.message_ids)
    assert agent.outbox()[-1]["status"] == "delivered"


async def test_every_message_of_a_broadcast_has_a_result(agent: Agent, serve) -> None:
    vendor, url = await serve(FakeVendor("A"))
    await agent.add_vendor(url, share=["email"])
    queued = await agent.set_profile({"email": "ann@example.org"}, send=False)
    [result] = queued.results
    assert (result.status, result.attempts) == ("pending", 0)
    assert "vrm deliver" in (result.detail or "")
    # not due (Retry-After), and a second message waits behind it
    vendor.mode, vendor.retry_after = "429", "300"
    await agent.deliver()
    behind = await agent.set_profile({"email": "ann@example.net"})
    [result] = behind.results
    assert result.status == "pending" and result.attempts == 0
    assert result.detail == "queued behind 1 earlier message to this vendor"
    waiting = agent.pending()
    assert waiting["pending"] == 2 and waiting["next_attempt"] is not None


async def test_intent_refuses_an_empty_summary_and_a_past_date(agent: Agent, serve) -> None:
    vendor, url = await serve(FakeVendor("A"))
    await agent.add_vendor(url)
    with pytest.raises(UsageError, match="say what you want"):
        await agent.intent(" \t\n")
    with pytest.raises(UsageError, match="in the past"):
        await agent.intent("Touring bike", needed_by=date(2020, 1, 1))
    with pytest.raises(UsageError, match="the budget must be an amount like 250"):
        await agent.intent("Touring bike", budget=("twelve", "EUR"))
    today = await agent.intent("Touring bike", needed_by=date.today())
    assert [r.status for r in today.results] == ["delivered"]
    assert vendor.of_type(protocol.Intent)[0].body.summary == "Touring bike"


async def test_to_names_each_vendor_once(agent: Agent, serve) -> None:
    vendor, url = await serve(FakeVendor("A"))
    await agent.add_vendor(url)
    sent = await agent.intent("Touring bike", to=["A", 1, "a", url, url + "/"])
    assert [r.vendor for r in sent.results] == ["A"]
    assert len(vendor.of_type(protocol.Intent)) == 1
