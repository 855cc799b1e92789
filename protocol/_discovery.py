"""The vendor discovery document served at ``/.well-known/vrm`` (RFC 8615)."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ._codec import describe_validation_error
from ._didkey import kid_for_did
from ._errors import DiscoveryError, InvalidMessage, ProtocolError
from ._fields import Did, ShortText, Url
from ._ijson import loads
from ._keys import PublicKey

__all__ = ["WELL_KNOWN_PATH", "DiscoveryDocument", "parse_discovery", "same_origin", "origin"]

WELL_KNOWN_PATH = "/.well-known/vrm"
_DEFAULT_PORTS = {"http": 80, "https": 443}


class DiscoveryDocument(BaseModel):
    """What a vendor says about itself. Unknown members are ignored, so that
    vendors can add their own (a logo, a privacy policy) without breaking agents."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    # The json_schema_extra say in JSON Schema what parse_discovery checks.
    vrm: Annotated[list[str], Field(min_length=1, max_length=10,
                                    json_schema_extra={"contains": {"const": "1"}})]
    id: Did
    name: ShortText
    inbox: Url
    keys: Annotated[list[dict[str, Any]], Field(
        min_length=1, max_length=10,
        json_schema_extra={"items": {"type": "object", "not": {"required": ["d"]}}})]
    types: Annotated[list[Annotated[str, Field(max_length=100)]], Field(max_length=200)]

    @property
    def key(self) -> PublicKey:
        """The vendor's signing key: the one whose kid is the vendor DID's own."""
        wanted = kid_for_did(self.id)
        for jwk in self.keys:
            if jwk.get("kid") == wanted:
                return PublicKey.from_jwk(jwk)
        raise DiscoveryError(f"no key in the document has kid {wanted!r}")

    def accepts(self, message_type: str) -> bool:
        return message_type in self.types

    def to_wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def origin(url: object) -> tuple[str, str, int]:
    """(scheme, host, port) of an http(s) URL (RFC 6454 §4), or :class:`DiscoveryError`."""
    if not isinstance(url, str):
        raise DiscoveryError(f"a URL is a string, not {type(url).__name__}")
    # urlsplit and its properties raise ValueError on a bad IPv6 literal
    # ("https://[::1/x") or port; the URL may come from a vendor's document.
    try:
        parts = urlsplit(url)
        hostname = parts.hostname
        scheme = parts.scheme.lower()
        if scheme not in _DEFAULT_PORTS or not hostname:
            raise DiscoveryError(f"{url[:200]!r} is not an http or https URL")
        if parts.username is not None or parts.password is not None:
            raise DiscoveryError(f"{url[:200]!r} carries credentials")
        port = parts.port or _DEFAULT_PORTS[scheme]
    except ValueError as exc:
        raise DiscoveryError(f"{url[:200]!r} is not a usable URL: {exc}") from None
    return scheme, hostname.lower(), port


def same_origin(a: str, b: str) -> bool:
    return origin(a) == origin(b)


def parse_discovery(raw: bytes | bytearray | memoryview, *, url: str) -> DiscoveryDocument:
    """Read the document fetched from ``url`` and check that it is safe to use.

    The inbox must be on the document's own origin: otherwise a document could
    send the agent's messages to any address it names (server-side request
    forgery), and the vendor's key must be present and match its DID.
    """
    try:
        data = loads(raw, what="the discovery document")
        # Wire names only, like every model read from the wire (see WireModel).
        document = DiscoveryDocument.model_validate(data, by_alias=True, by_name=False)
    except InvalidMessage as exc:
        raise DiscoveryError(str(exc)) from None
    except ValidationError as exc:
        raise DiscoveryError(
            f"the discovery document is invalid: {describe_validation_error(exc)}"
        ) from None
    if any("d" in jwk for jwk in document.keys):
        # A published private key is compromised whatever it was for (PROTOCOL.md §7).
        raise DiscoveryError("a key in the document holds private material (d)")
    if "1" not in document.vrm:
        raise DiscoveryError("the vendor does not speak VRM version 1")
    if not same_origin(document.inbox, url):
        raise DiscoveryError(
            f"the inbox {document.inbox[:200]} is not on the same origin as {url[:200]}"
        )
    try:
        key = document.key
    except ProtocolError as exc:
        raise DiscoveryError(f"the vendor's key is unusable: {exc}") from None
    if key.did != document.id:  # pragma: no cover - kid check implies it
        raise DiscoveryError("the vendor's key does not match its DID")
    return document
