"""Delivering the outbox: parallel POSTs, verified receipts, retries, batched commits.

The rules (the vendor side implements the same ones):

=====================================  ==========================================
answer                                 outcome
=====================================  ==========================================
200 + receipt accepted/duplicate       delivered
422 + receipt rejected/unsupported     rejected (final), with the problem detail
410 + receipt unknown-relationship     the vendor has ended the relationship
400/401/413/415 (+ problem document)   rejected (final)
429, 5xx, no answer, timeout           retried (backoff + jitter, Retry-After)
a receipt that does not verify         retried: an unverified answer proves nothing
a receipt validly signed by another    key-changed: the vendor is held, nothing
DID (its kid names another key)        more is sent to it until the person decides
=====================================  ==========================================

A receipt counts only if it is signed by the pinned vendor key, addressed to the
pairwise DID and names the message in ``thread``. Retries resend the very
bytes stored in the outbox (same id), so a vendor that already has the message
answers ``duplicate`` and nothing reaches its CRM twice.

A receipt that claims the pinned key but does not verify proves nothing (it may
be damaged on the way), so it is retried. A receipt that verifies with the key
its kid names, another one, proves that someone else now answers at the
vendor's inbox: a key change or someone in between. PROTOCOL.md §7 says to
refuse it until the person decides, so the vendor is marked ``key-changed`` and
its queued messages are failed, never sent again: they carry personal data.

Once a relationship has ended, its queued messages fail without being sent,
except ``relationship.end``: that is how a person asks for erasure after an end
(PROTOCOL.md §5.9), so it goes to an ended relationship too.

Whatever a vendor answers (any status, header value or body) is judged into
that vendor's own verdict: :func:`classify` never raises, and text kept from an
answer is neutralised and bounded (:func:`answer_text`) before it is stored.

Two runs at once (two ``vrm`` processes on one store) never send one message
at once: each pass claims its rows (``outbox.claimed_by``/``claim_expires``)
in one ``BEGIN IMMEDIATE`` transaction and renews the claims while it works. A
killed run's claims are taken over at once when its process is known to be
gone (same host, no such PID), else when they lapse after ``Limits.claim_lease``. The
first valid receipt of a message is kept for ever; a delivered or rejected
message is never set back.

Messages to one vendor go in order (a relationship.request before the first
contact.update); different vendors are served in parallel. Results are
committed in batches, never one commit per vendor: if the process dies before a
batch is committed, those messages are simply sent again and answered
``duplicate``.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import secrets
import socket
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import protocol

from ._http import Http, HttpAnswer, Limits, TransportFailure, read_answer
from ._errors import StoreError
from ._store import Store, from_ts, ts

__all__ = ["DeliveryResult", "Progress", "Deliverer", "Exchange", "classify", "judge",
           "answer_text", "backoff", "fail_unsendable", "MAX_DETAIL_CHARS"]

#: ``progress(done, total, result)`` after each message attempted.
Progress = Callable[[int, int, "DeliveryResult"], None]

_FINAL_4XX = frozenset({400, 401, 403, 404, 405, 413, 415})
_FLUSH_EVERY = 500
_MAX_RETRY_AFTER = 86400.0


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """What happened to one outgoing message in this run."""

    message_id: str
    vendor_id: int
    vendor: str
    type: str
    #: pending (will be retried), delivered, rejected, expired or failed
    status: str
    attempts: int
    #: The vendor's problem detail, or why the attempt failed.
    detail: str | None = None
    #: accepted, duplicate, rejected or unsupported, when a verified receipt came back.
    receipt_status: str | None = None
    next_attempt: datetime | None = None
    http_status: int | None = None
    #: The vendor's new status when this answer changed it: active, refused, ended
    #: or key-changed.
    vendor_status: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id, "vendor_id": self.vendor_id, "vendor": self.vendor,
            "type": self.type, "status": self.status, "attempts": self.attempts,
            "detail": self.detail, "receipt_status": self.receipt_status,
            "next_attempt": ts(self.next_attempt) if self.next_attempt else None,
            "http_status": self.http_status, "vendor_status": self.vendor_status,
        }


@dataclass(frozen=True, slots=True)
class Exchange:
    """The verdict on one answer. ``kind`` is delivered, rejected, ended, transient
    or key-changed."""

    kind: str
    detail: str | None = None
    receipt: protocol.Receipt | None = None
    raw_receipt: bytes | None = None
    retry_after: float | None = None
    http_status: int | None = None


def backoff(attempts: int, limits: Limits, rng: random.Random,
            retry_after: float | None = None) -> float:
    """Seconds before the next try: base * 2^(n-1), capped, with jitter in [50%, 100%]
    so that many agents do not retry in step; never sooner than Retry-After."""
    delay = min(limits.retry_cap, limits.retry_base * 2 ** max(0, attempts - 1))
    delay *= rng.uniform(0.5, 1.0)
    if retry_after is not None:
        # Honoured even beyond retry_cap (the vendor knows its load), within reason.
        delay = max(delay, min(retry_after, _MAX_RETRY_AFTER))
    return delay


#: Text kept from an answer (a problem's detail, why an answer was refused) is cut
#: to this many characters.
MAX_DETAIL_CHARS = 300
#: A problem document larger than this is not read: its status says enough.
_MAX_PROBLEM_BYTES = 16 * 1024


def answer_text(text: object) -> str:
    """Text from an answer, made fit to store and show: valid UTF-8 (a lone
    surrogate is escaped), at most :data:`MAX_DETAIL_CHARS` characters, and every
    control and bidirectional character escaped (``protocol.display_text``).
    Neutralised here, once, when it is stored: every later reader (the CLI, the
    dashboard, ``vrm export``) gets text that is safe as it is."""
    return protocol.display_text(text, limit=MAX_DETAIL_CHARS)


def _problem_detail(answer: HttpAnswer) -> str:
    """The ``detail`` (else ``title``, else ``type``) of a problem document
    (RFC 9457), else ``HTTP <status>``. Any body: too large, nested too deep,
    not UTF-8, not JSON, not an object, members that are not strings."""
    fallback = f"HTTP {answer.status}"
    if len(answer.body) > _MAX_PROBLEM_BYTES:
        return fallback
    try:
        problem = json.loads(answer.body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return fallback
    if not isinstance(problem, dict):
        return fallback
    kind = problem.get("type")
    kind = kind if isinstance(kind, str) else None
    text = next((value for value in (problem.get("detail"), problem.get("title"), kind)
                 if isinstance(value, str) and value), None)
    if text is None:
        return fallback
    return f"{text} ({kind})" if kind and kind != text else text


def classify(answer: HttpAnswer, *, message_id: str, recipient: str,
             vendor_key: protocol.PublicKey, now: datetime) -> Exchange:
    """Judge one HTTP answer to the message ``message_id`` (pure; see the module table).

    Total: whatever the status, headers and body, the verdict is an
    :class:`Exchange` for this vendor alone, and never an exception; its
    ``detail`` has passed through :func:`answer_text`. An answer that cannot
    even be judged counts as no answer (transient), so a hostile vendor's
    answer costs that vendor's message a retry and nobody else anything."""
    try:
        verdict = _judge(answer, message_id=message_id, recipient=recipient,
                         vendor_key=vendor_key, now=now)
    except Exception as exc:  # noqa: BLE001 - the last resort: judge, never stop
        verdict = Exchange("transient", f"HTTP {answer.status}: the answer could not be "
                           f"read ({type(exc).__name__})", http_status=answer.status)
    if verdict.detail is not None:
        verdict = replace(verdict, detail=answer_text(verdict.detail))
    return verdict


