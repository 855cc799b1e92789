"""Copying a vendor to another database: ``vrm-vendor migrate --from crm.db
--to postgresql://...``, for a vendor that outgrows its SQLite file.

What is copied, for the one vendor named: its identity (the same Ed25519
key, so the same DID: customers' agents see no change), the ledger (seen
message ids, relationships, the outbox of queued offers, the offers made),
the built-in CRM (contacts, leads, activities, feedback) and the forwarding
queue (events still owed to targets, and the targets' resource ids). Row ids are kept as they are:
receipts already given out name them (``record`` references), and outbox
sequence numbers are the agents' ``messages.fetch`` cursors. The key is
unsealed with the passphrase and sealed again under the target's key store
(a database has one scrypt salt), so the passphrase stays the same.

It is one transaction in the target: all of it is copied or nothing. The
target must not hold that vendor (by DID or name) already, nor rows of other
vendors with the same ids; it is refused with ``StorageError`` otherwise.
The source is only read. Stop the source's ``serve`` first: what arrives
there after the copy stays there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ._errors import StorageError
from ._identity import _sealer
from ._store import open_store
from ._vendor import Vendor

__all__ = ["copy_vendor", "Copied", "TABLES"]

#: The tables copied, in an order that satisfies every reference, and their
#: vendor column; the id column whose sequence continues after the copy.
TABLES: tuple[tuple[str, str, str | None], ...] = (
    ("vrm_relationship", "vendor", None),
    ("vrm_seen", "vendor", None),
    ("vrm_outbox", "vendor", "seq"),
    ("contact", "vendor", "id"),
    ("lead", "vendor", "id"),
    ("activity", "vendor", "id"),
    ("feedback", "vendor", "id"),
    ("vrm_offer", "vendor", None),
    ("vrm_forward_target", "vendor", None),
    ("vrm_forward_queue", "vendor", "seq"),
    ("vrm_forward_resource", "vendor", None),
)


@dataclass
class Copied:
    """What ``copy_vendor`` did."""

    did: str
    name: str
    #: The target, as messages name it (no password).
    target: str
    #: Rows copied, by table.
    rows: dict[str, int] = field(default_factory=dict)


def copy_vendor(source: str, target: str, *, name: str | None, passphrase: str) -> Copied:
    """Copy the vendor ``name`` (or the only one) from ``source`` to ``target``
    (each a SQLite path or a PostgreSQL URI). Raises ``VendorNotFound``,
    ``PassphraseError``, ``NotAVendorDatabase`` or ``StorageError``."""
    with Vendor.open(source, name=name, passphrase=passphrase, create=False) as vendor:
        key, did, vendor_name = vendor._key, vendor.did, vendor.name
        src = vendor._db
        (identity,) = src.read("SELECT did, name, created FROM vrm_vendor WHERE did = ?", (did,))
        rows = {table: src.read(f"SELECT * FROM {table} WHERE {column} = ?", (did,))
                for table, column, _ in TABLES}
    dst = open_store(target, create=True)
    try:
        taken = dst.read("SELECT did, name FROM vrm_vendor WHERE did = ? OR name = ?",
                         (did, vendor_name))
        if taken:
            raise StorageError(f"{dst.path} already holds vendor {taken[0]['name']!r} "
                               f"({taken[0]['did']}); nothing was copied")
        sealed = _sealer(dst, passphrase, create=True).seal(key)

        def copy(conn: Any) -> None:
            conn.execute("INSERT INTO vrm_vendor (did, name, sealed_key, created) "
                         "VALUES (?, ?, ?, ?)", (did, vendor_name, sealed, identity["created"]))
            for table, _, id_column in TABLES:
                if not rows[table]:
                    continue
                columns = list(rows[table][0])
                sql = (f"INSERT INTO {table} ({', '.join(columns)}) "
                       f"VALUES ({', '.join('?' for _ in columns)})")
                conn.executemany(sql, [tuple(row[c] for c in columns) for row in rows[table]])
                if id_column is not None:
                    conn.dialect.continue_ids(conn, table, id_column)

        try:
            dst.writer.run_sync(copy)
        except Exception as exc:  # a row id another vendor's row has: refuse it whole
            raise StorageError(
                f"cannot copy vendor {vendor_name!r} to {dst.path}: {_first_line(exc)}; "
                "nothing was copied (row ids are kept, as receipts and cursors name them, "
                "so the target must not hold other vendors' rows with the same ids)") from None
    finally:
        dst.release()
    return Copied(did, vendor_name, dst.path, {table: len(r) for table, r in rows.items()})


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
