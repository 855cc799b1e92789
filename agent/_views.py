"""Read-only views for people: a relationship's history, and intents with
their offers. Nothing here writes to the store or to the network.

Used by :meth:`Agent.vendor_history` and :meth:`Agent.intents` (the ``vrm ui``
dashboard reads them). Receipts are verified again here, over the bytes
stored as received, with the vendor's pinned key (PROTOCOL.md §7).
"""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any

import protocol

from ._store import Store

__all__ = ["vendor_history", "intents", "check_receipt", "offer_status", "OFFER_STATUSES",
           "INTENT_STATUSES"]

#: An offer is ``live``, ``expired`` (past its ``valid_until``) or ``cancelled``
#: (the person cancelled the intent it answers).
OFFER_STATUSES = ("live", "expired", "cancelled")
#: An intent is ``open``, ``cancelled`` (intent.cancel queued or sent) or
#: ``expired`` (its ``needed_by`` day has passed).
INTENT_STATUSES = ("open", "cancelled", "expired")


def check_receipt(jws: bytes, *, vendor_jwk: str, vendor_did: str, recipient: str,
                  message_id: str) -> str | None:
    """Verify a stored receipt again: None when its signature verifies with the
    pinned key ``vendor_jwk`` and it is a receipt from ``vendor_did`` to
    ``recipient`` (the pairwise DID) answering ``message_id``; else why not, in
    one sentence. The expiry is not checked: a receipt stays proof of what
    the vendor said when it said it."""
    try:
        key = protocol.PublicKey.from_jwk(json.loads(vendor_jwk))
        verified = protocol.verify_jws(bytes(jws), protocol.pinned_keys(key))
        data = protocol.loads(verified.payload, what="the receipt")
    except (protocol.ProtocolError, ValueError) as exc:
        return f"does not verify with the pinned key: {exc}"
    if not isinstance(data, dict) or data.get("type") != "receipt":
        return "is not a receipt"
    if data.get("from") != vendor_did or verified.signer != vendor_did:
        return "is not from this vendor's pinned DID"
    if data.get("to") != recipient:
        return "is addressed to someone else"
    if data.get("thread") != message_id:
        return "answers another message"
    return None


def _payload(jws: bytes) -> dict[str, Any]:
    """The payload of a JWS that this agent signed and stored itself."""
    try:
        data = protocol.loads(protocol.b64url_decode(json.loads(bytes(jws))["payload"],
                                                     what="payload"), what="the payload")
    except (protocol.ProtocolError, ValueError, KeyError, TypeError):
        return {}
    return data if isinstance(data, dict) else {}


def vendor_history(store: Store, vendor: dict[str, Any]) -> list[dict[str, Any]]:
    """Everything sent to and received from one vendor row, oldest first.

    Each entry: ``direction`` (``sent`` or ``received``), ``message_id``,
    ``type``, ``time`` (the message's created timestamp, text), ``status`` (the
    outbox status for a sent message; ``received`` otherwise), ``detail`` (the
    last error), ``fields`` (profile fields carried; removed ones end in
    `` (removed)``), ``summary`` (an offer's summary and price) and
    ``receipt``: None, or ``{"status", "receipt_id", "received", "problem",
    "verifies", "why"}`` where ``verifies`` is whether the stored receipt
    verifies now with the pinned key (``why`` says why not)."""
    vendor_id = vendor["id"]
    fields: dict[str, list[str]] = {}
    for row in store.rows("SELECT message_id, field, removed FROM outbox_fields "
                          "WHERE vendor_id = ? ORDER BY field", (vendor_id,)):
        fields.setdefault(row["message_id"], []).append(
            row["field"] + (" (removed)" if row["removed"] else ""))
    entries: list[dict[str, Any]] = []
    for row in store.rows(
            "SELECT o.id, o.type, o.status, o.created, o.last_error, o.attempts, "
            "r.status AS receipt_status, r.receipt_id, r.received, r.problem, r.jws "
            "FROM outbox o LEFT JOIN receipts r ON r.message_id = o.id "
            "WHERE o.vendor_id = ? ORDER BY o.rowid", (vendor_id,)):
        receipt = None
        if row["receipt_id"] is not None:
            why = check_receipt(row["jws"], vendor_jwk=vendor["vendor_jwk"],
                                vendor_did=vendor["vendor_did"],
                                recipient=vendor["pairwise_did"], message_id=row["id"])
            problem = json.loads(row["problem"]) if row["problem"] else None
            receipt = {"status": row["receipt_status"], "receipt_id": row["receipt_id"],
                       "received": row["received"], "verifies": why is None, "why": why,
                       "problem": (problem or {}).get("detail") if isinstance(problem, dict)
                       else None}
        entries.append({"direction": "sent", "message_id": row["id"], "type": row["type"],
                        "time": row["created"], "status": row["status"],
                        "detail": row["last_error"], "attempts": row["attempts"],
                        "fields": fields.get(row["id"], []), "summary": None,
                        "receipt": receipt})
    for row in store.rows("SELECT id, type, thread, body, created FROM inbox "
                          "WHERE vendor_id = ? ORDER BY created", (vendor_id,)):
        body = json.loads(row["body"])
        entries.append({"direction": "received", "message_id": row["id"], "type": row["type"],
                        "time": row["created"], "status": "received", "detail": None,
                        "attempts": None, "fields": [], "summary": _offer_line(body),
                        "receipt": None})
    entries.sort(key=lambda e: e["time"])
    return entries


