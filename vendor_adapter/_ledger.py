"""The relationship rules, exactly-once processing and the outbox.

``Ledger.process`` runs in the writer thread, inside the batch transaction,
once per verified message. Its rules, in order:

1. (sender, id) seen before            -> ``duplicate`` with the original record
2. the relationship ended              -> ``rejected`` unknown-relationship, HTTP 410,
                                          except a relationship.end with
                                          ``erase: true`` while the data is not
                                          erased yet (the person may still ask)
3. no relationship, not a request      -> ``rejected`` unknown-relationship, 422
4. a new relationship.request          -> the vendor's hook may refuse it
5. messages.fetch                      -> pending, unexpired messages after the cursor
6. anything else                       -> the CRM sink writes it

A relationship is ``active``, ``ended`` or ``erased``. A relationship.request
from a DID whose relationship is active is a re-statement of what the person
shares: the sink replaces the profile and terms with exactly what it states,
and the hook is not asked again (the relationship exists already). On
relationship.end the messages still queued for that DID are dropped: nobody
can fetch them any more. On an erasure the relationship's record becomes the
erasure's own record reference, so that the request's (which may name the
person in the vendor's systems, like a customer id) is not kept.

A messages.fetch marks the offers it hands out as fetched (``vrm_offer``), in
its own transaction: an offer fetched can no longer be withdrawn, and one
withdrawn (deleted from the outbox by the same writer) is never handed out.

The seen row is written in the same transaction as the CRM change, so a
message has exactly one effect even if the process dies between the two.
Across processes (several inbox workers on one PostgreSQL database) every
message of one relationship is judged under that relationship's lock
(``Ledger.lock``, held until the transaction ends), so two messages racing
give one of their serial orders, and the same message posted twice at once
is ``accepted`` once and ``duplicate`` once; the (vendor, sender, message
id) primary key of ``vrm_seen`` stands behind it.

The rules are written once, against the store interface (``_store.Tx``): the
same code runs on SQLite and on PostgreSQL.
Rejections are not remembered: they changed nothing, and the same message
sent again (say, after its relationship.request arrived) is judged afresh.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import protocol

from ._core import Outcome, Verified
from ._errors import OfferError
from ._sink import CrmEvent, CrmSink
from ._store import Tx

__all__ = ["Ledger", "RelationshipHook", "FETCH_BUDGET", "GONE", "purge_expired"]

#: Decides on a new relationship: True/None accepts; False or a reason refuses.
#: It runs in the writer thread, inside the batch transaction: keep it quick,
#: and do not call back into the vendor from it.
RelationshipHook = Callable[[protocol.RelationshipRequest], "bool | str | None"]
#: Bytes of queued JWS per messages.fetch receipt. Base64url adds a third, and
#: the receipt's own envelope and signature stay well under the rest of the
#: 64 KiB a message may be (protocol.MAX_MESSAGE_BYTES).
FETCH_BUDGET = 40_000
#: The HTTP status once a relationship has ended: the resource is gone for good
#: (RFC 9110 §15.5.11); agents stop sending, as Standard Webhooks receivers do.
GONE = 410


_LOOKUP = """
    SELECT s.status, s.record, r.state, r.record, r.ended
    FROM (SELECT 1) AS one LEFT JOIN vrm_seen AS s ON s.vendor = ? AND s.sender = ? AND s.message_id = ?
    LEFT JOIN vrm_relationship AS r ON r.vendor = ? AND r.did = ?
