"""The events forwarded to the vendor's systems, built from accepted messages.

Sans-IO: ``events_for`` turns one accepted message (and what the ledger knows
of it) into :class:`Event` values; ``Event.payload(mapping)`` is the JSON a
webhook receives, ``{"type", "timestamp", "data"}`` (the Standard Webhooks
convention). Each type has a JSON Schema in ``schemas/events/``.

=======================  ==============================================  ======================
event                    caused by                                       ``data`` (besides ids)
=======================  ==============================================  ======================
``contact.created``      the first relationship.request of a DID         ``contact``, ``terms``
``contact.updated``      contact.update; a repeated relationship.request ``changed``, ``contact``
``contact.erased``       relationship.end with ``erase: true``           nothing personal
``relationship.ended``   relationship.end without ``erase``              ``ended``, ``reason``
``lead.created``         intent                                          ``lead_id``, ``lead``
``lead.cancelled``       intent.cancel                                   ``lead_id``, ``intent_id``
``feedback.received``    feedback                                        ``score``, ``nps_class``
``preferences.updated``  preferences.update                              ``channels``, ``marketing``
``offer.fetched``        messages.fetch that returned an offer           ``offer_id``, ``intent_id``
=======================  ==============================================  ======================

Every ``data`` carries ``did`` (the person's pairwise DID: the key the
receiver files the contact under) and ``message_id`` (the VRM message that
caused it); all but ``contact.erased`` carry ``customer_id`` too. ``contact``
and ``lead`` hold the CRM fields in the vendor's mapping (``DEFAULT``,
``SALESFORCE``, ``HUBSPOT`` or its own; vendor_adapter/_mapping.py); in
``contact.updated`` a field set to null was removed (JSON Merge Patch, RFC
7386), and ``changed`` names the fields. A repeated relationship.request
states the whole profile, so its ``contact.updated`` names every profile
field (null for those no longer shared).

Decisions where the issue is silent (documented here and in README.md):
an erasure ends the relationship too, and is forwarded as ``contact.erased``
alone (carrying the DID, the message id and the time only); the leads that an
end voids are not forwarded one by one (``relationship.ended`` says they are
void). The event id is derived from (vendor, DID, causing message id, type),
so the same event always has the same id.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import protocol

from .._mapping import FieldMapping, flatten

__all__ = ["Event", "EVENT_TYPES", "events_for", "event_id", "PROFILE_PATHS"]

EVENT_TYPES: tuple[str, ...] = (
    "contact.created", "contact.updated", "contact.erased", "relationship.ended",
    "lead.created", "lead.cancelled", "feedback.received", "preferences.updated",
    "offer.fetched",
)
#: The profile as flat protocol paths (postal_address flattened), in order.
PROFILE_PATHS: tuple[str, ...] = (
    "given_name", "family_name", "email", "phone", "postal_address.street_address",
    "postal_address.locality", "postal_address.region", "postal_address.postal_code",
    "postal_address.country", "language")
_ADDRESS = tuple(p for p in PROFILE_PATHS if p.startswith("postal_address."))

_json: Callable[[Any], str] = json.JSONEncoder(separators=(",", ":"),
                                               ensure_ascii=False).encode


def event_id(vendor: str, did: str, source: str, type_: str) -> str:
    """``evt_`` and 26 base32 characters of SHA-256(vendor, DID, source id, type)."""
    digest = hashlib.sha256("\n".join((vendor, did, source, type_)).encode()).digest()
    return "evt_" + base64.b32encode(digest).decode("ascii")[:26].lower()


@dataclass(frozen=True, slots=True)
class Event:
    """One event: ``data`` names contact and lead fields by protocol path; the
    vendor's mapping renames them in :meth:`payload`."""

    id: str
    type: str
    did: str
    timestamp: str     # RFC 3339, when the vendor received the causing message
    data: dict[str, Any]

    def payload(self, mapping: FieldMapping) -> dict[str, Any]:
        """``{"type", "timestamp", "data"}`` with fields named by ``mapping``."""
        data = dict(self.data)
        if "contact" in data:
            data["contact"] = mapping.apply("contact", data["contact"])
        if "changed" in data:
            names = mapping.tables.get("contact", {})
            data["changed"] = [names[p] for p in data["changed"] if p in names]
        if "lead" in data:
            data["lead"] = mapping.apply("lead", data["lead"])
        return {"type": self.type, "timestamp": self.timestamp, "data": data}

    def body(self, mapping: FieldMapping) -> str:
        """The payload as compact JSON text (UTF-8 when sent)."""
        return _json(self.payload(mapping))