def judge(status: int, headers: Mapping[str, str], body: bytes, *, message_id: str,
          recipient: str, vendor_key: protocol.PublicKey, now: datetime) -> Exchange:
    """Judge an answer from its raw parts, the status, header values and body as
    they came (:func:`agent._http.read_answer`, then :func:`classify`). Total."""
    return classify(read_answer(status, headers, body, now=now), message_id=message_id,
                    recipient=recipient, vendor_key=vendor_key, now=now)


def _judge(answer: HttpAnswer, *, message_id: str, recipient: str,
           vendor_key: protocol.PublicKey, now: datetime) -> Exchange:
    status = answer.status
    if status == 429 or status >= 500 or status < 100:
        return Exchange("transient", f"HTTP {status}", retry_after=answer.retry_after,
                        http_status=status)
    if status in (200, 410, 422) and answer.content_type == protocol.MEDIA_TYPE:
        try:
            receipt = protocol.parse(answer.body, now=now, keys=protocol.pinned_keys(vendor_key),
                                     recipient=recipient)
        except protocol.UnknownKey as exc:
            signer = _other_signer(answer.body, recipient=recipient, pinned=vendor_key, now=now)
            if signer is not None:
                return Exchange("key-changed", f"the answer is a receipt signed by {signer}, "
                                f"not by the pinned key {vendor_key.did}", http_status=status)
            return Exchange("transient", f"the answer is not a valid receipt from the pinned "
                            f"vendor key: {exc}", http_status=status)
        except protocol.ProtocolError as exc:
            return Exchange("transient", f"the answer is not a valid receipt from the pinned "
                            f"vendor key: {exc}", http_status=status)
        if not isinstance(receipt, protocol.Receipt):
            return Exchange("transient", f"the answer is a {receipt.type}, not a receipt",
                            http_status=status)
        if receipt.thread != message_id:
            return Exchange("transient", "the receipt is for another message",
                            http_status=status)
        body = receipt.body
        if body.status in ("accepted", "duplicate"):
            return Exchange("delivered", None, receipt, answer.body, http_status=status)
        problem = body.problem  # rejected and unsupported receipts always carry one
        detail = (problem.detail or problem.title or problem.type) if problem else body.status
        problem_type = problem.type if problem else ""
        if status == 410 or problem_type == protocol.problem_urn("unknown-relationship"):
            return Exchange("ended", detail, receipt, answer.body, http_status=status)
        return Exchange("rejected", detail, receipt, answer.body, http_status=status)
    if status in _FINAL_4XX or (400 <= status < 500 and status not in (408, 410, 422)):
        return Exchange("rejected", _problem_detail(answer), http_status=status)
    # 2xx/410/422 without a verifiable receipt, 3xx, 408: proves nothing; try again.
    return Exchange("transient", f"HTTP {status} without a signed receipt", http_status=status)


