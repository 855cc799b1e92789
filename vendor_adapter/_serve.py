"""Serving an aiohttp application on a socket, with the limits aiohttp leaves out.

aiohttp's server gives a request head (request line and header fields) all
the time it wants: a client that sends one header line every few seconds (a
"slowloris") holds its connection until aiohttp's keep-alive timer fires, an
hour by default. aiohttp dropped its ``slow_request_timeout`` long ago and
recommends a reverse proxy in front. ``vrm-vendor serve`` has none, so
:class:`GuardedAppRunner` (a ``web.AppRunner``) passes every connection
through a small asyncio protocol around aiohttp's own ``RequestHandler``,
which:

- gives each request head ``header_timeout`` seconds, counted from the moment
  the connection opens or the next request's first byte arrives; then it
  answers 408 (problem ``request-timeout``) and closes. This is Go's
  ReadHeaderTimeout, Node's headersTimeout and nginx's client_header_timeout.
  The body has its own limit in the inbox (``InboxLimits.body_timeout``);
- caps the connections open at once (``max_connections``): one beyond the cap
  is answered 503 (problem ``unavailable``) and closed at once, so that no
  client can use up the file descriptors the database needs;
- lets a handler answer a client that half-closed its side of the connection
  (sent its FIN and waits for the answer). aiohttp closes such a connection
  without a word; here a body that the FIN cut short reaches the handler as an
  error, and the inbox answers 400 (problem ``malformed``);
- answers 400 (problem ``malformed``), not 500, when header bytes that are not
  UTF-8 make aiohttp or the application fail (``_undecodable_text_is_400``).

Idle keep-alive connections close after ``idle_timeout`` (aiohttp's
``keepalive_timeout``, whose default of an hour assumes a proxy in front).

The guard reads five of ``RequestHandler``'s private attributes
(``_request_count``, ``_messages``, ``_waiter``, ``_request_in_progress``,
``_upgraded``);
tests/vendor_adapter/test_serve.py fails if an aiohttp upgrade changes them.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from aiohttp import web

import protocol

__all__ = ["ServerLimits", "ConnectionStats", "GuardedAppRunner", "serve"]

log = logging.getLogger("vendor_adapter.serve")


@dataclass(frozen=True)
class ServerLimits:
    """What one server process gives its clients' connections."""

    #: Seconds a request head (request line and header fields) may take to arrive,
    #: from the connection's opening or the next request's first byte.
    header_timeout: float = 10.0
    #: Seconds an idle keep-alive connection stays open (aiohttp's keepalive_timeout).
    #: Longer than clients' own (aiohttp's client: 15 s), so that the client closes first.
    idle_timeout: float = 75.0
    #: Connections open at once; further ones get 503 and are closed. Lowered to
    #: the process's open-file limit less a margin, if that is smaller.
    max_connections: int = 1000

    def __post_init__(self) -> None:
        if not self.header_timeout > 0 or not self.idle_timeout > 0:
            raise ValueError("header_timeout and idle_timeout are positive numbers of seconds")
        if self.max_connections < 1:
            raise ValueError("max_connections is at least 1")


@dataclass
class ConnectionStats:
    """What the guard has seen, for tests, monitoring and benchmarks."""

    #: Connections open now.
    open: int = 0
    #: Connections refused because ``max_connections`` were open.
    refused: int = 0
    #: Connections closed because a request head took longer than ``header_timeout``.
    head_timeouts: int = 0


#: File descriptors kept back from connections: the database (and its WAL and
#: shared-memory files), logs, the listening socket.
_FD_MARGIN = 64


def _fd_budget() -> int | None:
    try:
        import resource
    except ImportError:  # not on Unix
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else max(1, soft - _FD_MARGIN)


def _raw_response(status: str, problem: dict[str, object], *extra: str) -> bytes:
    """A complete HTTP/1.1 response, written straight to the transport: no request
    object exists yet when the guard answers."""
    body = protocol.dumps(problem)
    head = [f"HTTP/1.1 {status}", f"Content-Type: {protocol.PROBLEM_MEDIA_TYPE}",
            f"Content-Length: {len(body)}", "Cache-Control: no-store", "Connection: close",
            *extra]
    return ("\r\n".join(head) + "\r\n\r\n").encode("ascii") + body


