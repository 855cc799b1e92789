"""One database file, shared by every vendor identity opened on it in this process.

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
from datetime import datetime, timezone
from typing import Any

import sqlite_utils

from ._errors import NotAVendorDatabase, StorageError
from ._schema import migrate
from ._writer import GroupCommitWriter, connect

__all__ = ["Database"]

_OPEN: dict[str, Database] = {}
_OPEN_LOCK = threading.Lock()


def _purge_expired(conn: sqlite3.Connection) -> None:
    # A message id is kept until the message expires; after that protocol.parse
    # refuses the message as expired anyway, so the id can go.
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    conn.execute("DELETE FROM vrm_seen WHERE expires < ?", (now,))


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


class Database:
    """The shared handle on one SQLite file: schema, writer, reader."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._refs = 0
        self._read_lock = threading.Lock()
        try:
            setup = sqlite_utils.Database(path)
            try:
                setup.execute("PRAGMA journal_mode = WAL")
                migrate(setup)
            finally:
                setup.close()
        except sqlite3.Error as exc:
            raise StorageError(f"cannot use {path} as a vendor database: {exc}") from exc
        self.writer = GroupCommitWriter(path, maintenance=_purge_expired)
        self._reader = connect(path, check_same_thread=False)
        self._reader.row_factory = sqlite3.Row
        #: KeySealers already derived for this file, by passphrase digest.
        self.sealers: dict[bytes, Any] = {}

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