def _offer_line(body: Any) -> str | None:
    if not isinstance(body, dict) or not isinstance(body.get("summary"), str):
        return None
    price = body.get("price") if isinstance(body.get("price"), dict) else {}
    amount = f" for {price.get('amount')} {price.get('currency')}" if price else ""
    return f"{body['summary']}{amount}"


def offer_status(offer: dict[str, Any], *, cancelled: bool, now: datetime) -> str:
    """``cancelled`` when its intent was cancelled, ``expired`` once past
    ``valid_until`` (RFC 3339), else ``live``."""
    if cancelled:
        return "cancelled"
    valid_until = offer.get("valid_until")
    if isinstance(valid_until, str):
        try:
            if protocol.parse_time(valid_until) <= now:
                return "expired"
        except (ValueError, protocol.ProtocolError):
            pass
    return "live"


def intents(store: Store, offers: list[dict[str, Any]], *, now: datetime,
            today: date) -> list[dict[str, Any]]:
    """Every intent (newest first) with what it asked, whom it went to and the
    offers beside it.

    Each: ``id`` (the broadcast id :meth:`Agent.cancel_intent` takes),
    ``summary``, ``category``, ``budget`` (``{"max", "currency"}`` or None),
    ``needed_by``, ``location``, ``created``, ``status`` (see
    :data:`INTENT_STATUSES`), ``vendors`` (how many it went to),
    ``delivered`` (how many confirmed it) and ``offers`` (as
    :meth:`Agent.offers`, each with ``status``, see :data:`OFFER_STATUSES`)."""
    rows = store.rows("SELECT id, summary, body, created FROM broadcasts WHERE type = 'intent' "
                      "ORDER BY created DESC")
    sent = store.rows("SELECT id, broadcast_id, status FROM outbox WHERE broadcast_id IN "
                      "(SELECT id FROM broadcasts WHERE type = 'intent')")
    by_message = {row["id"]: row["broadcast_id"] for row in sent}
    cancelled = set()
    for row in store.rows("SELECT jws FROM outbox WHERE type = 'intent.cancel'"):
        thread = _payload(row["jws"]).get("thread")
        if thread in by_message:
            cancelled.add(by_message[thread])
    result = []
    for row in rows:
        body = json.loads(row["body"])
        mine = [s for s in sent if s["broadcast_id"] == row["id"]]
        needed_by = body.get("needed_by")
        status = "open"
        if row["id"] in cancelled:
            status = "cancelled"
        elif isinstance(needed_by, str) and needed_by < today.isoformat():
            status = "expired"
        its_offers = [{**offer, "status": offer_status(offer, cancelled=row["id"] in cancelled,
                                                       now=now)}
                      for offer in offers if offer.get("intent_id") == row["id"]]
        result.append({
            "id": row["id"], "summary": row["summary"], "category": body.get("category"),
            "budget": body.get("budget"), "needed_by": needed_by,
            "location": (body.get("location") or {}).get("locality"),
            "created": row["created"], "status": status, "vendors": len(mine),
            "delivered": sum(1 for s in mine if s["status"] == "delivered"),
            "offers": its_offers,
        })
    return result
