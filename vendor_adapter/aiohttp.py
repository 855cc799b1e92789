"""The aiohttp binding: a sub-application serving one vendor.

    app = web.Application()
    app.add_subapp("/shop/vrm", vrm_app(vendor))
    # GET  /shop/vrm/.well-known/vrm   the discovery document
    # POST /shop/vrm/inbox             messages from people's agents

Everything protocol-related happens in the framework-free core
(``Vendor.handle``); this file only reads the body safely and writes the
response.

To serve it on a socket of its own, as ``vrm-vendor serve`` does, use
``serve(app, host=..., port=...)`` or ``GuardedAppRunner`` in place of
``web.AppRunner``: they add what aiohttp leaves to a reverse proxy, a time
limit on request heads and a cap on connections (``ServerLimits``).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from aiohttp import HttpVersion11, web
from aiohttp.typedefs import Handler

import protocol

from ._core import UNAVAILABLE, Response, check_media_type, problem_response
from ._serve import ConnectionStats, GuardedAppRunner, ServerLimits, serve
from ._vendor import Vendor

__all__ = ["vrm_app", "InboxLimits", "VENDOR_KEY", "serve", "ServerLimits", "GuardedAppRunner",
           "ConnectionStats"]

VENDOR_KEY: web.AppKey[Vendor] = web.AppKey("vrm_vendor", Vendor)

log = logging.getLogger("vendor_adapter.aiohttp")


@dataclass(frozen=True)
class InboxLimits:
    """How much of a request the inbox reads, and for how long."""

    #: Bodies larger than this are refused with 413 (protocol.MAX_MESSAGE_BYTES).
    max_body: int = protocol.MAX_MESSAGE_BYTES
    #: The whole body must arrive within this many seconds, or 408: a client that
    #: trickles a body byte by byte must not hold a connection and a buffer open.
    body_timeout: float = 10.0


_TOO_LARGE = protocol.MessageTooLarge(
    f"a message is at most {protocol.MAX_MESSAGE_BYTES} bytes").to_problem()
_TIMEOUT = protocol.RequestTimeout("the message body did not arrive in time").to_problem()
_INCOMPLETE = protocol.MalformedMessage("the message body ended early").to_problem()


_BAD_HOST = protocol.MalformedMessage(
    "the Host header does not name a host this document can point to").to_problem()


@web.middleware
async def _never_500(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The last line of "no input produces a 500": whatever escapes a handler (a
    bug, or a library refusing something we did not foresee) is logged and
    answered like the core's own failures, 503 with the unavailable problem."""
    try:
        return await handler(request)
    except web.HTTPException:  # aiohttp's own answers: 404, 405, 413 ...
        raise
    except Exception:
        log.exception("the VRM endpoint failed on %s %s; answered 503",
                      request.method, request.rel_url.raw_path[:200])
        return _web_response(UNAVAILABLE)


def _web_response(response: Response) -> web.Response:
    return web.Response(status=response.status, body=response.body,
                        headers={"Content-Type": response.content_type, **dict(response.headers)})


async def _answer_and_close(request: web.Request, response: Response) -> web.Response:
    """Send a refusal, then drop the connection without reading the rest of the body.

    aiohttp would otherwise "linger", reading and discarding the unread body for
    up to its lingering_time (10 s by default): exactly the resource a slow or
    oversized upload should not get to hold.
    """
    resp = _web_response(response)
    resp.force_close()  # Connection: close
    transport = request.transport
    if transport is None or transport.is_closing():
        # The client is gone (it reset the connection, or aiohttp closed it on a
        # half-close): nobody to answer. aiohttp drops an unsent response quietly,
        # where a failed write here would end in the 503 middleware's error log.
        return resp
    await resp.prepare(request)
    await resp.write_eof()
    request.protocol.force_close()  # flushes what was written, then closes
    return resp


def _refused_on_the_head(content_type: str | None, content_length: int | None,
                         limits: InboxLimits) -> Response | None:
    """A refusal the request head decides, before any of the body is read: a
    media type we would not parse (415), or a Content-Length over the limit (413,
    RFC 9110 §15.5.14)."""
    if content_type is not None or content_length:
        try:
            check_media_type(content_type)
        except protocol.UnsupportedMediaType as exc:
            return problem_response(exc.to_problem(), 415)
    if content_length is not None and content_length > limits.max_body:
        return problem_response(_TOO_LARGE, 413)
    return None


