"""What the person told each vendor, and the vendor's signed word for it.

:func:`vendor_history` lists every message sent in one relationship (time,
type, the fields it carried, delivery status) beside its receipt, whose
signature is checked again, now, with the vendor's pinned key. (The
``messages.fetch`` polls of ``vrm sync`` are signed and sent at once, never
queued, so they are not part of it.) :func:`find_receipt` does the same for one message, named by its id or a
unique prefix of it.

Checking a receipt again (:func:`verify_receipt`) is RFC 7515 §5.2 over the
bytes exactly as they were received, with only the pinned key (PROTOCOL.md
§4): the signature must verify, and the payload must be a ``receipt`` from
the pinned DID, to the pairwise DID, threaded to the message. Expiry is not
checked: a receipt stays proof of what was said when it was said.
"""

from __future__ import annotations

import json
from typing import Any

import protocol

from ._errors import UsageError
from ._store import Store
from ._vendors import vendor_view

__all__ = ["find_message", "find_receipt", "message_body", "vendor_history",
           "verify_receipt"]

_MIN_PREFIX = 4


def message_body(jws: bytes) -> dict[str, Any]:
    """The body of one of our own signed messages (the payload's ``body``)."""
    envelope = protocol.loads(protocol.b64url_decode(protocol.loads(bytes(jws))["payload"]))
    return dict(envelope.get("body") or {})


def verify_receipt(raw: bytes, *, vendor: dict[str, Any], message_id: str
                   ) -> tuple[bool, str | None]:
    """Whether the stored receipt ``raw`` verifies now with ``vendor``'s pinned key
    and answers ``message_id``; ``(False, why)`` if not. Never raises for a bad
    receipt."""
    try:
        key = protocol.PublicKey.from_jwk(json.loads(vendor["vendor_jwk"]))
        verified = protocol.verify_jws(bytes(raw), protocol.pinned_keys(key))
        payload = protocol.loads(verified.payload)
    except protocol.ProtocolError as exc:
        return False, str(exc)
    expected = {"type": "receipt", "from": vendor["vendor_did"], "to": vendor["pairwise_did"],
                "thread": message_id}
    for member, value in expected.items():
        if not isinstance(payload, dict) or payload.get(member) != value:
            return False, f"the receipt's {member} is not {value}"
    return True, None


def _fields(store: Store, vendor_id: int) -> dict[str, dict[str, list[str]]]:
    carried: dict[str, dict[str, list[str]]] = {}
    for row in store.rows("SELECT message_id, field, removed FROM outbox_fields "
                          "WHERE vendor_id = ? ORDER BY field", (vendor_id,)):
        entry = carried.setdefault(row["message_id"], {"fields": [], "removed": []})
        entry["removed" if row["removed"] else "fields"].append(row["field"])
    return carried


def _receipt_view(row: dict[str, Any], vendor: dict[str, Any]) -> dict[str, Any]:
    verified, why = verify_receipt(row["jws"], vendor=vendor, message_id=row["message_id"])
    return {"receipt_id": row["receipt_id"], "status": row["status"],
            "received": row["received"],
            "problem": json.loads(row["problem"]) if row["problem"] else None,
            "record": json.loads(row["record"]) if row["record"] else None,
            "verified": verified, "verify_detail": why}


def vendor_history(store: Store, vendor: dict[str, Any]) -> dict[str, Any]:
    """``{"vendor": <vendor view>, "messages": [...]}``, oldest message first.

    Each message: ``message_id, created, type, fields`` (profile fields it
    carried), ``removed`` (fields it removed), ``body`` (what it said),
    ``delivery`` (pending, delivered, rejected, failed or expired),
    ``attempts``, ``last_error`` and ``receipt`` (None, or ``receipt_id,
    status, received, problem, record, verified, verify_detail``)."""
    rows = store.rows("SELECT * FROM outbox WHERE vendor_id = ? ORDER BY rowid",
                      (vendor["id"],))
    receipts = {row["message_id"]: row for row in store.rows(
        "SELECT * FROM receipts WHERE vendor_id = ?", (vendor["id"],))}
    carried = _fields(store, vendor["id"])
    messages = []
    for row in rows:
        fields = carried.get(row["id"], {"fields": [], "removed": []})
        receipt = receipts.get(row["id"])
        messages.append({
            "message_id": row["id"], "created": row["created"], "type": row["type"],
            "fields": fields["fields"], "removed": fields["removed"],
            "body": message_body(row["jws"]), "delivery": row["status"],
            "attempts": row["attempts"], "last_error": row["last_error"],
            "receipt": _receipt_view(receipt, vendor) if receipt else None})
    return {"vendor": vendor_view(vendor), "messages": messages}


def find_message(store: Store, ref: str) -> dict[str, Any]:
    """The outbox row whose id is ``ref`` or starts with it (at least 4
    characters). Raises :class:`UsageError` if none or several match."""
    text = ref.strip()
    row = store.one("SELECT * FROM outbox WHERE id = ?", (text,))
    if row is not None:
        return row
    shown = protocol.display_text(text, limit=40)
    rows = [] if len(text) < _MIN_PREFIX else [
        r for r in store.rows("SELECT * FROM outbox WHERE id >= ? AND id < ? LIMIT 2",
                              (text, text + "\x7f"))
        if r["id"].startswith(text)]
    if not rows:
        raise UsageError(f"no message has the id '{shown}'; `vrm outbox` lists them "
                         f"(a unique start of an id, {_MIN_PREFIX} characters or more, "
                         f"will do)")
    if len(rows) > 1:
        raise UsageError(f"'{shown}' is the start of {len(rows)} messages' ids; give more "
                         f"of it")
    return rows[0]


def find_receipt(store: Store, ref: str) -> dict[str, Any] | None:
    """The receipt for the message ``ref`` names (see :func:`find_message`):
    ``message_id, message_type, vendor_id, vendor, receipt_id, status,
    received, problem, record, verified, verify_detail, jws`` (the bytes as
    received); None if the message has no receipt yet."""
    message = find_message(store, ref)
    row = store.one("SELECT * FROM receipts WHERE message_id = ?", (message["id"],))
    if row is None:
        return None
    vendor = store.one("SELECT * FROM vendors WHERE id = ?", (message["vendor_id"],))
    assert vendor is not None
    return {"message_id": message["id"], "message_type": message["type"],
            "vendor_id": vendor["id"], "vendor": vendor["name"],
            **_receipt_view(row, vendor), "jws": bytes(row["jws"])}
