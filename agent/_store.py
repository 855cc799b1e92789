"""The agent's store: one SQLite database (WAL) under VRM_HOME, and its schema.

This module owns the file, its permissions, the schema migrations and the
transaction helper. It knows nothing about HTTP or signing: the rest of the
agent reads and writes rows through :class:`Store`.

Tables (see ``_migrations`` below for the exact schema):

- ``meta``           key/value: the key-sealing parameters, the person's name,
                     the terms proffered (``terms``) and the contact
                     preferences (``preferences``), as JSON
- ``keys``           every private key, sealed (never plaintext)
- ``profile``        the person's fields, flattened: ``postal_address.locality``
- ``vendors``        one row per relationship: discovery document, pinned vendor
                     DID and key, pairwise DID, the fields the vendor may see,
                     status, the pull cursor. A vendor added again after an end
                     or a key change gets a new row; the old one stays as history.
- ``broadcasts``     one row per person-level action (an intent, a profile change)
- ``outbox``         one row per message per vendor, with the signed JWS bytes
                     and the claim of the delivery run sending it (m003)
- ``outbox_fields``  which profile fields each outgoing message carries
- ``receipts``       the vendor-signed receipt (raw JWS) for each message: the
                     first valid one, kept for ever
- ``inbox``          offers and other messages pulled from vendors
- ``shared`` (view)  who knows what: per vendor and field, the last delivered
                     message that carried it and its receipt
"""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import sqlite_utils
from sqlite_utils.migrations import Migrations

from ._errors import NoStore, StoreError, StoreExists

__all__ = ["Store", "DB_NAME", "ts", "from_ts", "connect_read_only"]

DB_NAME = "vrm.db"

_migrations = Migrations("vrm-agent")


def ts(moment: datetime) -> str:
    """A UTC timestamp with fixed width, so that text order is time order in SQL."""
    moment = moment.astimezone(timezone.utc)
    if moment.year < 1000:  # strftime's %Y does not pad; isoformat's does
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    # The same text as the strftime above, several times faster.
    return moment.isoformat(timespec="microseconds")[:26] + "Z"


def from_ts(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)


#: Who knows what: for each vendor and field, the latest delivered message that
#: carried the field, with its receipt. A vendor that confirmed an erasure holds
#: nothing any more.
_SHARED_VIEW = """
    CREATE VIEW shared AS
    SELECT v.id AS vendor_id, v.name AS vendor, f.field, f.removed,
           o.id AS message_id, o.type AS message_type,
           r.receipt_id, r.received AS as_of
    FROM outbox_fields f
    JOIN outbox o ON o.id = f.message_id
    JOIN vendors v ON v.id = f.vendor_id
    JOIN receipts r ON r.message_id = o.id
    WHERE o.status = 'delivered' AND v.erased = 0
      AND o.rowid = (
        SELECT max(o2.rowid) FROM outbox_fields f2 JOIN outbox o2 ON o2.id = f2.message_id
        WHERE f2.vendor_id = f.vendor_id AND f2.field = f.field
          AND o2.status = 'delivered')"""


