"""Every inbox outcome, through the real HTTP interface, receipts verified with jwcrypto.

Every test runs against both bindings and both stores, in three pairs
(conftest.py): aiohttp and the ASGI app behind a real uvicorn server, each on
SQLite, and aiohttp on PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import pytest

import protocol
from vendor_adapter import Vendor

from .conftest import (
    JOSE,
    PASSPHRASE,
    Inbox,
    JwcryptoPerson,
    Person,
    now,
    table_rows,
    verify_receipt,
)


async def test_discovery_document(inbox: Inbox) -> None:
    doc = protocol.parse_discovery(json.dumps(inbox.discovery).encode(),
                                   url=str(inbox.client.make_url("/.well-known/vrm")))
    assert doc.id == inbox.vendor.did and doc.name == "Bikes4U"
    assert doc.inbox == str(inbox.client.make_url("/inbox"))
    assert doc.key == inbox.vendor.public_key
    assert "intent" in doc.types and "messages.fetch" in doc.types


async def test_relationship_request_creates_contact(inbox: Inbox) -> None:
    person = inbox.person()
    raw = person.request(given_name="Ann", family_name="Lee", email="ann@example.org",
                         postal_address={"locality": "Gent", "country": "BE"})
    receipt = await inbox.send(person, raw)
    assert receipt["status"] == "accepted"
    (contact,) = inbox.vendor.crm.contacts()
    assert receipt["record"] == {"contact": contact["id"], "customer_id": contact["customer_id"]}
    assert contact["did"] == person.did
    assert (contact["given_name"], contact["email"], contact["locality"]) == (
        "Ann", "ann@example.org", "Gent")
    assert contact["shared_fields"] == ["given_name", "family_name", "email", "postal_address"]
    assert contact["status"] == "active" and contact["erased"] is False
    (activity,) = inbox.vendor.crm.activities()
    assert activity["type"] == "relationship.request" and activity["jws"] == raw.decode()


async def test_jwcrypto_signed_messages_are_accepted(inbox: Inbox) -> None:
    person = JwcryptoPerson(inbox.vendor.did)
    receipt = await inbox.send(person, person.request(given_name="Jo"))
    assert receipt["status"] == "accepted"
    receipt = await inbox.send(person, person.message("feedback", {"score": 7}))
    assert receipt["status"] == "accepted"
    assert inbox.vendor.crm.feedback()[0]["nps_class"] == "passive"


async def test_receipt_threads_the_message(inbox: Inbox) -> None:
    person = inbox.person()
    payload = person.envelope("relationship.request", {})
    code, _, body = await inbox.post(person.sign_payload(payload))
    assert code == 200
    receipt = verify_receipt(body, inbox.discovery, person.did)
    assert receipt["thread"] == payload["id"]


async def test_contact_update_is_a_merge_patch(inbox: Inbox) -> None:
    person = await inbox.related(given_name="Ann", phone="+3212345678",
                                 postal_address={"street_address": "Kerkstraat 1",
                                                 "locality": "Gent"})
    receipt = await inbox.send(person, person.message("contact.update", {"changes": {
        "phone": None, "postal_address": {"street_address": "Veldstraat 9", "postal_code": "9000"}}}))
    assert receipt["status"] == "accepted"
    (contact,) = inbox.vendor.crm.contacts()
    assert receipt["record"] == {"contact": contact["id"]}
    assert contact["phone"] is None
    assert (contact["street_address"], contact["postal_code"], contact["locality"]) == (
        "Veldstraat 9", "9000", "Gent")
    assert contact["shared_fields"] == ["given_name", "postal_address"]
    assert contact["message_counts"] == {"relationship.request": 1, "contact.update": 1}


async def test_intent_creates_a_lead_and_cancel_closes_it(inbox: Inbox) -> None:
    person = await inbox.related()
    intent = person.envelope("intent", {
        "summary": "touring bike", "category": "bikes", "quantity": 1,
        "budget": {"max": "800.00", "currency": "EUR"}, "needed_by": "2027-06-01"})
    receipt = await inbox.send(person, person.sign_payload(intent))
    (lead,) = inbox.vendor.crm.leads()
    assert receipt["record"] == {"contact": lead["contact_id"], "lead": lead["id"]}
    assert (lead["summary"], lead["category"], lead["budget_max"], lead["status"]) == (
        "touring bike", "bikes", "800.00", "open")
    await inbox.send(person, person.message("intent", {"summary": "helmet", "category": "gear"}))
    assert inbox.vendor.crm.contacts()[0]["intent_categories"] == ["bikes", "gear"]
    receipt = await inbox.send(person, person.message("intent.cancel", {},
                                                      thread=intent["id"]))
    assert receipt["record"]["lead"] == lead["id"]
    assert inbox.vendor.crm.leads()[0]["status"] == "cancelled"


async def test_cancel_of_unknown_intent_is_rejected(inbox: Inbox) -> None:
    person = await inbox.related()
    before = inbox.snapshot()
    receipt = await inbox.send(person, person.message("intent.cancel", {}, thread="nope"),
                               status=422)
    assert receipt["status"] == "rejected"
    assert receipt["problem"]["type"] == "urn:vrm:problem:invalid-body"
    assert inbox.snapshot() == before


async def test_preferences_and_feedback(inbox: Inbox) -> None:
    person = await inbox.related()
    await inbox.send(person, person.message("preferences.update", {
        "channels": {"email": True, "sms": False}, "marketing": False}))
    await inbox.send(person, person.message("preferences.update", {"channels": {"post": True}}))
    for score, klass in ((10, "promoter"), (8, "passive"), (3, "detractor")):
        receipt = await inbox.send(person, person.message("feedback", {"score": score}))
        assert receipt["record"]["feedback"] == inbox.vendor.crm.feedback()[-1]["id"]
        assert inbox.vendor.crm.feedback()[-1]["nps_class"] == klass
    (contact,) = inbox.vendor.crm.contacts()
    assert contact["channels"] == {"email": True, "sms": False, "post": True}
    assert contact["marketing"] is False
    assert contact["feedback_class"] == "detractor"


async def test_first_message_must_be_a_relationship_request(inbox: Inbox) -> None:
    person = inbox.person()
    receipt = await inbox.send(person, person.message("feedback", {"score": 9}), status=422)
    assert receipt["status"] == "rejected"
    assert receipt["problem"]["type"] == "urn:vrm:problem:unknown-relationship"
    assert inbox.crm() == ([], [], [], [])


async def test_vendor_hook_may_refuse_a_relationship(store: str, served_app) -> None:
    refused = Vendor.open(store, name="Picky", passphrase=PASSPHRASE,
                          accept_relationship=lambda request: "we only serve Belgium")
    try:
        client = await served_app(refused)
        doc = await (await client.get("/.well-known/vrm")).json()
        inbox = Inbox(client, refused, doc, store)
        person = inbox.person()
        receipt = await inbox.send(person, person.request(), status=422)
        assert receipt["status"] == "rejected"
        assert receipt["problem"]["type"] == "urn:vrm:problem:relationship-refused"
        assert receipt["problem"]["detail"] == "we only serve Belgium"
        assert inbox.crm() == ([], [], [], [])
    finally:
        refused.close()


async def test_unsupported_type_gets_an_unsupported_receipt(inbox: Inbox) -> None:
    person = await inbox.related()
    receipt = await inbox.send(person, person.message("x-org.example.points", {}), status=422)
    assert receipt["status"] == "unsupported"
    assert receipt["problem"]["type"] == "urn:vrm:problem:unsupported-type"


@pytest.mark.parametrize("type_, body", [
    ("offer", {"summary": "A bike", "price": {"amount": "1.00", "currency": "EUR"}}),
    ("receipt", {"status": "accepted"}),
])
async def test_vendor_to_agent_types_are_not_taken_at_the_inbox(inbox: Inbox, type_: str,
                                                                body: dict) -> None:
    person = await inbox.related()
    before = inbox.snapshot()
    raw = person.message(type_, body, thread=protocol.new_message_id())
    receipt = await inbox.send(person, raw, status=422)
    assert receipt["status"] == "unsupported"
    assert receipt["problem"]["type"] == "urn:vrm:problem:unsupported-type"
    assert inbox.snapshot() == before


async def test_the_inbox_takes_only_the_types_the_vendor_lists(store: str,
                                                               served_app) -> None:
    vendor = Vendor.open(store, name="Narrow", passphrase=PASSPHRASE,
                         types=("relationship.request", "contact.update"))
    try:
        client = await served_app(vendor)
        discovery = await (await client.get("/.well-known/vrm")).json()
        # Narrowed, but never below what every vendor takes (PROTOCOL.md §7).
        assert discovery["types"] == ["relationship.request", "contact.update",
                                      "relationship.end", "messages.fetch"]
        narrow = Inbox(client, vendor, discovery, store)
        person = await narrow.related()
        before = narrow.snapshot()
        for score in (9, 11):  # an invalid body too: the type is refused first
            receipt = await narrow.send(person, person.message("feedback", {"score": score}),
                                        status=422)
            assert receipt["status"] == "unsupported"
            assert receipt["problem"]["type"] == "urn:vrm:problem:unsupported-type"
        assert narrow.snapshot() == before
        receipt = await narrow.send(person, person.message(
            "contact.update", {"changes": {"email": "a@example.org"}}))
        assert receipt["status"] == "accepted"
    finally:
        vendor.close()


async def test_invalid_body_is_rejected(inbox: Inbox) -> None:
    person = await inbox.related()
    before = inbox.snapshot()
    receipt = await inbox.send(person, person.message("feedback", {"score": 11}), status=422)
    assert receipt["problem"]["type"] == "urn:vrm:problem:invalid-body"
    assert inbox.snapshot() == before


async def test_replay_is_a_duplicate_with_the_original_record(inbox: Inbox) -> None:
    person = await inbox.related()
    raw = person.message("intent", {"summary": "bike"})
    first = await inbox.send(person, raw)
    before = inbox.snapshot()
    second = await inbox.send(person, raw)
    assert second["status"] == "duplicate"
    assert second["record"] == first["record"]
    assert inbox.snapshot() == before


async def test_concurrent_identical_requests_have_one_effect(inbox: Inbox) -> None:
    person = await inbox.related()
    raw = person.message("feedback", {"score": 9})
    results = await asyncio.gather(*(inbox.send(person, raw) for _ in range(20)))
    statuses = sorted(r["status"] for r in results)
    assert statuses == ["accepted"] + ["duplicate"] * 19
    assert len({json.dumps(r["record"]) for r in results}) == 1
    assert len(inbox.vendor.crm.feedback()) == 1


async def test_concurrent_relationship_requests_from_many_people(inbox: Inbox) -> None:
    people = [inbox.person() for _ in range(50)]
    results = await asyncio.gather(*(inbox.send(p, p.request(given_name=f"P{i}"))
                                     for i, p in enumerate(people)))
    assert all(r["status"] == "accepted" for r in results)
    assert len({r["record"]["contact"] for r in results}) == 50
    assert len(inbox.vendor.crm.contacts()) == 50


async def test_relationship_end_then_gone(inbox: Inbox) -> None:
    person = await inbox.related(given_name="Ann")
    receipt = await inbox.send(person, person.message("relationship.end", {}))
    assert receipt["record"]["erased"] is False
    (contact,) = inbox.vendor.crm.contacts()
    assert contact["status"] == "ended" and contact["given_name"] == "Ann"
    before = inbox.snapshot()
    for raw in (person.message("feedback", {"score": 1}), person.request()):
        receipt = await inbox.send(person, raw, status=410)
        assert receipt["status"] == "rejected"
        assert receipt["problem"]["type"] == "urn:vrm:problem:unknown-relationship"
        assert "ended" in receipt["problem"]["detail"]
    assert inbox.snapshot() == before


#: What a person shares, every value distinctive enough to be found anywhere in the file
#: (not by chance in base64url, ids or timestamps: a bare "9050" once was).
SHARED = dict(given_name="Annabel", family_name="Vanderstraeten", email="annabel@example.org",
              phone="+32470123456", language="nl-BE",
              postal_address={"street_address": "Veldstraat 9", "locality": "Gentbrugge",
                              "region": "Oost-Vlaanderen", "postal_code": "GB-9050-X",
                              "country": "BE"})
TERMS = ["myterms:sd-bp7"]
INTENT = {"summary": "touring bike, 56 cm frame", "category": "bicycles-touring",
          "quantity": 2, "budget": {"max": "845.50", "currency": "EUR"},
          "needed_by": "2027-06-01", "location": {"locality": "Gentbrugge"},
          "valid_until": "2027-05-01T00:00:00Z"}
FEEDBACK = {"score": 9, "comment": "quick delivery by Jef", "subject": "order 8812"}
#: The values that must not survive an erasure (country "BE" and the score are too
#: short to search for: they are checked column by column).
PERSONAL = ("Annabel", "Vanderstraeten", "annabel@example.org", "+32470123456", "nl-BE",
            "Veldstraat 9", "Gentbrugge", "Oost-Vlaanderen", "GB-9050-X", "myterms:sd-bp7",
            "touring bike, 56 cm frame", "bicycles-touring", "845.50", "2027-06-01",
            "2027-05-01T00:00:00Z", "quick delivery by Jef", "order 8812", "detractor",
            "promoter", "Trek 520 for Annabel")


def raw_tables(path: str) -> dict[str, list[dict]]:
    """Every row of every table, read straight from the store (file or DSN)."""
    return table_rows(path)


async def share_everything(inbox: Inbox, person: Person, *, offer: bool = True) -> None:
    """The person shares a full profile, terms, preferences, an intent and feedback;
    the vendor queues an offer for the intent."""
    receipt = await inbox.send(person, person.message(
        "relationship.request", {"profile": SHARED, "terms": TERMS}))
    assert receipt["status"] == "accepted"
    for raw in (person.message("preferences.update", {"channels": {"email": True, "sms": False},
                                                      "marketing": True}),
                person.message("intent", INTENT),
                person.message("feedback", {"score": 2}),
                person.message("feedback", FEEDBACK)):
        assert (await inbox.send(person, raw))["status"] == "accepted"
    if offer:
        lead = [row for row in inbox.vendor.crm.leads() if row["did"] == person.did][-1]
        await inbox.vendor.make_offer(lead["id"], summary="Trek 520 for Annabel", price="749.00")


def assert_erased(path: str, did: str, end: bytes) -> None:
    """Only the tombstone and the evidence of the erasure request are left of ``did``."""
    tables = raw_tables(path)
    (contact,) = [row for row in tables["contact"] if row["did"] == did]
    tombstone = {"id", "vendor", "did", "status", "erased", "created", "updated", "ended"}
    assert contact["erased"] == 1 and contact["status"] == "ended"
    assert contact["created"] and contact["updated"] and contact["ended"]
    left = {c: v for c, v in contact.items() if c not in tombstone and v not in (None, "{}", "[]")}
    assert left == {}, left
    assert [row for row in tables["lead"] if row["did"] == did] == []
    assert [row for row in tables["feedback"] if row["did"] == did] == []
    activities = [row for row in tables["activity"] if row["did"] == did]
    assert activities[-1]["type"] == "relationship.end" and activities[-1]["jws"] == end.decode()
    assert all(row["jws"] is None for row in activities[:-1])
    assert [row for row in tables["vrm_outbox"] if row["did"] == did] == []
    (relationship,) = [row for row in tables["vrm_relationship"] if row["did"] == did]
    assert relationship["state"] == "erased"
    assert json.loads(relationship["record"]) == {"contact": contact["id"], "erased": True}
    for row in tables["vrm_seen"]:
        assert row["sender"] != did or "customer_id" not in (row["record"] or "")
    # Nothing the person shared, and not the vendor's customer id, anywhere in the file
    # (the erasure request itself, kept as evidence, is base64url: it is searched too).
    text = json.dumps(tables)
    for value in PERSONAL:
        assert value not in text, value


async def test_relationship_end_with_erase_keeps_only_a_tombstone(inbox: Inbox) -> None:
    """Erasure leaves the tombstone contact (DID, dates, erased flag), activity rows
    without their JWS, and the erasure request as evidence. Nothing else: not the
    profile, terms, preferences, consent, counts, categories, feedback class or
    customer id of the contact; not its leads or feedback (deleted); not the offers
    queued for it; not the customer id in the relationship's record."""
    person, other = inbox.person(), inbox.person()
    await share_everything(inbox, person)
    await inbox.send(other, other.request(given_name="Bob", email="bob@example.org"))
    await inbox.send(other, other.message("intent", {"summary": "a helmet"}))
    await inbox.send(other, other.message("feedback", {"score": 7}))  # passive: not searched
    await inbox.vendor.make_offer(inbox.vendor.crm.leads()[-1]["id"], summary="a helmet, 39.00")
    others = {t: [r for r in rows if other.did in (r.get("did"), r.get("sender"))]
              for t, rows in raw_tables(inbox.target).items()}
    (contact,) = [c for c in inbox.vendor.crm.contacts() if c["did"] == person.did]
    customer_id = contact["customer_id"]
    assert customer_id and contact["terms"] == TERMS and contact["feedback_class"] == "promoter"
    assert customer_id in json.dumps(raw_tables(inbox.target))

    end = person.message("relationship.end", {"erase": True})
    receipt = await inbox.send(person, end)
    assert receipt["status"] == "accepted" and receipt["record"]["erased"] is True
    assert_erased(inbox.target, person.did, end)
    assert customer_id not in json.dumps(raw_tables(inbox.target))
    contact = [c for c in inbox.vendor.crm.contacts() if c["did"] == person.did][0]
    assert contact["erased"] is True and contact["message_counts"] == {}
    # The other person's records are untouched.
    assert {t: [r for r in rows if other.did in (r.get("did"), r.get("sender"))]
            for t, rows in raw_tables(inbox.target).items()} == others

    replay = await inbox.send(person, end)
    assert replay["status"] == "duplicate" and replay["record"]["erased"] is True
    assert_erased(inbox.target, person.did, end)


