"""The built-in CRM: contacts, leads, activities and feedback.

``SqliteCrm`` is the default :class:`CrmSink` (it writes, in the writer
thread); ``CrmView`` reads the records back for one vendor (``vendor.crm``).
Each message type has one small handler, chosen from a table. Despite its
name (kept for compatibility) it writes to either store, SQLite or
PostgreSQL: its SQL is the one both engines share, and the few JSON
fragments that differ come from ``conn.dialect`` (``_store.Dialect``).

The records:

- ``contact``: one per relationship (pairwise DID). A ``relationship.request``
  states what the person shares: the first one creates the contact, and one
  from a DID whose relationship is active replaces the profile and the terms
  with exactly what it states (fields it leaves out are cleared: the person
  stopped sharing them). ``contact.update`` merge-patches the profile.
- ``lead``: one per intent; ``open``, ``offered`` (an offer was made) or
  ``cancelled`` (by intent.cancel, or because the relationship ended).
- ``activity``: one per accepted message *that reaches the CRM*: its type,
  message id, time received and the raw JWS as evidence. ``messages.fetch`` is
  not among them: it is transport (an agent's poll, every few minutes), not
  something the person told the vendor, and it would bury the log; like every
  message it is deduplicated in ``vrm_seen``.
- ``feedback``: the score and its NPS class.

Erasure (``relationship.end`` with ``erase: true``, GDPR art. 17) keeps only a
tombstone and the vendor's evidence that it was asked (see ``SqliteCrm._erase``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import protocol

from ._database import loads_json
from ._mapping import DEFAULT, FieldMapping, flatten
from ._sink import CrmEvent, RecordRef
from ._store import Store, Tx

__all__ = ["SqliteCrm", "CrmView", "nps_class", "TOMBSTONE_COLUMNS"]

#: Profile columns, in the order of protocol.PROFILE_FIELDS (address flattened).
_PROFILE_COLUMNS: dict[str, str] = {
    path: DEFAULT.tables["contact"][path]
    for path in ("given_name", "family_name", "email", "phone",
                 "postal_address.street_address", "postal_address.locality",
                 "postal_address.region", "postal_address.postal_code",
                 "postal_address.country", "language")
}
_ADDRESS_COLUMNS = tuple(c for p, c in _PROFILE_COLUMNS.items() if p.startswith("postal_address."))
#: What an erasure keeps of a contact: the tombstone. Every other column is reset
#: to NULL (or its empty default), including any a later migration adds.
TOMBSTONE_COLUMNS = ("id", "vendor", "did", "status", "erased", "created", "updated", "ended")
_JSON_CONTACT = {"channels": None, "terms": None, "message_counts": {},
                 "intent_categories": [], "shared_fields": []}
_BOOL_CONTACT = ("marketing", "erased")
#: The profile columns, then shared_fields (as stored).
_PROFILE_SELECT = ", ".join((*_PROFILE_COLUMNS.values(), "shared_fields"))


def nps_class(score: int) -> str:
    """Net promoter class: promoter 9-10, passive 7-8, detractor 0-6."""
    return "promoter" if score >= 9 else "passive" if score >= 7 else "detractor"


#: json.dumps(value, separators=(",", ":"), ensure_ascii=False), without building
#: an encoder per call.
_json: Callable[[Any], str] = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


class SqliteCrm:
    """The built-in CRM sink."""

    def __init__(self, *, customer_id: Callable[[int], str] = lambda n: f"C{n:06d}") -> None:
        #: How the vendor's own customer ids are made from the contact's row id.
        self.customer_id = customer_id
        self._handlers: dict[str, Callable[[Tx, CrmEvent, int], RecordRef]] = {
            "contact.update": self._contact_update,
            "intent": self._intent,
            "intent.cancel": self._intent_cancel,
            "preferences.update": self._preferences,
            "feedback": self._feedback,
            "relationship.end": self._end,
        }

    # --- CrmSink -----------------------------------------------------------------

    def apply(self, conn: Tx, event: CrmEvent) -> RecordRef:
        received = protocol.format_time(event.received)
        if event.message.type == "relationship.request":
            contact_id, ref = self._request(conn, event, received)
        else:
            contact_id = self._contact_id(conn, event)
            handler = self._handlers.get(event.message.type)
            ref = handler(conn, event, contact_id) if handler else {"contact": contact_id}
        # After an erasure, the end request itself is kept (with its JWS): it is
        # the vendor's evidence that it was asked to erase.
        jws = event.raw.decode("utf-8", "replace")
        conn.execute(
            "INSERT INTO activity (vendor, contact_id, did, type, message_id, received, jws) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (event.vendor, contact_id, event.sender, event.message.type, event.message.id,
             received, jws))
        if ref.get("erased") is not True:  # a tombstone keeps no message counts
            self._count(conn, contact_id, event.message.type, received)
        return ref

    def _contact_id(self, conn: Tx, event: CrmEvent) -> int:
        if event.relationship and isinstance(event.relationship.get("contact"), int):
            return event.relationship["contact"]  # type: ignore[return-value]
        row = conn.execute("SELECT id FROM contact WHERE vendor = ? AND did = ?",
                           (event.vendor, event.sender)).fetchone()
        if row is None:
            raise protocol.UnknownRelationship(
                "there is no contact for the sender", sender=event.sender,
                message_id=event.message.id, message_type=event.message.type)
        return row[0]

    def _count(self, conn: Tx, contact_id: int, type_: str, when: str) -> None:
        counts, params = conn.dialect.json_increment("message_counts", type_)
        conn.execute(f"UPDATE contact SET message_counts = {counts}, updated = ? WHERE id = ?",
                     (*params, when, contact_id))

    # --- one handler per type -------------------------------------------------------

    def _request(self, conn: Tx, event: CrmEvent, when: str
                 ) -> tuple[int, RecordRef]:
        body = event.message.body
        profile = body.profile.to_wire() if body.profile is not None else {}
        row = conn.execute("SELECT id FROM contact WHERE vendor = ? AND did = ?",
                           (event.vendor, event.sender)).fetchone()
        if row is None:
            contact_id = conn.execute(
                "INSERT INTO contact (vendor, did, created, updated) VALUES (?, ?, ?, ?) "
                "RETURNING id", (event.vendor, event.sender, when, when)).fetchone()[0]
            conn.execute("UPDATE contact SET customer_id = ? WHERE id = ?",
                         (self.customer_id(contact_id), contact_id))
        else:
            contact_id = row[0]
        # A request states the whole of what the person shares: the profile and
        # the terms it names replace the old ones (a repeated request from an
        # active DID is how the person changes what it shares).
        self._patch_profile(conn, contact_id, profile, replace=True)
        if body.terms is not None or row is not None:
            conn.execute("UPDATE contact SET terms = ? WHERE id = ?",
                         (_json(list(body.terms)) if body.terms is not None else None,
                          contact_id))
        customer_id = conn.execute("SELECT customer_id FROM contact WHERE id = ?",
                                   (contact_id,)).fetchone()[0]
        return contact_id, {"contact": contact_id, "customer_id": customer_id}

    def _patch_profile(self, conn: Tx, contact_id: int,
                       changes: dict[str, Any], *, replace: bool = False) -> None:
        """JSON Merge Patch (RFC 7386) of the profile onto the contact's columns."""
        flat = flatten(changes)
        if "postal_address" in changes and changes["postal_address"] is None:
            flat.pop("postal_address", None)
            flat.update({f"postal_address.{c}": None for c in
                         ("street_address", "locality", "region", "postal_code", "country")})
        sets = {_PROFILE_COLUMNS[p]: v for p, v in flat.items() if p in _PROFILE_COLUMNS}
        if replace:  # a (re-)request states the whole shared profile
            sets = {column: sets.get(column) for column in _PROFILE_COLUMNS.values()}
        # The profile columns as they are now, and shared_fields as it was: one
        # statement (UPDATE ... RETURNING).
        if sets:
            assignments = ", ".join(f"{column} = ?" for column in sets)
            row = conn.execute(f"UPDATE contact SET {assignments} WHERE id = ? "
                               f"RETURNING {_PROFILE_SELECT}", (*sets.values(), contact_id)
                               ).fetchone()
        else:
            row = conn.execute(f"SELECT {_PROFILE_SELECT} FROM contact WHERE id = ?",
                               (contact_id,)).fetchone()
        # Which profile fields the person shares: those that hold a value now.
        values = dict(zip(_PROFILE_COLUMNS.values(), row))
        shared = [f for f in protocol.PROFILE_FIELDS if f != "postal_address" and values.get(f)]
        if any(values[c] for c in _ADDRESS_COLUMNS):
            shared.append("postal_address")
        shared.sort(key=protocol.PROFILE_FIELDS.index)
        shared_json = _json(shared)
        if shared_json != row[-1]:  # most changes (a new address) share the same fields
            conn.execute("UPDATE contact SET shared_fields = ? WHERE id = ?",
                         (shared_json, contact_id))

    def _contact_update(self, conn: Tx, event: CrmEvent,
                        contact_id: int) -> RecordRef:
        self._patch_profile(conn, contact_id, event.message.body.changes.to_wire())
        return {"contact": contact_id}

    def _intent(self, conn: Tx, event: CrmEvent, contact_id: int) -> RecordRef:
        body, when = event.message.body, protocol.format_time(event.received)
        budget = body.budget
        (lead_id,) = conn.execute(
            "INSERT INTO lead (vendor, contact_id, did, message_id, summary, category, quantity,"
            " budget_max, budget_currency, needed_by, location, valid_until, status, created,"
            " updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'open', ?, ?) RETURNING id",
            (event.vendor, contact_id, event.sender, event.message.id, body.summary,
             body.category, body.quantity, budget.max if budget else None,
             budget.currency if budget else None,
             body.needed_by.isoformat() if body.needed_by else None,
             _json(body.location.to_wire()) if body.location else None,
             protocol.format_time(body.valid_until) if body.valid_until else None, when, when)
        ).fetchone()
        if body.category:
            categories, params = conn.dialect.json_sorted_union("intent_categories",
                                                                body.category)
            conn.execute(f"UPDATE contact SET intent_categories = {categories} WHERE id = ?",
                         (*params, contact_id))
        return {"contact": contact_id, "lead": lead_id}

    def _intent_cancel(self, conn: Tx, event: CrmEvent,
                       contact_id: int) -> RecordRef:
        row = conn.execute("SELECT id FROM lead WHERE vendor = ? AND did = ? AND message_id = ?",
                           (event.vendor, event.sender, event.message.thread)).fetchone()
        if row is None:
            raise protocol.InvalidBody(
                "thread names no intent this vendor received from you", sender=event.sender,
                message_id=event.message.id, message_type=event.message.type)
        conn.execute("UPDATE lead SET status = 'cancelled', updated = ? WHERE id = ?",
                     (protocol.format_time(event.received), row[0]))
        return {"contact": contact_id, "lead": row[0]}

    def _preferences(self, conn: Tx, event: CrmEvent,
                     contact_id: int) -> RecordRef:
        body = event.message.body
        if body.channels is not None:
            old = conn.execute("SELECT channels FROM contact WHERE id = ?",
                               (contact_id,)).fetchone()[0]
            channels = {**loads_json(old, {}), **body.channels.to_wire()}
            conn.execute("UPDATE contact SET channels = ? WHERE id = ?",
                         (_json(channels), contact_id))
        if body.marketing is not None:
            conn.execute("UPDATE contact SET marketing = ? WHERE id = ?",
                         (int(body.marketing), contact_id))
        return {"contact": contact_id}

    def _feedback(self, conn: Tx, event: CrmEvent, contact_id: int) -> RecordRef:
        body = event.message.body
        klass = nps_class(body.score)
        (feedback_id,) = conn.execute(
            "INSERT INTO feedback (vendor, contact_id, did, message_id, score, nps_class,"
            " subject, comment, received) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (event.vendor, contact_id, event.sender, event.message.id, body.score, klass,
             body.subject, body.comment, protocol.format_time(event.received))).fetchone()
        conn.execute("UPDATE contact SET feedback_class = ? WHERE id = ?", (klass, contact_id))
        return {"contact": contact_id, "feedback": feedback_id}

    def _end(self, conn: Tx, event: CrmEvent, contact_id: int) -> RecordRef:
        """End the relationship: the contact is ``ended`` and its open or offered
        leads are ``cancelled`` (the intents are void). With ``erase``, erase too.

        The ledger admits one relationship.end with ``erase: true`` after an end
        without it (the person may ask for erasure later): the contact keeps the
        time it first ended."""
        when = protocol.format_time(event.received)
        conn.execute("UPDATE contact SET status = 'ended', ended = coalesce(ended, ?) "
                     "WHERE id = ?", (when, contact_id))
        if not event.message.body.erase:
            conn.execute("UPDATE lead SET status = 'cancelled', updated = ? WHERE vendor = ? "
                         "AND did = ? AND status IN ('open', 'offered')",
                         (when, event.vendor, event.sender))
            return {"contact": contact_id, "erased": False}
        self._erase(conn, event, contact_id, when)
        return {"contact": contact_id, "erased": True}

    @staticmethod
    def _erase(conn: Tx, event: CrmEvent, contact_id: int, when: str) -> None:
        """Erase the person's data (GDPR art. 17), keeping a tombstone and evidence.

        What stays:

        - the contact row as a tombstone: ``TOMBSTONE_COLUMNS`` (DID, status,
          created, updated, ended, ``erased`` = 1). Every other column, the
          vendor's own ``customer_id`` included, goes back to NULL or its empty
          default (``{}``, ``[]``): the profile, terms, preferences, consent,
          message counts, intent categories, feedback class, shared fields;
        - the activity rows, as type, message id and time received, without
          their JWS; except the relationship.end that asked for the erasure,
          which keeps its JWS as the vendor's evidence that it was asked.

        What goes: the contact's leads and feedback rows are deleted (not
        blanked: a row kept "without personal columns" would still say what the
        person wanted, when, and for how much). The ``customer_id`` is also taken
        out of the record references kept for deduplication (``vrm_seen``); the
        ledger drops the relationship's outbox and replaces its record.
        """
        resets = []
        for column, notnull, default in conn.dialect.columns(conn, "contact"):
            if column in TOMBSTONE_COLUMNS:
                continue
            # The schema's own default expression (our schema, not input): '{}', '[]'.
            resets.append(f"{column} = {default if notnull and default else 'NULL'}")
        conn.execute(f"UPDATE contact SET {', '.join(resets)}, erased = 1, updated = ? "
                     "WHERE id = ?", (when, contact_id))
        conn.execute("UPDATE activity SET jws = NULL WHERE contact_id = ? AND jws IS NOT NULL",
                     (contact_id,))
        conn.execute("DELETE FROM lead WHERE vendor = ? AND did = ?", (event.vendor, event.sender))
        conn.execute("DELETE FROM feedback WHERE contact_id = ?", (contact_id,))
        without, params = conn.dialect.json_without("record", "customer_id")
        conn.execute(f"UPDATE vrm_seen SET record = {without} "
                     "WHERE vendor = ? AND sender = ? AND record LIKE ?",
                     (*params, event.vendor, event.sender, '%"customer_id"%'))


