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
=====================================  ==========================================

A receipt counts only if it is signed by the pinned vendor key, addressed to the
pairwise DID and names the message in ``thread``. Retries resend the very
bytes stored in the outbox (same id), so a vendor that already has the message
answers ``duplicate`` and nothing reaches its CRM twice.

Messages to one vendor go in order (a relationship.request before the first
contact.update); different vendors are served in parallel. Results are
committed in batches, never one commit per vendor: if the process dies before a
batch is committed, those messages are simply sent again and answered
``duplicate``.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import protocol

from ._http import Http, HttpAnswer, Limits, TransportFailure
from ._store import Store, from_ts, ts

__all__ = ["DeliveryResult", "Progress", "Deliverer", "Exchange", "classify", "backoff"]

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

    def to_json(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id, "vendor_id": self.vendor_id, "vendor": self.vendor,
            "type": self.type, "status": self.status, "attempts": self.attempts,
            "detail": self.detail, "receipt_status": self.receipt_status,
            "next_attempt": ts(self.next_attempt) if self.next_attempt else None,
            "http_status": self.http_status,
        }


@dataclass(frozen=True, slots=True)
class Exchange:
    """The verdict on one answer. ``kind`` is delivered, rejected, ended or transient."""

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


def _problem_detail(answer: HttpAnswer) -> str:
    try:
        problem = json.loads(answer.body)
        if isinstance(problem, dict):
            text = problem.get("detail") or problem.get("title") or problem.get("type")
            if text:
                kind = problem.get("type")
                return f"{text} ({kind})" if kind and kind != text else str(text)
    except (ValueError, UnicodeDecodeError):
        pass
    return f"HTTP {answer.status}"


def classify(answer: HttpAnswer, *, message_id: str, recipient: str,
             vendor_key: protocol.PublicKey, now: datetime) -> Exchange:
    """Judge one HTTP answer to the message ``message_id`` (pure; see the module table)."""
    status = answer.status
    if status in (429,) or status >= 500:
        return Exchange("transient", f"HTTP {status}", retry_after=answer.retry_after,
                        http_status=status)
    if status in (200, 410, 422) and answer.content_type == protocol.MEDIA_TYPE:
        try:
            receipt = protocol.parse(answer.body, now=now, keys=protocol.pinned_keys(vendor_key),
                                     recipient=recipient)
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


class _Batch:
    """Result rows waiting for one commit."""

    def __init__(self) -> None:
        self.outbox: list[tuple[Any, ...]] = []
        self.receipts: list[tuple[Any, ...]] = []
        self.vendor_status: list[tuple[Any, ...]] = []
        self.ended: list[int] = []

    def __len__(self) -> int:
        return len(self.outbox)


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
        """POST one message and judge the answer."""
        try:
            answer = await self._http.post(inbox, raw, now=self._clock())
        except TransportFailure as exc:
            return Exchange("transient", str(exc))
        return classify(answer, message_id=message_id, recipient=recipient,
                        vendor_key=self.vendor_key(vendor_jwk), now=self._clock())

    # --- the outbox ----------------------------------------------------------

    def _settle_unsendable(self) -> None:
        now = ts(self._clock())
        with self._store.transaction() as conn:
            conn.execute("UPDATE outbox SET status = 'expired', last_error = 'the message "
                         "expired before the vendor confirmed it', updated = ? "
                         "WHERE status = 'pending' AND expires <= ?", (now, now))
            conn.execute(
                "UPDATE outbox SET status = 'failed', last_error = 'the relationship has "
                "ended', updated = ? WHERE status = 'pending' AND vendor_id IN "
                "(SELECT id FROM vendors WHERE status IN ('ended', 'refused'))", (now,))

    def _due(self, scope: set[str] | None) -> list[dict[str, Any]]:
        """Pending rows to send now, in order. A vendor's queue stops at its first row
        that is not due yet, or is being sent by another run in this process: a
        contact.update never overtakes the relationship.request before it."""
        sql = ("SELECT o.id, o.vendor_id, o.type, o.jws, o.attempts, o.meta, o.next_attempt, "
               "v.name, v.inbox, v.pairwise_did, v.vendor_jwk FROM outbox o "
               "JOIN vendors v ON v.id = o.vendor_id WHERE o.status = 'pending'")
        params: tuple[Any, ...] = ()
        if scope is not None:  # only the queues of the vendors concerned
            sql += (" AND o.vendor_id IN (SELECT vendor_id FROM outbox "
                    "WHERE id IN (SELECT value FROM json_each(?)))")
            params = (json.dumps(sorted(scope)),)
        rows = self._store.rows(sql + " ORDER BY o.rowid", params)
        now = ts(self._clock())
        blocked: set[int] = set()
        due = []
        for row in rows:
            vendor = row["vendor_id"]
            if vendor in blocked:
                continue
            if (row["next_attempt"] > now or row["id"] in self._in_flight
                    or (scope is not None and row["id"] not in scope)):
                blocked.add(vendor)
                continue
            due.append(row)
        return due

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
            due = self._due(scope)
            if due:
                for row in due:
                    order.setdefault(row["id"], len(order))
                total_seen.update(row["id"] for row in due)
                for result in await self._pass(due, progress, len(total_seen),
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

    async def _pass(self, due: list[dict[str, Any]], progress: Progress | None,
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

        async def serve(rows: list[dict[str, Any]]) -> None:
            async with semaphore:
                for index, row in enumerate(rows):
                    result = await self._attempt(row, batch)
                    record(result)
                    if result.status == "pending":
                        # Keep this vendor's order: later messages wait for this one.
                        for later in rows[index + 1:]:
                            record(DeliveryResult(
                                later["id"], later["vendor_id"], later["name"], later["type"],
                                "pending", later["attempts"],
                                "waiting for an earlier message to this vendor"))
                        return
                    if result.status == "failed":
                        return

        ids = {row["id"] for row in due}
        self._in_flight |= ids
        try:
            await asyncio.gather(*(serve(rows) for rows in by_vendor.values()))
        finally:
            # Even on cancellation (Ctrl-C), keep what was learnt.
            self._in_flight -= ids
            self._flush(batch)
        return results

    async def _attempt(self, row: dict[str, Any], batch: _Batch) -> DeliveryResult:
        verdict = await self.exchange(row["inbox"], row["jws"], message_id=row["id"],
                                      recipient=row["pairwise_did"],
                                      vendor_jwk=row["vendor_jwk"])
        attempts = row["attempts"] + 1
        later = self._clock()
        status = {"delivered": "delivered", "rejected": "rejected", "ended": "failed",
                  "transient": "pending"}[verdict.kind]
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
        self._vendor_effects(row, verdict, batch)
        return DeliveryResult(
            row["id"], row["vendor_id"], row["name"], row["type"], status, attempts,
            verdict.detail, receipt.body.status if receipt else None,
            next_attempt if status == "pending" else None, verdict.http_status)

    @staticmethod
    def _vendor_effects(row: dict[str, Any], verdict: Exchange, batch: _Batch) -> None:
        vendor_id, kind = row["vendor_id"], verdict.kind
        if kind == "ended":
            batch.vendor_status.append(("ended", 0, vendor_id))
            batch.ended.append(vendor_id)
        elif row["type"] == "relationship.request":
            if kind == "delivered":
                batch.vendor_status.append(("active", 0, vendor_id))
            elif kind == "rejected":
                batch.vendor_status.append(("refused", 0, vendor_id))
        elif row["type"] == "relationship.end" and kind == "delivered":
            erase = bool(json.loads(row["meta"] or "{}").get("erase"))
            batch.vendor_status.append(("ended", int(erase), vendor_id))

    def _flush(self, batch: _Batch) -> None:
        if not len(batch) and not batch.vendor_status:
            return
        now = ts(self._clock())
        with self._store.transaction() as conn:
            conn.executemany(
                "UPDATE outbox SET status = ?, attempts = ?, next_attempt = ?, last_error = ?, "
                "http_status = ?, updated = ? WHERE id = ?", batch.outbox)
            conn.executemany(
                "INSERT OR REPLACE INTO receipts (message_id, vendor_id, receipt_id, status, "
                "problem, record, jws, received) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                batch.receipts)
            # A relationship never comes back from ended or refused by a late receipt.
            conn.executemany(
                "UPDATE vendors SET status = ?, erased = max(erased, ?), updated = '" + now
                + "' WHERE id = ? AND status NOT IN ('ended', 'refused')", batch.vendor_status)
            conn.executemany(
                "UPDATE outbox SET status = 'failed', last_error = 'the vendor has ended the "
                "relationship', updated = ? WHERE vendor_id = ? AND status = 'pending'",
                [(now, vendor_id) for vendor_id in batch.ended])
