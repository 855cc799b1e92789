"""The vendor adapter's exceptions. Every one derives from VendorAdapterError::

    VendorAdapterError
    ├── PassphraseError      the vendor key store needs a (correct) passphrase
    ├── VendorNotFound       the database holds no vendor with that name, or several
    ├── StorageError         the database (SQLite or PostgreSQL) could not be opened or written
    │   └── NotAVendorDatabase   opened without create, the file holds no vendor
    ├── ClosedError          the vendor (or its writer) was used after close()
    ├── OfferError           an offer cannot be made as asked
    │   └── LeadNotFound     no lead with that id belongs to this vendor
    └── ForwardError         a forwarding target is misconfigured (vendor_adapter.forward)

Foreign errors (sqlite3, psycopg, protocol.SealedKeyError, pydantic) are translated at
the boundary that meets them, with ``raise Ours(...) from exc``. Problems with
*incoming messages* are not exceptions here: they become HTTP responses, using
the protocol's own problem table (``protocol.InvalidMessage``).
"""

from __future__ import annotations

__all__ = [
    "VendorAdapterError", "PassphraseError", "VendorNotFound", "StorageError",
    "NotAVendorDatabase", "ClosedError", "OfferError", "LeadNotFound",
]


class VendorAdapterError(Exception):
    """The root of every error raised by ``vendor_adapter``."""


class PassphraseError(VendorAdapterError):
    """The vendor's sealed key cannot be opened: no passphrase, or a wrong one."""


class VendorNotFound(VendorAdapterError):
    """The database holds no vendor with that name (or several, and none was named)."""


class StorageError(VendorAdapterError):
    """The database (a SQLite file or PostgreSQL) could not be opened, migrated or
    written. Its message never holds a database password."""


class NotAVendorDatabase(StorageError):
    """Opened with ``create=False``, the file is missing, empty, not SQLite, or holds
    no vendor (or the PostgreSQL database holds none): it was refused before
    anything was written to it."""


class ClosedError(VendorAdapterError):
    """The vendor was used after ``close()``."""


class OfferError(VendorAdapterError):
    """An offer cannot be made as asked (bad price, ended relationship, cancelled lead)."""


class LeadNotFound(OfferError):
    """No lead with that id belongs to this vendor."""