@_migrations()
def m001_initial(db: sqlite_utils.Database) -> None:
    db.executescript(
        """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE keys (
            did TEXT PRIMARY KEY, sealed TEXT NOT NULL, purpose TEXT NOT NULL,
            created TEXT NOT NULL);
        CREATE TABLE profile (
            field TEXT PRIMARY KEY, value TEXT NOT NULL, updated TEXT NOT NULL);
        CREATE TABLE vendors (
            id INTEGER PRIMARY KEY, name TEXT NOT NULL, url TEXT NOT NULL UNIQUE,
            discovery_url TEXT NOT NULL, discovery TEXT NOT NULL,
            vendor_did TEXT NOT NULL, vendor_jwk TEXT NOT NULL, inbox TEXT NOT NULL,
            pairwise_did TEXT NOT NULL UNIQUE REFERENCES keys(did),
            share TEXT NOT NULL, status TEXT NOT NULL, erased INTEGER NOT NULL DEFAULT 0,
            cursor TEXT, added TEXT NOT NULL, updated TEXT NOT NULL);
        CREATE TABLE broadcasts (
            id TEXT PRIMARY KEY, type TEXT NOT NULL, summary TEXT NOT NULL,
            body TEXT NOT NULL, created TEXT NOT NULL);
        CREATE TABLE outbox (
            id TEXT PRIMARY KEY, vendor_id INTEGER NOT NULL REFERENCES vendors(id),
            broadcast_id TEXT REFERENCES broadcasts(id), type TEXT NOT NULL,
            jws BLOB NOT NULL, created TEXT NOT NULL, expires TEXT NOT NULL,
            status TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt TEXT NOT NULL, last_error TEXT, http_status INTEGER,
            meta TEXT, updated TEXT NOT NULL);
        CREATE INDEX outbox_due ON outbox (status, next_attempt);
        CREATE INDEX outbox_vendor ON outbox (vendor_id);
        CREATE TABLE outbox_fields (
            message_id TEXT NOT NULL REFERENCES outbox(id), vendor_id INTEGER NOT NULL,
            field TEXT NOT NULL, removed INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (message_id, field));
        CREATE INDEX outbox_fields_vendor ON outbox_fields (vendor_id, field);
        CREATE TABLE receipts (
            message_id TEXT PRIMARY KEY REFERENCES outbox(id), vendor_id INTEGER NOT NULL,
            receipt_id TEXT NOT NULL, status TEXT NOT NULL, problem TEXT, record TEXT,
            jws BLOB NOT NULL, received TEXT NOT NULL);
        CREATE TABLE inbox (
            vendor_id INTEGER NOT NULL REFERENCES vendors(id), id TEXT NOT NULL,
            type TEXT NOT NULL, thread TEXT, body TEXT NOT NULL, jws BLOB NOT NULL,
            created TEXT NOT NULL, received TEXT NOT NULL, PRIMARY KEY (vendor_id, id));
        CREATE INDEX inbox_thread ON inbox (thread);
        -- The shared view, as first created (m002 re-creates it from _SHARED_VIEW).
        CREATE VIEW shared AS
        SELECT v.id AS vendor_id, v.name AS vendor, f.field, f.removed,
               o.id AS message_id, o.type AS message_type,
               r.receipt_id, r.received AS as_of
        FROM outbox_fields f
        JOIN outbox o ON o.id = f.message_id
        JOIN vendors v ON v.id = f.vendor_id
        JOIN receipts r ON r.message_id = o.id
        WHERE o.status = 'delivered' AND v.erased = 0
          AND o.rowid = (
            SELECT max(o2.rowid) FROM outbox_fields f2 JOIN outbox o2 ON o2.id = f2.message_id
            WHERE f2.vendor_id = f.vendor_id AND f2.field = f.field
              AND o2.status = 'delivered');
        """
    )


@_migrations()
def m002_vendor_url_not_unique(db: sqlite_utils.Database) -> None:
    """One URL may have several relationships over time: adding a vendor again after
    an end or a key change starts a new one (a new row, a new pairwise DID) and
    keeps the old row as history. SQLite cannot drop a UNIQUE constraint, so the
    table is rebuilt (https://sqlite.org/lang_altertable.html#otheralter). This
    runs with foreign keys off (see ``Store._connect``), and the view that reads
    the table is dropped first, or the rename would refuse it."""
    for statement in (
        "DROP VIEW shared",
        """CREATE TABLE vendors_new (
            id INTEGER PRIMARY KEY, name TEXT NOT NULL, url TEXT NOT NULL,
            discovery_url TEXT NOT NULL, discovery TEXT NOT NULL,
            vendor_did TEXT NOT NULL, vendor_jwk TEXT NOT NULL, inbox TEXT NOT NULL,
            pairwise_did TEXT NOT NULL UNIQUE REFERENCES keys(did),
            share TEXT NOT NULL, status TEXT NOT NULL, erased INTEGER NOT NULL DEFAULT 0,
            cursor TEXT, added TEXT NOT NULL, updated TEXT NOT NULL)""",
        "INSERT INTO vendors_new SELECT id, name, url, discovery_url, discovery, vendor_did, "
        "vendor_jwk, inbox, pairwise_did, share, status, erased, cursor, added, updated "
        "FROM vendors",
        "DROP TABLE vendors",
        "ALTER TABLE vendors_new RENAME TO vendors",
        "CREATE INDEX vendors_url ON vendors (url)",
        "CREATE INDEX vendors_did ON vendors (vendor_did)",
        _SHARED_VIEW,
    ):
        db.execute(statement)


