"""Group commit: one thread owns a store's write connection and commits the
jobs of concurrent requests in batches, one transaction per batch.

A job is a function ``fn(conn) -> result`` that runs inside the batch's
transaction, under its own SAVEPOINT: a job that raises is rolled back alone
and its exception is handed to its caller, while the rest of the batch
commits. Results are handed back only after COMMIT returns, so nothing that
a caller acknowledges can be lost to a crash. The fsync is paid once per
batch, not per message, and in this thread (the drivers release the GIL), so
the event loop never waits on the disk.

Batching needs no timer: while one batch commits, new jobs queue up, and the
next batch takes all of them. Under no load a job commits alone at once.
The event loop never waits on the database; it only awaits a future.

The transaction itself is the store's: a *session* (``SqliteSession`` in
``_store_sqlite``, ``PostgresSession`` in ``_store_postgres``) with
``commit(batch) -> jobs to run again`` and ``close()``. A PostgreSQL session
hands back a job that would wait for a lock held by another process while
its batch holds locks already; it runs first in the next batch.

"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ._errors import ClosedError
from ._store_sqlite import SqliteSession, connect

__all__ = ["GroupCommitWriter", "connect", "MAX_BATCH"]

log = logging.getLogger("vendor_adapter.writer")
T = TypeVar("T")

#: The most jobs committed in one transaction; bounds the latency of one batch.
MAX_BATCH = 512


@dataclass(slots=True)
class _Job:
    fn: Callable[[Any], Any]
    future: asyncio.Future[Any] | concurrent.futures.Future[Any]
    loop: asyncio.AbstractEventLoop | None
    result: Any = None
    error: BaseException | None = None


@dataclass
class WriterStats:
    """Counters for benchmarks: how well batching works under load."""

    batches: int = 0
    jobs: int = 0
    busy_seconds: float = 0.0
    largest_batch: int = 0
    sizes: list[int] = field(default_factory=list)


class GroupCommitWriter:
    """The single writer of one store in this process.

    ``session`` is a SQLite file path (a ``SqliteSession`` is made for it, with
    ``maintenance(conn)`` run inside a batch every ``maintenance_every``
    seconds) or a session object.
    """

    def __init__(
        self,
        session: str | Any,
        *,
        max_batch: int = MAX_BATCH,
        maintenance: Callable[[Any], None] | None = None,
        maintenance_every: float = 60.0,
    ) -> None:
        if isinstance(session, str):
            session = SqliteSession(session, maintenance=maintenance,
                                    maintenance_every=maintenance_every)
        self.path: str = session.path
        self.max_batch = max_batch
        self.stats = WriterStats()
        self._session = session
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="vrm-writer", daemon=True)
        self._thread.start()

    # --- submitting ------------------------------------------------------------

    async def run(self, fn: Callable[[Any], T]) -> T:
        """Run ``fn`` in the next batch; return its result once the batch committed."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        # If the caller was cancelled, nobody reads an error: mark it retrieved so
        # that asyncio does not log "exception was never retrieved".
        future.add_done_callback(_retrieve)
        self._put(_Job(fn, future, loop))
        # A cancelled request (client gone) cancels only this future: the job is
        # queued already and still runs and commits (``_resolve`` skips a future
        # that is done), so a retry gets "duplicate". No shield is needed for that.
        return await future

    def run_sync(self, fn: Callable[[Any], T]) -> T:
        """The same, blocking the calling thread (for the CLI and plain scripts)."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._put(_Job(fn, future, None))
        return future.result()

    def _put(self, job: _Job) -> None:
        if self._closed:
            raise ClosedError("the database writer is closed")
        self._queue.put(job)

    def close(self) -> None:
        """Commit what is queued, then stop the thread and close the connection."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._thread.join()
        self._session.close()

    # --- the writer thread ----------------------------------------------------

    def _run(self) -> None:
        stopping = False
        again: list[_Job] = []  # jobs a session handed back: first in the next batch
        while not stopping or again:
            if again:
                batch, again = again, []
            else:
                job = self._queue.get()
                if job is None:
                    break
                batch = [job]
            while len(batch) < self.max_batch and not stopping:
                try:
                    job = self._queue.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    stopping = True
                    break
                batch.append(job)
            started = time.perf_counter()
            again = self._session.commit(batch)
            self._record(len(batch) - len(again), time.perf_counter() - started)
            if again:
                waiting = {id(job) for job in again}
                batch = [job for job in batch if id(job) not in waiting]
            self._deliver(batch)

    def _record(self, size: int, seconds: float) -> None:
        stats = self.stats
        stats.batches += 1
        stats.jobs += size
        stats.busy_seconds += seconds
        stats.largest_batch = max(stats.largest_batch, size)

    @staticmethod
    def _deliver(batch: list[_Job]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[_Job]] = {}
        for job in batch:
            if job.loop is None:
                future = job.future
                if job.error is not None:
                    future.set_exception(job.error)
                else:
                    future.set_result(job.result)
            else:
                by_loop.setdefault(job.loop, []).append(job)
        # One wake-up per event loop per batch, not one per job.
        for loop, jobs in by_loop.items():
            try:
                loop.call_soon_threadsafe(_resolve, jobs)
            except RuntimeError:  # the loop was closed; nobody is waiting
                pass


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


def _resolve(jobs: list[_Job]) -> None:
    for job in jobs:
        future = job.future
        if future.done():
            continue
        if job.error is not None:
            future.set_exception(job.error)
        else:
            future.set_result(job.result)
