"""The ASGI binding: a plain ASGI 3 application serving one vendor.

    from vendor_adapter.asgi import vrm_app

    app.mount("/vrm", vrm_app(vendor))          # FastAPI, Starlette
    # GET  /vrm/.well-known/vrm   the discovery document
    # POST /vrm/inbox             messages from people's agents

It needs no framework, only the ASGI 3 interface (https://asgi.readthedocs.io/)
and an asyncio event loop (uvicorn, hypercorn, daphne). Like
``vendor_adapter.aiohttp`` it only reads the request and writes the answer:
every answer (status, headers, bytes) comes from the framework-free core
(``_core``, ``_http``, ``Vendor.handle``), so both bindings answer alike.

Paths are relative to the mount point: a server or framework that mounts the
app under a prefix sets ``root_path`` (ASGI), and the discovery document's
``inbox`` is ``scheme://Host`` + ``root_path`` + ``/inbox``, unless
``public_base_url`` names it. ``path`` may or may not include ``root_path``
(Starlette's ``Mount`` keeps it, older servers strip it): both work.

Lifespan events are answered if the server sends them, and need not come
(a sub-app mounted in FastAPI or Starlette gets none): the vendor is opened
and closed by its owner. Slow clients are the server's business here: see
README.md ("Serving the ASGI app") for uvicorn's settings and what they leave
to a proxy.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import protocol

from ._core import UNAVAILABLE, Response
from ._http import (
    BODY_TIMEOUT,
    INBOX_PATH,
    INCOMPLETE,
    METHOD_NOT_ALLOWED,
    METHODS,
    NOT_FOUND,
    BodyLimit,
    InboxLimits,
    discovery_response,
    expectation,
    refused_on_the_head,
)
from ._vendor import Vendor

__all__ = ["vrm_app", "InboxLimits"]

log = logging.getLogger("vendor_adapter.asgi")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def _header(scope: Scope, name: bytes) -> str | None:
    """The first value of header ``name`` (lower case), as text the way aiohttp
    reads it (UTF-8, a byte that is not UTF-8 kept as a lone surrogate), so that
    both bindings quote a header value alike."""
    for key, value in scope.get("headers") or ():
        if key.lower() == name:
            return bytes(value).decode("utf-8", "surrogateescape")
    return None


def _content_length(scope: Scope) -> int | None:
    value = _header(scope, b"content-length")
    if value is None:
        return None
    value = value.strip()
    return int(value) if value.isascii() and value.isdigit() else None


class _Answer:
    """``send``, remembering whether the response has started."""

    __slots__ = ("_send", "started")

    def __init__(self, send: Send) -> None:
        self._send = send
        self.started = False

    async def __call__(self, response: Response, *, close: bool = False,
                       head: bool = False) -> None:
        headers = [(b"content-type", response.content_type.encode("latin-1")),
                   (b"content-length", str(len(response.body)).encode("ascii"))]
        headers += [(name.lower().encode("latin-1"), value.encode("latin-1"))
                    for name, value in response.headers]
        if close:
            # As aiohttp's force_close: the server closes once this is sent,
            # without reading the rest of the body.
            headers.append((b"connection", b"close"))
        self.started = True
        await self._send({"type": "http.response.start", "status": response.status,
                          "headers": headers})
        await self._send({"type": "http.response.body", "body": b"" if head else response.body})


def _expectation(scope: Scope) -> Response | None:
    expect = _header(scope, b"expect")
    if expect is None:
        return None
    return expectation(expect, http_11=scope.get("http_version", "1.1") == "1.1")


async def _read_body(receive: Receive, limits: InboxLimits) -> bytes | Response:
    """The body, capped at ``limits.max_body`` (reading stops at the first chunk
    beyond it) and ``limits.body_timeout``."""
    body = BodyLimit(limits)
    try:
        async with asyncio.timeout(limits.body_timeout):
            while True:
                message = await receive()
                if message["type"] != "http.request":  # http.disconnect: the client left
                    return INCOMPLETE
                if (refusal := body.add(message.get("body") or b"")) is not None:
                    return refusal
                if not message.get("more_body", False):
                    return body.body()
    except TimeoutError:
        return BODY_TIMEOUT


async def _lifespan(receive: Receive, send: Send) -> None:
    """Nothing to start or stop (the vendor's owner opens and closes it): say so."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def vrm_app(vendor: Vendor, *, public_base_url: str | None = None,
            limits: InboxLimits | None = None) -> ASGIApp:
    """An ASGI 3 application serving ``vendor``'s discovery document
    (``GET``/``HEAD /.well-known/vrm``) and inbox (``POST /inbox``) under
    whatever path it is mounted at.

    ``public_base_url`` (e.g. ``"https://shop.example/vrm"``) names the inbox in
    the discovery document; without it the inbox is built from the request's
    scheme, its Host (validated as ``host[:port]``, else 400) and ``root_path``.
    ``limits``: the body's size and time limits (``InboxLimits()`` by default).
    Every answer is the aiohttp binding's, byte for byte; no input is a 500.
    """
    limits = limits if limits is not None else InboxLimits()

    async def inbox(scope: Scope, receive: Receive, answer: _Answer) -> None:
        content_type = _header(scope, b"content-type")
        refusal = refused_on_the_head(content_type, _content_length(scope), limits,
                                      content_encoding=_header(scope, b"content-encoding"))
        if refusal is not None:
            return await answer(refusal, close=True)
        if (refusal := _expectation(scope)) is not None:
            return await answer(refusal)
        # A "100 Continue" is the server's to send, at the first receive().
        body = await _read_body(receive, limits)
        if isinstance(body, Response):
            return await answer(body, close=True)
        await answer(await vendor.handle(body, content_type))

    async def discovery(scope: Scope, receive: Receive, answer: _Answer) -> None:
        if (refusal := _expectation(scope)) is not None:
            return await answer(refusal)
        await answer(discovery_response(
            vendor, public_base_url=public_base_url, scheme=scope.get("scheme", "http"),
            host=_header(scope, b"host"), inbox_path=scope.get("root_path", "") + INBOX_PATH),
            head=scope["method"] == "HEAD")

    endpoints = {protocol.WELL_KNOWN_PATH: discovery, INBOX_PATH: inbox}

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            return await _lifespan(receive, send)
        if kind != "http":
            return None  # a WebSocket: not ours; returning closes it (ASGI spec)
        answer = _Answer(send)
        try:
            path, root = scope["path"], scope.get("root_path", "")
            if root and path.startswith(root):
                path = path[len(root):]
            if path not in METHODS:
                return await answer(NOT_FOUND)
            if scope["method"] not in METHODS[path]:
                return await answer(METHOD_NOT_ALLOWED[path])
            return await endpoints[path](scope, receive, answer)
        except Exception:
            # The last line of "no input produces a 500", as in the aiohttp binding.
            log.exception("the VRM endpoint failed on %s %s; answered 503",
                          scope.get("method"), str(scope.get("path"))[:200])
            if not answer.started:
                await answer(UNAVAILABLE)

    return app
