"""The built-in CRM, the declarative mappings and the sink interface."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import pytest

import protocol
from vendor_adapter import (DEFAULT, HUBSPOT, SALESFORCE, CrmEvent, CrmSink, SqliteCrm, Vendor,
                            nps_class)
from vendor_adapter._mapping import flatten

from .conftest import PASSPHRASE, Person, now

PROFILE = dict(given_name="Ann", family_name="Lee", email="ann@example.org", phone="+3212345678",
               postal_address={"street_address": "Veldstraat 9", "locality": "Gent",
                               "postal_code": "9000", "region": "OVL", "country": "BE"})


@pytest.mark.parametrize("score,klass", [(0, "detractor"), (6, "detractor"), (7, "passive"),
                                         (8, "passive"), (9, "promoter"), (10, "promoter")])
def test_nps_classes(score: int, klass: str) -> None:
    assert nps_class(score) == klass


def test_flatten() -> None:
    assert flatten({"a": 1, "b": {"c": 2}}) == {"a": 1, "b.c": 2}


def _vendor_with_contact(store: str) -> Vendor:
    vendor = Vendor.open(store, passphrase=PASSPHRASE)
    person = Person(vendor.did)
    assert vendor.handle_sync(person.request(**PROFILE), protocol.MEDIA_TYPE).status == 200
    assert vendor.handle_sync(person.message("intent", {
        "summary": "bike", "category": "bikes", "budget": {"max": "800", "currency": "EUR"}}),
        protocol.MEDIA_TYPE).status == 200
    return vendor


def test_salesforce_mapping(store: str) -> None:
    with _vendor_with_contact(store) as vendor:
        (contact,) = vendor.crm.contacts(mapping=SALESFORCE)
        assert {k: contact[k] for k in ("FirstName", "LastName", "Email", "Phone",
                                        "MailingStreet", "MailingCity", "MailingPostalCode",
                                        "MailingState", "MailingCountry")} == {
            "FirstName": "Ann", "LastName": "Lee", "Email": "ann@example.org",
            "Phone": "+3212345678", "MailingStreet": "Veldstraat 9", "MailingCity": "Gent",
            "MailingPostalCode": "9000", "MailingState": "OVL", "MailingCountry": "BE"}
        (lead,) = vendor.crm.leads(mapping=SALESFORCE)
        assert (lead["Description"], lead["Budget__c"], lead["Status"]) == ("bike", "800", "open")


def test_hubspot_mapping(store: str) -> None:
    with _vendor_with_contact(store) as vendor:
        (contact,) = vendor.crm.contacts(mapping=HUBSPOT)
        assert {k: contact[k] for k in ("firstname", "lastname", "email", "phone", "address",
                                        "city", "zip", "state", "country")} == {
            "firstname": "Ann", "lastname": "Lee", "email": "ann@example.org",
            "phone": "+3212345678", "address": "Veldstraat 9", "city": "Gent", "zip": "9000",
            "state": "OVL", "country": "BE"}


def test_a_vendor_can_replace_a_mapping(store: str) -> None:
    mine = DEFAULT.replace("contact", email="work_email", postal_address__locality="town")
    with _vendor_with_contact(store) as vendor:
        (contact,) = vendor.crm.contacts(mapping=mine)
        assert contact["work_email"] == "ann@example.org" and contact["town"] == "Gent"
        assert "email" not in contact


def test_relationship_summary(store: str) -> None:
    with _vendor_with_contact(store) as vendor:
        (contact,) = vendor.crm.contacts()
        assert contact["message_counts"] == {"relationship.request": 1, "intent": 1}
        assert contact["intent_categories"] == ["bikes"]
        assert contact["shared_fields"] == ["given_name", "family_name", "email", "phone",
                                            "postal_address"]
        assert contact["customer_id"] == "C000001"


class ForwardingSink(SqliteCrm):
    """A vendor's own sink: keeps the built-in records and forwards mapped ones."""

    def __init__(self) -> None:
        super().__init__()
        self.forwarded: list[tuple[str, dict[str, Any]]] = []

    def apply(self, conn: sqlite3.Connection, event: CrmEvent) -> dict[str, Any]:
        ref = super().apply(conn, event)
        if event.message.type == "relationship.request":
            profile = event.message.body.profile
            fields = flatten(profile.to_wire()) if profile else {}
            self.forwarded.append(("contact", HUBSPOT.apply("contact", fields)))
        return ref


class RejectingSink:
    def apply(self, conn: sqlite3.Connection, event: CrmEvent) -> dict[str, Any]:
        conn.execute("UPDATE vrm_vendor SET name = 'spoiled' WHERE did = ?", (event.vendor,))
        raise protocol.InvalidBody("our CRM does not take this", sender=event.sender,
                                   message_id=event.message.id)


def test_custom_sinks(store: str) -> None:
    sink = ForwardingSink()
    assert isinstance(sink, CrmSink) and isinstance(RejectingSink(), CrmSink)
    with Vendor.open(store, name="fwd", passphrase=PASSPHRASE, sink=sink) as vendor:
        person = Person(vendor.did)
        assert vendor.handle_sync(person.request(**PROFILE), protocol.MEDIA_TYPE).status == 200
        assert sink.forwarded[0][1]["city"] == "Gent"
    with Vendor.open(store, name="picky", passphrase=PASSPHRASE, sink=RejectingSink()) as v:
        person = Person(v.did)
        response = v.handle_sync(person.request(), protocol.MEDIA_TYPE)
        assert response.status == 422
        assert v.name == "picky"
        assert v._db.read("SELECT count(*) AS n FROM vrm_vendor WHERE name = 'spoiled'")[0]["n"] == 0
        # rejected: no relationship was opened, nothing recorded as seen
        assert v._db.read("SELECT count(*) AS n FROM vrm_seen WHERE vendor = ?",
                          (v.did,))[0]["n"] == 0


class TerseRejectingSink:
    """A sink that refuses the simplest way: no sender, no message id."""

    def apply(self, conn: sqlite3.Connection, event: CrmEvent) -> dict[str, Any]:
        raise protocol.InvalidBody("our CRM does not take this")


def test_a_sink_refusal_is_a_receipt_for_that_very_message(store: str) -> None:
    with Vendor.open(store, name="terse", passphrase=PASSPHRASE,
                     sink=TerseRejectingSink()) as vendor:
        person = Person(vendor.did)
        raw = person.request()
        response = vendor.handle_sync(raw, protocol.MEDIA_TYPE)
        assert response.status == 422
        assert response.content_type == protocol.MEDIA_TYPE
        receipt = protocol.parse(response.body, now=now(),
                                 keys=protocol.pinned_keys(vendor.public_key),
                                 recipient=person.did)
        assert receipt.thread == json.loads(protocol.b64url_decode(
            json.loads(raw)["payload"], what="payload"))["id"]
        assert receipt.body.status == "rejected"
        assert receipt.body.problem.type == "urn:vrm:problem:invalid-body"