@_migrations()
def m003_outbox_claims(db: sqlite_utils.Database) -> None:
    """A claim on an outbox row: the run sending it (a random token per delivery
    pass) and when the claim lapses. Another run, in this process or another,
    sends nothing that holds a live claim; a killed process's claims lapse and
    are taken over (``agent._delivery``)."""
    db.execute("ALTER TABLE outbox ADD COLUMN claimed_by TEXT")
    db.execute("ALTER TABLE outbox ADD COLUMN claim_expires TEXT")


#: The files vrm keeps in VRM_HOME: a directory holding only these (or nothing)
#: is vrm's own, and may be made private.
_OWN_FILES = frozenset({DB_NAME, DB_NAME + "-wal", DB_NAME + "-shm", DB_NAME + "-journal"})


def _os_error(action: str, where: Path, exc: OSError) -> StoreError:
    reason = (exc.strerror or type(exc).__name__).lower()
    return StoreError(f"cannot {action} {where}: {reason}; set VRM_HOME to a directory "
                      f"of yours that you can write to")


class Store:
    """The open database. Use :meth:`create` or :meth:`open`; close with :meth:`close`."""

    def __init__(self, path: Path, db: sqlite_utils.Database) -> None:
        self.path = path
        self.db = db
        #: Things the person should know but that did not stop anything (the CLI
        #: prints them on stderr), e.g. a VRM_HOME that vrm left readable by others.
        self.warnings: list[str] = []
        #: Opened read-only (a read-only file, directory or medium): reading
        #: works, and any write raises StoreError saying the store is read-only.
        self.read_only = False

    @classmethod
    def create(cls, home: Path) -> Store:
        path = home / DB_NAME
        _check_directory(home)
        if path.exists():
            raise StoreExists(f"a store already exists at {path}; use it, or pick another VRM_HOME")
        _check_side_files(path, os.geteuid())
        warnings: list[str] = []
        try:
            if home.is_dir():
                warnings += _make_private(home)
            else:
                home.mkdir(parents=True, mode=0o700)
                os.chmod(home, 0o700)  # mkdir's mode goes through the umask
            # Create the file 0600 before SQLite opens it: SQLite gives the -wal and
            # -shm files the database file's permissions.
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        except FileExistsError:
            raise StoreExists(f"a store already exists at {path}; use it, or pick another "
                              f"VRM_HOME") from None
        except OSError as exc:
            raise _os_error("create the store in", home, exc) from None
        _check_side_files(path, os.geteuid())  # again: planted while the directory was open
        store = cls._connect(path)
        store.warnings = warnings
        return store

    @classmethod
    def open(cls, home: Path) -> Store:
        path = home / DB_NAME
        _check_directory(home)
        try:
            found = path.exists()
        except OSError as exc:
            raise _os_error("read the store in", home, exc) from None
        if not found:
            raise NoStore(f"there is no store at {home} yet; run `vrm init` first")
        try:
            owner = path.stat().st_uid
        except OSError as exc:
            raise _os_error("read the store in", home, exc) from None
        _check_side_files(path, owner)
        return cls._connect(path)

    @classmethod
    def _connect(cls, path: Path) -> Store:
        old_umask = os.umask(0o077)  # the -wal and -shm files too, whatever the db's mode
        conn: sqlite3.Connection | None = None
        try:
            conn = sqlite3.connect(str(path), timeout=30.0)
            db = sqlite_utils.Database(conn, execute_plugins=False)
            db.enable_wal()
            # FULL: a commit is on disk before the first byte goes on the wire,
            # which is the outbox's promise. Commits are batched, so this is cheap.
            db.execute("PRAGMA synchronous=FULL")
            # Migrations first, with foreign keys off: rebuilding a table (m002)
            # must not cascade or refuse on the rows that point at it.
            _migrations.apply(db)
            db.execute("PRAGMA foreign_keys=ON")
            os.chmod(path, 0o600)
        except (sqlite3.DatabaseError, PermissionError) as exc:
            if conn is not None:
                conn.close()
            if _is_read_only(exc):
                return cls._connect_read_only(path, exc)
            raise _damaged(path, exc) from exc
        except OSError as exc:
            raise _os_error("open the store at", path, exc) from None
        finally:
            os.umask(old_umask)
        return cls(path, db)

    @classmethod
    def _connect_read_only(cls, path: Path, cause: BaseException) -> Store:
        """The store on a read-only file or directory: read commands still work
        (``read_only`` is True, and a write raises one sentence saying so)."""
        conn = connect_read_only(path, cause)
        if _migrations_pending(conn):
            conn.close()
            raise StoreError(f"the store at {path} is read-only and was made by an older "
                             f"vrm; open it once where it can be written") from None
        store = cls(path, sqlite_utils.Database(conn, execute_plugins=False))
        store.read_only = True
        return store

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self, *, immediate: bool = False) -> Iterator[sqlite3.Connection]:
        """One transaction: everything inside commits together, or nothing does.

        ``immediate=True`` takes the write lock at the start (``BEGIN IMMEDIATE``),
        so that what is read inside is still true when it is written: the way to
        read-then-claim rows that another process may claim too. Other writers
        wait for it (up to the 30 s busy timeout); readers never do (WAL)."""
        conn = self.db.conn
        try:
            if immediate and not conn.in_transaction:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                except BaseException:
                    conn.rollback()
                    raise
                conn.commit()
            else:
                with self.db.atomic():
                    yield conn
        except sqlite3.DatabaseError as exc:
            raise self._failed(exc) from exc

    def _failed(self, exc: sqlite3.DatabaseError) -> StoreError:
        if self.read_only or _is_read_only(exc):
            return StoreError(f"the store at {self.path} is read-only, and this needs to write "
                              f"to it; only commands that read work (profile show, vendor "
                              f"list, outbox, offers, shared, export, backup)")
        return _damaged(self.path, exc)

    # --- small helpers -------------------------------------------------------

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        try:
            cursor = self.db.conn.execute(sql, params)
        except sqlite3.DatabaseError as exc:
            raise self._failed(exc) from exc
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row)) for row in cursor.fetchall()]

    def one(self, sql: str, params: Sequence[Any] = ()) -> dict[str, Any] | None:
        found = self.rows(sql, params)
        return found[0] if found else None

    def executemany(self, sql: str, params: Iterable[Sequence[Any]]) -> None:
        with self.transaction() as conn:
            conn.executemany(sql, params)

    def get_meta(self, key: str) -> str | None:
        row = self.one("SELECT value FROM meta WHERE key = ?", (key,))
        return None if row is None else row["value"]

    def set_meta(self, conn: sqlite3.Connection, key: str, value: str) -> None:
        conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))


