"""vendor_adapter: the library a vendor embeds to listen to people's VRM agents.

It verifies incoming VRM/1 messages (``protocol``), applies the relationship
rules, records each accepted message exactly once in a CRM (a built-in SQLite
CRM, or the vendor's own sink), and answers with receipts the vendor signs.

    from vendor_adapter import Vendor
    from vendor_adapter.aiohttp import vrm_app

    vendor = Vendor.open("crm.db", name="Bikes4U", passphrase="secret")
    app.add_subapp("/vrm", vrm_app(vendor))

The database is a SQLite file (the embedded default) or a PostgreSQL URI
(``Vendor.open("postgresql://user@host/db", ...)``, for many inbox processes
on one database); the rules are the same code on both (``_store``).

The core (``InboxCore``, and the HTTP rules in ``_http``) is framework-free:
bytes and a content type in, status, content type and bytes out.
``vendor_adapter.aiohttp`` and ``vendor_adapter.asgi`` (FastAPI, Starlette,
Django) are two thin bindings over it that answer alike, byte for byte.
``vendor_adapter.forward`` delivers every CRM event to the vendor's own
systems (signed webhooks, SCIM 2.0), durably.
"""

from __future__ import annotations

from ._core import InboxCore, Outcome, Response, Verified, check_media_type
from ._crm import CrmView, SqliteCrm, nps_class
from ._errors import (
    ClosedError,
    LeadNotFound,
    NotAVendorDatabase,
    OfferError,
    PassphraseError,
    StorageError,
    VendorAdapterError,
    VendorNotFound,
)
from ._identity import PASSPHRASE_ENV
from ._ledger import Ledger, RelationshipHook
from ._mapping import DEFAULT, HUBSPOT, MAPPINGS, SALESFORCE, FieldMapping
from ._sink import CrmEvent, CrmSink, RecordRef
from ._vendor import SUPPORTED_TYPES, Vendor

__all__ = [
    "Vendor", "SUPPORTED_TYPES", "PASSPHRASE_ENV",
    "InboxCore", "Outcome", "Response", "Verified", "check_media_type",
    "Ledger", "RelationshipHook",
    "CrmSink", "CrmEvent", "RecordRef", "SqliteCrm", "CrmView", "nps_class",
    "FieldMapping", "DEFAULT", "SALESFORCE", "HUBSPOT", "MAPPINGS",
    "VendorAdapterError", "PassphraseError", "VendorNotFound", "StorageError",
    "ClosedError", "OfferError", "LeadNotFound", "NotAVendorDatabase",
]