def _profile_paths(profile: dict[str, Any]) -> dict[str, Any]:
    flat = flatten(profile)
    if "postal_address" in flat:  # "postal_address": null removes the whole address
        flat.pop("postal_address")
        flat.update(dict.fromkeys(_ADDRESS))
    return {p: flat[p] for p in PROFILE_PATHS if p in flat}


def events_for(message: protocol.Message, *, vendor: str, new: bool,
               relationship: dict[str, Any] | None, record: dict[str, Any] | None,
               received: datetime, fetched: list[protocol.FlattenedJWS] | None = None
               ) -> list[Event]:
    """The events one accepted message causes (often one, sometimes none).

    ``new``: a relationship.request that starts the relationship. ``relationship``:
    the relationship's record reference (None for a new request); ``record``: the
    sink's reference for this message; ``fetched``: what a messages.fetch returned.
    """
    did, kind = message.sender, message.type
    refs = {**(relationship or {}), **(record or {})}
    base: dict[str, Any] = {"did": did, "customer_id": refs.get("customer_id"),
                            "message_id": message.id}
    when = protocol.format_time(received)

    def one(type_: str, source: str = message.id, **data: Any) -> Event:
        return Event(event_id(vendor, did, source, type_), type_, did, when, {**base, **data})

    body: Any = message.body
    if kind == "relationship.request":
        profile = _profile_paths(body.profile.to_wire() if body.profile is not None else {})
        if new:
            return [one("contact.created", contact=profile,
                        terms=list(body.terms) if body.terms is not None else None)]
        stated = {p: profile.get(p) for p in PROFILE_PATHS}
        return [one("contact.updated", changed=list(stated), contact=stated)]
    if kind == "contact.update":
        changes = _profile_paths(body.changes.to_wire())
        return [one("contact.updated", changed=list(changes), contact=changes)]
    if kind == "relationship.end":
        if body.erase:
            return [Event(event_id(vendor, did, message.id, "contact.erased"), "contact.erased",
                          did, when, {"did": did, "message_id": message.id, "erased": when})]
        return [one("relationship.ended", ended=when, reason=body.reason)]
    if kind == "intent":
        wire = body.to_wire()
        location = wire.pop("location", None)  # an object: kept whole, as the CRM keeps it
        lead = {**flatten(wire), "location": location}
        lead.update(message_id=message.id, did=did, status="open")
        return [one("lead.created", lead_id=refs.get("lead"), lead=lead)]
    if kind == "intent.cancel":
        return [one("lead.cancelled", lead_id=refs.get("lead"), intent_id=message.thread,
                    reason=body.reason)]
    if kind == "feedback":
        from .._crm import nps_class
        return [one("feedback.received", score=body.score, nps_class=nps_class(body.score),
                    subject=body.subject, comment=body.comment)]
    if kind == "preferences.update":
        return [one("preferences.updated",
                    channels=body.channels.to_wire() if body.channels is not None else None,
                    marketing=body.marketing)]
    if kind == "messages.fetch":
        events = []
        for jws in fetched or ():
            stated = _our_payload(jws)
            if stated.get("type") == "offer" and isinstance(stated.get("id"), str):
                events.append(one("offer.fetched", source=stated["id"], offer_id=stated["id"],
                                  intent_id=stated.get("thread")))
        return events
    return []


def _our_payload(jws: protocol.FlattenedJWS) -> dict[str, Any]:
    """The payload of a message this vendor signed itself (from its own outbox)."""
    try:
        stated = json.loads(protocol.b64url_decode(jws.payload, what="payload"))
    except (ValueError, protocol.ProtocolError):
        return {}
    return stated if isinstance(stated, dict) else {}
