"""The HTTP rules every binding shares: what an inbox request's head and body
may be, and the discovery document's answer.

No framework, no socket: plain values in, a ``Response`` (``_core``) out. The
aiohttp binding (``vendor_adapter.aiohttp``) and the ASGI binding
(``vendor_adapter.asgi``) only read requests and write these answers, so both
answer every input with the same status, headers and bytes.

- ``refused_on_the_head``: 415 for a content coding or a media type we would
  not parse, 413 for a ``Content-Length`` over the limit (RFC 9110 §15.5.14),
  before any body is read;
- ``BodyLimit``: the body as it streams in, never more than ``max_body`` bytes
  kept; the first byte beyond is 413;
- ``expectation``: ``Expect`` (RFC 9110 §10.1.1), 417 for anything but
  ``100-continue``;
- ``discovery_response``: the document at ``/.well-known/vrm``, whose ``inbox``
  comes from ``public_base_url`` when set, else from the request's scheme, a
  ``Host`` validated as ``host[:port]`` and the mount prefix (``Vary: Host``).
"""

from __future__ import annotations

import ipaddress
import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote

import protocol

from ._core import UNAVAILABLE, Response, check_media_type, problem_response

if TYPE_CHECKING:
    from ._vendor import Vendor

__all__ = ["InboxLimits", "BodyLimit", "refused_on_the_head", "expectation", "valid_host",
           "inbox_url", "discovery_response", "TOO_LARGE", "BODY_TIMEOUT", "INCOMPLETE", "CODED",
           "BAD_HOST", "EXPECTATION_FAILED", "NOT_FOUND", "METHOD_NOT_ALLOWED", "METHODS",
           "INBOX_PATH"]

log = logging.getLogger("vendor_adapter.inbox")


@dataclass(frozen=True)
class InboxLimits:
    """How much of a request the inbox reads, and for how long."""

    #: Bodies larger than this are refused with 413 (protocol.MAX_MESSAGE_BYTES).
    max_body: int = protocol.MAX_MESSAGE_BYTES
    #: The whole body must arrive within this many seconds, or 408: a client that
    #: trickles a body byte by byte must not hold a connection and a buffer open.
    body_timeout: float = 10.0

    def __post_init__(self) -> None:
        if self.max_body < 0 or not self.body_timeout > 0:
            raise ValueError("max_body is at least 0 and body_timeout a positive number "
                             "of seconds")


TOO_LARGE = problem_response(protocol.MessageTooLarge(
    f"a message is at most {protocol.MAX_MESSAGE_BYTES} bytes").to_problem(), 413)
BODY_TIMEOUT = problem_response(protocol.RequestTimeout(
    "the message body did not arrive in time").to_problem(), 408)
INCOMPLETE = problem_response(protocol.MalformedMessage(
    "the message body ended early").to_problem(), 400)
CODED = problem_response(protocol.UnsupportedMediaType(
    "send messages without a Content-Encoding (no gzip, no deflate)").to_problem(), 415)
BAD_HOST = problem_response(protocol.MalformedMessage(
    "the Host header does not name a host this document can point to").to_problem(), 400)
#: aiohttp's own wording and media type for these, kept so that both bindings agree.
EXPECTATION_FAILED = Response(417, "text/plain; charset=utf-8",
                              b"only Expect: 100-continue is understood", ())
NOT_FOUND = Response(404, "text/plain; charset=utf-8", b"404: Not Found", ())
#: The endpoints and their methods (aiohttp's router adds HEAD to GET); a 405
#: names the allowed ones in ``Allow`` (RFC 9110 §15.5.6).
INBOX_PATH = "/inbox"
METHODS = {protocol.WELL_KNOWN_PATH: ("GET", "HEAD"), INBOX_PATH: ("POST",)}
METHOD_NOT_ALLOWED = {path: Response(405, "text/plain; charset=utf-8",
                                     b"405: Method Not Allowed",
                                     (("Allow", ",".join(methods)),))
                      for path, methods in METHODS.items()}


def refused_on_the_head(content_type: str | None, content_length: int | None,
                        limits: InboxLimits, *, content_encoding: str | None = None
                        ) -> Response | None:
    """A refusal the request head decides, before any of the body is read: a
    content coding (415, RFC 9110 §8.4.1: a message is sent as it was signed,
    and no server's decompressor is trusted with what it would unpack), a
    media type we would not parse (415), or a Content-Length over the limit
    (413, RFC 9110 §15.5.14). ``None``: read the body."""
    if content_encoding is not None and content_encoding.strip().lower() not in ("",
                                                                                 "identity"):
        return CODED
    if content_type is not None or content_length:
        try:
            check_media_type(content_type)
        except protocol.UnsupportedMediaType as exc:
            return problem_response(exc.to_problem(), 415)
    if content_length is not None and content_length > limits.max_body:
        return TOO_LARGE
    return None