"""


def _gone(state: str, ended: str) -> str:
    if state == "erased":
        return (f"the relationship ended at {ended} and its data was erased; "
                "start a new one with a new DID")
    return (f"the relationship ended at {ended}; it takes only relationship.end with "
            "erase: true now (to erase its data); start a new one with a new DID")


#: json.dumps(value, separators=(",", ":")), without building an encoder per call.
_json: Callable[[object], str] = json.JSONEncoder(separators=(",", ":")).encode


@dataclass
class Ledger:
    vendor: str
    sink: CrmSink
    accept_relationship: RelationshipHook | None = None
    #: Queues the forwarding events of an accepted message, in its transaction
    #: (vendor_adapter.forward.Forwarding.record); None forwards nothing.
    forward: Any = None

    def lock(self, conn: Tx, did: str) -> None:
        """Take the lock of the relationship with ``did`` (until the transaction
        ends): every change to one relationship's rows happens under it."""
        conn.lock(self.vendor, did)

    def process(self, conn: Tx, item: Verified) -> Outcome:
        message = item.message
        context = {"sender": message.sender, "message_id": message.id,
                   "message_type": message.type}
        self.lock(conn, message.sender)
        # One statement for both lookups: the writer's time is the inbox's ceiling.
        seen_status, seen_record, *rel_row = conn.execute(_LOOKUP, (
            self.vendor, message.sender, message.id, self.vendor, message.sender)).fetchone()
        if seen_status is not None:
            return Outcome("duplicate", record=json.loads(seen_record) if seen_record else None)
        rel = rel_row if rel_row[0] is not None else None
        if rel is not None and rel[0] != "active" and not (
                rel[0] == "ended" and message.type == "relationship.end"
                and message.body.erase):  # type: ignore[attr-defined]
            return Outcome.refused(protocol.UnknownRelationship(
                _gone(rel[0], rel[2]), **context), http_status=GONE)
        if rel is None and message.type != "relationship.request":
            return Outcome.refused(protocol.UnknownRelationship(
                "send relationship.request first", **context))
        if rel is None:
            self._decide(message, context)  # type: ignore[arg-type]
        if message.type == "messages.fetch":
            outcome = self._fetch(conn, message, context, item.received)  # type: ignore[arg-type]
            record = None
        else:
            relationship = json.loads(rel[1]) if rel is not None else None
            # A sink may raise protocol.InvalidMessage to reject: the writer then
            # rolls this message's savepoint back and the inbox answers 422.
            record = self.sink.apply(conn, CrmEvent(
                self.vendor, message.sender, message, item.raw, item.received, relationship))
            outcome = Outcome("accepted", record=record)
        when = protocol.format_time(item.received)
        if message.type == "relationship.request" and rel is None:
            conn.execute("INSERT INTO vrm_relationship (vendor, did, state, record, created) "
                         "VALUES (?, ?, 'active', ?, ?)",
                         (self.vendor, message.sender, _json(record or {}), when))
        elif message.type == "relationship.end":
            self._end(conn, message.sender, when, record,
                      erase=message.body.erase)  # type: ignore[attr-defined]
        if self.forward is not None:
            self.forward.record(conn, message, new=rel is None,
                                relationship=json.loads(rel[1]) if rel is not None else None,
                                record=record, received=item.received,
                                fetched=outcome.messages)
        conn.execute(
            "INSERT INTO vrm_seen (vendor, sender, message_id, expires, status, record) "
            "VALUES (?, ?, ?, ?, 'accepted', ?)",
            (self.vendor, message.sender, message.id, protocol.format_time(message.expires_at),
             _json(record) if record is not None else None))
        return outcome

    def _end(self, conn: Tx, did: str, when: str, record: object, *,
             erase: bool) -> None:
        if erase:
            conn.execute("UPDATE vrm_relationship SET state = 'erased', "
                         "ended = coalesce(ended, ?), record = ? WHERE vendor = ? AND did = ?",
                         (when, _json(record or {}), self.vendor, did))
        else:
            conn.execute("UPDATE vrm_relationship SET state = 'ended', ended = ? "
                         "WHERE vendor = ? AND did = ?", (when, self.vendor, did))
        # Fetching after the end is refused (410): what is queued can never be fetched.
        conn.execute("DELETE FROM vrm_outbox WHERE vendor = ? AND did = ?", (self.vendor, did))
        if erase:  # the offers made to the person go with the rest of their data
            conn.execute("DELETE FROM vrm_offer WHERE vendor = ? AND did = ?",
                         (self.vendor, did))

    def _decide(self, message: protocol.RelationshipRequest, context: dict[str, str]) -> None:
        if self.accept_relationship is None:
            return
        verdict = self.accept_relationship(message)
        if verdict is None or verdict is True:
            return
        reason = verdict if isinstance(verdict, str) and verdict else "the vendor declined"
        raise protocol.RelationshipRefused(reason[:1000], **context)

    def _fetch(self, conn: Tx, message: protocol.MessagesFetch,
               context: dict[str, str], now: datetime) -> Outcome:
        after = message.body.after
        if after is None:
            start = 0
        elif after.isascii() and after.isdigit() and len(after) <= 18:
            start = int(after)
        else:
            raise protocol.InvalidBody("after is not a cursor this vendor gave", **context)
        # A message past its expires would be refused by the agent (PROTOCOL.md
        # section 4, step 10): skip it. ``now`` cut to the second sorts before every
        # expiry within that second, so nothing still valid is skipped; the
        # periodic purge deletes the rest (``purge_expired``).
        rows = conn.execute(
            "SELECT seq, jws, message_id FROM vrm_outbox WHERE vendor = ? AND did = ? AND seq > ? "
            "AND expires > ? ORDER BY seq LIMIT 100",
            (self.vendor, message.sender, start, protocol.format_time(now)[:19])).fetchall()
        messages, used, cursor, handed = [], 0, start, []
        for seq, jws, message_id in rows:
            if messages and used + len(jws) > FETCH_BUDGET:
                break  # the rest comes with the next fetch, after this cursor
            messages.append(protocol.FlattenedJWS.model_validate(json.loads(jws)))
            used += len(jws)
            cursor = seq
            handed.append((protocol.format_time(now), self.vendor, message_id))
        # In this fetch's transaction: an offer handed out can no longer be withdrawn.
        conn.executemany("UPDATE vrm_offer SET fetched = ? WHERE vendor = ? "
                         "AND message_id = ? AND fetched IS NULL", handed)
        return Outcome("accepted", messages=messages, cursor=str(cursor))

    def queue(self, conn: Tx, did: str, message: protocol.Message,
              jws: bytes) -> None:
        """Put a signed message in the outbox of the relationship with ``did``, until
        it expires. A message over FETCH_BUDGET bytes could never fit a fetch page
        alone (PROTOCOL.md §6.4): it is refused with ``OfferError``."""
        if len(jws) > FETCH_BUDGET:
            raise OfferError(f"the signed message is {len(jws)} bytes; a fetch page carries "
                             f"at most {FETCH_BUDGET}")
        conn.execute("INSERT INTO vrm_outbox (vendor, did, message_id, type, jws, created, "
                     "expires) VALUES (?, ?, ?, ?, ?, ?, ?)",
                     (self.vendor, did, message.id, message.type, jws.decode(),
                      protocol.format_time(message.created),
                      protocol.format_time(message.expires_at)))

    def relationship_state(self, conn: Tx, did: str) -> str | None:
        row = conn.execute("SELECT state FROM vrm_relationship WHERE vendor = ? AND did = ?",
                           (self.vendor, did)).fetchone()
        return row[0] if row else None


def purge_expired(conn: Tx, *, now: datetime) -> None:
    """Delete what has expired by ``now``: seen message ids and queued messages.

    A message id is kept until the message expires; after that protocol.parse
    refuses the message as expired anyway, so the id can go. A queued message
    past its ``expires`` can never be accepted by the agent, so it goes too.
    ``now`` is cut to the second ("...T12:00:00" sorts before "...T12:00:00Z"
    and "...T12:00:00.5Z"): a row is purged only once its whole second is past,
    never early.
    """
    cutoff = protocol.format_time(now)[:19]
    conn.execute("DELETE FROM vrm_seen WHERE expires < ?", (cutoff,))
    conn.execute("DELETE FROM vrm_outbox WHERE expires < ?", (cutoff,))
