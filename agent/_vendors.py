"""Finding vendors: fetching and checking discovery documents, and resolving
the references a person types (``3``, ``Bikes4U``, a DID or a URL) to a vendor."""

from __future__ import annotations

import json
from typing import Any

import protocol

from ._errors import DiscoveryRefused, UnknownVendor, UsageError, VendorKeyChanged
from ._http import Http
from ._store import Store

__all__ = ["normalise_url", "discovery_url", "fetch_discovery", "check_pinned", "resolve",
           "vendor_view"]

#: Relationship states. Broadcasts go to ``pending`` and ``active`` vendors.
REACHABLE = ("pending", "active")


def normalise_url(url: str) -> str:
    url = url.strip().rstrip("/")
    try:
        protocol.origin(url)
    except protocol.DiscoveryError:
        raise UsageError(f"{url[:200]!r} is not an http(s) URL, like "
                         f"https://shop.example or http://127.0.0.1:8080/v/3") from None
    return url


def discovery_url(url: str) -> str:
    return normalise_url(url) + protocol.WELL_KNOWN_PATH


async def fetch_discovery(http: Http, url: str) -> protocol.DiscoveryDocument:
    """GET ``url/.well-known/vrm`` and check it (same-origin inbox, key matching the DID)."""
    where = discovery_url(url)
    raw = await http.get_discovery(where)
    try:
        return protocol.parse_discovery(raw, url=where)
    except protocol.ProtocolError as exc:
        raise DiscoveryRefused(f"refusing the vendor at {url}: {exc}") from None


def check_pinned(row: dict[str, Any], document: protocol.DiscoveryDocument) -> None:
    """Refuse loudly when the vendor now shows another identity than the pinned one."""
    if document.id != row["vendor_did"] or document.key.to_jwk() != json.loads(row["vendor_jwk"]):
        raise VendorKeyChanged(
            f"{row['name']} at {row['url']} now shows the key {document.id}, but "
            f"{row['vendor_did']} is pinned; this may be an impostor, so nothing was sent "
            f"(end the relationship and add the vendor again only if you trust the new key)")


def resolve(store: Store, ref: str | int) -> dict[str, Any]:
    """One vendor row by id, name (any case), vendor DID, pairwise DID or URL."""
    text = str(ref).strip()
    if text.isdigit():
        row = store.one("SELECT * FROM vendors WHERE id = ?", (int(text),))
        if row is not None:
            return row
    rows = store.rows(
        "SELECT * FROM vendors WHERE lower(name) = lower(?) OR vendor_did = ? "
        "OR pairwise_did = ? OR url = ? ORDER BY id", (text, text, text, text.rstrip("/")))
    if len(rows) > 1:
        ids = ", ".join(str(row["id"]) for row in rows)
        raise UsageError(f"{text!r} matches several vendors ({ids}); use the number instead")
    if not rows:
        raise UnknownVendor(f"no vendor matches {text!r}; see `vrm vendor list`")
    return rows[0]


def vendor_view(row: dict[str, Any]) -> dict[str, Any]:
    """The public, JSON-ready description of a vendor row."""
    discovery = json.loads(row["discovery"])
    return {
        "id": row["id"], "name": row["name"], "url": row["url"], "status": row["status"],
        "vendor_did": row["vendor_did"], "pairwise_did": row["pairwise_did"],
        "inbox": row["inbox"], "share": json.loads(row["share"]),
        "types": discovery.get("types", []), "erased": bool(row["erased"]),
        "cursor": row["cursor"], "added": row["added"],
    }