async def test_erasure_after_an_end_without_it(inbox: Inbox) -> None:
    """A person who ended without erasing may ask for erasure later; nothing else."""
    person = inbox.person()
    await share_everything(inbox, person)
    first = person.message("relationship.end", {})
    assert (await inbox.send(person, first))["record"]["erased"] is False
    ended = [c for c in inbox.vendor.crm.contacts() if c["did"] == person.did][0]["ended"]
    for raw in (person.message("feedback", {"score": 1}), person.request(),
                person.message("messages.fetch", {"after": None})):
        receipt = await inbox.send(person, raw, status=410)
        assert receipt["problem"]["type"] == "urn:vrm:problem:unknown-relationship"
        assert "erase" in receipt["problem"]["detail"]
    erase = person.message("relationship.end", {"erase": True, "reason": "changed my mind"})
    receipt = await inbox.send(person, erase)
    assert receipt["status"] == "accepted" and receipt["record"]["erased"] is True
    assert_erased(inbox.target, person.did, erase)
    assert inbox.vendor.crm.contacts()[0]["ended"] == ended  # when it ended, not erased
    # Replays keep their original outcomes; a new erasure request is gone like the rest.
    assert (await inbox.send(person, first)) == {"status": "duplicate",
                                                 "record": {"contact": 1, "erased": False}}
    assert (await inbox.send(person, erase))["status"] == "duplicate"
    before = raw_tables(inbox.target)
    again = await inbox.send(person, person.message("relationship.end", {"erase": True}),
                             status=410)
    assert "erased" in again["problem"]["detail"]
    assert raw_tables(inbox.target) == before


