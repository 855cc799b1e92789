"""The SQLite store: one database file, shared by every vendor identity opened
on it in this process (``_store`` describes the interface it implements).

Opening the same path twice returns the same object (reference counted), so
many identities in one file share one group-commit writer and one reader
connection. Reads run on their own connection: in WAL mode readers never wait
for the writer (https://sqlite.org/wal.html).
"""

from __future__ import annotations

import json
import os
import pathlib
import sqlite3
import threading
from datetime import datetime
from typing import Any

import sqlite_utils

from ._errors import NotAVendorDatabase, StorageError
from ._ledger import purge_expired
from ._schema import migrate
from ._store import StoreBase
from ._writer import GroupCommitWriter, connect

__all__ = ["Database"]

def _purge_expired(conn: Any, *, now: datetime) -> None:
    # Kept here under its old name; the rule lives in the ledger.
    purge_expired(conn, now=now)


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


class Database(StoreBase):
    """The shared handle on one SQLite file: schema, writer, reader."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.path = path
        self._read_lock = threading.Lock()
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

    def _maintain(self, conn: sqlite3.Connection) -> None:
        # Runs in the writer thread, inside a batch transaction, once a minute.
        purge_expired(conn, now=self.purge_time())

    def purge(self) -> None:
        """Run the periodic purge now (blocking), as the writer does once a minute."""
        self.writer.run_sync(self._maintain)

    @classmethod
    def acquire(cls, path: str | os.PathLike[str], *, create: bool = True) -> Database:
        """The shared handle on ``path``. With ``create=False`` the file must
        already hold a vendor (``NotAVendorDatabase`` otherwise, nothing written)."""
        real = os.path.realpath(os.fspath(path))

        def make() -> Database:
            directory = os.path.dirname(real)
            if not os.path.isdir(directory):
                raise StorageError(f"the directory {directory} does not exist")
            if not create:
                _probe_vendor_database(real, os.fspath(path))
            return cls(real)

        return cls._shared(real, make)

    def release(self) -> None:
        if self._last_release():
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
