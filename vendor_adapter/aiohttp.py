"""The aiohttp binding: a sub-application serving one vendor.

    app = web.Application()
    app.add_subapp("/shop/vrm", vrm_app(vendor))
    # GET  /shop/vrm/.well-known/vrm   the discovery document
    # POST /shop/vrm/inbox             messages from people's agents

Everything protocol-related happens in the framework-free core
(``Vendor.handle``, and the HTTP rules of ``_http``, which the ASGI binding
shares); this file only reads the body safely and writes the response.

To serve it on a socket of its own, as ``vrm-vendor serve`` does, use
``serve(app, host=..., port=...)`` or ``GuardedAppRunner`` in place of
``web.AppRunner``: they add what aiohttp leaves to a reverse proxy, time
limits on request heads and on clients that do not read their answers, and
caps on connections, in all and per client address (``ServerLimits``).
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import HttpVersion11, web
from aiohttp.typedefs import Handler

import protocol

from ._core import UNAVAILABLE, Response
from ._http import (
    BODY_TIMEOUT,
    INBOX_PATH,
    INCOMPLETE,
    BodyLimit,
    InboxLimits,
    discovery_response,
    expectation,
    refused_on_the_head,
)
from ._serve import ConnectionStats, GuardedAppRunner, ServerLimits, serve
from ._vendor import Vendor

__all__ = ["vrm_app", "InboxLimits", "VENDOR_KEY", "serve", "ServerLimits", "GuardedAppRunner",
           "ConnectionStats"]

VENDOR_KEY: web.AppKey[Vendor] = web.AppKey("vrm_vendor", Vendor)

log = logging.getLogger("vendor_adapter.aiohttp")


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


async def _expect(request: web.Request) -> web.Response | None:
    """``Expect`` (RFC 9110 §10.1.1), by the shared rule (``_http.expectation``):
    unlike aiohttp's default handler, an unknown value is never quoted back, so a
    value that is not UTF-8 is never a 500."""
    refusal = expectation(request.headers.get("Expect"),
                          http_11=request.version == HttpVersion11)
    if refusal is not None:
        return _web_response(refusal)
    if request.version == HttpVersion11:
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.writer.output_size = 0  # what follows is the response proper
    return None


async def _read_body(request: web.Request, limits: InboxLimits) -> bytes | Response:
    """The body, capped at ``limits.max_body`` and ``limits.body_timeout``."""
    body = BodyLimit(limits)
    content = request.content
    try:
        if content.is_eof():
            # The whole body came with the headers (the usual case for a message
            # of a few KB): take it without arming a timer.
            return body.add(content.read_nowait()) or body.body()
        async with asyncio.timeout(limits.body_timeout):
            while chunk := await content.readany():
                if (refusal := body.add(chunk)) is not None:
                    return refusal
    except TimeoutError:
        return BODY_TIMEOUT
    except (ConnectionError, web.HTTPException, OSError):
        return INCOMPLETE
    except Exception as exc:  # aiohttp's payload errors (e.g. a cut-off chunked body)
        if exc.__class__.__module__.startswith("aiohttp"):
            return INCOMPLETE
        raise
    return body.body()


def vrm_app(vendor: Vendor, *, public_base_url: str | None = None,
            limits: InboxLimits | None = None) -> web.Application:
    """An aiohttp application serving ``vendor``'s discovery document and inbox.

    The inbox URL in the discovery document is absolute and on the same origin
    as the document (agents refuse any other, to prevent SSRF). It is
    ``public_base_url`` + ``/inbox`` when given (e.g. ``"https://shop.example/vrm"``
    behind a reverse proxy), else built from the request's scheme, its Host
    header (validated as ``host[:port]``; anything else is 400) and the mount
    prefix (``vendor_adapter._http.discovery_response``).
    """
    limits = limits if limits is not None else InboxLimits()
    app = web.Application(middlewares=[_never_500])
    app[VENDOR_KEY] = vendor

    async def discovery(request: web.Request) -> web.Response:
        return _web_response(discovery_response(
            vendor, public_base_url=public_base_url, scheme=request.scheme,
            host=request.headers.get("Host"),
            inbox_path=str(request.app.router["inbox"].url_for())))

    async def inbox(request: web.Request) -> web.Response:
        content_type = request.headers.get("Content-Type")
        refusal = refused_on_the_head(content_type, request.content_length, limits,
                                      content_encoding=request.headers.get("Content-Encoding"))
        if refusal is not None:
            return await _answer_and_close(request, refusal)
        body = await _read_body(request, limits)
        if isinstance(body, Response):
            return await _answer_and_close(request, body)
        return _web_response(await vendor.handle(body, content_type))

    async def inbox_expect(request: web.Request) -> web.Response | None:
        # A client that waits for "100 Continue" before sending its body learns
        # of a refusal the head decides without sending the body at all.
        refusal = refused_on_the_head(request.headers.get("Content-Type"),
                                      request.content_length, limits,
                                      content_encoding=request.headers.get("Content-Encoding"))
        if refusal is not None:
            return await _answer_and_close(request, refusal)
        return await _expect(request)

    app.router.add_get(protocol.WELL_KNOWN_PATH, discovery, name="discovery",
                       expect_handler=_expect)  # and HEAD (_http.METHODS)
    app.router.add_post(INBOX_PATH, inbox, name="inbox", expect_handler=inbox_expect)
    return app
