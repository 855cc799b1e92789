"""The forwarding queue: every SQL statement about it, and nothing else.

Three tables (created by ``_schema``'s migration ``0004_forward_queue`` from
``SCHEMA``):

- ``vrm_forward_queue``: one row per event per target, written in the
  transaction of the CRM change it describes (the transactional outbox).
  ``seq`` orders the events; ``body`` is exactly what the target is sent;
  ``next_attempt`` (milliseconds since the Unix epoch) says when it is due;
  ``failed`` is set once the retry schedule ran out. A row is deleted as soon
  as its delivery is recorded: the queue holds only what is still owed.
- ``vrm_forward_target``: one row per target (its URL): counters, the last
  error, and ``disabled`` once it answered 410 Gone.
- ``vrm_forward_resource``: the target's own id for a contact (the SCIM
  resource id that POST /Users returned).

The statements are plain SQL with ``?`` parameters and the portable forms
(``ON CONFLICT ... DO NOTHING/UPDATE``, no ``INSERT OR ...``, no JSON
functions, times as integers), so that another store (PostgreSQL) needs only
its placeholder style and ``SCHEMA``'s identity column. Every function takes
a DB-API connection (``conn.execute(sql, params)``) inside the caller's
transaction: the writer's, for the writes.

Ordering: the head of a (target, contact) pair is its undelivered row with
the lowest ``seq``; only heads are ever due, so a contact's later event waits
while an earlier one is failing (and after it failed for good, until
``retry``). A single relay per database delivers them; several relays would
need a claim (``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["SCHEMA", "QueuedEvent", "Due", "TargetStatus"]

#: The tables, as created by the 0004 migration. Frozen: change them with a new
#: migration, never here. (PostgreSQL: ``seq BIGINT GENERATED ALWAYS AS IDENTITY
#: PRIMARY KEY``; the rest as written.)
SCHEMA = """
CREATE TABLE vrm_forward_target (
    vendor TEXT NOT NULL, target TEXT NOT NULL, kind TEXT NOT NULL,
    delivered BIGINT NOT NULL DEFAULT 0, last_delivered BIGINT,
    last_error TEXT, last_failure BIGINT, disabled TEXT,
    PRIMARY KEY (vendor, target));
CREATE TABLE vrm_forward_queue (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    vendor TEXT NOT NULL, target TEXT NOT NULL, event_id TEXT NOT NULL,
    type TEXT NOT NULL, did TEXT NOT NULL, body TEXT NOT NULL, created BIGINT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0, next_attempt BIGINT NOT NULL,
    last_error TEXT, failed BIGINT,
    UNIQUE (vendor, target, event_id));
CREATE INDEX vrm_forward_queue_head ON vrm_forward_queue (vendor, target, did, seq);
CREATE INDEX vrm_forward_queue_due ON vrm_forward_queue (vendor, next_attempt);
CREATE TABLE vrm_forward_resource (
    vendor TEXT NOT NULL, target TEXT NOT NULL, did TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    PRIMARY KEY (vendor, target, did));
