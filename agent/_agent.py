"""The person's agent: the public async API that the ``vrm`` command, the demo
and the examples all use.

    agent = await Agent.init(home, passphrase="…", name="Ann")
    await agent.add_vendor("https://bikes4u.example", share=["email", "postal_address"])
    await agent.set_profile({"email": "ann@example.org"})
    broadcast = await agent.intent("Touring bike", budget=("800", "EUR"))
    await agent.sync(); agent.offers()
    await agent.close()

Every outgoing message is signed and written to the outbox in one transaction
before any network I/O; delivery then works from the outbox only (see
``_delivery``), so a crash loses nothing and the next call carries on.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, BinaryIO

import aiohttp
import platformdirs
from pydantic import ValidationError

import protocol

from ._delivery import Deliverer, DeliveryResult, Progress, fail_unsendable
from ._errors import ClosedError, UsageError, VendorError, VendorKeyChanged
from ._explain import explain
from ._feedback import nps_class
from ._history import find_receipt, vendor_history
from ._intents import find_intent, is_cancelled
from ._intents import intents as list_intents
from ._intents import offers as list_offers
from ._http import Http, Limits
from ._backup import backup_home, restore
from ._keys import DEFAULT_SCRYPT_N, Keyring, can_prompt, passphrase_from_environment
from ._preferences import current_preferences, merge_preferences, store_preferences
from ._profile import FIELD_NAMES, check_changes, check_share, nest, top_level, visible_to
from ._store import Store, ts
from ._terms import check_terms, current_terms, request_body, store_terms
from ._vendors import (
    REACHABLE,
    check_pinned,
    check_transport,
    fetch_discovery,
    normalise_url,
    resolve,
    vendor_view,
)

__all__ = ["Agent", "Broadcast", "SyncResult", "default_home"]

Clock = Callable[[], datetime]
#: How long a messages.fetch stays valid: it is never queued, only sent now.
_FETCH_LIFETIME = timedelta(minutes=5)


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def default_home() -> Path:
    """``VRM_HOME``, else the platform's user data directory for vrm."""
    env = os.environ.get("VRM_HOME")
    return Path(env).expanduser() if env else Path(platformdirs.user_data_dir("vrm", False))


@dataclass(frozen=True)
class Broadcast:
    """One person-level action fanned out to vendors: the messages queued, and what
    happened to each in this call (``results``, one per vendor)."""

    id: str
    type: str
    summary: str
    message_ids: tuple[str, ...]
    results: list[DeliveryResult] = field(default_factory=list)
    #: For a profile change: the fields that really changed (empty: nothing did,
    #: and nothing was sent).
    changed: tuple[str, ...] | None = None

    def to_json(self) -> dict[str, Any]:
        data = {"id": self.id, "type": self.type, "summary": self.summary,
                "results": [r.to_json() for r in self.results]}
        if self.changed is not None:
            data["changed"] = list(self.changed)
        return data


@dataclass(frozen=True)
class SyncResult:
    """What one vendor returned to ``messages.fetch``."""

    vendor_id: int
    vendor: str
    #: ok, failed, or key-changed (the answer was signed by another key: nothing
    #: more is sent to this vendor until the person decides)
    status: str
    new_messages: int = 0
    detail: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"vendor_id": self.vendor_id, "vendor": self.vendor, "status": self.status,
                "new_messages": self.new_messages, "detail": self.detail}


