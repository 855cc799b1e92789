"""SQLite's side of the store interface (``_store``): its dialect, the
connection a job gets, and the batch transaction of the group-commit writer.

A job's connection is a ``sqlite3.Connection`` (a subclass carrying
``dialect`` and a no-op ``lock``: one writer thread per file serialises every
write already). Connections run in autocommit mode (we issue BEGIN
ourselves), WAL, synchronous=FULL: COMMIT returns only once the WAL is
fsynced, so an acknowledged message survives a power cut too, not only a
process crash (https://sqlite.org/pragma.html#pragma_synchronous).
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable
from typing import Any

from ._errors import StorageError

__all__ = ["SQLITE", "SqliteTx", "SqliteSession", "connect"]

log = logging.getLogger("vendor_adapter.writer")


class _SqliteDialect:
    name = "sqlite"

    def json_increment(self, column: str, key: str) -> tuple[str, tuple[Any, ...]]:
        path = f'$."{key}"'
        return f"json_set({column}, ?, coalesce(json_extract({column}, ?), 0) + 1)", (path, path)

    def json_sorted_union(self, column: str, value: str) -> tuple[str, tuple[Any, ...]]:
        return (f"(SELECT json_group_array(value) FROM (SELECT DISTINCT value FROM "
                f"(SELECT value FROM json_each({column}) UNION SELECT ?) ORDER BY value))",
                (value,))

    def json_without(self, column: str, key: str) -> tuple[str, tuple[Any, ...]]:
        return f"json_remove({column}, ?)", (f'$."{key}"',)

    def continue_ids(self, conn: Any, table: str, column: str) -> None:
        pass  # an INTEGER PRIMARY KEY (and AUTOINCREMENT) continues after the largest

    def columns(self, conn: Any, table: str) -> list[tuple[str, bool, str | None]]:
        return [(name, bool(notnull), default) for _, name, _, notnull, default, _
                in conn.execute(f"PRAGMA table_info({table})")]


SQLITE = _SqliteDialect()


class SqliteTx(sqlite3.Connection):
    """A SQLite connection as the rules see it (``_store.Tx``)."""

    dialect = SQLITE

    def lock(self, *key: str) -> None:
        """Nothing to do: one writer thread per file runs one job at a time."""


def connect(path: str, *, check_same_thread: bool = True) -> SqliteTx:
    """A connection in autocommit mode (we issue BEGIN ourselves), WAL, synchronous=FULL."""
    try:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=check_same_thread,
                               factory=SqliteTx)
        conn.execute("PRAGMA busy_timeout = 10000")  # another process (the CLI) may hold the lock
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
    except sqlite3.Error as exc:
        raise StorageError(f"cannot open the database {path}: {exc}") from exc
    return conn  # type: ignore[return-value]


class SqliteSession:
    """The write connection of one file and its batch transaction."""

    def __init__(self, path: str, *,
                 maintenance: Callable[[sqlite3.Connection], None] | None = None,
                 maintenance_every: float = 60.0) -> None:
        self.path = path
        self._maintenance = maintenance
        self._maintenance_every = maintenance_every
        self._next_maintenance = time.monotonic() + maintenance_every
        self._conn = connect(path, check_same_thread=False)

    def commit(self, batch: list[Any]) -> list[Any]:
        """Run the jobs of ``batch`` in one transaction, each under its own
        savepoint; set each job's ``result`` or ``error``. Returns the jobs to
        run again in the next batch (none, on SQLite)."""
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
        return []

    def close(self) -> None:
        self._conn.close()
