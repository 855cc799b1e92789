"""Intents and the offers that answer them, with their status now.

An intent is one broadcast (``broadcasts.type = 'intent'``) with one outbox
message per vendor told. Its cancel is a broadcast of type ``intent.cancel``
whose stored body names it (``{"intent": id, ...}``): that is how an intent is
known to be cancelled, also when no vendor was left to tell. Offers are ``inbox`` rows of type ``offer`` threaded to one
of the intent's messages.

Statuses (an intent):

- ``cancelled``  an ``intent.cancel`` for it was queued (``vrm intent cancel``)
- ``expired``    its ``valid_until`` is past, or its ``needed_by`` day is over
                 (in the person's own time zone)
- ``open``       otherwise

Statuses (an offer), the first that holds:

- ``intent cancelled``  the intent it answers was cancelled
- ``expired``           its ``valid_until`` is past
- ``live``              otherwise

Intents are named by their id or any unique prefix of it (at least
:data:`MIN_PREFIX` characters); ``vrm intents`` shows the first
:data:`SHORT_ID` characters.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any

import protocol

from ._errors import UsageError
from ._store import Store

__all__ = ["SHORT_ID", "MIN_PREFIX", "find_intent", "is_cancelled", "intents", "offers", "intent_status",
           "offer_status"]

#: How many characters of an id the tables show.
SHORT_ID = 8
#: The shortest prefix accepted for an id.
MIN_PREFIX = 4

_CANCELLED = ("SELECT DISTINCT json_extract(body, '$.intent') AS intent FROM broadcasts "
              "WHERE type = 'intent.cancel'")


def find_intent(store: Store, ref: str) -> dict[str, Any]:
    """The intent broadcast whose id is ``ref`` or starts with it. Raises
    :class:`UsageError` if none or several match, or ``ref`` is too short."""
    text = ref.strip()
    row = store.one("SELECT * FROM broadcasts WHERE id = ? AND type = 'intent'", (text,))
    if row is not None:
        return row
    shown = protocol.display_text(text, limit=40)
    if len(text) < MIN_PREFIX:
        raise UsageError(f"no intent has the id '{shown}'; give at least {MIN_PREFIX} "
                         f"characters of an id that `vrm intents` shows")
    # Ids are base64url (ASCII below DEL): the range is the prefix's, on the index.
    rows = [r for r in store.rows("SELECT * FROM broadcasts WHERE id >= ? AND id < ? "
                                  "AND type = 'intent' LIMIT 2", (text, text + "\x7f"))
            if r["id"].startswith(text)]
    if not rows:
        raise UsageError(f"no intent has the id '{shown}'; see `vrm intents`")
    if len(rows) > 1:
        raise UsageError(f"'{shown}' is the start of several intents' ids; give more "
                         f"of it (see `vrm intents --json`)")
    return rows[0]


def is_cancelled(store: Store, intent_id: str) -> bool:
    """Whether a cancel of the intent ``intent_id`` was queued."""
    return store.one("SELECT 1 AS yes FROM broadcasts WHERE type = 'intent.cancel' "
                     "AND json_extract(body, '$.intent') = ?", (intent_id,)) is not None


def intent_status(body: dict[str, Any], cancelled: bool, now: datetime) -> str:
    """``cancelled``, ``expired`` or ``open`` (see the module docstring)."""
    if cancelled:
        return "cancelled"
    valid_until = body.get("valid_until")
    if valid_until and protocol.parse_time(valid_until) <= now:
        return "expired"
    needed_by = body.get("needed_by")
    if needed_by and date.fromisoformat(needed_by) < now.astimezone().date():
        return "expired"
    return "open"


def offer_status(valid_until: str | None, intent_cancelled: bool, now: datetime) -> str:
    """``intent cancelled``, ``expired`` or ``live`` (see the module docstring)."""
    if intent_cancelled:
        return "intent cancelled"
    if valid_until and protocol.parse_time(valid_until) <= now:
        return "expired"
    return "live"


def intents(store: Store, now: datetime) -> list[dict[str, Any]]:
    """Every intent, newest first: ``{id, short_id, created, summary, body,
    vendors: [{vendor_id, vendor, message_id, delivery}], told, offers, status}``
    where ``told`` counts the vendors whose copy was delivered."""
    cancelled = {row["intent"] for row in store.rows(_CANCELLED)}
    copies: dict[str, list[dict[str, Any]]] = {}
    for row in store.rows(
            "SELECT o.broadcast_id, o.id AS message_id, o.vendor_id, v.name AS vendor, "
            "o.status AS delivery FROM outbox o JOIN vendors v ON v.id = o.vendor_id "
            "JOIN broadcasts b ON b.id = o.broadcast_id WHERE b.type = 'intent' "
            "ORDER BY o.rowid"):
        copies.setdefault(row.pop("broadcast_id"), []).append(row)
    counts = {row["intent"]: row["n"] for row in store.rows(
        "SELECT o.broadcast_id AS intent, count(*) AS n FROM inbox i "
        "JOIN outbox o ON o.id = i.thread AND o.vendor_id = i.vendor_id "
        "WHERE i.type = 'offer' GROUP BY o.broadcast_id")}
    listed = []
    for row in store.rows("SELECT id, summary, body, created FROM broadcasts "
                          "WHERE type = 'intent' ORDER BY created DESC, rowid DESC"):
        body = json.loads(row["body"])
        vendors = copies.get(row["id"], [])
        listed.append({
            "id": row["id"], "short_id": row["id"][:SHORT_ID], "created": row["created"],
            "summary": row["summary"], "body": body, "vendors": vendors,
            "told": sum(1 for v in vendors if v["delivery"] == "delivered"),
            "offers": counts.get(row["id"], 0),
            "status": intent_status(body, row["id"] in cancelled, now)})
    return listed


def offers(store: Store, now: datetime, *, intent_id: str | None = None,
           vendor_id: int | None = None) -> list[dict[str, Any]]:
    """Offers received, newest first, each beside the intent it answers and with
    its ``status``; only those answering ``intent_id`` or from ``vendor_id``
    when given."""
    cancelled = {row["intent"] for row in store.rows(_CANCELLED)}
    where, params = ["i.type = 'offer'"], []
    if intent_id is not None:
        where.append("b.id = ?")
        params.append(intent_id)
    if vendor_id is not None:
        where.append("i.vendor_id = ?")
        params.append(vendor_id)
    rows = store.rows(
        "SELECT i.id, i.vendor_id, v.name AS vendor, i.body, i.thread, i.created, "
        "i.received, b.id AS intent_id, b.summary AS intent_summary "
        "FROM inbox i JOIN vendors v ON v.id = i.vendor_id "
        "LEFT JOIN outbox o ON o.id = i.thread AND o.vendor_id = i.vendor_id "
        "LEFT JOIN broadcasts b ON b.id = o.broadcast_id "
        f"WHERE {' AND '.join(where)} ORDER BY i.created DESC, i.rowid DESC", params)
    listed = []
    for row in rows:
        body = json.loads(row.pop("body"))
        price = body.get("price", {})
        valid_until = body.get("valid_until")
        listed.append({**row, "summary": body.get("summary"), "price": price.get("amount"),
                       "currency": price.get("currency"), "valid_until": valid_until,
                       "url": body.get("url"),
                       "status": offer_status(valid_until, row["intent_id"] in cancelled,
                                              now)})
    return listed

