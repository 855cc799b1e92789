"""Offers: what a vendor may offer (checked, with a sentence for each mistake),
and the record of every offer made and whether the person's agent fetched it.

An offer (PROTOCOL.md §5.6) is signed and queued in ``vrm_outbox`` for the
agent's ``messages.fetch``, and recorded in ``vrm_offer``. Its status:

- ``waiting``    queued, not fetched yet: it may still be withdrawn
- ``fetched``    handed to the agent in a messages.fetch answer (``fetched`` is
                 the time); it can no longer be withdrawn
- ``withdrawn``  withdrawn before it was fetched: never delivered
- ``expired``    not fetched, and its message expired (it never will be)
- ``dropped``    not fetched, and the relationship ended (nobody can fetch it)

Fetching and withdrawing both run in the database's one writer, each in its
own transaction, so an offer is either handed out or withdrawn, never both.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from pydantic import ValidationError

import protocol

from ._errors import OfferError

__all__ = ["OFFER_STATUSES", "check_offer", "record_offer", "list_offers", "find_offer",
           "withdraw"]

OFFER_STATUSES = ("waiting", "fetched", "withdrawn", "expired", "dropped")

_AMOUNT = re.compile(r"(0|[1-9][0-9]{0,14})(\.[0-9]{1,6})?")
_CURRENCY = re.compile(r"[A-Z]{3}")


def _check_price(price: object) -> str:
    text = str(price).strip() if isinstance(price, (str, int)) else ""
    if _AMOUNT.fullmatch(text):
        return text
    shown = protocol.display_text(str(price), limit=30)
    if re.fullmatch(r"[0-9]+,[0-9]+", text):
        return _fail(f"the price is a decimal number with a dot, like "
                     f"{text.replace(',', '.')}, not '{shown}'")
    if re.fullmatch(r"0[0-9]+(\.[0-9]+)?", text):
        return _fail(f"the price has no leading zeros, like {text.lstrip('0') or '0'}")
    return _fail(f"the price is a decimal number with a dot, like 7.50 (at most 15 digits "
                 f"before the dot and 6 after it), not '{shown}'")


def _fail(sentence: str) -> str:
    raise OfferError(sentence)


def check_offer(*, summary: object, price: object, currency: object,
                valid_until: datetime | str | None, url: str | None,
                now: datetime) -> protocol.OfferBody:
    """The offer's body, checked, or :class:`OfferError` with one sentence saying
    what to change. The currency is upper-cased (ISO 4217 codes are upper case);
    ``valid_until`` is a datetime or RFC 3339 UTC text, and must be after ``now``."""
    if not isinstance(summary, str) or not summary.strip():
        _fail("say what is offered in the summary, like \"Trek 520, 56 cm\"")
    assert isinstance(summary, str)
    if len(summary) > 500:
        _fail(f"the summary is at most 500 characters, not {len(summary)}")
    amount = _check_price(price)
    code = currency.strip().upper() if isinstance(currency, str) else ""
    if not _CURRENCY.fullmatch(code):
        _fail(f"the currency is a three-letter ISO 4217 code, like EUR, not "
              f"'{protocol.display_text(str(currency), limit=20)}'")
    data: dict[str, Any] = {"summary": summary,
                            "price": protocol.Price(amount=amount, currency=code)}
    if valid_until is not None:
        if isinstance(valid_until, datetime):
            moment = valid_until
        else:
            try:
                moment = protocol.parse_time(valid_until.strip())
            except ValueError:
                _fail(f"the valid-until time is RFC 3339 in UTC, like "
                      f"2026-06-01T12:00:00Z, not "
                      f"'{protocol.display_text(str(valid_until), limit=40)}'")
        if moment.tzinfo is None:
            _fail("the valid-until time needs a time zone (UTC), like 2026-06-01T12:00:00Z")
        if moment <= now:
            _fail(f"the valid-until time {protocol.format_time(moment)} is in the past; "
                  f"give a later one")
        data["valid_until"] = moment
    if url is not None:
        data["url"] = url.strip()
    try:
        return protocol.OfferBody(**data)
    except (ValidationError, ValueError) as exc:
        if url is not None and "url" in str(exc):
            _fail(f"the url is an http(s) address without spaces, like "
                  f"https://shop.example/trek-520, not "
                  f"'{protocol.display_text(url, limit=60)}'")
        detail = (protocol.describe_validation_error(exc)
                  if isinstance(exc, ValidationError) else str(exc))
        raise OfferError(f"the offer is invalid: {detail}") from None


def record_offer(conn: Any, vendor: str, did: str, lead_id: int,
                 offer: protocol.Offer) -> None:
    """Record an offer just queued (same transaction as the queueing)."""
    body: protocol.OfferBody = offer.body
    conn.execute(
        "INSERT INTO vrm_offer (vendor, message_id, did, lead_id, summary, amount, currency, "
        "valid_until, url, created, expires) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (vendor, offer.id, did, lead_id, body.summary, body.price.amount, body.price.currency,
         protocol.format_time(body.valid_until) if body.valid_until else None, body.url,
         protocol.format_time(offer.created), protocol.format_time(offer.expires_at)))


_SELECT = """
    SELECT o.message_id AS id, o.lead_id, o.summary, o.amount, o.currency, o.valid_until,
           o.url, o.created, o.expires, o.fetched, o.withdrawn,
           q.seq IS NOT NULL AS queued
    FROM vrm_offer AS o
    LEFT JOIN vrm_outbox AS q ON q.vendor = o.vendor AND q.message_id = o.message_id