def _other_signer(raw: bytes, *, recipient: str, pinned: protocol.PublicKey,
                  now: datetime) -> str | None:
    """The DID that validly signed this receipt to us, if it is not the pinned one.

    Reached only when the kid is not the pinned key's, so the hot path never pays
    for it. did:key DIDs are self-certifying: a signature that verifies with the
    key the kid names proves who signed, whoever that is."""
    try:
        message = protocol.parse(raw, now=now, keys=protocol.resolve_did_key,
                                 recipient=recipient)
    except protocol.ProtocolError:
        return None
    if isinstance(message, protocol.Receipt) and message.sender != pinned.did:
        return message.sender
    return None


#: Why a message was not sent, by the state of its vendor.
ENDED_DETAIL = "not sent: the relationship has ended"
KEY_CHANGED_DETAIL = ("not sent: the vendor answered with a key other than the pinned one "
                      "(see `vrm vendor list`)")
#: What a vendor's status does to its pending messages: they fail with the detail;
#: a queued relationship.end fails too, except when the relationship merely ended
#: (an end is how a person asks for erasure after an end, PROTOCOL.md §5.9).
_UNSENDABLE = (("ended", ENDED_DETAIL, False), ("refused", ENDED_DETAIL, True),
               ("key-changed", KEY_CHANGED_DETAIL, True))


def fail_unsendable(conn: sqlite3.Connection, now: str) -> None:
    """Fail every pending message that its vendor's status forbids sending.

    The one place this rule lives: the delivery runs it before and after each
    run and with every batch of results, and the agent when it holds a vendor.
    (Uncorrelated subqueries: SQLite runs each once, not once per row.)"""
    for status, detail, ends_too in _UNSENDABLE:
        conn.execute(
            "UPDATE outbox SET status = 'failed', last_error = ?, updated = ? "
            "WHERE status = 'pending' AND vendor_id IN (SELECT id FROM vendors WHERE status = ?)"
            + ("" if ends_too else " AND type != 'relationship.end'"), (detail, now, status))