_HEAD_TIMEOUT = _raw_response("408 Request Timeout", protocol.RequestTimeout(
    "the request line and headers did not arrive in time").to_problem())
_BUSY = _raw_response("503 Service Unavailable", protocol.Unavailable(
    "the vendor has too many open connections; send it again shortly").to_problem(),
    "Retry-After: 5")


class _Shared:
    """What every connection of one runner shares."""

    __slots__ = ("limits", "max_connections", "stats", "loop")

    def __init__(self, limits: ServerLimits, max_connections: int, stats: ConnectionStats,
                 loop: asyncio.AbstractEventLoop) -> None:
        self.limits = limits
        self.max_connections = max_connections
        self.stats = stats
        self.loop = loop


class _Guard(asyncio.Protocol):
    """One connection: aiohttp's RequestHandler inside, a deadline and a count around it.

    The common case (a whole request in one read) costs one comparison more
    than aiohttp alone; the head timer is armed once per connection (at
    connect) and otherwise only when a head arrives in pieces.
    """

    __slots__ = ("_inner", "_shared", "_timer", "_partial", "_payload", "_counted")

    def __init__(self, inner: web.RequestHandler, shared: _Shared) -> None:
        self._inner = inner
        self._shared = shared
        self._timer: asyncio.TimerHandle | None = None
        self._partial = False  # some bytes of the awaited head have arrived
        #: The body of the newest request, to fail it if the client's FIN cuts it short.
        self._payload: Any = None
        self._counted = False

    # --- asyncio.Protocol ----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        shared = self._shared
        if shared.stats.open >= shared.max_connections:
            shared.stats.refused += 1
            assert isinstance(transport, asyncio.WriteTransport)
            transport.write(_BUSY)
            transport.close()
            return
        self._counted = True
        shared.stats.open += 1
        self._inner.connection_made(transport)
        # A new connection owes its first request head from now on.
        self._arm()

    def data_received(self, data: bytes) -> None:
        inner = self._inner
        heads = inner._request_count
        inner.data_received(data)
        if inner._request_count != heads:
            # A head is complete: from here its body (if any) is the handler's to time.
            messages = inner._messages
            self._payload = messages[-1][1] if messages else None
            self._partial = False
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        elif self._waiting_for_head():
            self._partial = True
            if self._timer is None:
                self._arm()

    def eof_received(self) -> bool | None:
        if self._waiting_for_head() or self._inner._upgraded:
            # Idle, or no longer HTTP (a WebSocket): aiohttp's way, the transport
            # closes, which is how an upgraded connection's reader learns the end.
            return self._inner.eof_received()  # None: asyncio closes the transport
        # A request is in flight and the client will send nothing more: keep the
        # writing side open so that it still gets its answer. Deciding what the
        # FIN means waits one turn of the loop, until a handler that aiohttp has
        # just dispatched has started.
        self._shared.loop.call_soon(self._input_ended)
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._counted:
            return  # refused at connect: aiohttp never saw it
        self._counted = False
        self._shared.stats.open -= 1
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._payload = None
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    # --- the deadline ----------------------------------------------------------------

    def _waiting_for_head(self) -> bool:
        """aiohttp is idle, waiting for the next request: none is queued or running."""
        inner = self._inner
        waiter = inner._waiter
        return waiter is not None and not waiter.done() and not inner._messages

    def _arm(self) -> None:
        shared = self._shared
        self._timer = shared.loop.call_at(shared.loop.time() + shared.limits.header_timeout,
                                          self._head_timed_out)

    def _head_timed_out(self) -> None:
        self._timer = None
        if not self._counted or not self._waiting_for_head():
            return  # a request got through meanwhile
        self._shared.stats.head_timeouts += 1
        transport = self._inner.transport
        if self._partial and transport is not None:
            # A client that started a request learns why it ends (PROTOCOL.md §8:
            # it may retry); one that sent nothing is simply closed.
            transport.write(_HEAD_TIMEOUT)
        self._inner.force_close()

    def _input_ended(self) -> None:
        if not self._counted:
            return  # closed meanwhile
        inner = self._inner
        if inner._request_in_progress or inner._messages:
            payload = self._payload
            if payload is not None and not payload.is_eof():
                payload.set_exception(web.RequestPayloadError(
                    "the client ended its side of the connection before the whole body "
                    "arrived"))
            inner.close()  # answer this request, then close
        else:
            # Idle, or the answer is sent already (aiohttp may be discarding an
            # unread body): nothing more will come, so nothing more to wait for.
            inner.force_close()