@pytest.mark.parametrize("erase", [False, True])
async def test_end_cancels_open_leads_and_drops_queued_offers(inbox: Inbox, erase: bool) -> None:
    person, other = await inbox.related(), await inbox.related()
    intents = [person.envelope("intent", {"summary": f"bike {n}"}) for n in range(3)]
    for intent in intents:
        await inbox.send(person, person.sign_payload(intent))
    await inbox.send(other, other.message("intent", {"summary": "helmet"}))
    lead_ids = [lead["id"] for lead in inbox.vendor.crm.leads()]
    await inbox.vendor.make_offer(lead_ids[1], summary="offer for bike 1")
    await inbox.vendor.make_offer(lead_ids[3], summary="offer for the helmet")
    await inbox.send(person, person.message("intent.cancel", {}, thread=intents[2]["id"]))
    statuses = [lead["status"] for lead in inbox.vendor.crm.leads()]
    assert statuses == ["open", "offered", "cancelled", "offered"]

    await inbox.send(person, person.message("relationship.end", {"erase": erase}))
    outbox = raw_tables(inbox.target)["vrm_outbox"]
    assert [row["did"] for row in outbox] == [other.did]
    if erase:
        assert [lead["did"] for lead in inbox.vendor.crm.leads()] == [other.did]
    else:
        assert [lead["status"] for lead in inbox.vendor.crm.leads()] == [
            "cancelled", "cancelled", "cancelled", "offered"]
    fetched = await inbox.send(other, other.message("messages.fetch", {"after": None}))
    assert len(fetched["messages"]) == 1


