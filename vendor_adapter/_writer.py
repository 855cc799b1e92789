"""Group commit: one thread owns the SQLite write connection and commits the
jobs of concurrent requests in batches, one transaction per batch.

A job is a function ``fn(conn) -> result`` that runs inside the batch's
transaction, under its own SAVEPOINT: a job that raises is rolled back alone
and its exception is handed to its caller, while the rest of the batch
commits. Results are handed back only after COMMIT returns, so nothing that
a caller acknowledges can be lost to a crash. The connection runs WAL with
synchronous=FULL: COMMIT returns only once the WAL is fsynced, so an
acknowledged message survives a power cut too, not only a process crash
(with NORMAL the last commits may be lost to a power cut; see
https://sqlite.org/pragma.html#pragma_synchronous). The fsync is paid once per
batch, not per message, and in this thread (sqlite3 releases the GIL), so
the event loop never waits on the disk.

Batching needs no timer: while one batch commits, new jobs queue up, and the
next batch takes all of them. Under no load a job commits alone at once.
The event loop never waits on SQLite; it only awaits a future.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ._errors import ClosedError, StorageError

__all__ = ["GroupCommitWriter", "connect"]

log = logging.getLogger("vendor_adapter.writer")
T = TypeVar("T")

#: The most jobs committed in one transaction; bounds the latency of one batch.
MAX_BATCH = 512


def connect(path: str, *, check_same_thread: bool = True) -> sqlite3.Connection:
    """A connection in autocommit mode (we issue BEGIN ourselves), WAL, synchronous=FULL."""
    try:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=check_same_thread)
        conn.execute("PRAGMA busy_timeout = 10000")  # another process (the CLI) may hold the lock
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
    except sqlite3.Error as exc:
        raise StorageError(f"cannot open the database {path}: {exc}") from exc
    return conn


@dataclass(slots=True)
class _Job:
    fn: Callable[[sqlite3.Connection], Any]
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
    """The single writer of one database file."""

    def __init__(
        self,
        path: str,
        *,
        max_batch: int = MAX_BATCH,
        maintenance: Callable[[sqlite3.Connection], None] | None = None,
        maintenance_every: float = 60.0,
    ) -> None:
        self.path = path
        self.max_batch = max_batch
        self.stats = WriterStats()
        self._maintenance = maintenance
        self._maintenance_every = maintenance_every
        self._next_maintenance = time.monotonic() + maintenance_every
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._closed = False
        self._conn = connect(path, check_same_thread=False)
        self._thread = threading.Thread(target=self._run, name=f"vrm-writer:{path}", daemon=True)
        self._thread.start()

    # --- submitting ------------------------------------------------------------

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
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

    def run_sync(self, fn: Callable[[sqlite3.Connection], T]) -> T:
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
        self._conn.close()

    # --- the writer thread ----------------------------------------------------

    def _run(self) -> None:
        stopping = False
        while not stopping:
            job = self._queue.get()
            if job is None:
                break
            batch = [job]
            while len(batch) < self.max_batch:
                try:
                    job = self._queue.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    stopping = True
                    break
                batch.append(job)
            started = time.perf_counter()
            self._commit(batch)
            self._record(len(batch), time.perf_counter() - started)
            self._deliver(batch)

    def _record(self, size: int, seconds: float) -> None:
        stats = self.stats
        stats.batches += 1
        stats.jobs += size
        stats.busy_seconds += seconds
        stats.largest_batch = max(stats.largest_batch, size)

    def _commit(self, batch: list[_Job]) -> None:
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            # One savepoint name for every job (each is released before the next
            # begins): the three statements are compiled once and then cached.
            for job in batch:
                conn.execute("SAVEPOINT vrm_job")
                try:
                    job.result = job.fn(conn)
                except Exception as exc:  # handed to the caller; the batch goes on
                    job.error = exc
                    conn.execute("ROLLBACK TO SAVEPOINT vrm_job")
                conn.execute("RELEASE SAVEPOINT vrm_job")
            if self._maintenance is not None and time.monotonic() >= self._next_maintenance:
                self._next_maintenance = time.monotonic() + self._maintenance_every
                self._maintenance(conn)
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            log.exception("a batch of %d writes failed and was rolled back", len(batch))
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            error = StorageError(f"the database write failed: {exc}")
            for job in batch:
                job.result, job.error = None, error

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
