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
  UTF-8 make aiohttp or the application fail (``_undecodable_text_is_400``);
- gives each answer ``write_timeout`` seconds to be handed to the network:
  the timer runs while the connection's send buffer is full (more than
  ``max_queued_bytes`` waiting, which is also when aiohttp stops producing
  answers), and a client that reads nothing for that long is dropped
  (the connection is aborted). The socket's kernel buffer is bounded to
  ``max_queued_bytes`` too, and on Linux TCP_USER_TIMEOUT drops a connection
  whose answers sat in the kernel, unread, for twice ``write_timeout``.
  Without it, a client that pipelines requests and never reads the answers
  holds its connection for ever: neither the head, the body nor the idle
  timer runs while an answer waits to be written. This is nginx's
  send_timeout;
- stops reading a connection once ``max_pipelined`` requests wait behind the
  one being answered (aiohttp's own queue bound, set per connection; reading
  resumes when half have been answered). aiohttp's parser hands over at most
  32 requests from one read, so the queue never holds more than
  ``max(max_pipelined, 32)``;
- caps the connections one client address holds (``max_connections_per_client``;
  an IPv6 client is its /64, as one host is usually given a /64): one beyond
  the cap is answered 503 and closed, like one beyond ``max_connections``.

Idle keep-alive connections close after ``idle_timeout`` (aiohttp's
``keepalive_timeout``, whose default of an hour assumes a proxy in front).

The guard reads five of ``RequestHandler``'s private attributes
(``_request_count``, ``_messages``, ``_waiter``, ``_request_in_progress``,
``_upgraded``) and sets two (``_max_msg_queue_size``,
``_msg_queue_resume_size``);
tests/vendor_adapter/test_serve.py fails if an aiohttp upgrade changes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
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
    #: Connections one client address (an IPv6 client's /64) may hold at once;
    #: further ones from it get 503 and are closed. Behind a reverse proxy all
    #: connections come from the proxy: raise it to ``max_connections`` there.
    max_connections_per_client: int = 100
    #: Seconds an answer may wait, with the send buffer full, for the client to
    #: read; then the connection is dropped.
    write_timeout: float = 30.0
    #: Requests waiting behind the one being answered (HTTP/1.1 pipelining) at
    #: which the connection is no longer read until answers make room.
    max_pipelined: int = 16
    #: Bytes of answers queued for a client that does not read before no more
    #: answers are made for it and the ``write_timeout`` clock runs: the event
    #: loop's send buffer (high-water mark) and the socket's (SO_SNDBUF, which
    #: Linux doubles) each hold this much, plus the answer being written.
    max_queued_bytes: int = 64 * 1024

    def __post_init__(self) -> None:
        if not (self.header_timeout > 0 and self.idle_timeout > 0 and self.write_timeout > 0):
            raise ValueError("header_timeout, idle_timeout and write_timeout are positive "
                             "numbers of seconds")
        if min(self.max_connections, self.max_connections_per_client, self.max_pipelined,
               self.max_queued_bytes) < 1:
            raise ValueError("max_connections, max_connections_per_client, max_pipelined and "
                             "max_queued_bytes are at least 1")


@dataclass
class ConnectionStats:
    """What the guard has seen, for tests, monitoring and benchmarks."""

    #: Connections open now.
    open: int = 0
    #: Connections refused because ``max_connections`` were open.
    refused: int = 0
    #: Connections closed because a request head took longer than ``header_timeout``.
    head_timeouts: int = 0
    #: Of ``refused``, those refused because their address held
    #: ``max_connections_per_client`` already.
    refused_per_client: int = 0
    #: Connections dropped because an answer waited ``write_timeout`` for the client.
    write_timeouts: int = 0


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


def _client_of(transport: asyncio.BaseTransport) -> str | None:
    """The client's address as the per-client cap counts it: an IPv4 address, or
    an IPv6 client's /64 (IPv4-mapped IPv6 is IPv4). ``None`` if there is none
    (a Unix socket): not capped per client."""
    peer = transport.get_extra_info("peername")
    if not isinstance(peer, (tuple, list)) or not peer:
        return None
    try:
        address = ipaddress.ip_address(str(peer[0]).split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def _bound_the_kernel_buffer(transport: asyncio.BaseTransport, queued: int) -> None:
    """Bound what the kernel holds for the client too: its send buffer
    (SO_SNDBUF; Linux doubles the value for its bookkeeping) is ``queued``
    bytes, not the megabytes autotuning grows to. Otherwise a client that never
    reads would sit behind megabytes of answers the event loop never sees, idle
    as far as the loop can tell, and cost that much kernel memory. Answers are
    at most 64 KiB, so this still carries one whole answer at a time."""
    sock = transport.get_extra_info("socket")
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, max(queued, 4096))