class _Batch:
    """Result rows waiting for one commit."""

    def __init__(self) -> None:
        self.outbox: list[tuple[Any, ...]] = []
        self.receipts: list[tuple[Any, ...]] = []
        self.vendor_status: list[tuple[Any, ...]] = []
        self.erased: list[tuple[int]] = []
        #: The pass token whose claims this batch lets go of when it is committed.
        self.release: str | None = None

    def __len__(self) -> int:
        return len(self.outbox)


_HOST = socket.gethostname()


def _claimant_gone(token: str | None, cache: dict[str, bool]) -> bool:
    """Whether the run that holds a live claim is known to be dead: its token
    (``host:pid:random``) names this host and a process that no longer exists.
    Then its claims are taken over at once, without waiting for the lease; a
    claim from another host, a live process (this one included) or a process
    that cannot be checked waits for its lease to lapse. A reused PID only
    delays the takeover until then."""
    if not token:
        return False
    if token in cache:
        return cache[token]
    gone = False
    parts = token.rsplit(":", 2)
    if len(parts) == 3 and parts[0] == _HOST and parts[1].isascii() and parts[1].isdigit():
        pid = int(parts[1])
        if pid != os.getpid():
            try:
                os.kill(pid, 0)  # signal 0: only asks whether the process exists
            except ProcessLookupError:
                gone = True
            except (PermissionError, OverflowError, OSError):
                gone = False  # it exists (another user's), or cannot be asked
    cache[token] = gone
    return gone


#: What writing a result can raise: the store's own failure, or a value SQLite
#: cannot bind (UnicodeEncodeError for a lone surrogate, OverflowError).
_WRITE_ERRORS = (StoreError, sqlite3.Error, ValueError, OverflowError)

#: The outbox status a verdict leaves a message in.
_OUTCOME = {"delivered": "delivered", "rejected": "rejected", "ended": "failed",
            "transient": "pending", "key-changed": "failed"}