def connect_read_only(path: Path, cause: BaseException | None = None) -> sqlite3.Connection:
    """A read-only connection to the SQLite file at ``path`` (WAL or not), or
    :class:`StoreError` saying why not. In a directory where SQLite cannot
    create the shared-memory file, the file is read as immutable."""
    for query in ("mode=ro", "mode=ro&immutable=1"):
        try:
            conn = sqlite3.connect(f"{path.resolve().as_uri()}?{query}", uri=True, timeout=30.0)
        except sqlite3.DatabaseError as exc:
            cause = exc
            continue
        try:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.DatabaseError as exc:
            conn.close()
            cause = exc
            continue
        return conn
    raise _damaged(path, cause or StoreError("unreadable"))


def _is_read_only(exc: BaseException) -> bool:
    """An error that says the file or its directory cannot be written."""
    if isinstance(exc, PermissionError):
        return True
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None and code & 0xFF == sqlite3.SQLITE_READONLY:
        return True
    text = str(exc).lower()
    return "readonly" in text or "read-only" in text


def _damaged(path: Path, exc: BaseException) -> StoreError:
    """The sentence for a store SQLite cannot use: damaged, or not a store."""
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(exc, sqlite3.DatabaseError) and (
            code is not None and code & 0xFF in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)
            or "malformed" in str(exc) or "not a database" in str(exc)):
        return StoreError(f"the store at {path} is damaged ({exc}); restore your last backup "
                          f"into a new, empty directory with `vrm restore FILE`")
    return StoreError(f"the store at {path} cannot be used ({exc}); check that the file and "
                      f"its directory are yours and writable, or restore a backup with "
                      f"`vrm restore FILE`")