async def test_a_repeated_request_restates_what_the_person_shares(store: str,
                                                                 served_app) -> None:
    """From an active DID, relationship.request replaces the profile and the terms
    with exactly what it states; the hook is not asked again (the relationship
    exists); preferences, leads and feedback stay."""
    asked: list[str] = []

    def hook(request: protocol.RelationshipRequest) -> bool:
        asked.append(request.sender)
        return True

    vendor = Vendor.open(store, name="Hooked", passphrase=PASSPHRASE,
                         accept_relationship=hook)
    try:
        client = await served_app(vendor)
        inbox = Inbox(client, vendor, await (await client.get("/.well-known/vrm")).json(),
                      store)
        person = inbox.person()
        await share_everything(inbox, person, offer=False)
        first = vendor.crm.contacts()[0]
        restated = await inbox.send(person, person.message(
            "relationship.request", {"profile": {"email": "a@example.net"}}))
        assert restated["status"] == "accepted"
        assert restated["record"] == {"contact": first["id"], "customer_id": first["customer_id"]}
        assert asked == [person.did]
        (contact,) = vendor.crm.contacts()
        profile = ("given_name", "family_name", "email", "phone", "street_address", "locality",
                   "region", "postal_code", "country", "language")
        assert {c: contact[c] for c in profile} == {
            c: "a@example.net" if c == "email" else None for c in profile}
        assert contact["shared_fields"] == ["email"] and contact["terms"] is None
        assert contact["created"] == first["created"] and contact["status"] == "active"
        assert contact["channels"] == {"email": True, "sms": False} and contact["marketing"]
        assert len(vendor.crm.leads()) == 1 and len(vendor.crm.feedback()) == 2
        await inbox.send(person, person.message("relationship.request", {"terms": TERMS}))
        (contact,) = vendor.crm.contacts()
        assert contact["terms"] == TERMS and contact["email"] is None
        assert contact["shared_fields"] == [] and asked == [person.did]
        assert contact["message_counts"]["relationship.request"] == 3
    finally:
        vendor.close()