class BodyLimit:
    """The body as it streams in: ``add(chunk)`` returns ``TOO_LARGE`` at the first
    chunk that takes it past ``max_body`` (that chunk is not kept), else ``None``.
    Chunked bodies carry no Content-Length, so this is the limit that holds."""

    __slots__ = ("_max", "_size", "_chunks")

    def __init__(self, limits: InboxLimits) -> None:
        self._max = limits.max_body
        self._size = 0
        self._chunks: list[bytes] = []

    def add(self, chunk: bytes) -> Response | None:
        self._size += len(chunk)
        if self._size > self._max:
            self._chunks.clear()
            return TOO_LARGE
        if chunk:
            self._chunks.append(chunk)
        return None

    def body(self) -> bytes:
        return b"".join(self._chunks)


def expectation(value: str | None, *, http_11: bool) -> Response | None:
    """``None`` if the request may go on (no ``Expect``, HTTP/1.0, or
    ``100-continue``), else the 417 answer (RFC 9110 §10.1.1). The value is never
    quoted back: it may not even be text."""
    if value is None or not http_11 or value.lower() == "100-continue":
        return None
    return EXPECTATION_FAILED


# A DNS name or IPv4 address (letters, digits, '-', '.', '_'), or an IPv6 literal in
# brackets; then an optional port. Nothing else may stand in a URL's authority
# here: no userinfo ("a@b@c"), no path, query, fragment, space or non-ASCII.
_HOST = re.compile(r"(?:\[(?P<ip6>[0-9A-Fa-f:.]{2,45})\]|(?P<name>[A-Za-z0-9._-]{1,253}))"
                   r"(?::(?P<port>[0-9]{1,5}))?")


def valid_host(host: str | None) -> bool:
    """Whether ``host`` (a Host header's value) is ``host[:port]`` (RFC 9110 §7.2,
    RFC 3986 §3.2.2) with a DNS name, an IPv4 address or a bracketed IPv6 address,
    and a port from 1 to 65535."""
    if not host:
        return False
    match = _HOST.fullmatch(host)
    if match is None:
        return False
    port = match["port"]
    if port is not None and not 0 < int(port) <= 65535:
        return False
    if match["ip6"] is not None:
        try:
            ipaddress.IPv6Address(match["ip6"])
        except ValueError:
            return False
    name = match["name"]
    return name is None or not (name.startswith((".", "-")) or ".." in name)


def inbox_url(*, public_base_url: str | None, scheme: str, host: str | None,
              inbox_path: str) -> str | None:
    """The absolute inbox URL for the discovery document: ``public_base_url`` +
    ``/inbox`` when set, else ``scheme://host`` + ``inbox_path`` (the mount prefix
    and ``/inbox``, percent-encoded as needed). ``None`` if ``host`` is not a valid
    ``host[:port]`` (``valid_host``)."""
    if public_base_url:
        return public_base_url.rstrip("/") + "/inbox"
    if not valid_host(host) or scheme not in ("http", "https"):
        return None
    return f"{scheme}://{host.lower()}{quote(inbox_path, safe='/%')}"  # type: ignore[union-attr]


def discovery_response(vendor: Vendor, *, public_base_url: str | None, scheme: str,
                       host: str | None, inbox_path: str) -> Response:
    """The answer to ``GET /.well-known/vrm``: the document (200, cacheable for 300 s,
    ``Vary: Host``), 400 ``malformed`` for a Host no URL can be built from, 503 for
    anything unforeseen (logged). Never raises."""
    try:
        url = inbox_url(public_base_url=public_base_url, scheme=scheme, host=host,
                        inbox_path=inbox_path)
        if url is None:
            return BAD_HOST
        try:
            document = vendor.discovery(url)
        except (ValueError, UnicodeError):  # pydantic's ValidationError is a ValueError
            return BAD_HOST
        return Response(200, "application/json", protocol.dumps(document.to_wire()),
                        (("Cache-Control", "max-age=300"), ("Vary", "Host")))
    except Exception:
        log.exception("the discovery document failed; answered 503")
        return UNAVAILABLE