def _migrations_pending(conn: sqlite3.Connection) -> bool:
    try:
        return bool(_migrations.pending(sqlite_utils.Database(conn, execute_plugins=False)))
    except sqlite3.DatabaseError:
        return True


def _check_directory(home: Path) -> None:
    try:
        if home.exists() and not home.is_dir():
            raise StoreError(f"{home} is a file, not a directory; set VRM_HOME to a "
                             f"directory (vrm creates it if it does not exist)")
    except OSError as exc:
        raise _os_error("use", home, exc) from None


#: SQLite's own files beside the database: its write-ahead log, the WAL index
#: and the rollback journal (https://sqlite.org/tempfiles.html).
_SIDE_SUFFIXES = ("-wal", "-shm", "-journal")


def _check_side_files(path: Path, owner: int) -> None:
    """Refuse SQLite side files (``vrm.db-wal``, ``-shm``, ``-journal``) that are not
    the store's own: SQLite adopts whatever it finds there, so a file planted by
    someone else (in a directory others can write) would receive the store's
    pages, the key-sealing record included, or feed it forged ones. Each must be
    a regular file (not a symlink), owned by ``owner`` (the store's owner; for
    ``vrm init``, the user running it) and private: no permission for group or
    others (vrm creates them 0600; a read-only copy may be 0400)."""
    for suffix in _SIDE_SUFFIXES:
        side = path.with_name(path.name + suffix)
        try:
            info = side.lstat()
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise _os_error("check", side, exc) from None
        if (not stat.S_ISREG(info.st_mode) or info.st_uid != owner
                or stat.S_IMODE(info.st_mode) & 0o077):
            kind = "a regular file" if stat.S_ISREG(info.st_mode) else "not a regular file"
            raise StoreError(
                f"{side} is not the store's own file ({kind}, owner {info.st_uid}, mode "
                f"{stat.S_IMODE(info.st_mode):04o}; vrm's are its owner's and private), so vrm "
                f"will not use it: remove it if you did not make it, then run vrm again")


def _make_private(home: Path) -> list[str]:
    """Make an existing VRM_HOME private (0700), but only when it is vrm's own:
    empty, or holding only vrm's files. Any other directory may be the person's
    home or a shared one, whose mode is theirs to choose: leave it, and say so
    when others can list it. The store's files are 0600 either way."""
    mode = stat.S_IMODE(home.stat().st_mode)
    if not mode & 0o077:
        return []
    if {entry.name for entry in home.iterdir()} <= _OWN_FILES:
        try:
            os.chmod(home, 0o700)
            return []
        except PermissionError:
            pass
    return [f"{home} is open to other users (mode {mode:04o}) and is not vrm's own "
            f"directory, so vrm left its mode alone; your store's files are 0600, but "
            f"others can see their names (use a directory of its own for VRM_HOME, or "
            f"run chmod 700 {home})"]