"""


@dataclass(frozen=True, slots=True)
class QueuedEvent:
    """One event for one target, as the writer puts it in the queue."""

    target: str
    event_id: str
    type: str
    did: str
    body: str


@dataclass(frozen=True, slots=True)
class Due:
    """A queue row that is due now: the head of its (target, contact) pair."""

    seq: int
    target: str
    event_id: str
    type: str
    did: str
    body: str
    attempts: int
    #: The target's id for the contact (SCIM resource id), if it has one.
    resource_id: str | None


@dataclass(frozen=True, slots=True)
class TargetStatus:
    """What ``vrm-vendor forward status`` shows for one target. Times are
    milliseconds since the Unix epoch, or None."""

    target: str
    kind: str
    queued: int
    delivered: int
    failing: int
    failed: int
    last_error: str | None
    last_failure: int | None
    next_attempt: int | None
    disabled: str | None


# --- written by the CRM's transaction ------------------------------------------------

def register_targets(conn: Any, vendor: str, targets: Iterable[tuple[str, str]]) -> None:
    """Make sure each (target URL, kind) has its row (so that status lists it)."""
    conn.cursor().executemany(
        "INSERT INTO vrm_forward_target (vendor, target, kind) VALUES (?, ?, ?) "
        "ON CONFLICT (vendor, target) DO NOTHING",
        [(vendor, target, kind) for target, kind in targets])


def enqueue(conn: Any, vendor: str, events: Sequence[QueuedEvent], *, now_ms: int) -> None:
    """Queue ``events``, due at once. An event id already queued for a target is
    not queued again (an offer fetched twice is one ``offer.fetched``)."""
    conn.cursor().executemany(
        "INSERT INTO vrm_forward_queue (vendor, target, event_id, type, did, body, created, "
        "next_attempt) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (vendor, target, event_id) DO NOTHING",
        [(vendor, e.target, e.event_id, e.type, e.did, e.body, now_ms, now_ms) for e in events])


def drop_contact(conn: Any, vendor: str, did: str, *, keep: Iterable[str]) -> None:
    """On an erasure: delete the contact's queued events other than ``keep``
    (event ids), since they carry the personal data being erased."""
    kept = list(keep)
    marks = ", ".join("?" for _ in kept) or "''"
    conn.execute(f"DELETE FROM vrm_forward_queue WHERE vendor = ? AND did = ? "
                 f"AND event_id NOT IN ({marks})", (vendor, did, *kept))


# --- read by the relay ---------------------------------------------------------------

def due(conn: Any, vendor: str, targets: Sequence[str], *, now_ms: int, limit: int
        ) -> list[Due]:
    """Up to ``limit`` rows due by ``now_ms`` for the enabled ``targets``: only the
    head of each (target, contact), never one behind an undelivered row."""
    if not targets:
        return []
    marks = ", ".join("?" for _ in targets)
    rows = conn.execute(
        "SELECT q.seq, q.target, q.event_id, q.type, q.did, q.body, q.attempts, r.resource_id "
        "FROM vrm_forward_queue AS q "
        "JOIN vrm_forward_target AS t ON t.vendor = q.vendor AND t.target = q.target "
        "LEFT JOIN vrm_forward_resource AS r ON r.vendor = q.vendor AND r.target = q.target "
        "AND r.did = q.did "
        f"WHERE q.vendor = ? AND q.target IN ({marks}) AND t.disabled IS NULL "
        "AND q.failed IS NULL AND q.next_attempt <= ? "
        "AND q.seq = (SELECT MIN(h.seq) FROM vrm_forward_queue AS h WHERE h.vendor = q.vendor "
        "AND h.target = q.target AND h.did = q.did) "
        "ORDER BY q.next_attempt, q.seq LIMIT ?",
        (vendor, *targets, now_ms, limit)).fetchall()
    return [Due(*row) for row in rows]


def next_due(conn: Any, vendor: str, targets: Sequence[str]) -> int | None:
    """When the earliest head of the enabled ``targets`` falls due (ms), or None
    (rows waiting behind a head are not counted: they are not due on their own)."""
    if not targets:
        return None
    marks = ", ".join("?" for _ in targets)
    row = conn.execute(
        "SELECT MIN(q.next_attempt) FROM vrm_forward_queue AS q "
        "JOIN vrm_forward_target AS t ON t.vendor = q.vendor AND t.target = q.target "
        f"WHERE q.vendor = ? AND q.target IN ({marks}) AND t.disabled IS NULL "
        "AND q.failed IS NULL "
        "AND q.seq = (SELECT MIN(h.seq) FROM vrm_forward_queue AS h WHERE h.vendor = q.vendor "
        "AND h.target = q.target AND h.did = q.did)", (vendor, *targets)).fetchone()
    return row[0] if row else None


# --- written by the relay, after an attempt --------------------------------------------

def delivered(conn: Any, vendor: str, row: Due, *, now_ms: int,
              resource_id: str | None = None, forget_resource: bool = False) -> None:
    """The target took ``row``: delete it, count it, and keep or forget the target's
    id for the contact."""
    conn.execute("DELETE FROM vrm_forward_queue WHERE seq = ?", (row.seq,))
    conn.execute("UPDATE vrm_forward_target SET delivered = delivered + 1, last_delivered = ? "
                 "WHERE vendor = ? AND target = ?", (now_ms, vendor, row.target))
    if forget_resource:
        conn.execute("DELETE FROM vrm_forward_resource WHERE vendor = ? AND target = ? "
                     "AND did = ?", (vendor, row.target, row.did))
    elif resource_id is not None:
        conn.execute(
            "INSERT INTO vrm_forward_resource (vendor, target, did, resource_id) "
            "VALUES (?, ?, ?, ?) ON CONFLICT (vendor, target, did) "
            "DO UPDATE SET resource_id = excluded.resource_id",
            (vendor, row.target, row.did, resource_id))


def attempt_failed(conn: Any, vendor: str, row: Due, *, error: str, now_ms: int,
                   next_attempt_ms: int | None) -> None:
    """An attempt failed: due again at ``next_attempt_ms``, or failed for good (None)."""
    if next_attempt_ms is None:
        conn.execute("UPDATE vrm_forward_queue SET attempts = attempts + 1, last_error = ?, "
                     "failed = ? WHERE seq = ?", (error, now_ms, row.seq))
    else:
        conn.execute("UPDATE vrm_forward_queue SET attempts = attempts + 1, last_error = ?, "
                     "next_attempt = ? WHERE seq = ?", (error, next_attempt_ms, row.seq))
    conn.execute("UPDATE vrm_forward_target SET last_error = ?, last_failure = ? "
                 "WHERE vendor = ? AND target = ?", (error, now_ms, vendor, row.target))


def disable(conn: Any, vendor: str, target: str, *, reason: str, now_ms: int) -> None:
    """The target answered 410 Gone: deliver nothing more to it until ``retry``."""
    conn.execute("UPDATE vrm_forward_target SET disabled = ?, last_error = ?, last_failure = ? "
                 "WHERE vendor = ? AND target = ?", (reason, reason, now_ms, vendor, target))


# --- the operator's commands -------------------------------------------------------------

def retry(conn: Any, vendor: str, *, now_ms: int, target: str | None = None) -> int:
    """Make every failing or failed event (of ``target``, or of all) due now, with a
    fresh schedule, and enable the target(s) again. Returns how many events."""
    where, params = "vendor = ?", [vendor]
    if target is not None:
        where += " AND target = ?"
        params.append(target)
    cursor = conn.execute(
        f"UPDATE vrm_forward_queue SET next_attempt = ?, attempts = 0, failed = NULL "
        f"WHERE {where} AND (attempts > 0 OR failed IS NOT NULL)", (now_ms, *params))
    conn.execute(f"UPDATE vrm_forward_target SET disabled = NULL WHERE {where}", params)
    return max(cursor.rowcount, 0)


def targets(conn: Any, vendor: str) -> list[str]:
    return [row[0] for row in conn.execute(
        "SELECT target FROM vrm_forward_target WHERE vendor = ? ORDER BY target", (vendor,))]


def status(conn: Any, vendor: str) -> list[TargetStatus]:
    """Per target: queued (owed, not failed), delivered (counted), failing (queued with
    a failed attempt), failed (schedule ran out), last error, next attempt."""
    rows = conn.execute(
        "SELECT t.target, t.kind, t.delivered, t.last_error, t.last_failure, t.disabled, "
        "(SELECT COUNT(*) FROM vrm_forward_queue AS q WHERE q.vendor = t.vendor "
        " AND q.target = t.target AND q.failed IS NULL), "
        "(SELECT COUNT(*) FROM vrm_forward_queue AS q WHERE q.vendor = t.vendor "
        " AND q.target = t.target AND q.failed IS NULL AND q.attempts > 0), "
        "(SELECT COUNT(*) FROM vrm_forward_queue AS q WHERE q.vendor = t.vendor "
        " AND q.target = t.target AND q.failed IS NOT NULL), "
        "(SELECT MIN(q.next_attempt) FROM vrm_forward_queue AS q WHERE q.vendor = t.vendor "
        " AND q.target = t.target AND q.failed IS NULL) "
        "FROM vrm_forward_target AS t WHERE t.vendor = ? ORDER BY t.target",
        (vendor,)).fetchall()
    return [TargetStatus(target=r[0], kind=r[1], delivered=r[2], last_error=r[3],
                         last_failure=r[4], disabled=r[5], queued=r[6], failing=r[7],
                         failed=r[8], next_attempt=r[9]) for r in rows]