class Agent:
    """An open store and its keys. Create with :meth:`init` or :meth:`open`;
    call :meth:`close` (or use ``async with``) when done."""

    def __init__(self, home: Path, store: Store, keys: Keyring, limits: Limits,
                 clock: Clock, session: aiohttp.ClientSession | None) -> None:
        self.home = home
        self.limits = limits
        self._store: Store | None = store
        self._keys = keys
        self._clock = clock
        self._http = Http(limits, session)
        self._deliverer = Deliverer(store, self._http, limits, clock)

    # --- lifecycle -----------------------------------------------------------

    @classmethod
    async def init(cls, home: str | Path | None = None, *, passphrase: str | None = None,
                   name: str | None = None, limits: Limits | None = None,
                   scrypt_n: int = DEFAULT_SCRYPT_N, clock: Clock = _utcnow,
                   session: aiohttp.ClientSession | None = None) -> Agent:
        """Create a new store at ``home`` (default :func:`default_home`) and open it."""
        home = Path(home) if home is not None else default_home()
        passphrase = passphrase if passphrase is not None else passphrase_from_environment()
        store = Store.create(home)
        try:
            with store.transaction() as conn:
                keys = Keyring.create(store, conn, passphrase, scrypt_n=scrypt_n)
                identity = keys.new_key(conn, "identity", clock())
                store.set_meta(conn, "identity", identity.did)
                store.set_meta(conn, "name", name or "")
                store.set_meta(conn, "created", ts(clock()))
        except BaseException:
            store.close()
            for suffix in ("", "-wal", "-shm"):
                Path(str(store.path) + suffix).unlink(missing_ok=True)
            raise
        return cls(home, store, keys, limits or Limits(), clock, session)

    @classmethod
    async def open(cls, home: str | Path | None = None, *, passphrase: str | None = None,
                   limits: Limits | None = None, clock: Clock = _utcnow,
                   session: aiohttp.ClientSession | None = None) -> Agent:
        """Open the store at ``home``; the passphrase defaults to ``VRM_PASSPHRASE``."""
        home = Path(home) if home is not None else default_home()
        store = Store.open(home)
        try:
            if passphrase is not None:
                keys = await Keyring.open(store, passphrase, source="the passphrase")
            elif can_prompt():
                keys = await Keyring.open_at_prompt(store)
            else:
                keys = await Keyring.open(store, passphrase_from_environment())
        except BaseException:
            store.close()
            raise
        return cls(home, store, keys, limits or Limits(), clock, session)

    @classmethod
    async def restore(cls, source: str | Path, home: str | Path | None = None, *,
                      passphrase: str | None = None, limits: Limits | None = None,
                      clock: Clock = _utcnow,
                      session: aiohttp.ClientSession | None = None) -> Agent:
        """Fill the empty ``home`` from the backup file ``source`` and open it.

        The passphrase (default ``VRM_PASSPHRASE`` or a prompt) must open every
        key in the backup. Raises ``UsageError`` (``home`` not empty),
        ``PassphraseError`` and ``StoreError`` (not an intact vrm store); see
        :func:`agent._backup.restore`.
        """
        home = Path(home) if home is not None else default_home()
        passphrase = passphrase if passphrase is not None else passphrase_from_environment()
        await asyncio.to_thread(restore, Path(source), home, passphrase)
        return await cls.open(home, passphrase=passphrase, limits=limits, clock=clock,
                              session=session)

    async def backup(self, output: Path | BinaryIO) -> None:
        """Write a consistent copy of the whole store to ``output`` (a path, written
        0600 through a temporary file and a rename; or a binary stream), while
        other processes may be using it. Keys stay sealed. See
        :func:`agent._backup.backup`."""
        await asyncio.to_thread(backup_home, self.home, output)

    async def change_passphrase(self, new_passphrase: str) -> None:
        """Re-seal every key under ``new_passphrase`` in one transaction (a crash
        leaves the old or the new passphrase working, never neither)."""
        await self._keys.reseal(new_passphrase)

    async def close(self) -> None:
        """Close the HTTP session and the store. Safe to call twice."""
        await self._http.close()
        if self._store is not None:
            self._store.close()
            self._store = None

    async def __aenter__(self) -> Agent:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def store(self) -> Store:
        if self._store is None:
            raise ClosedError("this agent is closed; open it again with Agent.open")
        return self._store

    @property
    def name(self) -> str:
        return self.store.get_meta("name") or ""

    @property
    def warnings(self) -> list[str]:
        """What the person should know from opening the store, e.g. a VRM_HOME left
        readable by others (the CLI prints these on stderr)."""
        return list(self.store.warnings)

    @property
    def did(self) -> str:
        """The person's own identity DID. Vendors never see it: each gets a pairwise DID."""
        return self.store.get_meta("identity") or ""

    # --- messages into the outbox --------------------------------------------

    def _sign(self, model: type[protocol.Message], vendor: Mapping[str, Any], body: Any, *,
              lifetime: timedelta | None = None,
              thread: str | None = None) -> tuple[protocol.Message, bytes]:
        key = self._keys.get(vendor["pairwise_did"])
        now = self._clock()
        extra = {"thread": thread} if thread else {}
        message = model(id=protocol.new_message_id(), sender=key.did, to=vendor["vendor_did"],
                        created=now, expires=now + (lifetime or self.limits.message_lifetime),
                        body=body, **extra)
        return message, protocol.sign(message, key)

    def _queue(self, conn: sqlite3.Connection, rows: list[tuple[Any, ...]],
               fields: list[tuple[Any, ...]]) -> None:
        conn.executemany(
            "INSERT INTO outbox (id, vendor_id, broadcast_id, type, jws, created, expires, "
            "status, attempts, next_attempt, meta, updated) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?, ?)", rows)
        conn.executemany(
            "INSERT INTO outbox_fields (message_id, vendor_id, field, removed) "
            "VALUES (?, ?, ?, ?)", fields)

    @staticmethod
    def _row(message: protocol.Message, raw: bytes, vendor_id: int,
             broadcast_id: str | None, meta: dict[str, Any] | None = None) -> tuple[Any, ...]:
        created = ts(message.created)
        return (message.id, vendor_id, broadcast_id, message.type, raw, created,
                ts(message.expires_at), created, json.dumps(meta) if meta else None, created)

    def _profile_flat(self) -> dict[str, str]:
        return {row["field"]: row["value"]
                for row in self.store.rows("SELECT field, value FROM profile")}

    # --- vendors -------------------------------------------------------------

    async def add_vendor(self, url: str, *, share: Iterable[str] | None = None,
                         allow_http: bool = False, progress: Progress | None = None,
                         patience: float = 0.0) -> dict[str, Any]:
        """Discover the vendor at ``url``, pin its key, make a pairwise DID and send
        ``relationship.request`` with the ``share``d profile fields.

        Returns the vendor (see :meth:`vendors`) with ``delivery`` (the request's
        result, or None) and ``action``, one of:

        - ``added``: a new relationship;
        - ``added-again``: a new relationship with a vendor whose earlier one has
          ended (or is ending), was refused or saw a key change (``replaces`` is
          the old row's id, kept as history; the key shown now is pinned, because
          the person asked for it by adding the vendor again);
        - ``share-updated``: an active vendor may now see exactly ``share``; a
          relationship.request re-states exactly those fields (the vendor
          replaces what it holds with them);
        - ``unchanged``: an active vendor, and ``share`` is None or the same.

        A vendor that is pending or active and now shows another key is marked
        ``key-changed`` (nothing more is sent to it) and ``VendorKeyChanged`` is
        raised. Plain ``http://`` is refused unless ``allow_http`` or the host is
        loopback: messages are signed, not encrypted.
        """
        url = normalise_url(url)
        check_transport(url, allow_http=allow_http)
        shared = check_share(share) if share is not None else None
        document = await fetch_discovery(self._http, url)
        known = self.store.one(
            "SELECT * FROM vendors WHERE url = ? OR vendor_did = ? "
            "ORDER BY status IN ('pending', 'active') DESC, id DESC LIMIT 1", (url, document.id))
        if known is not None and known["status"] in REACHABLE:
            try:
                check_pinned(known, document)
            except VendorKeyChanged:
                self._hold(known["id"])
                raise
            if shared is None or shared == json.loads(known["share"]):
                return {**vendor_view(known), "delivery": None, "action": "unchanged"}
            return await self._restate(known, shared, progress, patience)
        now = self._clock()
        shared = shared or []
        body, profile = request_body(self._profile_flat(), shared, current_terms(self.store))
        with self.store.transaction() as conn:
            key = self._keys.new_key(conn, "pairwise", now)
            cursor = conn.execute(
                "INSERT INTO vendors (name, url, discovery_url, discovery, vendor_did, "
                "vendor_jwk, inbox, pairwise_did, share, status, added, updated) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?)",
                (document.name or url, url, url + protocol.WELL_KNOWN_PATH,
                 json.dumps(document.to_wire()), document.id,
                 json.dumps(document.key.to_jwk()), document.inbox, key.did,
                 json.dumps(shared), ts(now), ts(now)))
            vendor_id = int(cursor.lastrowid or 0)
            vendor = {"pairwise_did": key.did, "vendor_did": document.id}
            message, raw = self._sign(protocol.RelationshipRequest, vendor, body)
            self._queue(conn, [self._row(message, raw, vendor_id, None)],
                        [(message.id, vendor_id, f, 0) for f in profile])
        result = await self._deliver_one(message.id, progress, patience)
        row = self.store.one("SELECT * FROM vendors WHERE id = ?", (vendor_id,))
        assert row is not None
        if row["status"] == "refused":
            raise VendorError(f"{row['name']} declined the relationship: "
                              f"{result.detail or 'no reason given'}")
        extra = {"replaces": known["id"]} if known is not None else {}
        return {**vendor_view(row), "delivery": result.to_json(),
                "action": "added-again" if known is not None else "added", **extra}

    async def _restate(self, vendor: dict[str, Any], shared: list[str],
                       progress: Progress | None, patience: float) -> dict[str, Any]:
        """Let ``vendor`` see exactly ``shared``, and tell it: a relationship.request
        with exactly those fields (and the terms), which the vendor takes as a
        re-statement."""
        message, raw, fields = self._restatement(vendor, shared)
        with self.store.transaction() as conn:
            conn.execute("UPDATE vendors SET share = ?, updated = ? WHERE id = ?",
                         (json.dumps(shared), ts(self._clock()), vendor["id"]))
            self._queue(conn, [self._row(message, raw, vendor["id"], None)], fields)
        result = await self._deliver_one(message.id, progress, patience)
        row = resolve(self.store, vendor["id"])
        return {**vendor_view(row), "delivery": result.to_json(), "action": "share-updated"}

    def _restatement(self, vendor: Mapping[str, Any], shared: Sequence[str]
                     ) -> tuple[protocol.Message, bytes, list[tuple[Any, ...]]]:
        """A signed relationship.request re-stating exactly the ``shared`` fields and
        the terms proffered now, and its outbox_fields rows: fields told before and
        not now are marked removed (the vendor replaces what it holds, §5.2)."""
        body, fields = self._request_for(vendor, shared, current_terms(self.store))
        message, raw = self._sign(protocol.RelationshipRequest, vendor, body)
        return message, raw, [(message.id, vendor["id"], f, int(removed))
                              for f, removed in fields]

    def _request_for(self, vendor: Mapping[str, Any], shared: Sequence[str], terms: list[str]
                     ) -> tuple[protocol.RelationshipRequestBody, list[tuple[str, bool]]]:
        """The body of a relationship.request stating exactly ``shared`` and ``terms``
        to ``vendor``, and the fields it carries as (field, removed) pairs."""
        body, profile = request_body(self._profile_flat(), shared, terms)
        told = {row["field"] for row in self.store.rows(
            "SELECT DISTINCT field FROM outbox_fields WHERE vendor_id = ?", (vendor["id"],))}
        return body, ([(f, False) for f in profile]
                      + [(f, True) for f in sorted(told - set(profile))])

    async def _deliver_one(self, message_id: str, progress: Progress | None,
                           patience: float, *, scoped: bool = True) -> DeliveryResult:
        """Deliver the queue of ``message_id``'s vendor (or, not ``scoped``, all that is
        due); return that message's result, attempted in this run or not."""
        results = await self._deliverer.run(scope={message_id} if scoped else None,
                                            progress=progress, patience=patience)
        return self._deliverer.describe([message_id], results)[0]

    def _hold(self, vendor_id: int) -> None:
        """The vendor showed another key: send it nothing more until the person decides."""
        now = ts(self._clock())
        with self.store.transaction() as conn:
            conn.execute("UPDATE vendors SET status = 'key-changed', updated = ? WHERE id = ? "
                         "AND status IN ('pending', 'active', 'ending')", (now, vendor_id))
            fail_unsendable(conn, now)

    async def check_vendor(self, vendor: str | int) -> dict[str, Any]:
        """Fetch the vendor's discovery document again. If its key is not the pinned
        one, mark the vendor ``key-changed`` (nothing more is sent to it) and raise
        ``VendorKeyChanged``; else refresh what it accepts."""
        row = resolve(self.store, vendor)
        document = await fetch_discovery(self._http, row["url"])
        try:
            check_pinned(row, document)
        except VendorKeyChanged:
            self._hold(row["id"])
            raise
        with self.store.transaction() as conn:
            conn.execute("UPDATE vendors SET discovery = ?, updated = ? WHERE id = ?",
                         (json.dumps(document.to_wire()), ts(self._clock()), row["id"]))
        return vendor_view(resolve(self.store, row["id"]))

    def vendors(self) -> list[dict[str, Any]]:
        """Every vendor, with status: pending (request not yet confirmed), active,
        ending, ended or refused."""
        return [vendor_view(row) for row in self.store.rows("SELECT * FROM vendors ORDER BY id")]

    def vendor(self, ref: str | int) -> dict[str, Any]:
        """One vendor by number, name, DID or URL (``UnknownVendor`` if none)."""
        return vendor_view(resolve(self.store, ref))

    async def end_vendor(self, vendor: str | int, *, erase: bool = False,
                         reason: str | None = None, progress: Progress | None = None,
                         patience: float = 0.0) -> DeliveryResult | None:
        """Send ``relationship.end`` (with ``erase``, ask the vendor to erase the
        person's data). The vendor's signed receipt is the proof. Returns the end
        message's result: delivered, or pending with the reason.

        - An ended relationship whose data was not erased takes ``erase=True``: a
          relationship.end with ``erase: true`` goes to the vendor (PROTOCOL.md
          §5.9 lets a person ask for erasure after the end).
        - While an end is still queued, asking again reuses it; asking for
          erasure replaces a queued end without erasure by one with it (the old
          one is failed, never sent again), so the request is not lost.
        - A vendor whose key changed cannot confirm anything: the relationship
          ends here only, nothing is sent, and None is returned.
        """
        row = resolve(self.store, vendor)
        name, status = row["name"], row["status"]
        if status == "key-changed":
            self._end_locally(row["id"])
            return None
        if status == "refused":
            raise UsageError(f"{name} declined the relationship, so there is nothing to end")
        if status == "ended" and not erase:
            raise UsageError(f"the relationship with {name} has already ended" + (
                "" if row["erased"] else
                f"; to ask {name} to erase your data, add --erase"))
        if status == "ended" and row["erased"]:
            raise UsageError(f"the relationship with {name} has already ended, and {name} "
                             f"confirmed the erasure of your data")
        queued = self.store.rows(
            "SELECT id, meta FROM outbox WHERE vendor_id = ? AND type = 'relationship.end' "
            "AND status = 'pending' ORDER BY rowid", (row["id"],))
        asks_erasure = [q for q in queued if json.loads(q["meta"] or "{}").get("erase")]
        if asks_erasure or (queued and not erase):
            # Already on its way: deliver it now rather than ask twice.
            return await self._deliver_one((asks_erasure or queued)[-1]["id"], progress,
                                           patience, scoped=False)
        body = _body(protocol.RelationshipEndBody,
                     {"erase": erase, **({"reason": reason} if reason else {})})
        message, raw = self._sign(protocol.RelationshipEnd, row, body)
        now = ts(self._clock())
        with self.store.transaction() as conn:
            conn.executemany(
                "UPDATE outbox SET status = 'failed', last_error = ?, updated = ? "
                "WHERE id = ? AND status = 'pending'",
                [(f"replaced by relationship.end {message.id}, which asks for erasure", now,
                  q["id"]) for q in queued])
            self._queue(conn, [self._row(message, raw, row["id"], None, {"erase": erase})], [])
            conn.execute("UPDATE vendors SET status = 'ending', updated = ? WHERE id = ? "
                         "AND status != 'ended'", (now, row["id"]))
        return await self._deliver_one(message.id, progress, patience, scoped=False)

    def _end_locally(self, vendor_id: int) -> None:
        # Only a key-changed vendor ends here, and every way a vendor becomes
        # key-changed fails its pending messages in the same transaction
        # (fail_unsendable): there is nothing left in its queue to settle.
        with self.store.transaction() as conn:
            conn.execute("UPDATE vendors SET status = 'ended', updated = ? WHERE id = ?",
                         (ts(self._clock()), vendor_id))

    # --- broadcasts ----------------------------------------------------------

    def profile(self) -> dict[str, str]:
        """The person's profile, flat: ``{"email": …, "postal_address.locality": …}``."""
        return self._profile_flat()

    async def set_profile(self, changes: Mapping[str, str | None], *,
                          progress: Progress | None = None, send: bool = True,
                          patience: float = 0.0) -> Broadcast:
        """Change profile fields (``None`` or ``""`` removes one) and send
        ``contact.update`` to every reachable vendor that may see a changed field,
        with only the changed fields it may see."""
        cleaned = check_changes(changes)
        current = self._profile_flat()
        changed = {f: v for f, v in cleaned.items() if current.get(f) != v}
        broadcast_id = protocol.new_message_id()
        now = ts(self._clock())
        rows: list[tuple[Any, ...]] = []
        fields: list[tuple[Any, ...]] = []
        summary = ", ".join(f"{f}={v}" if v else f"{f} removed" for f, v in changed.items())
        with self.store.transaction() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO profile (field, value, updated) VALUES (?, ?, ?)",
                [(f, v, now) for f, v in changed.items() if v is not None])
            conn.executemany("DELETE FROM profile WHERE field = ?",
                             [(f,) for f, v in changed.items() if v is None])
            if changed:
                for vendor in self._reachable(conn):
                    visible = visible_to(changed, json.loads(vendor["share"]))
                    if not visible:
                        continue
                    body = protocol.ContactUpdateBody(
                        changes=protocol.ProfileChanges.model_validate(nest(visible)))
                    message, raw = self._sign(protocol.ContactUpdate, vendor, body)
                    rows.append(self._row(message, raw, vendor["id"], broadcast_id))
                    fields.extend((message.id, vendor["id"], f, int(v is None))
                                  for f, v in visible.items())
                conn.execute(
                    "INSERT INTO broadcasts (id, type, summary, body, created) "
                    "VALUES (?, 'contact.update', ?, ?, ?)",
                    (broadcast_id, summary[:500], json.dumps(changed), now))
                self._queue(conn, rows, fields)
        return await self._finish(Broadcast(broadcast_id, "contact.update", summary,
                                            tuple(r[0] for r in rows),
                                            changed=tuple(changed)), send, progress, patience)

    async def unset_profile(self, fields: Iterable[str], *, progress: Progress | None = None,
                            send: bool = True, patience: float = 0.0) -> Broadcast:
        """Remove profile fields and tell every reachable vendor that may see one of
        them (``contact.update`` with the field set to null, a JSON Merge Patch
        removal, RFC 7386). ``postal_address`` names all of its parts. A field
        that is not set changes nothing (``Broadcast.changed`` says what did).
        Raises ``UsageError`` for a name that is not a profile field."""
        names: list[str] = []
        for name in fields:
            name = name.strip()
            parts = [f for f in FIELD_NAMES if top_level(f) == name and "." in f]
            if name not in FIELD_NAMES and not parts:
                raise UsageError(f"'{protocol.display_text(name, limit=60)}' is not a profile "
                                 f"field; the fields are {', '.join(FIELD_NAMES)}")
            names += parts or [name]
        if not names:
            raise UsageError("name at least one field to remove, like email")
        current = self._profile_flat()
        present = {name: None for name in names if name in current}
        if not present:
            return Broadcast(protocol.new_message_id(), "contact.update", "", (), changed=())
        return await self.set_profile(present, progress=progress, send=send,
                                      patience=patience)

    async def intent(self, summary: str, *, category: str | None = None,
                     budget: tuple[str, str] | None = None,
                     needed_by: date | str | None = None, quantity: int | None = None,
                     locality: str | None = None, to: Sequence[str | int] | None = None,
                     progress: Progress | None = None, send: bool = True,
                     patience: float = 0.0) -> Broadcast:
        """Send an intent (a request for offers) to every reachable vendor whose
        discovery document lists ``intent``, or only to the vendors named in ``to``.
        ``budget`` is (amount, currency) with the amount as a decimal string."""
        if not isinstance(summary, str) or not summary.strip():
            raise UsageError('say what you want in the summary, like "Touring bike, 56 cm"')
        summary = summary.strip()
        data: dict[str, Any] = {"summary": summary}
        if category:
            data["category"] = category
        if quantity is not None:
            data["quantity"] = quantity
        if budget is not None:
            amount, currency = budget
            data["budget"] = {"max": str(amount), "currency": str(currency).upper()}
        if needed_by is not None:
            data["needed_by"] = needed_by if isinstance(needed_by, date) else str(needed_by)
        if locality:
            data["location"] = {"locality": locality}
        body = _body(protocol.IntentBody, data, what="the intent")
        today = self._clock().astimezone().date()  # the person's own calendar day
        if body.needed_by is not None and body.needed_by < today:
            raise UsageError(f"the needed-by date {body.needed_by.isoformat()} is in the "
                             f"past; give today or a later date")
        targets = self._targets("intent", to)
        return await self._fan_out("intent", summary, body.to_wire(),
                                   [(vendor, protocol.Intent, body, None) for vendor in targets],
                                   send, progress, patience)

    async def cancel_intent(self, intent_id: str, *, reason: str | None = None,
                            progress: Progress | None = None, send: bool = True,
                            patience: float = 0.0) -> Broadcast:
        """Withdraw an intent (``Broadcast.id`` of :meth:`intent`, or a unique start of
        it, 4 characters or more) from every vendor that got it or still may:
        ``intent.cancel`` threaded to each vendor's copy, to the vendors whose copy
        was delivered or is still pending and whose relationship is pending or
        active. A copy that failed or expired was never taken, so it needs no
        cancel. Raises ``UsageError`` if no intent matches or it was already
        cancelled. The cancel's broadcast names the intent (``body.intent``),
        which is how :meth:`intents` knows it is cancelled."""
        row = find_intent(self.store, intent_id)
        intent_id = row["id"]
        if is_cancelled(self.store, intent_id):
            summary = protocol.display_text(row["summary"], limit=60)
            raise UsageError(f"the intent {intent_id[:8]} ({summary}) is already cancelled")
        body = _body(protocol.IntentCancelBody, {"reason": reason} if reason else {},
                     what="the cancellation")
        items = []
        for sent in self.store.rows(
                "SELECT o.id AS intent_message_id, v.* FROM outbox o "
                "JOIN vendors v ON v.id = o.vendor_id WHERE o.broadcast_id = ? "
                "AND o.status IN ('pending', 'delivered') "
                "AND v.status IN ('pending', 'active') ORDER BY o.rowid", (intent_id,)):
            items.append((sent, protocol.IntentCancel, body, sent["intent_message_id"]))
        # The broadcast's body names the intent: that records the cancel, also when
        # no vendor is left to tell.
        return await self._fan_out("intent.cancel", f"cancel: {row['summary']}",
                                   {**body.to_wire(), "intent": intent_id}, items, send,
                                   progress, patience)

    async def feedback(self, vendor: str | int, score: int, *, comment: str | None = None,
                       subject: str | None = None, progress: Progress | None = None,
                       send: bool = True, patience: float = 0.0) -> Broadcast:
        """Send a 0-10 ``feedback`` score (as in a net promoter survey) to one vendor
        (PROTOCOL.md §5.8); :func:`agent.nps_class` tells the class the vendor
        records. Raises ``UsageError`` for a score outside 0-10 or a vendor that
        does not accept feedback."""
        [target] = self._targets("feedback", [vendor])
        data: dict[str, Any] = {"score": score}
        data.update({k: v for k, v in (("comment", comment), ("subject", subject)) if v})
        body = _body(protocol.FeedbackBody, data, what="the feedback")
        return await self._fan_out("feedback", f"score {score} ({nps_class(score)})",
                                   body.to_wire(), [(target, protocol.Feedback, body, None)],
                                   send, progress, patience)

    def preferences(self) -> dict[str, Any]:
        """The contact preferences last stated: ``{"channels": {"email": bool, ...},
        "marketing": bool | None}``; a channel never stated is absent."""
        return current_preferences(self.store)

    async def set_preferences(self, *, channels: Mapping[str, bool] | None = None,
                              marketing: bool | None = None,
                              to: Sequence[str | int] | None = None,
                              progress: Progress | None = None, send: bool = True,
                              patience: float = 0.0) -> Broadcast:
        """Change which channels vendors may use (email, sms, post, phone) and whether
        they may market to the person, record the choices (see :meth:`preferences`)
        and send ``preferences.update`` with what is stated now (PROTOCOL.md §5.7)
        to the vendors in ``to`` (each must accept it), or to every reachable
        vendor that accepts it. With no such vendor, the choices are recorded and
        nothing is sent. Raises ``UsageError`` when nothing is stated."""
        unknown = sorted(set(channels or {}) - {"email", "sms", "post", "phone"})
        if unknown:
            raise UsageError(f"{', '.join(unknown)} is not a channel; the channels are "
                             f"email, sms, post and phone")
        data: dict[str, Any] = {}
        if channels:
            data["channels"] = dict(channels)
        if marketing is not None:
            data["marketing"] = marketing
        body = _body(protocol.PreferencesUpdateBody, data, what="the preferences")
        if to:
            targets = self._targets("preferences.update", to)
        else:
            targets = [v for v in self._reachable(self.store.db.conn)
                       if "preferences.update" in json.loads(v["discovery"]).get("types", [])]
        merged = merge_preferences(self.preferences(), channels, marketing)
        summary = ", ".join(f"{k}={'yes' if v else 'no'}" for k, v in sorted(
            {**(channels or {}), **({"marketing": marketing} if marketing is not None
                                    else {})}.items()))
        return await self._fan_out("preferences.update", summary, body.to_wire(),
                                   [(v, protocol.PreferencesUpdate, body, None)
                                    for v in targets], send, progress, patience,
                                   also=lambda conn: store_preferences(self.store, conn, merged))

    def terms(self) -> list[str]:
        """The term ids the person proffers (IEEE 7012 MyTerms roster ids, like
        ``myterms:nostalking``); every relationship.request carries them."""
        return current_terms(self.store)

    async def set_terms(self, terms: Iterable[str], *, progress: Progress | None = None,
                        send: bool = True, patience: float = 0.0) -> Broadcast:
        """Proffer exactly ``terms`` from now on (an empty list: none) and re-state them
        to every reachable vendor with a new ``relationship.request``, which also
        re-states the profile fields the vendor may see: the vendor replaces the
        terms and fields it holds with these (PROTOCOL.md §5.2). New vendors
        (:meth:`add_vendor`) get them in their first request. Raises
        ``UsageError`` for an id that is not ``scheme:id``, or more than 32."""
        checked = check_terms(terms)
        items = []
        for vendor in self._reachable(self.store.db.conn):
            body, fields = self._request_for(vendor, json.loads(vendor["share"]), checked)
            items.append((vendor, protocol.RelationshipRequest, body, None, None, fields))
        summary = "terms: " + (", ".join(checked) or "none")
        return await self._fan_out("terms", summary, {"terms": checked}, items, send,
                                   progress, patience,
                                   also=lambda conn: store_terms(self.store, conn, checked))

    def intents(self) -> list[dict[str, Any]]:
        """Every intent, newest first, with the vendors told, the offers received and
        its status: ``open``, ``cancelled`` or ``expired`` (see ``agent._intents``).
        Each: ``{id, short_id, created, summary, body, vendors: [{vendor_id, vendor,
        message_id, delivery}], told, offers, status}``."""
        return list_intents(self.store, self._clock())

    async def send(self, model: type[protocol.Message], body: protocol.WireModel, *,
                   to: Sequence[str | int] | None = None, thread: str | None = None,
                   summary: str | None = None, progress: Progress | None = None,
                   send: bool = True, patience: float = 0.0) -> Broadcast:
        """Send a message of any type, a core one or an extension's, to the vendors
        named in ``to`` (each must list the type in its discovery document), or to
        every reachable vendor that lists it. Like every send, it goes through the
        outbox: signed, stored, then delivered, retried and receipted.

        ``model`` is a :class:`protocol.Message` subclass and ``body`` its body
        model; read each vendor's answer with :meth:`receipt`."""
        if not (isinstance(model, type) and issubclass(model, protocol.Message)
                and model.message_type):
            raise UsageError("send() takes a protocol.Message subclass with a Literal type")
        if model.requires_thread and thread is None:
            raise UsageError(f"a {model.message_type} message must name the message it "
                             f"answers in thread")
        targets = self._targets(model.message_type, to)
        return await self._fan_out(model.message_type, summary or model.message_type,
                                   body.to_wire(), [(v, model, body, thread) for v in targets],
                                   send, progress, patience)

    def receipt(self, message_id: str) -> dict[str, Any] | None:
        """The vendor's receipt for ``message_id`` (or a unique start of it, 4
        characters or more), checked again now with the pinned key: ``{message_id,
        message_type, vendor_id, vendor, receipt_id, status, received, problem,
        record, verified, verify_detail, jws}``, ``jws`` being the signed bytes
        exactly as received (RFC 7515 §7.2.2). None if no receipt has come back
        yet, or no message has that id."""
        try:
            return find_receipt(self.store, message_id)
        except UsageError:
            return None

    def find_receipt(self, message_id: str) -> dict[str, Any] | None:
        """Like :meth:`receipt`, but a ``message_id`` that names no message (or
        several) raises ``UsageError`` saying so."""
        return find_receipt(self.store, message_id)

    def vendor_history(self, vendor: str | int) -> dict[str, Any]:
        """The relationship with ``vendor`` (number, name, DID or URL), message by
        message: ``{"vendor": {...}, "messages": [{message_id, created, type,
        fields, removed, body, delivery, attempts, last_error, receipt}]}``, each
        receipt checked again now with the pinned key (``receipt.verified``).
        See ``agent._history``."""
        return vendor_history(self.store, resolve(self.store, vendor))

    def _targets(self, message_type: str,
                 refs: Sequence[str | int] | None) -> list[dict[str, Any]]:
        """The named vendors (each must accept ``message_type``), or every reachable
        vendor whose discovery document lists it."""
        if refs:
            # One message per vendor, however often it is named (first mention's order).
            by_id = {vendor["id"]: vendor for vendor in (resolve(self.store, ref) for ref in refs)}
            targets = list(by_id.values())
            for vendor in targets:
                if vendor["status"] == "key-changed":
                    raise UsageError(f"{vendor['name']} answered with a key other than the "
                                     f"pinned one, so it gets nothing; see `vrm vendor list`")
                if vendor["status"] not in REACHABLE:
                    raise UsageError(f"the relationship with {vendor['name']} has ended")
                if message_type not in json.loads(vendor["discovery"]).get("types", []):
                    raise UsageError(f"{vendor['name']} does not accept {message_type} "
                                     f"messages" if message_type != "intent"
                                     else f"{vendor['name']} does not accept intents")
            return targets
        targets = [v for v in self._reachable(self.store.db.conn)
                   if message_type in json.loads(v["discovery"]).get("types", [])]
        if not targets:
            what = "intents" if message_type == "intent" else f"{message_type} messages"
            raise UsageError(f"no vendor accepts {what} yet; add one with `vrm vendor add URL`")
        return targets

    async def _fan_out(self, kind: str, summary: str, body: dict[str, Any],
                       items: Sequence[tuple[Any, ...]],
                       send: bool, progress: Progress | None, patience: float, *,
                       also: Callable[[sqlite3.Connection], None] | None = None
                       ) -> Broadcast:
        """Sign one message per item, queue them all and the broadcast in ONE
        transaction (with ``also``'s writes, if given), then deliver.

        Each item is ``(vendor, model, body, thread)``, optionally followed by the
        outbox ``meta`` dict and the profile fields it carries as
        ``(field, removed)`` pairs."""
        broadcast_id = protocol.new_message_id()
        rows = []
        fields: list[tuple[Any, ...]] = []
        for vendor, model, message_body, thread, *rest in items:
            meta = rest[0] if rest else None
            message, raw = self._sign(model, vendor, message_body, thread=thread)
            rows.append(self._row(message, raw, vendor["id"], broadcast_id, meta))
            if len(rest) > 1:
                fields.extend((message.id, vendor["id"], f, int(removed))
                              for f, removed in rest[1])
        with self.store.transaction() as conn:
            if also is not None:
                also(conn)
            conn.execute("INSERT INTO broadcasts (id, type, summary, body, created) "
                         "VALUES (?, ?, ?, ?, ?)",
                         (broadcast_id, kind, summary[:500], json.dumps(body),
                          ts(self._clock())))
            self._queue(conn, rows, fields)
        return await self._finish(Broadcast(broadcast_id, kind, summary,
                                            tuple(r[0] for r in rows)), send, progress, patience)

    def _reachable(self, conn: sqlite3.Connection) -> list[dict[str, Any]]:
        cursor = conn.execute("SELECT * FROM vendors WHERE status IN ('pending', 'active') "
                              "ORDER BY id")
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row)) for row in cursor.fetchall()]

    async def _finish(self, broadcast: Broadcast, send: bool, progress: Progress | None,
                      patience: float) -> Broadcast:
        results: list[DeliveryResult] = []
        if send:
            # Everything due goes, not only this broadcast: earlier leftovers carry
            # on, even when this broadcast itself has nothing to send.
            results = await self._deliverer.run(progress=progress, patience=patience)
        # One result per message of the broadcast, attempted in this run or not.
        mine = self._deliverer.describe(broadcast.message_ids, results)
        return replace(broadcast, results=mine)

    def pending(self) -> dict[str, Any]:
        """How many messages wait in the outbox, and when the earliest falls due."""
        count, due = self._deliverer.pending()
        return {"pending": count, "next_attempt": due}

    async def deliver(self, *, progress: Progress | None = None,
                      patience: float = 0.0) -> list[DeliveryResult]:
        """Send everything in the outbox that is due now. With ``patience`` (seconds),
        retries that fall due within it are made in this call too."""
        return await self._deliverer.run(progress=progress, patience=patience)

    # --- pull ----------------------------------------------------------------

    async def sync(self, *, progress: Callable[[int, int, SyncResult], None] | None = None,
                   deliver: bool = True) -> list[SyncResult]:
        """Deliver what is due, then send ``messages.fetch`` to every active vendor and
        store the offers and other messages they hold (each verified against the
        pinned key). Returns one result per vendor."""
        if deliver:
            await self.deliver()
        vendors = self.store.rows("SELECT * FROM vendors WHERE status IN ('active', 'ending') "
                                  "ORDER BY id")
        semaphore = asyncio.Semaphore(self.limits.max_connections)
        inbox_rows: list[tuple[Any, ...]] = []
        cursors: list[tuple[Any, ...]] = []
        results: list[SyncResult] = []

        async def fetch(vendor: dict[str, Any]) -> None:
            async with semaphore:
                result = await self._fetch_vendor(vendor, inbox_rows, cursors)
            results.append(result)
            if progress is not None:
                progress(len(results), len(vendors), result)

        try:
            await asyncio.gather(*(fetch(v) for v in vendors))
        finally:
            with self.store.transaction() as conn:
                conn.executemany(
                    "INSERT OR IGNORE INTO inbox (vendor_id, id, type, thread, body, jws, "
                    "created, received) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", inbox_rows)
                conn.executemany("UPDATE vendors SET cursor = ? WHERE id = ?", cursors)
        order = {v["id"]: i for i, v in enumerate(vendors)}
        return sorted(results, key=lambda r: order[r.vendor_id])

    async def _fetch_vendor(self, vendor: dict[str, Any], inbox_rows: list[tuple[Any, ...]],
                            cursors: list[tuple[Any, ...]]) -> SyncResult:
        cursor = vendor["cursor"]
        new = 0
        vendor_key = self._deliverer.vendor_key(vendor["vendor_jwk"])
        for _ in range(protocol.MAX_FETCH_PAGES):
            message, raw = self._sign(protocol.MessagesFetch, vendor,
                                      protocol.MessagesFetchBody(after=cursor),
                                      lifetime=_FETCH_LIFETIME)
            verdict = await self._deliverer.exchange(
                vendor["inbox"], raw, message_id=message.id,
                recipient=vendor["pairwise_did"], vendor_jwk=vendor["vendor_jwk"])
            if verdict.kind == "ended":
                self._mark_ended(vendor["id"])
            elif verdict.kind == "key-changed":
                self._hold(vendor["id"])
                return SyncResult(vendor["id"], vendor["name"], "key-changed", new,
                                  verdict.detail)
            if verdict.kind != "delivered" or verdict.receipt is None:
                return SyncResult(vendor["id"], vendor["name"], "failed", new,
                                  verdict.detail or verdict.kind)
            now = self._clock()
            # PROTOCOL.md §6.4: carried messages that fail are dropped, never a key change.
            page = protocol.read_fetch_page(
                verdict.receipt, after=cursor, vendor_key=vendor_key,
                recipient=vendor["pairwise_did"], now=now)
            for received, jws in page.messages:
                inbox_rows.append((
                    vendor["id"], received.id, received.type, received.thread,
                    json.dumps(received.body.to_wire()), jws, ts(received.created), ts(now)))
                new += 1
            if page.cursor != cursor:
                cursor = page.cursor
                cursors.append((cursor, vendor["id"]))
            if not page.more:
                break
        return SyncResult(vendor["id"], vendor["name"], "ok", new)

    def _mark_ended(self, vendor_id: int) -> None:
        with self.store.transaction() as conn:
            conn.execute("UPDATE vendors SET status = 'ended', updated = ? WHERE id = ?",
                         (ts(self._clock()), vendor_id))

    # --- views ---------------------------------------------------------------

    def offers(self, *, intent: str | None = None,
               vendor: str | int | None = None) -> list[dict[str, Any]]:
        """Offers received, newest first, each beside the intent it answers and with
        its ``status``: ``live``, ``expired`` (past its ``valid_until``) or ``intent
        cancelled``. ``intent`` (an id or a unique start of it) and ``vendor``
        (number, name, DID or URL) narrow the list."""
        intent_id = find_intent(self.store, intent)["id"] if intent is not None else None
        vendor_id = resolve(self.store, vendor)["id"] if vendor is not None else None
        return list_offers(self.store, self._clock(), intent_id=intent_id,
                           vendor_id=vendor_id)

    def outbox(self) -> list[dict[str, Any]]:
        """Every outgoing message per vendor, with status, attempts and last error."""
        return self.store.rows(
            "SELECT o.id AS message_id, o.vendor_id, v.name AS vendor, o.type, o.status, "
            "o.attempts, o.next_attempt, o.last_error, o.http_status, o.created, o.expires, "
            "o.broadcast_id, r.status AS receipt_status, r.receipt_id "
            "FROM outbox o JOIN vendors v ON v.id = o.vendor_id "
            "LEFT JOIN receipts r ON r.message_id = o.id ORDER BY o.rowid")

    def shared(self) -> list[dict[str, Any]]:
        """Who knows what: per vendor, each field it was told, by which delivered
        message and receipt. Removed fields and erased vendors are left out."""
        rows = self.store.rows("SELECT * FROM shared WHERE removed = 0 "
                               "ORDER BY vendor_id, field")
        for row in rows:
            del row["removed"]
        return rows

    def export(self) -> dict[str, Any]:
        """All of the person's data as JSON-ready dicts, for portability. Keys stay
        sealed: the export holds them encrypted, with the parameters to open them
        with the passphrase."""
        store = self.store

        def text(rows: list[dict[str, Any]], *names: str) -> list[dict[str, Any]]:
            for row in rows:
                for name in names:
                    if row.get(name) is not None:
                        row[name] = bytes(row[name]).decode("ascii", "replace")
                for name in ("body", "problem", "record", "meta"):
                    if isinstance(row.get(name), str):
                        row[name] = json.loads(row[name])
            return rows

        return {
            "format": "vrm-export/1",
            "exported": ts(self._clock()),
            "name": self.name,
            "did": self.did,
            "profile": nest(self._profile_flat()),
            "vendors": [{**vendor_view(row), "discovery": json.loads(row["discovery"])}
                        for row in store.rows("SELECT * FROM vendors ORDER BY id")],
            "broadcasts": text(store.rows("SELECT * FROM broadcasts ORDER BY created")),
            "outbox": text(store.rows("SELECT * FROM outbox ORDER BY rowid"), "jws"),
            "receipts": text(store.rows("SELECT * FROM receipts ORDER BY received"), "jws"),
            "inbox": text(store.rows("SELECT * FROM inbox ORDER BY received"), "jws"),
            "shared": self.shared(),
            "keys": {"sealer": json.loads(store.get_meta("sealer") or "{}"),
                     "sealed": store.rows("SELECT * FROM keys ORDER BY created")},
        }


def _body(model: type[protocol.WireModel], data: dict[str, Any], *,
          what: str = "the message") -> Any:
    """Build a message body; a value the protocol refuses is the person's mistake."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise UsageError(f"{what} is not valid: {explain(exc)}") from None
    except ValueError as exc:
        raise UsageError(f"{what} is not valid: {exc}") from None