class CrmView:
    """Read access to one vendor's built-in CRM records, as lists of dicts."""

    def __init__(self, db: Store, vendor: str, mapping: FieldMapping = DEFAULT) -> None:
        self._db = db
        self._vendor = vendor
        self.mapping = mapping

    def _map(self, kind: str, rows: list[dict[str, Any]],
             mapping: FieldMapping | None) -> list[dict[str, Any]]:
        mapping = mapping or self.mapping
        if mapping is DEFAULT:
            return rows
        inverse = {column: path for path, column in DEFAULT.tables[kind].items()}
        return [mapping.apply(kind, {inverse[c]: v for c, v in row.items() if c in inverse})
                for row in rows]

    def contacts(self, *, mapping: FieldMapping | None = None) -> list[dict[str, Any]]:
        rows = self._db.read("SELECT * FROM contact WHERE vendor = ? ORDER BY id",
                             (self._vendor,))
        for row in rows:
            del row["vendor"]
            for column, default in _JSON_CONTACT.items():
                row[column] = loads_json(row[column], default)
            for column in _BOOL_CONTACT:
                if row[column] is not None:
                    row[column] = bool(row[column])
        return self._map("contact", rows, mapping)

    def leads(self, *, mapping: FieldMapping | None = None) -> list[dict[str, Any]]:
        rows = self._db.read("SELECT * FROM lead WHERE vendor = ? ORDER BY id", (self._vendor,))
        for row in rows:
            del row["vendor"]
            row["location"] = loads_json(row["location"], None)
        return self._map("lead", rows, mapping)

    def activities(self) -> list[dict[str, Any]]:
        rows = self._db.read("SELECT * FROM activity WHERE vendor = ? ORDER BY id",
                             (self._vendor,))
        for row in rows:
            del row["vendor"]
        return rows

    def feedback(self) -> list[dict[str, Any]]:
        rows = self._db.read("SELECT * FROM feedback WHERE vendor = ? ORDER BY id",
                             (self._vendor,))
        for row in rows:
            del row["vendor"]
        return rows

    def lead(self, lead_id: int) -> dict[str, Any] | None:
        rows = self._db.read("SELECT * FROM lead WHERE vendor = ? AND id = ?",
                             (self._vendor, lead_id))
        return rows[0] if rows else None
