"""The store interface: what the relationship rules ask of a database.

The rules (``_ledger.Ledger``, ``_crm.SqliteCrm``, the offer job in
``_vendor``, the identity in ``_identity``) are written once, against this
interface. Two stores implement it:

- SQLite (``_database.Database`` with ``_store_sqlite``): one file, one
  group-commit writer thread per file in a process. The embedded default.
- PostgreSQL (``_store_postgres.PostgresDatabase``): a DSN
  (``postgresql://user@host/db``), psycopg 3 with psycopg_pool; any number of
  processes on any number of hosts share one database.

What a rule sees:

``Tx`` (the ``conn`` a job receives)
    ``conn.execute(sql, params) -> cursor`` with ``fetchone()``/``fetchall()``
    returning tuples; ``conn.executemany(sql, rows)``. SQL uses ``?`` placeholders and the SQL both engines
    share (``INSERT ... ON CONFLICT DO NOTHING``, ``RETURNING``, ``coalesce``).
    ``conn.dialect`` gives the few fragments that differ (:class:`Dialect`).
    ``conn.lock(*key)`` serialises everything done under one key (a
    relationship: vendor and DID) across processes until the transaction
    ends: a no-op on SQLite, whose single writer serialises already; a
    transaction-scoped advisory lock on PostgreSQL. Every write that touches
    one relationship's rows takes its lock first (``Ledger.lock``).
    A job runs inside the batch's transaction, under a savepoint of its own:
    an exception rolls back that job alone.

``Store`` (``vendor._db``)
    ``writer.run(job)`` / ``writer.run_sync(job)``: run ``job(conn)`` in the
    next group-commit batch; the result comes back only after COMMIT.
    ``read(sql, params) -> list[dict]``: committed rows, from another
    connection. ``path``: what messages call the database (a file path, or the
    DSN without its password). ``sealers``, ``add_clock``/``remove_clock``/
    ``purge_time``, ``release()``.

Porting code onto it: write new rules as jobs against ``Tx`` (``?``
placeholders; ask ``conn.dialect`` for any JSON or catalogue SQL; lock the
relationship before touching its rows), and new tables as a migration in both
``_schema`` (SQLite, sqlite-utils migrations) and ``_schema_postgres``. The
forwarding queue (``forward/_queue.py``) works this way: its events are
written through ``Tx`` in the transaction of the CRM change, on either
store. Its relay runs in each process that has targets, so one process per
database may forward (``serve --workers N`` refuses targets); several relays
would claim rows with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL (a new
``Dialect`` fragment, empty on SQLite, whose single writer needs none): not
done yet. A store-wide singleton job (a purge, a sweep)
takes ``pg_try_advisory_xact_lock`` as ``PostgresDatabase.purge`` does.
Reads outside the writer go through ``store.read`` with the same SQL.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any, Protocol

__all__ = ["Dialect", "Tx", "Store", "StoreBase", "open_store", "is_dsn"]

log = logging.getLogger("vendor_adapter.store")


class Dialect(Protocol):
    """The SQL fragments that differ between the stores. Each returns a SQL
    expression (with ``?`` placeholders) and its parameters."""

    name: str

    def json_increment(self, column: str, key: str) -> tuple[str, tuple[Any, ...]]:
        """The JSON object in ``column`` (text) with member ``key`` one higher
        (starting from 0)."""
        ...

    def json_sorted_union(self, column: str, value: str) -> tuple[str, tuple[Any, ...]]:
        """The JSON array of strings in ``column`` with ``value`` added, sorted
        by code point, without duplicates."""
        ...

    def json_without(self, column: str, key: str) -> tuple[str, tuple[Any, ...]]:
        """The JSON object in ``column`` without member ``key``."""
        ...

    def columns(self, conn: Tx, table: str) -> list[tuple[str, bool, str | None]]:
        """``table``'s columns: (name, NOT NULL, default expression or None)."""
        ...

    def continue_ids(self, conn: Tx, table: str, column: str) -> None:
        """After rows were inserted with explicit ids: new rows get larger ones."""
        ...