class Deliverer:
    """Sends due outbox rows. One instance per agent; ``run`` may be called many times."""

    def __init__(self, store: Store, http: Http, limits: Limits,
                 clock: Callable[[], datetime], rng: random.Random | None = None) -> None:
        self._store = store
        self._http = http
        self._limits = limits
        self._clock = clock
        self._rng = rng or random.Random()
        self._vendor_keys: dict[str, protocol.PublicKey] = {}
        self._in_flight: set[str] = set()

    def vendor_key(self, jwk: str) -> protocol.PublicKey:
        key = self._vendor_keys.get(jwk)
        if key is None:
            key = self._vendor_keys[jwk] = protocol.PublicKey.from_jwk(json.loads(jwk))
        return key

    async def exchange(self, inbox: str, raw: bytes, *, message_id: str, recipient: str,
                       vendor_jwk: str) -> Exchange:
        """POST one message and judge the answer: always a verdict, never an exception.

        A pinned key that the protocol refuses (a weak key pinned before such keys
        were refused: it would verify forged receipts) holds the vendor as
        ``key-changed`` before anything is sent: no receipt under it proves anything."""
        try:
            vendor_key = self.vendor_key(vendor_jwk)
        except (protocol.ProtocolError, ValueError) as exc:
            return Exchange("key-changed", answer_text(
                f"not sent: the pinned vendor key cannot be trusted ({exc}); add the "
                f"vendor again if it now shows a sound key"))
        try:
            answer = await self._http.post(inbox, raw, now=self._clock())
        except TransportFailure as exc:
            return Exchange("transient", answer_text(str(exc)))
        return classify(answer, message_id=message_id, recipient=recipient,
                        vendor_key=vendor_key, now=self._clock())

    # --- the outbox ----------------------------------------------------------

    def _settle_unsendable(self) -> None:
        now = ts(self._clock())
        with self._store.transaction() as conn:
            conn.execute("UPDATE outbox SET status = 'expired', last_error = 'the message "
                         "expired before the vendor confirmed it', updated = ? "
                         "WHERE status = 'pending' AND expires <= ?", (now, now))
            fail_unsendable(conn, now)

    def _claim(self, scope: set[str] | None, token: str) -> list[dict[str, Any]]:
        """Claim the pending rows to send now, in order, for the pass ``token``.

        A vendor's queue stops at its first row that is not due yet, or that holds
        a live claim (another run, in this process or another, is sending it): a
        contact.update never overtakes the relationship.request before it, and no
        message is sent by two runs at once. Reading and claiming happen in one
        ``BEGIN IMMEDIATE`` transaction, so two processes never claim one row."""
        sql = ("SELECT o.id, o.vendor_id, o.type, o.jws, o.attempts, o.meta, o.next_attempt, "
               "o.claimed_by, o.claim_expires, v.name, v.inbox, v.pairwise_did, v.vendor_jwk "
               "FROM outbox o "
               "JOIN vendors v ON v.id = o.vendor_id WHERE o.status = 'pending'")
        params: tuple[Any, ...] = ()
        if scope is not None:  # only the queues of the vendors concerned
            sql += (" AND o.vendor_id IN (SELECT vendor_id FROM outbox "
                    "WHERE id IN (SELECT value FROM json_each(?)))")
            params = (json.dumps(sorted(scope)),)
        with self._store.transaction(immediate=True) as conn:
            cursor = conn.execute(sql + " ORDER BY o.rowid", params)
            names = [d[0] for d in cursor.description]
            moment = self._clock()
            now = ts(moment)
            blocked: set[int] = set()
            gone: dict[str, bool] = {}
            due = []
            for values in cursor.fetchall():
                row = dict(zip(names, values))
                vendor = row["vendor_id"]
                if vendor in blocked:
                    continue
                if (row["next_attempt"] > now or row["id"] in self._in_flight
                        or (row["claim_expires"] is not None and row["claim_expires"] > now
                            and not _claimant_gone(row["claimed_by"], gone))
                        or (scope is not None and row["id"] not in scope)):
                    blocked.add(vendor)
                    continue
                due.append(row)
            if due:
                expires = ts(moment + timedelta(seconds=self._limits.claim_lease))
                conn.execute("UPDATE outbox SET claimed_by = ?, claim_expires = ? "
                             "WHERE id IN (SELECT value FROM json_each(?))",
                             (token, expires, json.dumps([row["id"] for row in due])))
        return due

    async def _renew_claims(self, token: str) -> None:
        """Keep the pass's claims alive while it works: every third of the lease."""
        every = self._limits.claim_lease / 3
        while True:
            await asyncio.sleep(every)
            expires = ts(self._clock() + timedelta(seconds=self._limits.claim_lease))
            try:
                with self._store.transaction() as conn:
                    conn.execute("UPDATE outbox SET claim_expires = ? WHERE claimed_by = ? "
                                 "AND status = 'pending'", (expires, token))
            except StoreError:
                pass  # a busy store: the next renewal comes before the lease runs out

    def next_due(self, scope: set[str] | None = None) -> datetime | None:
        """When the earliest pending message (of ``scope``, if given) falls due."""
        if scope is None:
            row = self._store.one("SELECT min(next_attempt) AS due FROM outbox "
                                  "WHERE status = 'pending'")
        else:
            row = self._store.one("SELECT min(next_attempt) AS due FROM outbox "
                                  "WHERE status = 'pending' AND id IN "
                                  "(SELECT value FROM json_each(?))",
                                  (json.dumps(sorted(scope)),))
        return from_ts(row["due"]) if row and row["due"] else None

    async def run(self, *, scope: set[str] | None = None, progress: Progress | None = None,
                  patience: float = 0.0) -> list[DeliveryResult]:
        """Send every due message (or only those in ``scope``); return one result per
        message attempted, latest attempt last. With ``patience``, retries falling due
        within that many seconds are awaited and made in this same call."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + patience
        results: dict[str, DeliveryResult] = {}
        total_seen: set[str] = set()
        order: dict[str, int] = {}  # results come back in outbox order, not finishing order
        while True:
            self._settle_unsendable()
            token = f"{_HOST}:{os.getpid()}:{secrets.token_hex(6)}"
            due = self._claim(scope, token)
            if due:
                for row in due:
                    order.setdefault(row["id"], len(order))
                total_seen.update(row["id"] for row in due)
                for result in await self._pass(due, token, progress, len(total_seen),
                                               len(total_seen) - len(due)):
                    results[result.message_id] = result
            upcoming = self.next_due(scope)
            if upcoming is None:
                break
            wait = (upcoming - self._clock()).total_seconds()
            if loop.time() + max(wait, 0) > deadline:
                break
            # A floor on the wait: rows held by a concurrent run are not ours to spin on.
            await asyncio.sleep(max(wait, 0.0 if due else 0.05))
        self._settle_unsendable()
        return sorted(self._refresh(results), key=lambda r: order[r.message_id])

    def describe(self, message_ids: Sequence[str],
                 attempted: Sequence[DeliveryResult]) -> list[DeliveryResult]:
        """One result per message of ``message_ids``, in that order: the attempt made
        in this run, else the message's state in the outbox and why it was not sent
        now (queued behind an earlier message to its vendor, or not due yet)."""
        by_id = {r.message_id: r for r in attempted}
        missing = [m for m in message_ids if m not in by_id]
        if missing:
            now = ts(self._clock())
            for row in self._store.rows(
                    "SELECT o.id, o.vendor_id, v.name, o.type, o.status, o.attempts, "
                    "o.last_error, o.next_attempt, o.http_status, o.claim_expires, "
                    "r.status AS receipt_status, "
                    "(SELECT count(*) FROM outbox e WHERE e.vendor_id = o.vendor_id "
                    " AND e.status = 'pending' AND e.rowid < o.rowid) AS ahead "
                    "FROM outbox o JOIN vendors v ON v.id = o.vendor_id "
                    "LEFT JOIN receipts r ON r.message_id = o.id "
                    "WHERE o.id IN (SELECT value FROM json_each(?))", (json.dumps(missing),)):
                detail = row["last_error"]
                next_attempt = None
                if row["status"] == "pending":
                    next_attempt = from_ts(row["next_attempt"])
                    if row["claim_expires"] is not None and row["claim_expires"] > now:
                        detail = "being sent by another vrm run at this moment"
                    elif row["ahead"]:
                        detail = (f"queued behind {row['ahead']} earlier message"
                                  f"{'s' if row['ahead'] > 1 else ''} to this vendor")
                    elif row["next_attempt"] > now:
                        detail = f"queued; the next attempt is at {row['next_attempt'][:19]}Z"
                        if row["last_error"]:
                            detail += f" (last time: {row['last_error']})"
                    else:
                        detail = "queued; `vrm deliver` sends it"
                by_id[row["id"]] = DeliveryResult(
                    row["id"], row["vendor_id"], row["name"], row["type"], row["status"],
                    row["attempts"], detail, row["receipt_status"], next_attempt,
                    row["http_status"])
        return [by_id[m] for m in message_ids if m in by_id]

    def pending(self) -> tuple[int, datetime | None]:
        """How many messages are pending, and when the earliest falls due."""
        row = self._store.one("SELECT count(*) AS n, min(next_attempt) AS due FROM outbox "
                              "WHERE status = 'pending'")
        if not row or not row["n"]:
            return 0, None
        return row["n"], from_ts(row["due"])

    def _refresh(self, results: dict[str, DeliveryResult]) -> list[DeliveryResult]:
        # Expiry may have settled some rows after their last attempt.
        if not results:
            return []
        final = []
        pending = [r.message_id for r in results.values() if r.status == "pending"]
        statuses = {row["id"]: row["status"] for row in self._store.rows(
            "SELECT id, status FROM outbox WHERE status IN ('expired', 'failed') "
            "AND id IN (SELECT value FROM json_each(?))", (json.dumps(pending),))}
        for result in results.values():
            status = statuses.get(result.message_id)
            if status and result.status == "pending":
                result = replace(result, status=status)
            final.append(result)
        return final

    async def _pass(self, due: list[dict[str, Any]], token: str, progress: Progress | None,
                    total: int, done_before: int) -> list[DeliveryResult]:
        by_vendor: dict[int, list[dict[str, Any]]] = {}
        for row in due:
            by_vendor.setdefault(row["vendor_id"], []).append(row)
        semaphore = asyncio.Semaphore(self._limits.max_connections)
        batch = _Batch()
        results: list[DeliveryResult] = []
        done = done_before

        def record(result: DeliveryResult) -> None:
            nonlocal done
            done += 1
            results.append(result)
            if progress is not None:
                progress(done, total, result)
            if len(batch) >= _FLUSH_EVERY:
                self._flush(batch)
                batch.__init__()  # type: ignore[misc]

        def skip(rows: list[dict[str, Any]], status: str, detail: str) -> None:
            for later in rows:
                record(DeliveryResult(later["id"], later["vendor_id"], later["name"],
                                      later["type"], status, later["attempts"], detail))

        async def serve(rows: list[dict[str, Any]]) -> None:
            async with semaphore:
                ended = False
                for index, row in enumerate(rows):
                    if ended and row["type"] != "relationship.end":
                        skip([row], "failed", ENDED_DETAIL)  # the flush fails it too
                        continue
                    result = await self._attempt(row, batch)
                    record(result)
                    if result.status == "pending":
                        # Keep this vendor's order: later messages wait for this one.
                        skip(rows[index + 1:], "pending",
                             "waiting for an earlier message to this vendor")
                        return
                    if result.vendor_status == "key-changed":
                        skip(rows[index + 1:], "failed", KEY_CHANGED_DETAIL)
                        return
                    if result.vendor_status == "ended":
                        ended = True

        ids = {row["id"] for row in due}
        self._in_flight |= ids
        renewal = asyncio.create_task(self._renew_claims(token))
        try:
            await asyncio.gather(*(serve(rows) for rows in by_vendor.values()))
        finally:
            # Even on cancellation (Ctrl-C), keep what was learnt, and let go of the
            # claims in the same commit.
            renewal.cancel()
            self._in_flight -= ids
            batch.release = token
            self._flush(batch)
        return results

    async def _attempt(self, row: dict[str, Any], batch: _Batch) -> DeliveryResult:
        verdict = await self.exchange(row["inbox"], row["jws"], message_id=row["id"],
                                      recipient=row["pairwise_did"],
                                      vendor_jwk=row["vendor_jwk"])
        attempts = row["attempts"] + 1
        later = self._clock()
        status = _OUTCOME[verdict.kind]
        next_attempt = later
        if verdict.kind == "transient":
            next_attempt = later + timedelta(
                seconds=backoff(attempts, self._limits, self._rng, verdict.retry_after))
        batch.outbox.append((status, attempts, ts(next_attempt), verdict.detail,
                             verdict.http_status, ts(later), row["id"]))
        receipt = verdict.receipt
        if receipt is not None:
            problem = receipt.body.problem.to_wire() if receipt.body.problem else None
            batch.receipts.append((
                row["id"], row["vendor_id"], receipt.id, receipt.body.status,
                json.dumps(problem) if problem else None,
                json.dumps(receipt.body.record) if receipt.body.record is not None else None,
                verdict.raw_receipt, ts(later)))
        return DeliveryResult(
            row["id"], row["vendor_id"], row["name"], row["type"], status, attempts,
            verdict.detail, receipt.body.status if receipt else None,
            next_attempt if status == "pending" else None, verdict.http_status,
            self._vendor_effects(row, verdict, batch))

    @staticmethod
    def _vendor_effects(row: dict[str, Any], verdict: Exchange, batch: _Batch) -> str | None:
        """Queue the vendor's change of status this answer causes; return it."""
        vendor_id, kind = row["vendor_id"], verdict.kind
        new: str | None = None
        if kind == "ended":
            new = "ended"
        elif kind == "key-changed":
            new = "key-changed"
        elif row["type"] == "relationship.request":
            if kind == "delivered":
                new = "active"
            elif kind == "rejected":
                new = "refused"
        elif row["type"] == "relationship.end" and kind == "delivered":
            new = "ended"
            if json.loads(row["meta"] or "{}").get("erase"):
                batch.erased.append((vendor_id,))
        if new is not None:
            batch.vendor_status.append((new, vendor_id, new))
        return new

    def _flush(self, batch: _Batch) -> None:
        """Commit a batch of results in one transaction. Should that fail (a row
        the store refuses), each result is written on its own, and a result that
        still cannot be written is reduced to its bare facts (attempted, pending,
        retried later): one bad row never costs the other vendors' results. Only
        a store that takes no row at all raises :class:`StoreError`."""
        if (not len(batch) and not batch.vendor_status and not batch.erased
                and batch.release is None):
            return
        try:
            self._write(batch)
        except _WRITE_ERRORS as exc:
            self._write_one_by_one(batch, exc)

    def _write_one_by_one(self, batch: _Batch, failure: Exception) -> None:
        receipts = {row[0]: row for row in batch.receipts}
        written = 0
        for row in batch.outbox:
            status, attempts, next_attempt, _, _, updated, message_id = row
            receipt = receipts.get(message_id)
            alone = _Batch()
            alone.outbox.append(row)
            alone.receipts.extend([receipt] if receipt else [])
            # Without its receipt a message is not delivered: it stays pending and
            # its retry brings a receipt (``duplicate``) again.
            bare = _Batch()
            bare.outbox.append(("pending" if status == "delivered" else status, attempts,
                                next_attempt, "the answer could not be stored; it is asked "
                                "for again", None, updated, message_id))
            for attempt in (alone, bare):
                try:
                    self._write(attempt)
                except _WRITE_ERRORS:
                    continue
                written += 1
                break
        rest = _Batch()
        rest.vendor_status, rest.erased = batch.vendor_status, batch.erased
        rest.release = batch.release
        try:
            self._write(rest)
        except _WRITE_ERRORS:
            pass
        if batch.outbox and not written:
            if isinstance(failure, StoreError):
                raise failure
            raise StoreError(f"the store at {self._store.path} failed: {failure}") from failure

    def _write(self, batch: _Batch) -> None:
        now = ts(self._clock())
        with self._store.transaction() as conn:
            # The vendor's own word on a message (delivered, rejected) is final: a
            # later answer from a run that took over a lapsed claim never undoes it.
            conn.executemany(
                "UPDATE outbox SET status = ?, attempts = ?, next_attempt = ?, last_error = ?, "
                "http_status = ?, updated = ? WHERE id = ? "
                "AND status NOT IN ('delivered', 'rejected')", batch.outbox)
            # The first valid receipt of a message is its proof, kept for ever: a
            # later one (``duplicate``) never replaces it.
            conn.executemany(
                "INSERT OR IGNORE INTO receipts (message_id, vendor_id, receipt_id, status, "
                "problem, record, jws, received) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                batch.receipts)
            if batch.release is not None:
                conn.execute("UPDATE outbox SET claimed_by = NULL, claim_expires = NULL "
                             "WHERE claimed_by = ?", (batch.release,))
            # A relationship never comes back from ended, refused or key-changed by
            # a late receipt, and only a pending one becomes active (a confirmed
            # re-statement must not undo an end that is on its way).
            conn.executemany(
                "UPDATE vendors SET status = ?, updated = '" + now + "' WHERE id = ? "
                "AND status NOT IN ('ended', 'refused', 'key-changed') "
                "AND (? != 'active' OR status = 'pending')", batch.vendor_status)
            # An erasure confirmed after the end (an ended relationship) counts too.
            conn.executemany("UPDATE vendors SET erased = 1 WHERE id = ?", batch.erased)
            if any(status != "active" for status, *_ in batch.vendor_status):
                # A vendor that has just ended, refused or changed key gets nothing more.
                fail_unsendable(conn, now)