async def test_messages_fetch_is_not_an_activity(inbox: Inbox) -> None:
    """A poll is transport, not a CRM event: no activity row, but deduplicated."""
    person = await inbox.related()
    fetch = person.message("messages.fetch", {"after": None})
    assert (await inbox.send(person, fetch))["status"] == "accepted"
    assert (await inbox.send(person, fetch))["status"] == "duplicate"
    assert [a["type"] for a in inbox.vendor.crm.activities()] == ["relationship.request"]


class Clock:
    """A clock the test moves by hand, injected into the vendor."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


@pytest.fixture
async def clocked(store: str, served_app) -> AsyncIterator[tuple[Inbox, Clock]]:
    clock = Clock(now())
    vendor = Vendor.open(store, name="Clocked", passphrase=PASSPHRASE, clock=clock)
    try:
        client = await served_app(vendor)
        yield (Inbox(client, vendor, await (await client.get("/.well-known/vrm")).json(),
                     store), clock)
    finally:
        vendor.close()


async def test_expired_offers_are_not_fetched_and_are_purged(clocked) -> None:
    inbox, clock = clocked
    start = clock.at
    person = inbox.person()
    await inbox.send(person, person.message("relationship.request", {}, created=start))
    await inbox.send(person, person.message("intent", {"summary": "bike"}, created=start))
    lead_id = inbox.vendor.crm.leads()[0]["id"]
    await inbox.vendor.make_offer(lead_id, summary="early")            # expires start + 30 d
    clock.at = start + timedelta(days=2)
    late = await inbox.vendor.make_offer(lead_id, summary="late")      # expires start + 32 d

    clock.at = start + timedelta(days=31)
    receipt = await inbox.send(person, person.message("messages.fetch", {"after": None},
                                                      created=clock.at))
    assert [json.loads(protocol.b64url_decode(m["payload"], what="p"))["id"]
            for m in receipt["messages"]] == [late]
    # The writer's periodic maintenance (run here at once) purges by the vendor's clock.
    inbox.vendor._db.purge()
    outbox = raw_tables(inbox.target)["vrm_outbox"]
    assert [row["message_id"] for row in outbox] == [late]
    again = await inbox.send(person, person.message("messages.fetch", {"after": None},
                                                    created=clock.at))
    assert len(again["messages"]) == 1 and again["cursor"] == receipt["cursor"]


async def test_purge_never_forgets_an_id_the_vendor_clock_still_needs(clocked) -> None:
    """The vendor's clock is 40 days behind the wall clock: by the wall clock the
    request has expired, by the vendor's it has not, so a replay stays a duplicate."""
    inbox, clock = clocked
    clock.at = now() - timedelta(days=40)
    person = inbox.person()
    request = person.message("relationship.request", {"profile": {"given_name": "Ann"}},
                             created=clock.at)
    assert (await inbox.send(person, request))["status"] == "accepted"
    inbox.vendor._db.purge()  # run the periodic purge at once
    assert (await inbox.send(person, request))["status"] == "duplicate"
    clock.at += timedelta(days=8)  # now it has expired for the vendor too
    inbox.vendor._db.purge()
    assert raw_tables(inbox.target)["vrm_seen"] == []


