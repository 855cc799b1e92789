"""A store that survives the laptop: backup, restore, and a new passphrase.

- :func:`backup` writes a consistent copy of the whole store with SQLite's
  online backup API (https://sqlite.org/backup.html), while the agent may be
  running. The copy is one self-contained SQLite file (journal mode DELETE),
  mode 0600; keys stay sealed, so the backup needs no passphrase to make and
  the passphrase to use.
- :func:`restore` fills an empty VRM_HOME from a backup after checking that
  the file is a vrm store, that it is intact (``PRAGMA integrity_check``) and
  that the passphrase opens every key in it. Pending outbox messages keep
  their ids, so delivering them again after a restore is deduplicated by each
  vendor (PROTOCOL.md §4): each vendor records each message once.
- Changing the passphrase (:meth:`agent.Agent.change_passphrase`) re-seals
  every key in one transaction (``Keyring.reseal``): a crash leaves the old or
  the new passphrase working, never neither.

A backup file is written through :func:`agent._files.write_private`: a
temporary file in the target's directory, 0600, synced, then renamed over the
target, so a reader never sees half a file and a crash leaves the old file or
none; a symlink, FIFO or device at the target is refused.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import sys
import tempfile
from contextlib import closing
from pathlib import Path
from typing import BinaryIO

import protocol

from ._errors import PassphraseError, StoreError, UsageError
from ._files import write_private
from ._store import DB_NAME, Store, connect_read_only

__all__ = ["backup", "backup_home", "restore"]

#: The name a restore writes to before it renames the file to ``vrm.db``.
_RESTORING = DB_NAME + ".restoring"


def _copy_database(source: sqlite3.Connection, target: Path) -> None:
    """SQLite's online backup of ``source`` into the file ``target``, as one file."""
    with closing(sqlite3.connect(str(target))) as copy:
        source.backup(copy)
        # The copy keeps the source's WAL flag; a backup is one self-contained file.
        copy.execute("PRAGMA journal_mode=DELETE")
        copy.commit()


def _open_readonly(path: Path) -> sqlite3.Connection:
    """A read-only connection to a store file (which may be in WAL mode)."""
    try:
        return connect_read_only(path)
    except StoreError:
        raise StoreError(f"{path} is not a vrm store, or it is damaged") from None


def backup(source: Store | sqlite3.Connection, output: Path | BinaryIO) -> None:
    """Write a consistent copy of the store to ``output``: a path (0600, written
    through :func:`write_private`) or a binary stream (``-o -``: standard output).

    ``source`` is an open :class:`Store` or a connection to the store's file
    (a read-only one will do). Raises :class:`UsageError` for an unusable
    output and :class:`StoreError` when the store cannot be read.
    """
    conn = source.db.conn if isinstance(source, Store) else source

    def fill(target: Path) -> None:
        try:
            _copy_database(conn, target)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"the store cannot be backed up: {exc}") from None

    if isinstance(output, Path):
        write_private(output, fill)
        return
    with tempfile.TemporaryDirectory(prefix="vrm-backup-") as scratch:
        copy = Path(scratch) / DB_NAME
        fill(copy)
        with open(copy, "rb") as handle:
            shutil.copyfileobj(handle, output)
        output.flush()


def backup_home(home: Path, output: Path | BinaryIO) -> None:
    """:func:`backup` of the store in ``home`` without opening it for writing (a
    read-only store backs up too), and without the passphrase: keys stay sealed."""
    path = home / DB_NAME
    if not path.exists():
        Store.open(home)  # raises the usual NoStore sentence
    with closing(connect_read_only(path)) as conn:
        _check_store(conn, path)
        backup(conn, output)


def _check_store(conn: sqlite3.Connection, path: Path) -> dict[str, str]:
    """The store's ``meta``, after checking that ``conn`` is an intact vrm store."""
    try:
        (result,) = conn.execute("PRAGMA integrity_check").fetchone()
        tables = {name for (name,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
        if result != "ok":
            raise StoreError(f"{path} is damaged ({str(result)[:200]}); use another backup")
        if not {"meta", "keys", "vendors", "outbox"} <= tables:
            raise StoreError(f"{path} is not a vrm store")
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{path} is not a vrm store, or it is damaged ({exc})") from None
    if "sealer" not in meta or "identity" not in meta:
        raise StoreError(f"{path} is not a vrm store: it has no keys")
    return meta


def _check_passphrase(conn: sqlite3.Connection, meta: dict[str, str], passphrase: str,
                      path: Path) -> None:
    """Every sealed key in the backup opens with ``passphrase``, or an error."""
    import json

    try:
        sealer = protocol.KeySealer.open(passphrase, json.loads(meta["sealer"]))
    except protocol.WrongPassphrase:
        raise PassphraseError(f"the passphrase does not open {path}; it is the one the "
                              f"store had when the backup was made") from None
    except (protocol.SealedKeyError, ValueError) as exc:
        raise StoreError(f"the key parameters in {path} are damaged: {exc}") from None
    for did, sealed in conn.execute("SELECT did, sealed FROM keys"):
        try:
            sealer.unseal(sealed, did=did)
        except protocol.SealedKeyError:
            raise StoreError(f"a key in {path} cannot be opened ({did}); the backup is "
                             f"damaged") from None


def _is_empty(home: Path) -> bool:
    try:
        return not home.exists() or all(entry.name == _RESTORING for entry in home.iterdir())
    except OSError as exc:
        raise StoreError(f"cannot read {home}: {(exc.strerror or str(exc)).lower()}") from None


def restore(source: Path, home: Path, passphrase: str) -> None:
    """Fill the empty directory ``home`` with the store backed up in ``source``.

    Checks first that ``source`` is an intact vrm store and that
    ``passphrase`` opens every key in it. Raises :class:`UsageError` when
    ``home`` is not empty (a restore never overwrites a store),
    :class:`PassphraseError` for the wrong passphrase and :class:`StoreError`
    for a file that is not an intact vrm store. The store appears whole or not
    at all: it is copied to a temporary name in ``home`` and renamed.
    """
    home = Path(home)
    if not _is_empty(home):
        raise UsageError(f"{home} is not empty; restore into a new, empty directory (set "
                         f"VRM_HOME to it)")
    try:
        if not source.is_file():
            raise UsageError(f"{source} is not a file")
    except OSError as exc:
        raise UsageError(f"cannot read {source}: {(exc.strerror or str(exc)).lower()}") from None
    with closing(_open_readonly(source)) as conn:
        meta = _check_store(conn, source)
        _check_passphrase(conn, meta, passphrase, source)
        try:
            home.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.chmod(home, 0o700)
            target = home / _RESTORING
            target.unlink(missing_ok=True)
            os.close(os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
            _copy_database(conn, target)
            with open(target, "rb+") as handle:
                os.fsync(handle.fileno())
            os.rename(target, home / DB_NAME)
        except OSError as exc:
            raise StoreError(f"cannot restore into {home}: "
                             f"{(exc.strerror or str(exc)).lower()}") from None
    # Opening it once applies any newer migrations and switches it back to WAL.
    # No run of this store holds a claim on its outbox (the runs that did were
    # the old store's), so the pending messages are due at once.
    store = Store.open(home)
    try:
        with store.transaction() as conn:
            conn.execute("UPDATE outbox SET claimed_by = NULL, claim_expires = NULL "
                         "WHERE claimed_by IS NOT NULL")
    finally:
        store.close()


def stdout_binary() -> BinaryIO:
    """Standard output as a binary stream (``-o -``)."""
    return sys.stdout.buffer
