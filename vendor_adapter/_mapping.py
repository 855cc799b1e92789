"""Declarative field mappings: protocol field paths -> CRM field names.

A mapping is data, not code: a table per record kind that a vendor can copy
and edit. ``DEFAULT`` names the built-in CRM's own columns; ``SALESFORCE``
and ``HUBSPOT`` produce records with those systems' standard field names, for
vendors that forward records there. Paths use dots for nested protocol
members (``postal_address.locality``, ``budget.max``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

__all__ = ["FieldMapping", "DEFAULT", "SALESFORCE", "HUBSPOT", "MAPPINGS", "flatten"]


@dataclass(frozen=True)
class FieldMapping:
    """``tables[kind][protocol path] = CRM field name``, for kinds "contact" and "lead"."""

    name: str
    tables: Mapping[str, Mapping[str, str]]

    def apply(self, kind: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        """Rename the protocol paths in ``fields``; paths the table lacks are dropped."""
        table = self.tables.get(kind, {})
        return {crm: fields[path] for path, crm in table.items() if path in fields}

    def replace(self, kind: str, **renames: str) -> FieldMapping:
        """A copy with some paths renamed: ``DEFAULT.replace("contact", email="Email")``
        (use ``__`` for dots in keyword names: ``postal_address__locality=...``)."""
        tables = {k: dict(v) for k, v in self.tables.items()}
        for path, crm in renames.items():
            tables.setdefault(kind, {})[path.replace("__", ".")] = crm
        return FieldMapping(self.name + "*", _freeze(tables))


def _freeze(tables: Mapping[str, Mapping[str, str]]) -> Mapping[str, Mapping[str, str]]:
    return MappingProxyType({k: MappingProxyType(dict(v)) for k, v in tables.items()})


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"postal_address": {"locality": "X"}} -> {"postal_address.locality": "X"}."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, path + "."))
        else:
            out[path] = value
    return out


_CONTACT_PATHS = (
    "id", "did", "customer_id", "given_name", "family_name", "email", "phone",
    "postal_address.street_address", "postal_address.locality", "postal_address.region",
    "postal_address.postal_code", "postal_address.country", "language",
    "channels", "marketing", "terms", "message_counts", "intent_categories",
    "feedback_class", "shared_fields", "status", "erased", "created", "updated", "ended",
)
_LEAD_PATHS = (
    "id", "contact_id", "did", "message_id", "summary", "category", "quantity", "budget.max",
    "budget.currency", "needed_by", "location", "valid_until", "status", "offer_id",
    "created", "updated",
)

#: The built-in CRM's columns (the last part of each path).
DEFAULT = FieldMapping("default", _freeze({
    "contact": {path: path.rsplit(".", 1)[-1] for path in _CONTACT_PATHS},
    "lead": {path: path.replace(".", "_") for path in _LEAD_PATHS},
}))

#: Salesforce-style Contact and Lead records (standard field names; VRM
#: specifics go to custom fields, which Salesforce suffixes with __c).
SALESFORCE = FieldMapping("salesforce", _freeze({
    "contact": {
        "customer_id": "AccountNumber__c",
        "given_name": "FirstName",
        "family_name": "LastName",
        "email": "Email",
        "phone": "Phone",
        "postal_address.street_address": "MailingStreet",
        "postal_address.locality": "MailingCity",
        "postal_address.postal_code": "MailingPostalCode",
        "postal_address.region": "MailingState",
        "postal_address.country": "MailingCountry",
        "language": "Language__c",
        "marketing": "Marketing_Consent__c",
        "did": "VRM_DID__c",
        "feedback_class": "NPS_Class__c",
        "status": "VRM_Status__c",
        "created": "CreatedDate",
        "updated": "LastModifiedDate",
    },
    "lead": {
        "summary": "Description",
        "category": "Product_Interest__c",
        "quantity": "Quantity__c",
        "budget.max": "Budget__c",
        "budget.currency": "CurrencyIsoCode",
        "needed_by": "Needed_By__c",
        "status": "Status",
        "did": "VRM_DID__c",
        "message_id": "VRM_Intent_Id__c",
        "created": "CreatedDate",
    },
}))

#: HubSpot-style contact properties (and deal-like lead properties).
HUBSPOT = FieldMapping("hubspot", _freeze({
    "contact": {
        "customer_id": "customer_id",
        "given_name": "firstname",
        "family_name": "lastname",
        "email": "email",
        "phone": "phone",
        "postal_address.street_address": "address",
        "postal_address.locality": "city",
        "postal_address.postal_code": "zip",
        "postal_address.region": "state",
        "postal_address.country": "country",
        "language": "hs_language",
        "did": "vrm_did",
        "feedback_class": "vrm_nps_class",
        "created": "createdate",
        "updated": "lastmodifieddate",
    },
    "lead": {
        "summary": "dealname",
        "category": "vrm_category",
        "budget.max": "amount",
        "budget.currency": "deal_currency_code",
        "needed_by": "closedate",
        "status": "dealstage",
        "did": "vrm_did",
        "created": "createdate",
    },
}))

MAPPINGS: Mapping[str, FieldMapping] = MappingProxyType(
    {m.name: m for m in (DEFAULT, SALESFORCE, HUBSPOT)})