def _kernel_write_timeout(transport: asyncio.BaseTransport, seconds: float) -> None:
    """A deadline for what the kernel holds: TCP_USER_TIMEOUT (RFC 5482;
    Linux tcp(7)) drops a connection whose sent data stays unacknowledged, or
    unsent because the client's window is closed (it reads nothing), for that
    long. Where the option does not exist (not Linux), the event loop's timer
    alone applies, once the bounded kernel buffer is full."""
    option = getattr(socket, "TCP_USER_TIMEOUT", None)
    sock = transport.get_extra_info("socket")
    if option is None or sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    with contextlib.suppress(OSError):  # a kernel without it
        sock.setsockopt(socket.IPPROTO_TCP, option, max(1, int(seconds * 1000)))


class _Shared:
    """What every connection of one runner shares."""

    __slots__ = ("limits", "max_connections", "stats", "loop", "per_client")

    def __init__(self, limits: ServerLimits, max_connections: int, stats: ConnectionStats,
                 loop: asyncio.AbstractEventLoop) -> None:
        self.limits = limits
        self.max_connections = max_connections
        self.stats = stats
        self.loop = loop
        #: Open connections by client address (``_client_of``); absent means none.
        self.per_client: dict[str, int] = {}


class _Guard(asyncio.Protocol):
    """One connection: aiohttp's RequestHandler inside, a deadline and a count around it.

    The common case (a whole request in one read) costs one comparison more
    than aiohttp alone; the head timer is armed once per connection (at
    connect) and otherwise only when a head arrives in pieces.
    """

    __slots__ = ("_inner", "_shared", "_timer", "_partial", "_payload", "_counted", "_client",
                 "_write_timer", "_transport")

    def __init__(self, inner: web.RequestHandler, shared: _Shared) -> None:
        self._inner = inner
        self._shared = shared
        self._timer: asyncio.TimerHandle | None = None
        self._partial = False  # some bytes of the awaited head have arrived
        #: The body of the newest request, to fail it if the client's FIN cuts it short.
        self._payload: Any = None
        self._counted = False
        self._client: str | None = None
        #: Runs while the send buffer is full (between pause_ and resume_writing).
        self._write_timer: asyncio.TimerHandle | None = None
        self._transport: asyncio.BaseTransport | None = None
        # aiohttp's bound on requests read ahead (it pauses reading at this many
        # queued, and resumes at half).
        pipelined = shared.limits.max_pipelined
        inner._max_msg_queue_size = pipelined
        inner._msg_queue_resume_size = pipelined // 2

    # --- asyncio.Protocol ----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        shared = self._shared
        client = _client_of(transport)
        crowded = (client is not None and shared.per_client.get(client, 0)
                   >= shared.limits.max_connections_per_client)
        if crowded or shared.stats.open >= shared.max_connections:
            shared.stats.refused += 1
            shared.stats.refused_per_client += crowded
            assert isinstance(transport, asyncio.WriteTransport)
            transport.write(_BUSY)
            transport.close()
            return
        self._counted = True
        self._transport = transport
        shared.stats.open += 1
        if client is not None:
            self._client = client
            shared.per_client[client] = shared.per_client.get(client, 0) + 1
        if isinstance(transport, asyncio.WriteTransport):
            # pause_writing comes once this much waits unsent (low-water: a quarter).
            transport.set_write_buffer_limits(high=shared.limits.max_queued_bytes)
        _bound_the_kernel_buffer(transport, shared.limits.max_queued_bytes)
        # Twice as long: the event loop's timer comes first when answers pile up
        # (and its abort resets the connection, so the client learns); this is
        # the backstop for a few answers that sit in the kernel buffer, where the
        # kernel drops the connection without a word.
        _kernel_write_timeout(transport, 2 * shared.limits.write_timeout)
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
        shared = self._shared
        shared.stats.open -= 1
        if self._client is not None:
            left = shared.per_client.pop(self._client, 1) - 1
            if left > 0:
                shared.per_client[self._client] = left
        for timer in (self._timer, self._write_timer):
            if timer is not None:
                timer.cancel()
        self._timer = self._write_timer = None
        self._payload = None
        self._transport = None
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        # The send buffer is full: the client has not read for a while. From now
        # on it has write_timeout seconds to make room.
        self._inner.pause_writing()
        if self._write_timer is None and self._counted:
            shared = self._shared
            self._write_timer = shared.loop.call_at(
                shared.loop.time() + shared.limits.write_timeout, self._write_timed_out)

    def resume_writing(self) -> None:
        if self._write_timer is not None:
            self._write_timer.cancel()
            self._write_timer = None
        self._inner.resume_writing()

    def _write_timed_out(self) -> None:
        self._write_timer = None
        transport = self._transport
        if not self._counted or transport is None:
            return
        self._shared.stats.write_timeouts += 1
        # abort, not close: close would wait, for ever, to flush what it cannot send.
        transport.abort()

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
        # Bodies are taken as sent: the inbox refuses a content coding (415), and a
        # body aiohttp discards unread (after a 404 or 405) is never decoded, so a
        # "gzip" body that is not gzip is no error in aiohttp's log.
        kwargs.setdefault("auto_decompress", False)
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
