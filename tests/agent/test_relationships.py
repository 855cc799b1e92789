"""A relationship's life after its start: re-stating what a vendor may see, adding a
vendor again after an end or a key change, and erasure that is never lost (an end
queued while the vendor is down, then --erase; an erasure asked after the end).
Real vendor_adapter apps, checked in their real CRM tables."""

from __future__ import annotations

import pytest

import protocol
from agent import Agent, UsageError, VendorKeyChanged

from .conftest import FakeVendor


def _outbox(agent: Agent, vendor_id: int) -> list[dict]:
    return [row for row in agent.outbox() if row["vendor_id"] == vendor_id]


async def test_adding_again_after_an_end_starts_a_new_relationship(agent: Agent, shops) -> None:
    [shop] = await shops(1)
    await agent.set_profile({"email": "ann@example.org", "phone": "+441234567"})
    first = await agent.add_vendor(shop.url, share=["email"])
    await agent.end_vendor(shop.name)
    again = await agent.add_vendor(shop.url, share=["email", "phone"])
    assert again["action"] == "added-again" and again["replaces"] == first["id"]
    assert again["id"] != first["id"] and again["status"] == "active"
    assert again["pairwise_did"] != first["pairwise_did"]
    assert again["delivery"]["status"] == "delivered"
    # the old row stays as history; the name now means the live relationship
    assert [(v["id"], v["status"]) for v in agent.vendors()] == [
        (first["id"], "ended"), (again["id"], "active")]
    assert agent.vendor(shop.name)["id"] == again["id"]
    # the vendor has a new contact for the new DID, with what is shared now
    contacts = {c["did"]: c for c in shop.crm.contacts()}
    assert contacts[again["pairwise_did"]]["phone"] == "+441234567"
    assert contacts[first["pairwise_did"]]["status"] == "ended"
    broadcast = await agent.set_profile({"email": "ann@example.net"})
    assert [(r.vendor_id, r.status) for r in broadcast.results] == [(again["id"], "delivered")]


async def test_re_adding_with_another_share_restates_exactly_it(agent: Agent, shops) -> None:
    [shop] = await shops(1)
    await agent.set_profile({"email": "ann@example.org", "phone": "+441234567",
                             "postal_address.locality": "Leeds"})
    first = await agent.add_vendor(shop.url, share=["email"])
    posts = shop.posts
    # the same share (or none given): nothing to send
    for share in (["email"], None):
        same = await agent.add_vendor(shop.url, share=share)
        assert same["action"] == "unchanged" and same["delivery"] is None
    assert shop.posts == posts
    more = await agent.add_vendor(shop.url, share=["phone", "postal_address"])
    assert more["action"] == "share-updated" and more["id"] == first["id"]
    assert more["share"] == ["phone", "postal_address"]
    assert more["delivery"]["status"] == "delivered"
    assert more["delivery"]["type"] == "relationship.request"
    [contact] = shop.crm.contacts()
    # the vendor replaced its profile by exactly what is shared now
    assert (contact["email"], contact["phone"], contact["locality"]) == (
        None, "+441234567", "Leeds")
    shared = {row["field"] for row in agent.shared() if row["vendor_id"] == first["id"]}
    assert shared == {"phone", "postal_address.locality"}  # email is no longer held
    # later broadcasts follow the new share
    update = await agent.set_profile({"email": "ann@example.net", "phone": "+441999999"})
    [result] = update.results
    assert result.status == "delivered"
    [contact] = shop.crm.contacts()
    assert (contact["email"], contact["phone"]) == (None, "+441999999")


async def test_a_key_change_then_adding_again_pins_the_new_key(agent: Agent, serve) -> None:
    vendor, url = await serve(FakeVendor("Bikes4U"))
    first = await agent.add_vendor(url)
    vendor.key = vendor.signer = protocol.SigningKey.generate()
    with pytest.raises(VendorKeyChanged, match=f"vrm vendor add {url}"):
        await agent.add_vendor(url)
    assert agent.vendor(first["id"])["status"] == "key-changed"
    # the person decides to trust the new key: adding it again is that decision
    again = await agent.add_vendor(url)
    assert again["action"] == "added-again" and again["replaces"] == first["id"]
    assert again["vendor_did"] == vendor.did != first["vendor_did"]
    assert again["status"] == "active"
    assert agent.vendor(first["id"])["status"] == "key-changed"  # kept as history
    assert agent.vendor("Bikes4U")["id"] == again["id"]


async def test_ending_a_vendor_whose_key_changed_is_local(agent: Agent, serve) -> None:
    vendor, url = await serve(FakeVendor("Bikes4U"))
    await agent.add_vendor(url, share=["email"])
    update = await agent.set_profile({"email": "ann@example.org"}, send=False)
    vendor.key = vendor.signer = protocol.SigningKey.generate()
    with pytest.raises(VendorKeyChanged):
        await agent.check_vendor("Bikes4U")
    # the queued update (personal data) is failed at once, never sent
    [row] = [r for r in agent.outbox() if r["message_id"] == update.message_ids[0]]
    assert row["status"] == "failed" and "key" in row["last_error"]
    hits = vendor.hits
    assert await agent.end_vendor("Bikes4U") is None
    assert vendor.hits == hits  # nothing was sent
    assert agent.vendor("Bikes4U")["status"] == "ended"
    assert {row["status"] for row in agent.outbox()} == {"delivered", "failed"}


async def test_erase_asked_while_an_end_is_queued_is_not_lost(agent: Agent, shops) -> None:
    [shop] = await shops(1)
    await agent.set_profile({"email": "ann@example.org"})
    added = await agent.add_vendor(shop.url, share=["email"])
    await shop.down()
    ended = await agent.end_vendor(shop.name)
    assert ended is not None and ended.status == "pending"
    erased = await agent.end_vendor(shop.name, erase=True)
    assert erased is not None and erased.status == "pending"
    assert erased.message_id != ended.message_id
    # the end without erasure is replaced, never sent; the erasure waits for the vendor
    rows = {row["message_id"]: row for row in _outbox(agent, added["id"])}
    assert rows[ended.message_id]["status"] == "failed"
    assert "replaced" in rows[ended.message_id]["last_error"]
    await shop.up()
    results = await agent.deliver(patience=5)
    assert [(r.message_id, r.status) for r in results] == [(erased.message_id, "delivered")]
    [contact] = shop.crm.contacts()
    assert contact["erased"] and contact["email"] is None
    vendor = agent.vendor(added["id"])
    assert vendor["status"] == "ended" and vendor["erased"]
    assert agent.shared() == []


async def test_erase_after_the_end_is_sent(agent: Agent, shops) -> None:
    [shop] = await shops(1)
    await agent.set_profile({"email": "ann@example.org"})
    await agent.add_vendor(shop.url, share=["email"])
    ended = await agent.end_vendor(shop.name)
    assert ended is not None and ended.status == "delivered"
    [contact] = shop.crm.contacts()
    assert contact["email"] == "ann@example.org" and not contact["erased"]
    with pytest.raises(UsageError, match="add --erase"):
        await agent.end_vendor(shop.name)
    erased = await agent.end_vendor(shop.name, erase=True)
    assert erased is not None and erased.status == "delivered", erased
    [contact] = shop.crm.contacts()
    assert contact["erased"] and contact["email"] is None
    assert agent.vendor(shop.name)["erased"]
    # asking again says so, and sends nothing
    posts = shop.posts
    with pytest.raises(UsageError, match="confirmed the erasure"):
        await agent.end_vendor(shop.name, erase=True)
    with pytest.raises(UsageError, match="already ended"):
        await agent.end_vendor(shop.name)
    assert shop.posts == posts


async def test_erase_after_an_end_whose_answer_was_lost(agent: Agent, shops) -> None:
    """The vendor applied the end, but its answer never came back (timeout): the
    erasure asked next replaces the queued end, and the vendor still erases."""
    [shop] = await shops(1)
    await agent.set_profile({"email": "ann@example.org"})
    await agent.add_vendor(shop.url, share=["email"])
    shop.delay_after = 1.5  # longer than the agent's 1 s timeout
    ended = await agent.end_vendor(shop.name)
    assert ended is not None and ended.status == "pending"
    [contact] = shop.crm.contacts()
    assert contact["status"] == "ended"  # the vendor did end it
    shop.delay_after = 0
    erased = await agent.end_vendor(shop.name, erase=True, patience=5)
    assert erased is not None and erased.status == "delivered", erased
    [contact] = shop.crm.contacts()
    assert contact["erased"] and contact["email"] is None


async def test_a_queued_end_goes_to_a_relationship_the_vendor_ended(agent: Agent,
                                                                     shops) -> None:
    """410 on a contact.update fails the vendor's other queued messages, but not a
    relationship.end: that is how the person still asks for erasure."""
    import sqlite3
    from datetime import datetime, timezone

    [shop] = await shops(1)
    await agent.set_profile({"email": "ann@example.org"})
    added = await agent.add_vendor(shop.url, share=["email"])
    update = await agent.set_profile({"email": "ann@example.net"}, send=False)
    intent = await agent.intent("Touring bike", send=False)
    with sqlite3.connect(shop.vendor.db_path) as conn:
        conn.execute("UPDATE vrm_relationship SET state = 'ended', ended = ? WHERE did = ?",
                     (datetime.now(timezone.utc).isoformat(), added["pairwise_did"]))
    erased = await agent.end_vendor(shop.name, erase=True)
    assert erased is not None and erased.status == "delivered", erased
    statuses = {row["message_id"]: row["status"] for row in _outbox(agent, added["id"])}
    assert statuses[update.message_ids[0]] == "failed"  # the 410
    assert statuses[intent.message_ids[0]] == "failed"  # not sent after the 410
    [contact] = shop.crm.contacts()
    assert contact["erased"]
    assert shop.crm.leads() == []

    assert set(shop.copies().values()) == {1}
