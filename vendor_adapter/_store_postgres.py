"""The PostgreSQL store: the same rules as on SQLite, on a database that any
number of processes on any number of hosts share (``_store`` describes the
interface).

    vendor = Vendor.open("postgresql://vrm@db.internal/shop", name="Bikes4U",
                         passphrase=...)

The DSN follows libpq (https://www.postgresql.org/docs/current/libpq-connect.html):
a URI or ``key=value`` pairs; the password comes from the DSN, ``PGPASSWORD``
or ``~/.pgpass``. Messages name the database by :func:`redact` (no password).

Connections come from a psycopg_pool ``ConnectionPool`` (psycopg 3). The
rules are synchronous code (a ``CrmSink.apply(conn, event)`` is a plain
function), so, as on SQLite, one writer thread per process runs them and
commits the jobs of concurrent requests in batches, one transaction per
batch (``_writer``); the event loop only awaits a future. Reads take a pooled
connection of their own.

Exactly once across processes:

- every job that touches a relationship first takes that relationship's lock
  (``PgTx.lock``: ``pg_advisory_xact_lock`` on a 64-bit hash of vendor and
  DID), held until its batch commits. Under it the ledger looks the message
  up in ``vrm_seen`` (READ COMMITTED: each statement sees every commit made
  before it), so the same message racing through two workers is applied once
  and the other answer is ``duplicate``; two messages of one relationship are
  applied in one of their serial orders;
- a job may *wait* for a lock only while its batch holds none: the first job
  of a batch waits; a later one tries (``pg_try_advisory_xact_lock``) and, if
  another process holds the lock, is rolled back to its savepoint and runs
  first in the next batch. No batch waits while holding a lock, so batches of
  different processes never deadlock;
- the outbox cursor (``seq``) is assigned under the relationship's lock and
  fetched under it, so an agent never skips an offer still being committed.

The expiry purge runs once a minute in some process, one at a time
(``pg_try_advisory_xact_lock``), in a transaction of its own that gives up at
once rather than wait for a batch (``lock_timeout``).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from ._errors import NotAVendorDatabase, StorageError
from ._ledger import purge_expired
from ._store import StoreBase

try:
    import psycopg
    from psycopg.conninfo import conninfo_to_dict
    from psycopg.rows import dict_row
    from psycopg_pool import ConnectionPool, PoolTimeout
except ImportError as exc:  # pragma: no cover - the extra is not installed
    raise StorageError("a postgresql:// database needs psycopg 3 and psycopg_pool: "
                       "pip install 'vrm[postgresql]'") from exc

from ._schema_postgres import migrate

__all__ = ["PostgresDatabase", "PostgresSession", "PgTx", "POSTGRES", "redact", "translate"]

log = logging.getLogger("vendor_adapter.postgres")

#: The purge's advisory lock ("vrm_purge").
_PURGE_LOCK = 0x76726D5F7075726765 & 0x7FFFFFFFFFFFFFFF
#: Connections per process: the writer, readers (CLI, dashboard), the purge.
POOL_SIZE = 4


def redact(dsn: str) -> str:
    """``dsn`` as a ``postgresql://`` URI without its password (for messages).

    Never raises: a DSN libpq cannot parse is shown as ``a PostgreSQL database``,
    since the text may hold a password anywhere."""
    try:
        parts = conninfo_to_dict(dsn)
    except Exception:
        return "a PostgreSQL database (its DSN does not parse)"
    parts.pop("password", None)
    host = str(parts.pop("host", "") or "")
    user = str(parts.pop("user", "") or "")
    port = str(parts.pop("port", "") or "")
    dbname = str(parts.pop("dbname", "") or "")
    netloc = ""
    if user:
        netloc = quote(user, safe="") + "@"
    if host and "," not in host:
        netloc += quote(host, safe="")
    elif host:
        parts["host"] = host
    if port:
        netloc += ":" + port
    query = "&".join(f"{quote(str(k))}={quote(str(v), safe='')}" for k, v in parts.items())
    return f"postgresql://{netloc}/{quote(dbname, safe='')}" + (f"?{query}" if query else "")


_TRANSLATED: dict[str, str] = {}


def translate(sql: str) -> str:
    """The rules' SQL (``?`` placeholders) as psycopg's (``%s``; a literal ``%``
    doubled). The rules never use ``?`` for anything else (such as jsonb's
    key-exists operator)."""
    done = _TRANSLATED.get(sql)
    if done is None:
        done = sql.replace("%", "%%").replace("?", "%s")
        if len(_TRANSLATED) < 4096:
            _TRANSLATED[sql] = done
    return done


class _PostgresDialect:
    name = "postgresql"

    def json_increment(self, column: str, key: str) -> tuple[str, tuple[Any, ...]]:
        return (f"jsonb_set({column}::jsonb, ARRAY[CAST(? AS text)], to_jsonb(coalesce(("
                f"{column}::jsonb ->> CAST(? AS text))::bigint, 0) + 1))::text", (key, key))

    def json_sorted_union(self, column: str, value: str) -> tuple[str, tuple[Any, ...]]:
        # COLLATE "C": code point order, as SQLite's default BINARY collation.
        return (f"(SELECT coalesce(jsonb_agg(v ORDER BY v COLLATE \"C\"), '[]'::jsonb)::text "
                f"FROM (SELECT jsonb_array_elements_text({column}::jsonb) AS v "
                f"UNION SELECT CAST(? AS text)) AS u)", (value,))

    def json_without(self, column: str, key: str) -> tuple[str, tuple[Any, ...]]:
        return f"({column}::jsonb - CAST(? AS text))::text", (key,)

    def continue_ids(self, conn: Any, table: str, column: str) -> None:
        conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'), "
                     f"coalesce(max({column}), 0) + 1, false) FROM {table}")

    def columns(self, conn: Any, table: str) -> list[tuple[str, bool, str | None]]:
        rows = conn.execute(
            "SELECT column_name, is_nullable = 'NO', column_default "
            "FROM information_schema.columns WHERE table_schema = current_schema() "
            "AND table_name = ? ORDER BY ordinal_position", (table,)).fetchall()
        return [(name, bool(notnull), default) for name, notnull, default in rows]


POSTGRES = _PostgresDialect()


class _Busy(Exception):
    """Another process holds a lock this job needs, and its batch holds locks already."""


class PgTx:
    """A PostgreSQL connection as the rules see it (``_store.Tx``)."""

    dialect = POSTGRES

    __slots__ = ("_conn", "holding")

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn
        #: The transaction holds a relationship lock already (so it may not wait).
        self.holding = False

    def execute(self, sql: str, parameters: Any = (), /) -> psycopg.Cursor[Any]:
        return self._conn.execute(translate(sql), tuple(parameters))

    def executemany(self, sql: str, rows: Any, /) -> None:
        with self._conn.cursor() as cursor:
            cursor.executemany(translate(sql), rows)

    def cursor(self) -> PgTx:
        """DB-API style ``conn.cursor().executemany(...)``: this object."""
        return self

    def lock(self, *key: str) -> None:
        name = "\x1f".join(key)
        if not self.holding:
            self._conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                               (name,))
        elif not self._conn.execute("SELECT pg_try_advisory_xact_lock(hashtextextended(%s, 0))",
                                    (name,)).fetchone()[0]:
            raise _Busy(name)
        self.holding = True


def _storage_error(what: str, exc: BaseException) -> StorageError:
    # psycopg's messages come from the server or libpq and never hold the password.
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return StorageError(f"{what}: {detail}")


class PostgresSession:
    """The batch transaction of the group-commit writer, on a pooled connection."""

    def __init__(self, pool: ConnectionPool, path: str, *,
                 maintenance: Callable[[], None] | None = None,
                 maintenance_every: float = 60.0) -> None:
        self.path = path
        self._pool = pool
        self._maintenance = maintenance
        self._maintenance_every = maintenance_every
        self._next_maintenance = time.monotonic() + maintenance_every

    def commit(self, batch: list[Any]) -> list[Any]:
        again: list[Any] = []
        try:
            with self._pool.connection() as conn:
                tx = PgTx(conn)
                # One round trip between two jobs, not two: each statement pair
                # goes as one simple query (no parameters).
                conn.execute("BEGIN; SAVEPOINT vrm_job")
                try:
                    for n, job in enumerate(batch, 1):
                        try:
                            job.result = job.fn(tx)
                        except _Busy:
                            conn.execute("ROLLBACK TO SAVEPOINT vrm_job")
                            again.append(job)
                        except psycopg.Error as exc:
                            job.error = _storage_error("the database write failed", exc)
                            conn.execute("ROLLBACK TO SAVEPOINT vrm_job")
                        except Exception as exc:  # handed to the caller; the batch goes on
                            job.error = exc
                            conn.execute("ROLLBACK TO SAVEPOINT vrm_job")
                        conn.execute("RELEASE SAVEPOINT vrm_job; SAVEPOINT vrm_job"
                                     if n < len(batch) else "RELEASE SAVEPOINT vrm_job; COMMIT")
                except BaseException:
                    if not conn.closed:
                        try:
                            conn.execute("ROLLBACK")
                        except psycopg.Error:
                            pass
                    raise
        except (psycopg.Error, PoolTimeout) as exc:
            log.exception("a batch of %d writes failed and was rolled back", len(batch))
            error = _storage_error("the database write failed", exc)
            for job in batch:
                job.result, job.error = None, error
            again = []
        if self._maintenance is not None and time.monotonic() >= self._next_maintenance:
            self._next_maintenance = time.monotonic() + self._maintenance_every
            self._maintenance()
        return again

    def close(self) -> None:
        pass  # the pool belongs to the store


class PostgresDatabase(StoreBase):
    """The shared handle on one PostgreSQL database in this process."""

    def __init__(self, dsn: str, *, create: bool = True) -> None:
        super().__init__(dsn)
        #: The database as messages name it: the DSN without its password.
        self.path = redact(dsn)
        try:
            with psycopg.connect(dsn, autocommit=True) as setup:
                if not create:
                    self._probe(setup)
                migrate(setup)
        except psycopg.Error as exc:
            raise _storage_error(f"cannot use {self.path} as a vendor database", exc) from None
        options: dict[str, Any] = {"autocommit": True}
        if "application_name" not in conninfo_to_dict(dsn):
            # Which process a server backend serves (pg_stat_activity), e.g. a worker.
            options["application_name"] = f"vrm-vendor {os.getpid()}"
        self._pool = ConnectionPool(dsn, min_size=1, max_size=POOL_SIZE, open=True,
                                    kwargs=options, name="vrm")
        from ._writer import GroupCommitWriter
        self.writer = GroupCommitWriter(PostgresSession(
            self._pool, self.path, maintenance=self.purge))
        self._purge_lock = threading.Lock()

    def _probe(self, conn: psycopg.Connection[Any]) -> None:
        """Refuse, without writing, a database that holds no vendor yet."""
        if conn.execute("SELECT to_regclass('vrm_vendor')").fetchone()[0] is None:
            raise NotAVendorDatabase(f"{self.path} is not a vendor database; create one with "
                                     f"`vrm-vendor serve --db {self.path}`")
        if conn.execute("SELECT 1 FROM vrm_vendor LIMIT 1").fetchone() is None:
            raise NotAVendorDatabase(f"{self.path} holds no vendor yet; create one with "
                                     f"`vrm-vendor serve --db {self.path}`")

    @classmethod
    def acquire(cls, dsn: str, *, create: bool = True) -> PostgresDatabase:
        """The shared handle on ``dsn``; see ``Database.acquire``."""
        return cls._shared(dsn, lambda: cls(dsn, create=create))

    def release(self) -> None:
        if self._last_release():
            self.writer.close()
            self._pool.close()

    def read(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        """Rows as dicts, from a pooled connection (sees every committed batch)."""
        try:
            with self._pool.connection() as conn:
                cursor = conn.cursor(row_factory=dict_row)
                return cursor.execute(translate(sql), params).fetchall()
        except (psycopg.Error, PoolTimeout) as exc:
            raise _storage_error(f"cannot read {self.path}", exc) from None

    def purge(self) -> bool:
        """Delete what has expired (``purge_expired``), if no other process is
        purging now. Returns whether it ran. Never raises: a purge that could
        not run is tried again a minute later."""
        if not self._purge_lock.acquire(blocking=False):
            return False
        try:
            with self._pool.connection() as conn, conn.transaction():
                if not conn.execute("SELECT pg_try_advisory_xact_lock(%s)",
                                    (_PURGE_LOCK,)).fetchone()[0]:
                    return False
                # Give up rather than wait for a batch holding a row we would delete.
                conn.execute("SET LOCAL lock_timeout = '200ms'")
                purge_expired(PgTx(conn), now=self.purge_time())
            return True
        except (psycopg.Error, PoolTimeout):
            log.warning("the expiry purge did not run; it is tried again later", exc_info=True)
            return False
        finally:
            self._purge_lock.release()