async def test_offer_is_fetched_by_the_agent(inbox: Inbox) -> None:
    person = await inbox.related()
    intent = person.envelope("intent", {"summary": "touring bike"})
    await inbox.send(person, person.sign_payload(intent))
    (lead,) = inbox.vendor.crm.leads()
    offer_id = await inbox.vendor.make_offer(lead["id"], summary="Trek 520", price="749.00",
                                             currency="EUR")
    assert inbox.vendor.crm.leads()[0]["status"] == "offered"
    receipt = await inbox.send(person, person.message("messages.fetch", {"after": None}))
    assert receipt["status"] == "accepted"
    (jws,) = receipt["messages"]
    offer = protocol.parse(json.dumps(jws).encode(), now=now(),
                           keys=protocol.pinned_keys(inbox.vendor.public_key),
                           recipient=person.did)
    assert isinstance(offer, protocol.Offer)
    assert offer.id == offer_id and offer.thread == intent["id"]
    assert offer.body.price.amount == "749.00" and offer.body.summary == "Trek 520"
    again = await inbox.send(person, person.message("messages.fetch",
                                                    {"after": receipt["cursor"]}))
    assert again["messages"] == [] and again["cursor"] == receipt["cursor"]


async def test_fetch_pages_stay_under_the_message_limit(inbox: Inbox) -> None:
    person = await inbox.related()
    await inbox.send(person, person.message("intent", {"summary": "bike"}))
    (lead,) = inbox.vendor.crm.leads()
    for n in range(60):
        await inbox.vendor.make_offer(lead["id"], summary=f"offer {n} " + "x" * 480,
                                      price="10.00")
    seen, cursor = [], None
    while True:
        code, _, body = await inbox.post(
            person.message("messages.fetch", {"after": cursor}))
        assert code == 200 and len(body) <= protocol.MAX_MESSAGE_BYTES
        receipt = verify_receipt(body, inbox.discovery, person.did)["body"]
        if not receipt["messages"]:
            break
        seen.extend(receipt["messages"])
        cursor = receipt["cursor"]
    assert len(seen) == 60