_NOT_TEXT = protocol.dumps(protocol.MalformedMessage(
    "a header of the request is not UTF-8 text").to_problem())


def _undecodable_text_is_400(handler: Any) -> Any:
    """Wrap the application's request handler: a UnicodeError out of it is the
    client's doing, not a 500. aiohttp keeps header bytes that are not UTF-8 as
    lone surrogates, and some of its own code chokes on them: its default
    ``Expect`` handler, which routes other than the adapter's still use (a 404
    with ``Expect: \\x80`` was a 500)."""

    async def handle(request: web.BaseRequest) -> web.StreamResponse:
        try:
            return await handler(request)
        except UnicodeError:
            log.info("a request with undecodable header text was answered 400",
                     exc_info=True)
            response = web.Response(status=400, body=_NOT_TEXT,
                                    content_type=protocol.PROBLEM_MEDIA_TYPE)
            response.force_close()
            return response

    return handle


class _GuardedServer:
    """aiohttp's low-level ``web.Server``, handing out guarded connections."""

    def __init__(self, server: web.Server, shared: _Shared) -> None:
        server.request_handler = _undecodable_text_is_400(server.request_handler)
        self._server = server
        self._shared = shared

    def __call__(self) -> _Guard:
        return _Guard(self._server(), self._shared)

    def __getattr__(self, name: str) -> Any:  # pre_shutdown, shutdown, connections ...
        return getattr(self._server, name)


class GuardedAppRunner(web.AppRunner):
    """A ``web.AppRunner`` whose connections are guarded by ``limits``.

    Use it wherever ``web.AppRunner`` would do, with any site::

        runner = GuardedAppRunner(app, limits=ServerLimits(header_timeout=10))
        await runner.setup()
        await web.TCPSite(runner, "0.0.0.0", 8080).start()

    ``runner.stats`` counts the open, refused and timed-out connections.
    """

    def __init__(self, app: web.Application, *, limits: ServerLimits = ServerLimits(),
                 **kwargs: Any) -> None:
        kwargs.setdefault("keepalive_timeout", limits.idle_timeout)
        super().__init__(app, **kwargs)
        self.limits = limits
        self.stats = ConnectionStats()
        budget = _fd_budget()
        #: ``limits.max_connections``, or fewer if the open-file limit is lower.
        self.max_connections = (limits.max_connections if budget is None
                                else min(limits.max_connections, budget))

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        shared = _Shared(self.limits, self.max_connections, self.stats,
                         asyncio.get_running_loop())
        return _GuardedServer(server, shared)  # type: ignore[return-value]


async def serve(app: web.Application, *, host: str = "127.0.0.1", port: int = 8080,
                limits: ServerLimits = ServerLimits(), backlog: int = 128,
                **runner_options: Any) -> GuardedAppRunner:
    """Serve ``app`` on ``host``:``port`` (0 picks a free port) behind the guard.

    Returns the runner: ``runner.addresses`` holds the bound addresses,
    ``runner.stats`` the connection counts, and ``await runner.cleanup()`` stops
    it. ``runner_options`` go to ``web.AppRunner`` (e.g. ``access_log=None``).
    Raises ``OSError`` if the address cannot be bound.
    """
    runner = GuardedAppRunner(app, limits=limits, **runner_options)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port, backlog=backlog).start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner
