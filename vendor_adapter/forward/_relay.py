"""The relay: writes events into the queue inside the CRM's transaction, and
delivers them after the commit.

``Forwarding.record`` runs in the writer thread, inside the transaction that
applies an accepted message (``Ledger.process`` calls it): the events and the
CRM change commit together or not at all (the transactional outbox). After
the commit the vendor calls ``notify``, and the background task (``start``)
delivers what is due:

- one ``aiohttp.ClientSession`` for every target, with a bounded connector and
  at most ``concurrency`` deliveries in flight, each target a fair share of
  them (so that an offline target timing out cannot starve the others);
- per (target, contact) one delivery at a time, oldest first: a contact's
  later event waits while an earlier one is failing;
- each result is written back through the same group-commit writer (so
  results batch with the inbox's commits); a delivered row is deleted;
- a failed attempt is retried on the target's schedule (Svix's by default),
  no sooner than a 429/503's Retry-After; 410 Gone disables the target.

Delivery is at least once: a crash between a receiver's 2xx and the write
that records it sends that event again, with the same ``webhook-id``. What
was queued before a crash or a stop is delivered when the relay starts again.
The task also polls every ``poll_interval`` seconds, so that ``vrm-vendor
forward retry`` (another process) takes effect without a restart.

A target hears the events queued while it is configured: one added later gets
no earlier events, and one removed keeps its queued rows (``forward status``
still lists it) until it is configured again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import aiohttp

import protocol

from .._mapping import DEFAULT, FieldMapping
from . import _queue
from ._events import events_for
from ._queue import Due, QueuedEvent, TargetStatus
from ._target import Attempt, ForwardError, Target

__all__ = ["Forwarding"]

log = logging.getLogger("vendor_adapter.forward")


def _now_ms() -> int:
    return int(time.time() * 1000)


class Forwarding:
    """One vendor's forwarding: its targets, the queue's writes, and the relay task.

    ``db`` is the vendor's ``Database`` (its writer runs every statement).
    ``concurrency``: deliveries in flight at once; ``timeout``: seconds a target
    has to answer (Svix: 15); ``poll_interval``: seconds between looks at the
    queue when nothing wakes the relay.
    """

    def __init__(self, db: Any, vendor: str, targets: Sequence[Target] = (), *,
                 mapping: FieldMapping = DEFAULT, concurrency: int = 16,
                 timeout: float = 15.0, poll_interval: float = 1.0) -> None:
        names = [t.name for t in targets]
        if len(set(names)) != len(names):
            raise ForwardError("each forwarding target URL may be given once")
        for target in targets:
            if not isinstance(target, Target):
                raise ForwardError(f"{target!r} is not a forwarding target "
                                   "(use vendor_adapter.forward.Webhook or Scim)")
        self._db = db
        self.vendor = vendor
        self.targets: dict[str, Target] = {t.name: t for t in targets}
        self.mapping = mapping
        self.concurrency = concurrency
        #: Deliveries in flight per target: a fair share, so that a slow or offline
        #: target (each attempt waiting out its timeout) cannot hold every slot.
        self.per_target = max(1, concurrency // max(1, len(self.targets)))
        self.timeout = timeout
        self.poll_interval = poll_interval
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        if self.targets:
            pairs = [(t.name, t.kind) for t in targets]
            db.writer.run_sync(lambda conn: _queue.register_targets(conn, vendor, pairs))

    # --- in the writer's transaction -------------------------------------------------

    def record(self, conn: Any, message: protocol.Message, *, new: bool,
               relationship: dict[str, Any] | None, record: dict[str, Any] | None,
               received: datetime, fetched: list[protocol.FlattenedJWS] | None = None
               ) -> None:
        """Queue, for every target, the events ``message`` causes (``Ledger.process``
        calls this inside the transaction that applies it)."""
        if not self.targets:
            return
        events = events_for(message, vendor=self.vendor, new=new, relationship=relationship,
                            record=record, received=received, fetched=fetched)
        rows = []
        for event in events:
            for target in self.targets.values():
                body = target.render(event, self.mapping)
                if body is not None:
                    rows.append(QueuedEvent(target.name, event.id, event.type, event.did, body))
        erasures = [e.id for e in events if e.type == "contact.erased"]
        if erasures:  # what is still queued about the person carries what is being erased
            _queue.drop_contact(conn, self.vendor, message.sender, keep=erasures)
        if rows:
            _queue.enqueue(conn, self.vendor, rows, now_ms=_now_ms())

    # --- the relay task -----------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def ensure_started(self) -> None:
        """Start the relay in the running event loop, once (a no-op without targets).
        A relay that died, or ran in another event loop, is started afresh."""
        if not self.targets:
            return
        loop = asyncio.get_running_loop()
        task = self._task
        if task is not None and task.done() and not task.cancelled() and task.exception():
            log.error("the forwarding relay stopped; starting it again",
                      exc_info=task.exception())
        if task is None or task.done() or self._loop is not loop:
            self._loop = loop
            self._wake = asyncio.Event()
            self._task = self._loop.create_task(self._run(), name=f"vrm-forward:{self.vendor}")

    async def start(self) -> None:
        """Start delivering (what was queued before, then what comes)."""
        self.ensure_started()

    def notify(self) -> None:
        """Something was queued and committed: look at the queue now. Thread-safe."""
        loop, wake = self._loop, self._wake
        if loop is None or wake is None or loop.is_closed():
            return
        try:
            if asyncio.get_running_loop() is loop:
                wake.set()
                return
        except RuntimeError:
            pass
        loop.call_soon_threadsafe(wake.set)

    async def stop(self) -> None:
        """Stop the relay; deliveries in flight are abandoned (and sent again later)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

    def cancel(self) -> None:
        """``stop`` without waiting (for a synchronous close)."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            try:
                task.cancel()
            except RuntimeError:  # its loop is closed already
                pass

    async def _run(self) -> None:
        assert self._wake is not None
        wake = self._wake
        connector = aiohttp.TCPConnector(limit=self.concurrency,
                                         limit_per_host=self.concurrency)
        in_flight: dict[tuple[str, str], asyncio.Task[None]] = {}
        async with aiohttp.ClientSession(connector=connector,
                                         timeout=aiohttp.ClientTimeout(total=self.timeout)
                                         ) as session:
            try:
                while True:
                    wake.clear()
                    try:
                        busy = Counter(target for target, _ in in_flight)
                        rows, next_due = await self._db.writer.run(
                            lambda conn: self._look(conn, busy))
                    except Exception:
                        log.exception("forwarding cannot read its queue; trying again")
                        rows, next_due = [], None
                    for row in rows:
                        key = (row.target, row.did)
                        if key in in_flight or len(in_flight) >= self.concurrency \
                                or busy[row.target] >= self.per_target:
                            continue
                        busy[row.target] += 1
                        task = asyncio.create_task(self._attempt(session, row))
                        in_flight[key] = task
                        task.add_done_callback(
                            lambda _t, key=key: (in_flight.pop(key, None), wake.set()))
                    # Sleep until the next head falls due. A head due already is in
                    # flight or over its target's share: a finished delivery (or a
                    # commit) sets ``wake``; until then there is nothing to do.
                    delay = self.poll_interval
                    if next_due is not None and next_due > _now_ms():
                        delay = min(delay, (next_due - _now_ms()) / 1000)
                    try:
                        await asyncio.wait_for(wake.wait(), delay)
                    except TimeoutError:
                        pass
            finally:
                for task in in_flight.values():
                    task.cancel()
                if in_flight:
                    await asyncio.gather(*in_flight.values(), return_exceptions=True)

    def _look(self, conn: Any, busy: Counter[str]) -> tuple[list[Due], int | None]:
        """What is due, per target (so that a slow target cannot crowd out the
        others), and when the next row falls due."""
        now = _now_ms()
        rows: list[Due] = []
        for name in self.targets:
            if busy[name] < self.per_target:
                # Rows in flight are still heads: ask for that many more.
                rows += _queue.due(conn, self.vendor, [name], now_ms=now,
                                   limit=self.per_target + busy[name])
        rows.sort(key=lambda row: row.seq)
        return rows, _queue.next_due(conn, self.vendor, list(self.targets))

    async def _attempt(self, session: aiohttp.ClientSession, row: Due) -> None:
        target = self.targets[row.target]
        try:
            result = await target.deliver(session, row)
        except Exception as exc:  # a bug in a target: a failed attempt, not a dead relay
            log.exception("forwarding to %s failed unexpectedly", target.name)
            result = Attempt(False, error=f"internal error: {type(exc).__name__}")
        try:
            await self._db.writer.run(lambda conn: self._settle(conn, target, row, result))
        except Exception:
            log.exception("cannot record a delivery to %s; it will be sent again",
                          target.name)
            await asyncio.sleep(self.poll_interval)

    def _settle(self, conn: Any, target: Target, row: Due, result: Attempt) -> None:
        now = _now_ms()
        if result.ok:
            _queue.delivered(conn, self.vendor, row, now_ms=now,
                             resource_id=result.resource_id,
                             forget_resource=result.forget_resource)
            return
        error = result.error or "failed"
        if result.gone:
            _queue.disable(conn, self.vendor, row.target, reason=error, now_ms=now)
            _queue.attempt_failed(conn, self.vendor, row, error=error, now_ms=now,
                                  next_attempt_ms=now)
            return
        if row.attempts < len(target.schedule):
            delay = target.schedule[row.attempts]
            if result.retry_after is not None:
                delay = max(delay, result.retry_after)
            next_attempt: int | None = now + int(delay * 1000)
        else:
            next_attempt = None  # the schedule ran out: failed until `forward retry`
        _queue.attempt_failed(conn, self.vendor, row, error=error, now_ms=now,
                              next_attempt_ms=next_attempt)

    # --- the operator's view -------------------------------------------------------------

    def status(self) -> list[TargetStatus]:
        """Per target (configured now or ever): queued, delivered, failing, failed,
        last error, next attempt."""
        return self._db.writer.run_sync(lambda conn: _queue.status(conn, self.vendor))

    def retry(self, target: str | None = None) -> int:
        """Make the failing and failed events (of ``target``, a URL, or of every
        target) due now and enable the target again; returns how many events.
        Raises ForwardError for a target this vendor never forwarded to."""
        def job(conn: Any) -> int:
            if target is not None and target not in _queue.targets(conn, self.vendor):
                raise ForwardError(f"there is no forwarding target {target[:200]!r}; "
                                   "`vrm-vendor forward status` lists them")
            return _queue.retry(conn, self.vendor, now_ms=_now_ms(), target=target)
        count = self._db.writer.run_sync(job)
        self.notify()
        return count
