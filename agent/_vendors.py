"""Finding vendors: fetching and checking discovery documents, and resolving
the references a person types (``3``, ``Bikes4U``, a DID or a URL) to a vendor."""

from __future__ import annotations

import ipaddress
import json
from typing import Any

import protocol

from ._errors import DiscoveryRefused, UnknownVendor, UsageError, VendorKeyChanged
from ._http import Http
from ._store import Store

__all__ = ["normalise_url", "check_transport", "discovery_url", "fetch_discovery",
           "check_pinned", "key_changed_message", "resolve", "vendor_view", "REACHABLE",
           "STATUSES"]

#: Relationship states, one per vendor row:
#:
#: - ``pending``      the relationship.request is queued, not confirmed yet
#: - ``active``       the vendor confirmed the request with a signed receipt
#: - ``ending``       a relationship.end is queued, not confirmed yet
#: - ``ended``        ended (by the person, confirmed; or by the vendor: 410)
#: - ``refused``      the vendor declined the relationship.request
#: - ``key-changed``  the vendor showed a key other than the pinned one; nothing
#:                    more is sent to it until the person decides (PROTOCOL.md §7)
STATUSES = ("pending", "active", "ending", "ended", "refused", "key-changed")
#: Broadcasts go to these.
REACHABLE = ("pending", "active")


def normalise_url(url: str) -> str:
    """The vendor's base URL: no trailing slash, and no ``/.well-known/vrm`` if the
    person pasted the discovery document's own address."""
    url = url.strip()
    try:
        protocol.origin(url)
    except protocol.DiscoveryError:
        raise UsageError(f"{url[:200]!r} is not an http(s) URL, like "
                         f"https://shop.example or http://127.0.0.1:8080/v/3") from None
    if "?" in url or "#" in url:
        # The discovery path is appended to the base: after a query or a fragment
        # it would land in the wrong place (RFC 3986 §3).
        raise UsageError(f"{url[:200]!r} has a ? or # part; give the vendor's address "
                         f"without it, like https://shop.example/vrm")
    url = url.rstrip("/")
    if url.endswith(protocol.WELL_KNOWN_PATH):
        url = url[:-len(protocol.WELL_KNOWN_PATH)].rstrip("/")
    return url


def check_transport(url: str, *, allow_http: bool = False) -> None:
    """Plain http only to loopback (the demo, tests), or when the person allows it:
    messages are signed but not encrypted, so on the way anyone reads them."""
    scheme, host, _ = protocol.origin(url)
    if scheme == "https" or allow_http or _is_loopback(host):
        return
    raise UsageError(f"{url[:200]} uses plain http: messages are signed but not encrypted, "
                     f"so anyone on the way could read what you share; use https, or "
                     f"pass --allow-http if you accept that")


def _is_loopback(host: str) -> bool:
    """Only what is loopback without asking DNS: a literal loopback address
    (127.0.0.0/8, ::1) or the name ``localhost`` itself. RFC 6761 §6.3 says
    ``*.localhost`` should resolve to loopback, but that is up to the resolver
    (glibc asks DNS for ``shop.localhost``), so such a name counts as any other."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


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
        raise VendorKeyChanged(key_changed_message(row, document.id))


def key_changed_message(row: dict[str, Any], shown: str | None) -> str:
    """What the person reads when a vendor's key is not the pinned one."""
    now = f"now shows the key {shown}" if shown else "now answers with another key"
    return (f"{row['name']} at {row['url']} {now}, but {row['vendor_did']} is pinned: this "
            f"may be an impostor, so nothing more is sent to it; if you trust the new key, "
            f"run `vrm vendor add {row['url']}` to start a new relationship, otherwise "
            f"`vrm vendor end {row['id']}`")


def resolve(store: Store, ref: str | int) -> dict[str, Any]:
    """One vendor row by id, name (any case), vendor DID, pairwise DID or URL.

    A vendor added again after an end keeps its old row as history, so a name
    can match several rows: the one relationship that is pending or active
    wins; otherwise the number is needed."""
    text = str(ref).strip()
    if text.isdigit():
        row = store.one("SELECT * FROM vendors WHERE id = ?", (int(text),))
        if row is not None:
            return row
    url = text.rstrip("/")
    try:
        url = normalise_url(text)
    except UsageError:
        pass
    rows = store.rows(
        "SELECT * FROM vendors WHERE lower(name) = lower(?) OR vendor_did = ? "
        "OR pairwise_did = ? OR url = ? ORDER BY id", (text, text, text, url))
    if len(rows) > 1:
        current = [row for row in rows if row["status"] in REACHABLE]
        if len(current) == 1:
            return current[0]
        ids = ", ".join(f"{row['id']} ({row['status']})" for row in rows)
        raise UsageError(f"{text!r} matches several vendors: {ids}; use the number instead")
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
