"""One database file, shared by every vendor identity opened on it in this process.

Opening the same path twice returns the same object (reference counted), so
many identities in one file share one group-commit writer and one reader
connection. Reads run on their own connection: in WAL mode readers never wait
for the writer (https://sqlite.org/wal.html).
"""

from __future__ import annotations

import json
import logging
import os
import pathlib
import sqlite3
import threading
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import sqlite_utils

import protocol

from ._errors import NotAVendorDatabase, StorageError
from ._schema import migrate
from ._writer import GroupCommitWriter, connect

__all__ = ["Database"]

log = logging.getLogger("vendor_adapter.database")

_OPEN: dict[str, Database] = {}
_OPEN_LOCK = threading.Lock()


#: The clock used when no vendor on the file has registered one.
def _wall_clock() -> datetime:
    return datetime.now(timezone.utc)


def _purge_expired(conn: sqlite3.Connection, *, now: datetime) -> None:
    """Delete what has expired by ``now``: seen message ids and queued messages.

    A message id is kept until the message expires; after that protocol.parse
    refuses the message as expired anyway, so the id can go. A queued message
    past its ``expires`` can never be accepted by the agent, so it goes too.
    ``now`` is cut to the second ("...T12:00:00" sorts before "...T12:00:00Z"
    and "...T12:00:00.5Z"): a row is purged only once its whole second is past,
    never early.
    """
    cutoff = protocol.format_time(now)[:19]
    conn.execute("DELETE FROM vrm_seen WHERE expires < ?", (cutoff,))
    conn.execute("DELETE FROM vrm_outbox WHERE expires < ?", (cutoff,))


def _probe_vendor_database(real: str, path: str) -> None:
    """Refuse, without writing a byte, a file that holds no vendor yet (``real`` is
    its absolute path, ``path`` the one the caller gave, for the message).

    Opened read-only (``mode=ro``): no journal mode switch, no migration, no
    keystore row, no -wal file. Used for ``create=False`` (the CLI's ``crm`` and
    ``offer``), so that pointing them at the wrong file changes nothing.
    """
    refusal = (f"{path} is not a vendor database; "
               f"create one with `vrm-vendor serve --db {path}`")
    if not os.path.isfile(real) or os.path.getsize(real) == 0:
        raise NotAVendorDatabase(refusal)
    try:
        probe = sqlite3.connect(f"{pathlib.Path(real).as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise StorageError(f"cannot open {path}: {exc}") from exc
    try:
        tables = {row[0] for row in probe.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not {"vrm_keystore", "vrm_vendor"} <= tables:
            raise NotAVendorDatabase(refusal)
        if probe.execute("SELECT 1 FROM vrm_vendor LIMIT 1").fetchone() is None:
            raise NotAVendorDatabase(f"{path} holds no vendor yet; "
                                     f"create one with `vrm-vendor serve --db {path}`")
    except sqlite3.Error as exc:  # not SQLite at all, or damaged
        raise NotAVendorDatabase(f"{refusal} ({exc})") from exc
    finally:
        probe.close()


def _create_private(path: str) -> None:
    """Create the file with mode 0600 if it does not exist yet.

    It will hold the customers' personal data and the sealed vendor key, so
    only its owner may read it. SQLite gives the -wal and -shm files the
    database file's permissions, so they are private too. An existing file
    keeps the mode its owner gave it.
    """
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except OSError:  # it exists; or it cannot be made, which SQLite will report
        pass


class Database:
    """The shared handle on one SQLite file: schema, writer, reader."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._refs = 0
        self._read_lock = threading.Lock()
        #: The clocks of the vendors open on this file (a clock -> how many use it).
        self._clocks: dict[Callable[[], datetime], int] = {}
        self._clocks_lock = threading.Lock()
        _create_private(path)
        try:
            setup = sqlite_utils.Database(path)
            try:
                setup.execute("PRAGMA journal_mode = WAL")
                migrate(setup)
            finally:
                setup.close()
        except sqlite3.Error as exc:
            raise StorageError(f"cannot use {path} as a vendor database: {exc}") from exc
        self.writer = GroupCommitWriter(path, maintenance=self._maintain)
        self._reader = connect(path, check_same_thread=False)
        self._reader.row_factory = sqlite3.Row
        #: KeySealers already derived for this file, by passphrase digest.
        self.sealers: dict[bytes, Any] = {}

    # --- clocks and maintenance ---------------------------------------------------

    def add_clock(self, clock: Callable[[], datetime]) -> None:
        """Register the clock of a vendor opened on this file (its purges use it)."""
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

        Vendors sharing a file share its writer and so its purge. Purging by the
        earliest clock is safe for all of them: a row goes only once it has
        expired for every vendor (most share one clock, the wall clock). Each
        vendor's messages.fetch also skips what has expired by its own clock.
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

    def _maintain(self, conn: sqlite3.Connection) -> None:
        # Runs in the writer thread, inside a batch transaction, once a minute.
        _purge_expired(conn, now=self.purge_time())

    @classmethod
    def acquire(cls, path: str | os.PathLike[str], *, create: bool = True) -> Database:
        """The shared handle on ``path``. With ``create=False`` the file must
        already hold a vendor (``NotAVendorDatabase`` otherwise, nothing written)."""
        real = os.path.realpath(os.fspath(path))
        with _OPEN_LOCK:
            db = _OPEN.get(real)
            if db is None:
                directory = os.path.dirname(real)
                if not os.path.isdir(directory):
                    raise StorageError(f"the directory {directory} does not exist")
                if not create:
                    _probe_vendor_database(real, os.fspath(path))
                db = _OPEN[real] = cls(real)
            db._refs += 1
            return db

    def release(self) -> None:
        with _OPEN_LOCK:
            self._refs -= 1
            if self._refs > 0:
                return
            _OPEN.pop(self.path, None)
        self.writer.close()
        self._reader.close()

    def read(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        """Rows as dicts, from the reader connection (sees every committed batch)."""
        with self._read_lock:
            try:
                return [dict(row) for row in self._reader.execute(sql, params)]
            except sqlite3.Error as exc:
                raise StorageError(f"cannot read {self.path}: {exc}") from exc


def loads_json(text: str | None, default: Any) -> Any:
    return default if text is None else json.loads(text)