async def test_fetch_with_a_bad_cursor_is_rejected(inbox: Inbox) -> None:
    person = await inbox.related()
    receipt = await inbox.send(person, person.message("messages.fetch", {"after": "abc"}),
                               status=422)
    assert receipt["problem"]["type"] == "urn:vrm:problem:invalid-body"


async def test_offers_refused_for_unknown_cancelled_or_ended(inbox: Inbox) -> None:
    from vendor_adapter import LeadNotFound, OfferError
    with pytest.raises(LeadNotFound):
        await inbox.vendor.make_offer(99, summary="x")
    person = await inbox.related()
    intent = person.envelope("intent", {"summary": "bike"})
    await inbox.send(person, person.sign_payload(intent))
    lead_id = inbox.vendor.crm.leads()[0]["id"]
    with pytest.raises(OfferError, match="a decimal number with a dot, like 12.50"):
        await inbox.vendor.make_offer(lead_id, summary="x", price="12,50")
    await inbox.send(person, person.message("intent.cancel", {}, thread=intent["id"]))
    with pytest.raises(OfferError, match="cancelled"):
        await inbox.vendor.make_offer(lead_id, summary="x")


async def test_subapps_serve_several_vendors_in_one_process(tmp_path, served_app) -> None:
    shared = str(tmp_path / "shared.db")
    vendors = [Vendor.open(shared, name=f"shop{i}", passphrase=PASSPHRASE) for i in range(3)]
    vendors.append(Vendor.open(str(tmp_path / "own.db"), name="own", passphrase=PASSPHRASE))
    try:
        # Mounted side by side: aiohttp sub-apps, or Starlette Mounts of the ASGI app.
        client = await served_app({f"/v/{i}": v for i, v in enumerate(vendors)})
        for i, v in enumerate(vendors):
            doc = await (await client.get(f"/v/{i}/.well-known/vrm")).json()
            assert doc["id"] == v.did
            assert doc["inbox"] == str(client.make_url(f"/v/{i}/inbox"))
            inbox = Inbox(client, v, doc)
            person = Person(v.did)
            resp = await client.post(f"/v/{i}/inbox", data=person.request(), headers=JOSE)
            assert verify_receipt(await resp.read(), doc, person.did)["body"]["status"] == "accepted"
            # a message for vendor i posted to another vendor's inbox is not for it
            other = (i + 1) % len(vendors)
            resp = await client.post(f"/v/{other}/inbox",
                                     data=person.message("feedback", {"score": 1}), headers=JOSE)
            assert resp.status == 422
            assert len(inbox.vendor.crm.contacts()) == 1
        assert len({v.did for v in vendors}) == 4
    finally:
        for v in vendors:
            v.close()



async def test_a_whole_relationship_signed_with_jwcrypto(inbox: Inbox) -> None:
    person = JwcryptoPerson(inbox.vendor.did)
    assert (await inbox.send(person, person.request(email="jo@example.org")))["status"] == "accepted"
    update = person.message("contact.update", {"changes": {"email": "jo@example.net"}})
    first = await inbox.send(person, update)
    assert (await inbox.send(person, update)) == {**first, "status": "duplicate"}
    intent = person.envelope("intent", {"summary": "bike"})
    assert (await inbox.send(person, person.sign_payload(intent)))["record"]["lead"]
    lead_id = inbox.vendor.crm.leads()[0]["id"]
    await inbox.vendor.make_offer(lead_id, summary="Trek 520", price="749.00")
    fetched = await inbox.send(person, person.message("messages.fetch", {"after": None}))
    assert len(fetched["messages"]) == 1
    end = await inbox.send(person, person.message("relationship.end", {"erase": True}))
    assert end["record"]["erased"] is True
    gone = await inbox.send(person, person.message("feedback", {"score": 9}), status=410)
    assert gone["problem"]["type"] == "urn:vrm:problem:unknown-relationship"
    assert inbox.vendor.crm.contacts()[0]["email"] is None
