"""``Vendor``: one vendor identity, its inbox, its CRM and its offers.

    vendor = Vendor.open("crm.db", name="Bikes4U", passphrase="secret")
    app = vrm_app(vendor)                      # vendor_adapter.aiohttp
    offer_id = await vendor.make_offer(lead_id, summary="Trek 520", price="749.00")
    vendor.close()

Many identities may share one database (``Vendor.open`` with another
``name``): they share its group-commit writer, so their writes batch together.
The database is a SQLite file or a PostgreSQL URI (``_store``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any

import protocol

from ._core import UNAVAILABLE, InboxCore, Outcome, Response, Verified
from ._crm import CrmView, SqliteCrm
from ._store import Store, open_store
from ._errors import ClosedError, LeadNotFound, OfferError, PassphraseError
from ._identity import open_identity
from ._ledger import Ledger, RelationshipHook
from ._mapping import DEFAULT, FieldMapping
from ._offers import check_offer, list_offers, list_sql, record_offer, withdraw
from ._sink import CrmSink
from .forward._relay import Forwarding
from .forward._target import Target

__all__ = ["Vendor", "SUPPORTED_TYPES"]

#: The types this adapter handles: listed in the discovery document, and the only
#: ones its inbox takes (``Vendor.open(types=...)`` narrows or, with a registry,
#: extends them; it never drops REQUIRED_TYPES).
SUPPORTED_TYPES: tuple[str, ...] = (
    "relationship.request", "contact.update", "intent", "intent.cancel",
    "preferences.update", "feedback", "relationship.end", "messages.fetch",
)
#: The types every vendor lists, whatever it narrows its inbox to (PROTOCOL.md
#: §7): a person can always open, end and poll a relationship.
REQUIRED_TYPES: tuple[str, ...] = ("relationship.request", "relationship.end", "messages.fetch")
#: Offers wait in the outbox this long for the agent to fetch them.
OFFER_LIFETIME = protocol.MAX_LIFETIME


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Vendor:
    """A vendor identity with its inbox, built-in CRM and outbox."""

    def __init__(self, db: Store, key: protocol.SigningKey, name: str, *,
                 sink: CrmSink | None, mapping: FieldMapping,
                 accept_relationship: RelationshipHook | None,
                 clock: Callable[[], datetime],
                 registry: protocol.MessageRegistry, types: tuple[str, ...],
                 forward: Sequence[Target] = ()) -> None:
        self._db = db
        self._key = key
        self.name = name
        self.clock = clock
        # Narrowing never drops the types every vendor must take (PROTOCOL.md §7).
        types = tuple(dict.fromkeys((*types, *REQUIRED_TYPES)))
        self.types = types
        self.sink: CrmSink = sink if sink is not None else SqliteCrm()
        self.crm = CrmView(db, key.did, mapping)
        self.core = InboxCore(key, clock=clock, registry=registry, accepts=types)
        #: Forwarding to the vendor's own systems (vendor_adapter.forward).
        self.forwarding = Forwarding(db, key.did, forward, mapping=mapping)
        self.ledger = Ledger(key.did, self.sink, accept_relationship,
                             forward=self.forwarding if forward else None)
        # The file's periodic purge goes by the clocks of the vendors open on it.
        self._purge_clock = clock
        db.add_clock(clock)
        self._closed = False

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        name: str | None = None,
        passphrase: str | None = None,
        sink: CrmSink | None = None,
        mapping: FieldMapping = DEFAULT,
        accept_relationship: RelationshipHook | None = None,
        clock: Callable[[], datetime] = _utcnow,
        registry: protocol.MessageRegistry = protocol.CORE_REGISTRY,
        types: tuple[str, ...] = SUPPORTED_TYPES,
        create: bool = True,
        forward: Sequence[Target] = (),
    ) -> Vendor:
        """Open the vendor named ``name`` in the database at ``path``; create the
        database, the schema and the identity (a sealed key) if missing.

        ``path`` is a SQLite file, or a PostgreSQL URI
        (``postgresql://user@host:5432/db``; the password per libpq: the URI,
        ``PGPASSWORD`` or ``~/.pgpass``; it is never shown in messages). On
        PostgreSQL the database must exist; the schema is created in it.

        ``name`` may be omitted when the file holds one vendor (or none yet).
        With ``create=False`` nothing is created: a file that is missing, empty or
        holds no vendor is refused before anything is written to it
        (``NotAVendorDatabase``), and a missing name is ``VendorNotFound``.
        Names match case-insensitively (``"bikes4u"`` opens ``"Bikes4U"``). A
        passphrase that cannot be UTF-8 is ``PassphraseError``, before any file
        is touched.

        ``forward``: targets (``vendor_adapter.forward.Webhook``, ``Scim``) that
        hear every CRM event; their relay starts with the first inbox request, or
        with ``await vendor.forwarding.start()``. Raises ``ForwardError`` for a
        target given twice.
        """
        if passphrase is not None:
            try:
                passphrase.encode("utf-8")
            except UnicodeEncodeError:  # e.g. bytes from the environment kept as surrogates
                raise PassphraseError("the passphrase is not valid UTF-8 text") from None
        db = open_store(path, create=create)
        try:
            key, actual = open_identity(db, name=name, passphrase=passphrase, create=create)
        except BaseException:
            db.release()
            raise
        try:
            return cls(db, key, actual, sink=sink, mapping=mapping,
                       accept_relationship=accept_relationship, clock=clock,
                       registry=registry, types=types, forward=forward)
        except BaseException:
            db.release()
            raise

    # --- identity ----------------------------------------------------------------

    @property
    def did(self) -> str:
        return self._key.did

    @property
    def public_key(self) -> protocol.PublicKey:
        return self._key.public

    @property
    def db_path(self) -> str:
        """The database: a file path, or the PostgreSQL URI without its password."""
        return self._db.path

    def discovery(self, inbox_url: str) -> protocol.DiscoveryDocument:
        """The document served at /.well-known/vrm, naming ``inbox_url`` (absolute)."""
        return protocol.DiscoveryDocument(
            vrm=["1"], id=self.did, name=self.name[:200], inbox=inbox_url,
            keys=[self._key.public.to_jwk()], types=list(self.types))

    # --- the inbox -----------------------------------------------------------------

    async def handle(self, body: bytes, content_type: str | None) -> Response:
        """Answer one inbox request. Never raises (a framework binding calls this)."""
        if self._closed:
            return UNAVAILABLE
        self.forwarding.ensure_started()
        return await self.core.handle_async(body, content_type, self._apply)

    def handle_sync(self, body: bytes, content_type: str | None) -> Response:
        """The same, blocking (for tests, fuzzing and WSGI-style bindings)."""
        if self._closed:
            return UNAVAILABLE
        response = self.core.handle(
            body, content_type, lambda item: self._db.writer.run_sync(
                lambda conn: self.ledger.process(conn, item)))
        self.forwarding.notify()
        return response

    async def _apply(self, item: Verified) -> Outcome:
        outcome = await self._db.writer.run(lambda conn: self.ledger.process(conn, item))
        if outcome.status == "accepted":
            self.forwarding.notify()  # committed: the relay may deliver its events
        return outcome

    # --- offers ----------------------------------------------------------------------

    async def make_offer(self, lead_id: int | str, *, summary: str, price: str = "199.00",
                         currency: str = "EUR", valid_until: datetime | str | None = None,
                         url: str | None = None) -> str:
        """Sign an offer for a lead, queue it for the agent's messages.fetch, record it
        (see :meth:`offers`) and mark the lead ``offered``. Returns the offer's
        message id.

        ``price`` is a decimal string (``"7.50"``), ``currency`` an ISO 4217 code
        (upper-cased here), ``valid_until`` a datetime or RFC 3339 UTC text after
        now, ``url`` an http(s) address. Raises :class:`OfferError` with one
        sentence saying what to change (``LeadNotFound`` for an unknown lead)."""
        self._check_open()
        return await self._db.writer.run(self._offer_job(
            lead_id, summary, price, currency, valid_until, url))

    def make_offer_sync(self, lead_id: int | str, *, summary: str, price: str = "199.00",
                        currency: str = "EUR", valid_until: datetime | str | None = None,
                        url: str | None = None) -> str:
        self._check_open()
        return self._db.writer.run_sync(self._offer_job(
            lead_id, summary, price, currency, valid_until, url))

    def _offer_job(self, lead_id: int | str, summary: str, price: str, currency: str,
                   valid_until: datetime | str | None, url: str | None) -> Callable[[Any], str]:
        lead_number = _lead_number(lead_id)
        body = check_offer(summary=summary, price=price, currency=currency,
                           valid_until=valid_until, url=url, now=self.clock())

        def job(conn: Any) -> str:
            row = conn.execute("SELECT did, message_id, status FROM lead WHERE vendor = ? "
                               "AND id = ?", (self.did, lead_number)).fetchone()
            if row is None:
                raise LeadNotFound(f"there is no lead {lead_id} for vendor {self.name!r}")
            did, intent_id, status = row
            self.ledger.lock(conn, did)
            status = conn.execute("SELECT status FROM lead WHERE id = ?",
                                  (lead_number,)).fetchone()[0]
            if status == "cancelled":
                raise OfferError(f"lead {lead_id} was cancelled by the person")
            if self.ledger.relationship_state(conn, did) != "active":
                raise OfferError(f"the relationship behind lead {lead_id} has ended")
            now = self.clock()
            offer = protocol.Offer(id=protocol.new_message_id(), sender=self.did, to=did,
                                   created=now, expires=now + OFFER_LIFETIME,
                                   thread=intent_id, body=body)
            jws = protocol.sign(offer, self._key)
            self.ledger.queue(conn, did, offer, jws)
            record_offer(conn, self.did, did, lead_number, offer)
            conn.execute("UPDATE lead SET status = 'offered', offer_id = ?, updated = ? "
                         "WHERE id = ?", (offer.id, protocol.format_time(now), lead_number))
            return offer.id

        return job

    def offers(self, *, lead_id: int | str | None = None) -> list[dict[str, Any]]:
        """Every offer made (newest first), or those for ``lead_id``: ``{id, lead_id,
        summary, amount, currency, valid_until, url, created, expires, fetched,
        withdrawn, status}``, status being ``waiting``, ``fetched``, ``withdrawn``,
        ``expired`` or ``dropped`` (see ``vendor_adapter._offers``)."""
        self._check_open()
        if lead_id is None:
            rows = self._db.read(list_sql(lead=False), (self.did,))
        else:
            rows = self._db.read(list_sql(lead=True), (self.did, _lead_number(lead_id)))
        return list_offers(rows, self.clock())

    async def withdraw_offer(self, offer_id: str) -> dict[str, Any]:
        """Withdraw an offer the person's agent has not fetched yet (its id, or a
        unique start of it): it is never delivered, and its lead is open again.
        Returns the offer (see :meth:`offers`). Raises :class:`OfferError` for an
        offer already fetched, withdrawn, expired or unknown."""
        self._check_open()
        return await self._db.writer.run(
            lambda conn: withdraw(conn, self.did, offer_id, self.clock(),
                                 lock=self.ledger.lock))

    def withdraw_offer_sync(self, offer_id: str) -> dict[str, Any]:
        self._check_open()
        return self._db.writer.run_sync(
            lambda conn: withdraw(conn, self.did, offer_id, self.clock(),
                                 lock=self.ledger.lock))

    # --- lifecycle ---------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError(f"vendor {self.name!r} is closed")

    def close(self) -> None:
        """Release the database (closed once the last vendor on it closes). Idempotent.

        The forwarding relay is cancelled; ``await vendor.forwarding.stop()``
        before ``close()`` waits for it to end. Undelivered events stay queued
        and are delivered when the vendor is opened (and started) again."""
        if not self._closed:
            self._closed = True
            self.forwarding.cancel()
            self._db.remove_clock(self._purge_clock)
            self._db.release()

    def __enter__(self) -> Vendor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Vendor({self.name!r}, {self.did!r})"


def _lead_number(lead_id: int | str) -> int:
    if isinstance(lead_id, bool):
        raise LeadNotFound(f"{lead_id!r} is not a lead id")
    if isinstance(lead_id, int):
        return lead_id
    text = str(lead_id).strip()
    if text.isascii() and text.isdigit() and len(text) <= 18:
        return int(text)
    raise LeadNotFound(f"{str(lead_id)[:40]!r} is not a lead id (lead ids are numbers)")