async def _expect(request: web.Request) -> None:
    """``Expect`` (RFC 9110 §10.1.1), as aiohttp's default handler does it, except
    that an unknown value is never a 500: aiohttp's handler quotes the value in
    its 417, and a value that is not UTF-8 (aiohttp reads such bytes as lone
    surrogates) cannot be encoded there."""
    if request.version != HttpVersion11:
        return None  # HTTP/1.0 has no Expect
    if request.headers.get("Expect", "").lower() != "100-continue":
        raise web.HTTPExpectationFailed(text="only Expect: 100-continue is understood")
    await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    request.writer.output_size = 0  # what follows is the response proper
    return None


async def _read_body(request: web.Request, limits: InboxLimits) -> bytes | Response:
    """The body, capped at ``limits.max_body`` and ``limits.body_timeout``."""
    chunks: list[bytes] = []
    size = 0
    content = request.content
    try:
        if content.is_eof():
            # The whole body came with the headers (the usual case for a message
            # of a few KB): take it without arming a timer.
            body = content.read_nowait()
            if len(body) > limits.max_body:
                return problem_response(_TOO_LARGE, 413)
            return body
        async with asyncio.timeout(limits.body_timeout):
            while True:
                chunk = await content.readany()
                if not chunk:
                    break
                size += len(chunk)
                if size > limits.max_body:  # chunked bodies carry no Content-Length
                    return problem_response(_TOO_LARGE, 413)
                chunks.append(chunk)
    except TimeoutError:
        return problem_response(_TIMEOUT, 408)
    except (ConnectionError, web.HTTPException, OSError):
        return problem_response(_INCOMPLETE, 400)
    except Exception as exc:  # aiohttp's payload errors (e.g. a cut-off chunked body)
        if exc.__class__.__module__.startswith("aiohttp"):
            return problem_response(_INCOMPLETE, 400)
        raise
    return b"".join(chunks)


def vrm_app(vendor: Vendor, *, public_base_url: str | None = None,
            limits: InboxLimits = InboxLimits()) -> web.Application:
    """An aiohttp application serving ``vendor``'s discovery document and inbox.

    The inbox URL in the discovery document is absolute and on the same origin
    as the document (agents refuse any other, to prevent SSRF). It is derived
    from the request (scheme, Host and the mount prefix) unless
    ``public_base_url`` names it, e.g. ``"https://shop.example/vrm"`` behind a
    reverse proxy.
    """
    app = web.Application(middlewares=[_never_500])
    app[VENDOR_KEY] = vendor
    base = public_base_url.rstrip("/") if public_base_url else None

    async def discovery(request: web.Request) -> web.Response:
        try:
            inbox = (base + "/inbox" if base is not None else
                     str(request.url.origin().join(request.app.router["inbox"].url_for())))
            document = vendor.discovery(inbox)
        except (ValueError, UnicodeError):  # pydantic's ValidationError is a ValueError
            # Without public_base_url the inbox URL comes from the Host header, and
            # this one makes no valid URL.
            return _web_response(problem_response(_BAD_HOST, 400))
        return web.Response(body=protocol.dumps(document.to_wire()),
                            content_type="application/json",
                            headers={"Cache-Control": "max-age=300"})

    async def inbox(request: web.Request) -> web.Response:
        content_type = request.headers.get("Content-Type")
        refusal = _refused_on_the_head(content_type, request.content_length, limits)
        if refusal is not None:
            return await _answer_and_close(request, refusal)
        body = await _read_body(request, limits)
        if isinstance(body, Response):
            return await _answer_and_close(request, body)
        return _web_response(await vendor.handle(body, content_type))

    async def inbox_expect(request: web.Request) -> web.Response | None:
        # A client that waits for "100 Continue" before sending its body learns
        # of a refusal the head decides without sending the body at all.
        refusal = _refused_on_the_head(request.headers.get("Content-Type"),
                                       request.content_length, limits)
        if refusal is not None:
            return await _answer_and_close(request, refusal)
        return await _expect(request)

    app.router.add_get(protocol.WELL_KNOWN_PATH, discovery, name="discovery",
                       expect_handler=_expect)
    app.router.add_post("/inbox", inbox, name="inbox", expect_handler=inbox_expect)
    return app
