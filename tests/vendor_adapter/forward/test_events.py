"""The events themselves: every type, produced by real messages through a real
inbox, delivered to the receiver process and held to schemas/events/ by the
``jsonschema`` library; the vendor's field mapping names the fields."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

import protocol
from vendor_adapter import DEFAULT, HUBSPOT, SALESFORCE, FieldMapping
from vendor_adapter.forward import EVENT_TYPES, Webhook, events_for

from .conftest import QUICK, Receiver, queue_rows, wait_for

SCHEMAS = Path(__file__).resolve().parents[3] / "schemas" / "events"


def validator(type_: str) -> jsonschema.Draft202012Validator:
    schema = json.loads((SCHEMAS / f"{type_}.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


def test_one_schema_per_event_type() -> None:
    assert sorted(p.stem for p in SCHEMAS.glob("*.json")) == sorted(EVENT_TYPES)


def message_id(raw: bytes) -> str:
    return json.loads(protocol.b64url_decode(json.loads(raw)["payload"], what="p"))["id"]


@pytest.mark.parametrize("mapping", [DEFAULT, SALESFORCE], ids=lambda m: m.name)
async def test_every_event_type_in_the_vendors_mapping_meets_its_schema(
        forwarding_inbox: Any, receiver: Receiver, mapping: FieldMapping) -> None:
    inbox = await forwarding_inbox([Webhook(receiver.url, secret=receiver.secret,
                                            schedule=QUICK)], mapping=mapping)
    person = inbox.person()
    profile = {"given_name": "Ann", "family_name": "Lee", "email": "ann@example.org",
               "postal_address": {"locality": "Paris", "country": "FR"}}
    await inbox.send(person, person.request(**profile))
    await inbox.send(person, person.message("contact.update", {"changes": {
        "email": "anne@example.org", "family_name": None, "postal_address": {"locality": "Lyon"}}}))
    intent = person.message("intent", {"summary": "a touring bike", "category": "bikes",
                                       "quantity": 1, "budget": {"max": "900.00",
                                                                 "currency": "EUR"},
                                       "location": {"locality": "Lyon", "country": "FR"}})
    receipt = await inbox.send(person, intent)
    await inbox.vendor.make_offer(receipt["record"]["lead"], summary="Trek 520", price="749.00")
    for _ in range(2):  # fetched twice: one offer.fetched
        fetched = await inbox.send(person, person.message("messages.fetch", {"after": None}))
        assert len(fetched["messages"]) == 1
    second = person.message("intent", {"summary": "a helmet"})
    await inbox.send(person, second)
    await inbox.send(person, person.message("intent.cancel", {"reason": "found one"},
                                            thread=message_id(second)))
    await inbox.send(person, person.message("feedback", {"score": 7, "subject": "service"}))
    await inbox.send(person, person.message("preferences.update", {
        "channels": {"email": True, "sms": False}, "marketing": False}))
    await inbox.send(person, person.message("relationship.end", {"reason": "moving"}))
    # An erasure drops what is still queued about the person (test_relay.py): let
    # the rest arrive first.
    await wait_for(lambda: len(receiver.events()) == 9, what="the events before the erasure")
    await inbox.send(person, person.message("relationship.end", {"erase": True}))
    await wait_for(lambda: not queue_rows(inbox.vendor.db_path) and len(receiver.events()) >= 10,
                   what="every event delivered")

    events = receiver.events()
    payloads = [json.loads(e["payload"]) for e in events]
    assert [p["type"] for p in payloads] == [
        "contact.created", "contact.updated", "lead.created", "offer.fetched",
        "lead.created", "lead.cancelled", "feedback.received", "preferences.updated", "relationship.ended",
        "contact.erased"]
    for payload in payloads:
        errors = [e.message for e in validator(payload["type"]).iter_errors(payload)]
        assert errors == [], (payload["type"], errors)
    by_type = {p["type"]: p["data"] for p in reversed(payloads)}  # the first of each
    names = mapping.tables["contact"]
    assert by_type["contact.created"]["contact"] == {
        names["given_name"]: "Ann", names["family_name"]: "Lee",
        names["email"]: "ann@example.org", names["postal_address.locality"]: "Paris",
        names["postal_address.country"]: "FR"}
    assert by_type["contact.created"]["customer_id"] == "C000001"
    updated = by_type["contact.updated"]
    assert updated["contact"] == {names["family_name"]: None, names["email"]: "anne@example.org",
                                  names["postal_address.locality"]: "Lyon"}
    assert sorted(updated["changed"]) == sorted(updated["contact"])
    lead = by_type["lead.created"]["lead"]
    assert lead[mapping.tables["lead"]["summary"]] == "a touring bike"
    assert lead[mapping.tables["lead"]["budget.max"]] == "900.00"
    assert by_type["lead.created"]["lead_id"] == receipt["record"]["lead"]
    assert by_type["feedback.received"]["nps_class"] == "passive"
    assert by_type["offer.fetched"]["intent_id"] == message_id(intent)
    assert by_type["lead.cancelled"]["intent_id"] == message_id(second)
    # The erasure carries nothing personal: not the profile, not the customer id.
    erased = json.dumps(by_type["contact.erased"])
    assert set(by_type["contact.erased"]) == {"did", "message_id", "erased"}
    for personal in ("Ann", "Lee", "example.org", "Paris", "Lyon", "C000001", "bike"):
        assert personal not in erased
    # One id per event, and the id is the webhook-id the receiver deduplicated by.
    assert len({e["id"] for e in events}) == len(events) == 10


def test_the_schemas_refuse_what_is_not_an_event() -> None:
    erased = validator("contact.erased")
    good = {"type": "contact.erased", "timestamp": "2026-01-01T00:00:00Z",
            "data": {"did": "did:key:z6Mk", "message_id": "m1", "erased": "2026-01-01T00:00:00Z"}}
    assert erased.is_valid(good)
    # Personal data in an erasure is a schema violation.
    assert not erased.is_valid({**good, "data": {**good["data"], "email": "a@b.c"}})
    assert not erased.is_valid({**good, "data": {**good["data"], "customer_id": "C1"}})
    assert not validator("feedback.received").is_valid(
        {"type": "feedback.received", "timestamp": "2026-01-01T00:00:00Z",
         "data": {"did": "did:key:z", "message_id": "m", "customer_id": None, "score": 11,
                  "nps_class": "promoter", "subject": None, "comment": None}})


def test_hubspot_names_and_stable_ids_without_io() -> None:
    person = protocol.SigningKey.generate()
    request = protocol.RelationshipRequest(
        id="m1", sender=person.did, to="did:key:zVendor", created=protocol.parse_time(
            "2026-01-01T00:00:00Z"), type="relationship.request",
        body=protocol.RelationshipRequestBody(profile=protocol.Profile(given_name="Ann")))
    first = events_for(request, vendor="did:key:zVendor", new=True, relationship=None,
                       record={"contact": 1, "customer_id": "C1"},
                       received=protocol.parse_time("2026-01-01T00:00:01Z"))
    again = events_for(request, vendor="did:key:zVendor", new=True, relationship=None,
                       record={"contact": 1, "customer_id": "C1"},
                       received=protocol.parse_time("2026-01-01T00:00:01Z"))
    assert [e.id for e in first] == [e.id for e in again]  # stable: a retry keeps its id
    (event,) = first
    payload = event.payload(HUBSPOT)
    assert payload["data"]["contact"] == {"firstname": "Ann"}
    assert validator("contact.created").is_valid(payload)