"""


def _status(row: dict[str, Any], now: str) -> str:
    if row["fetched"]:
        return "fetched"
    if row["withdrawn"]:
        return "withdrawn"
    if row["expires"] <= now:
        return "expired"
    return "waiting" if row["queued"] else "dropped"


def view(row: dict[str, Any], now: datetime) -> dict[str, Any]:
    """A ``vrm_offer`` row (from :data:`_SELECT`) with its ``status``."""
    row = dict(row)
    row["status"] = _status(row, protocol.format_time(now))
    del row["queued"]
    return row


def list_sql(*, lead: bool) -> str:
    return (_SELECT + " WHERE o.vendor = ?" + (" AND o.lead_id = ?" if lead else "")
            + " ORDER BY o.created DESC, o.message_id")


def find_offer(conn: Any, vendor: str, ref: str) -> dict[str, Any]:
    """The offer whose id is ``ref`` or starts with it (4 characters or more);
    :class:`OfferError` if none or several."""
    text = ref.strip()
    shown = protocol.display_text(text, limit=40)
    rows = [] if len(text) < 4 else conn.execute(
        _SELECT + " WHERE o.vendor = ? AND o.message_id >= ? AND o.message_id < ? LIMIT 2",
        (vendor, text, text + "\x7f")).fetchall()
    names = ("id", "lead_id", "summary", "amount", "currency", "valid_until", "url",
             "created", "expires", "fetched", "withdrawn", "queued")
    found = [dict(zip(names, row)) for row in rows if row[0].startswith(text)]
    exact = [row for row in found if row["id"] == text]
    if exact:
        return exact[0]
    if not found:
        raise OfferError(f"there is no offer '{shown}'; `vrm-vendor offers` lists them")
    if len(found) > 1:
        raise OfferError(f"'{shown}' is the start of several offers' ids; give more of it")
    return found[0]


def list_offers(rows: list[dict[str, Any]], now: datetime) -> list[dict[str, Any]]:
    return [view(row, now) for row in rows]


def withdraw(conn: Any, vendor: str, ref: str, now: datetime, *,
             lock: Callable[[Any, str], None] | None = None) -> dict[str, Any]:
    """Withdraw the offer ``ref`` names, if not fetched yet: delete it from the outbox,
    mark it withdrawn, and open its lead again (unless the person cancelled it).
    Runs in the writer's transaction; ``lock(conn, did)`` takes the relationship's
    lock first (``Ledger.lock``), so that a messages.fetch racing it in another
    process comes wholly before or after. :class:`OfferError` says why not, otherwise."""
    row = find_offer(conn, vendor, ref)
    if lock is not None:
        (did,) = conn.execute("SELECT did FROM vrm_offer WHERE vendor = ? AND message_id = ?",
                              (vendor, row["id"])).fetchone()
        lock(conn, did)
        row = find_offer(conn, vendor, row["id"])  # as it is now, under the lock
    status = _status(row, protocol.format_time(now))
    if status == "fetched":
        raise OfferError(f"offer {row['id']} was fetched by the person's agent at "
                         f"{row['fetched']}; it can no longer be withdrawn")
    if status != "waiting":
        raise OfferError(f"offer {row['id']} is {status} already; there is nothing to withdraw")
    when = protocol.format_time(now)
    conn.execute("DELETE FROM vrm_outbox WHERE vendor = ? AND message_id = ?", (vendor, row["id"]))
    conn.execute("UPDATE vrm_offer SET withdrawn = ? WHERE vendor = ? AND message_id = ?",
                 (when, vendor, row["id"]))
    conn.execute("UPDATE lead SET status = 'open', offer_id = NULL, updated = ? "
                 "WHERE vendor = ? AND offer_id = ? AND status = 'offered'",
                 (when, vendor, row["id"]))
    return view({**row, "withdrawn": when, "queued": 0}, now)