class Tx(Protocol):
    """The connection a job gets, inside a transaction."""

    dialect: Dialect

    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Any: ...

    def executemany(self, sql: str, rows: Any, /) -> Any: ...

    def lock(self, *key: str) -> None:
        """Hold the lock named by ``key`` until the transaction ends."""
        ...


class Store(Protocol):
    path: str
    writer: Any
    sealers: dict[bytes, Any]

    def read(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]: ...
    def add_clock(self, clock: Callable[[], datetime]) -> None: ...
    def remove_clock(self, clock: Callable[[], datetime]) -> None: ...
    def release(self) -> None: ...


#: The clock used when no vendor on the store has registered one.
def _wall_clock() -> datetime:
    return datetime.now(timezone.utc)


class StoreBase:
    """What every store shares: reference counting per process, the vendors'
    clocks (for the purge) and the key sealers already derived."""

    #: The stores open in this process, by key (a real path, a DSN), per class.
    _open: dict[str, StoreBase]
    _open_lock = threading.Lock()

    def __init__(self, key: str) -> None:
        self._key = key
        self._refs = 0
        #: The clocks of the vendors open on this store (a clock -> how many use it).
        self._clocks: dict[Callable[[], datetime], int] = {}
        self._clocks_lock = threading.Lock()
        #: KeySealers already derived for this store, by passphrase digest.
        self.sealers: dict[bytes, Any] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._open = {}

    @classmethod
    def _shared(cls, key: str, make: Callable[[], StoreBase]) -> Any:
        with StoreBase._open_lock:
            store = cls._open.get(key)
            if store is None:
                store = cls._open[key] = make()
            store._refs += 1
            return store

    def _last_release(self) -> bool:
        """Count one release; True if it was the last (the caller then closes)."""
        with StoreBase._open_lock:
            self._refs -= 1
            if self._refs > 0:
                return False
            type(self)._open.pop(self._key, None)
            return True

    # --- clocks --------------------------------------------------------------------

    def add_clock(self, clock: Callable[[], datetime]) -> None:
        """Register the clock of a vendor opened on this store (its purges use it)."""
        with self._clocks_lock:
            self._clocks[clock] = self._clocks.get(clock, 0) + 1

    def remove_clock(self, clock: Callable[[], datetime]) -> None:
        with self._clocks_lock:
            left = self._clocks.get(clock, 0) - 1
            if left > 0:
                self._clocks[clock] = left
            else:
                self._clocks.pop(clock, None)

    def purge_time(self) -> datetime:
        """The earliest "now" among the vendors' clocks (the wall clock if none).

        Vendors sharing a store share its purge. Purging by the earliest clock is
        safe for all of them: a row goes only once it has expired for every
        vendor (most share one clock, the wall clock). Each vendor's
        messages.fetch also skips what has expired by its own clock.
        """
        with self._clocks_lock:
            clocks = list(self._clocks) or [_wall_clock]
        times = []
        for clock in clocks:
            try:
                times.append(clock().astimezone(timezone.utc))
            except Exception:  # a vendor's clock failed: purge nothing by it
                log.exception("a vendor clock failed; the purge uses the others")
        return min(times) if times else datetime.min.replace(tzinfo=timezone.utc)


def is_dsn(target: str | os.PathLike[str]) -> bool:
    """True if ``target`` names a PostgreSQL database (a libpq URI), not a file."""
    return isinstance(target, str) and target.startswith(("postgresql://", "postgres://"))


def open_store(target: str | os.PathLike[str], *, create: bool = True) -> Any:
    """The shared store for ``target``: a SQLite file path, or a PostgreSQL URI
    (``postgresql://user@host:5432/db``, libpq conventions: the password comes
    from the URI, ``PGPASSWORD`` or ``~/.pgpass``).

    Raises ``StorageError`` (``NotAVendorDatabase`` with ``create=False`` when
    the store holds no vendor)."""
    if is_dsn(target):
        from ._store_postgres import PostgresDatabase
        return PostgresDatabase.acquire(str(target), create=create)
    from ._database import Database
    return Database.acquire(target, create=create)
