"""The guarded server (vendor_adapter/_serve.py): request heads have a deadline,
connections a cap, and a half-closed client still gets its answer. Real
servers on 127.0.0.1, spoken to by hand."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import ClientSession, web

import protocol
from vendor_adapter import Vendor, _serve
from vendor_adapter.aiohttp import GuardedAppRunner, ServerLimits, serve, vrm_app

from .conftest import JOSE, Person, exchange, request_head, verify_receipt

URN = protocol.PROBLEM_PREFIX
HEADER_TIMEOUT = 0.5
#: One header line every 0.1 s: the head would take 4 s, eight deadlines.
TRICKLE = [b"X-Slow-%d: 1\r\n" % i for i in range(40)]
OPENING = b"POST /inbox HTTP/1.1\r\nHost: vendor.test\r\n"


class Served:
    def __init__(self, runner: GuardedAppRunner, vendor: Vendor) -> None:
        self.runner = runner
        self.vendor = vendor
        self.host, self.port = runner.addresses[0][:2]
        self.url = f"http://{self.host}:{self.port}"

    async def trickle(self, count: int) -> list[Any]:
        return await asyncio.gather(*(exchange(self.host, self.port, OPENING, TRICKLE, pause=0.1)
                                      for _ in range(count)))

    async def still_serves(self) -> None:
        """A well-behaved client is served: a new relationship, its receipt verified."""
        async with ClientSession() as session:
            async with session.get(self.url + "/.well-known/vrm") as resp:
                discovery = await resp.json()
            person = Person(self.vendor.did)
            async with session.post(discovery["inbox"], data=person.request(),
                                    headers=JOSE) as resp:
                assert resp.status == 200
                receipt = verify_receipt(await resp.read(), discovery, person.did)
        assert receipt["body"]["status"] == "accepted"


async def started(vendor: Vendor, **limits: Any) -> Served:
    limits.setdefault("header_timeout", HEADER_TIMEOUT)
    runner = await serve(vrm_app(vendor), port=0, access_log=None, limits=ServerLimits(**limits))
    return Served(runner, vendor)


@pytest.fixture
async def served(vendor: Vendor) -> AsyncIterator[Served]:
    server = await started(vendor)
    yield server
    await server.runner.cleanup()


async def settled(stats: Any, open_: int) -> None:
    """Wait (a bounded while) for the server to have processed closes we saw."""
    for _ in range(500):
        if stats.open == open_:
            return
        await asyncio.sleep(0.02)


async def test_heads_that_trickle_in_are_cut_off(served: Served) -> None:
    stats = served.runner.stats
    results = await served.trickle(50)
    # Every one was cut off by the server while it was still sending, with a 408
    # problem document, and then saw the connection close (EOF).
    assert all(r.cut_off for r in results)
    assert {r.status for r in results} == {408}
    assert all(r.problem()["type"] == URN + "request-timeout" for r in results)
    assert all(b"\r\nConnection: close\r\n" in r.answer for r in results)
    await settled(stats, 0)
    assert stats.open == 0  # nothing held
    assert stats.head_timeouts == 50
    await served.still_serves()


async def test_a_connection_that_sends_nothing_is_closed_without_an_answer(
        served: Served) -> None:
    result = await exchange(served.host, served.port, b"", [])
    assert result.answer == b""  # closed (EOF), nothing to answer
    await settled(served.runner.stats, 0)
    assert served.runner.stats.head_timeouts == 1


async def test_the_next_head_on_a_kept_alive_connection_has_the_deadline_too(
        served: Served) -> None:
    get = b"GET /.well-known/vrm HTTP/1.1\r\nHost: vendor.test\r\n\r\n"
    # One complete request; then, on the same connection, a head that trickles.
    result = await exchange(served.host, served.port, get, [b"", OPENING] + TRICKLE, pause=0.1,
                            stop_at_answer=False)
    first, _, rest = result.answer.partition(b"HTTP/1.1 408")
    assert first.startswith(b"HTTP/1.1 200")
    assert rest and result.cut_off
    assert served.runner.stats.head_timeouts == 1


async def test_an_idle_kept_alive_connection_is_not_cut_by_the_head_deadline(
        served: Served) -> None:
    # Idle time between requests is the idle timeout's business, not the head's.
    async with ClientSession() as session:
        for _ in range(2):
            async with session.get(served.url + "/.well-known/vrm") as resp:
                assert resp.status == 200
            await asyncio.sleep(HEADER_TIMEOUT * 3)
        assert served.runner.stats.head_timeouts == 0
        assert served.runner.stats.open == 1  # the same connection all along


async def test_connections_beyond_the_cap_are_refused_with_503(vendor: Vendor) -> None:
    server = await started(vendor, max_connections=5, header_timeout=2.0)
    stats = server.runner.stats
    try:
        writers = []
        for _ in range(5):
            writers.append((await asyncio.open_connection(server.host, server.port))[1])
        await settled(stats, 5)
        assert stats.open == 5
        refused = await exchange(server.host, server.port, b"", [])
        assert refused.status == 503
        assert refused.problem()["type"] == URN + "unavailable"
        assert b"\r\nRetry-After: 5\r\n" in refused.answer
        assert stats.refused == 1 and stats.open == 5
        # The five send nothing: the head deadline frees their places.
        await settled(stats, 0)
        assert stats.open == 0 and stats.head_timeouts == 5
        for writer in writers:
            writer.close()
        await server.still_serves()
    finally:
        await server.runner.cleanup()


async def test_a_client_that_half_closes_after_its_request_gets_the_answer(
        served: Served) -> None:
    # HTTP/1.0-style clients (`nc -N`) send the request, then their FIN.
    person = Person(served.vendor.did)
    raw = person.request()
    result = await exchange(served.host, served.port, request_head(len(raw)), [raw], shut=True)
    assert result.status == 200
    discovery = served.vendor.discovery("http://vendor.test/inbox").to_wire()
    assert verify_receipt(result.body, discovery, person.did)["body"]["status"] == "accepted"


async def test_a_body_cut_off_by_a_half_close_is_answered_400(served: Served) -> None:
    person = Person(served.vendor.did)
    raw = person.request()
    result = await exchange(served.host, served.port, request_head(len(raw)),
                            [raw[: len(raw) // 2]], shut=True)
    assert result.status == 400
    assert result.problem()["type"] == URN + "malformed"
    await settled(served.runner.stats, 0)
    assert served.runner.stats.open == 0
    assert served.vendor.crm.contacts() == []


async def test_header_bytes_that_are_not_text_are_never_a_500(served: Served) -> None:
    # Routes that are not the adapter's (a 404, a 405) still get aiohttp's own Expect
    # handler, which fails on such bytes; the runner answers 400 for it.
    for line in (b"POST /nowhere HTTP/1.1", b"POST /.well-known/vrm HTTP/1.1"):
        result = await exchange(served.host, served.port, line + b"\r\nHost: vendor.test\r\n"
                                b"Expect: \x80\r\nContent-Length: 0\r\n\r\n", [])
        assert result.status == 400, result.answer[:200]
        assert result.problem()["type"] == URN + "malformed"


async def test_the_runner_serves_any_site_and_app(vendor: Vendor) -> None:
    # What benchmarks/vendor_farm.py or an embedder's own main() would do.
    app = web.Application()
    app.add_subapp("/v/0", vrm_app(vendor))
    runner = GuardedAppRunner(app, limits=ServerLimits(header_timeout=HEADER_TIMEOUT))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        host, port = runner.addresses[0][:2]
        results = await asyncio.gather(*(exchange(host, port, OPENING, TRICKLE, pause=0.1)
                                         for _ in range(5)))
        assert all(r.cut_off and r.status == 408 for r in results)
        async with ClientSession() as session:
            async with session.get(f"http://{host}:{port}/v/0/.well-known/vrm") as resp:
                assert resp.status == 200
    finally:
        await runner.cleanup()


async def test_a_websocket_through_the_guard_ends_when_its_client_does() -> None:
    # Not the adapter's, but the runner is for any app: an upgraded connection
    # is no longer HTTP, and its end (the client's FIN) must reach its reader.
    ended = asyncio.Event()

    async def echo(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for message in ws:
            await ws.send_str(message.data)
        ended.set()
        return ws

    app = web.Application()
    app.router.add_get("/ws", echo)
    runner = await serve(app, port=0, limits=ServerLimits(header_timeout=HEADER_TIMEOUT))
    try:
        host, port = runner.addresses[0][:2]
        async with ClientSession() as session:
            async with session.ws_connect(f"http://{host}:{port}/ws") as ws:
                await ws.send_str("hello")
                assert (await ws.receive()).data == "hello"
                await asyncio.sleep(HEADER_TIMEOUT * 2)  # no head deadline on a WebSocket
                await ws.send_str("still there")
                assert (await ws.receive()).data == "still there"
        await asyncio.wait_for(ended.wait(), 10)
        ended.clear()
        # A client that just sends its FIN, by hand after the handshake.
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                     b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                     b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101")
        writer.write_eof()
        await asyncio.wait_for(ended.wait(), 10)  # the handler saw the end
        writer.close()
        await settled(runner.stats, 0)
        assert runner.stats.open == 0 and runner.stats.head_timeouts == 0
    finally:
        await runner.cleanup()


def test_limits_must_make_sense() -> None:
    for bad in ({"header_timeout": 0}, {"idle_timeout": -1}, {"max_connections": 0},
                {"write_timeout": 0}, {"max_connections_per_client": 0}, {"max_pipelined": 0},
                {"max_queued_bytes": 0}):
        with pytest.raises(ValueError):
            ServerLimits(**bad)


def test_the_aiohttp_internals_the_guard_reads_are_there() -> None:
    # The guard reads these private attributes of aiohttp's RequestHandler; an
    # aiohttp upgrade that renames them must fail here, loudly.
    slots = set()
    for klass in web.RequestHandler.__mro__:
        slots.update(getattr(klass, "__slots__", ()))
    assert {"_request_count", "_messages", "_waiter", "_request_in_progress",
            "_upgraded", "_max_msg_queue_size", "_msg_queue_resume_size"} <= slots


async def test_a_client_that_never_reads_is_dropped_by_the_event_loop_timer(
        vendor: Vendor, monkeypatch: Any) -> None:
    # Without TCP_USER_TIMEOUT (not Linux), the guard's own timer drops a client
    # whose answers fill the send buffer: here 2,000 pipelined requests, a tiny
    # receive window, and nothing read. (With it, the kernel may drop it first:
    # tests/vendor_adapter/test_cli_serve.py.)
    monkeypatch.setattr(_serve, "_kernel_write_timeout", lambda transport, seconds: None)
    server = await started(vendor, write_timeout=0.5, max_queued_bytes=1024, max_pipelined=4)
    stats = server.runner.stats
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    try:
        await loop.sock_connect(sock, (server.host, server.port))
        get = b"GET /.well-known/vrm HTTP/1.1\r\nHost: vendor.test\r\n\r\n"
        sending = asyncio.ensure_future(loop.sock_sendall(sock, get * 2000))
        for _ in range(1500):  # the server aborts it (a bounded while)
            if stats.write_timeouts:
                break
            await asyncio.sleep(0.02)
        assert stats.write_timeouts == 1
        await settled(stats, 0)
        assert stats.open == 0
        sending.cancel()
        await server.still_serves()
    finally:
        sock.close()
        await server.runner.cleanup()


async def test_connections_per_client_address_are_capped(vendor: Vendor) -> None:
    server = await started(vendor, max_connections_per_client=3, header_timeout=5.0)
    stats = server.runner.stats
    try:
        held = [(await asyncio.open_connection(server.host, server.port))[1] for _ in range(3)]
        await settled(stats, 3)
        refused = await exchange(server.host, server.port, b"", [])
        assert refused.status == 503 and b"\r\nRetry-After: 5\r\n" in refused.answer
        assert (stats.refused, stats.refused_per_client) == (1, 1)
        for writer in held:
            writer.close()
        await settled(stats, 0)
        await server.still_serves()  # the address's places are free again
    finally:
        await server.runner.cleanup()


@pytest.mark.parametrize("peer, client", [
    (("192.0.2.7", 5000), "192.0.2.7"),
    (("::ffff:192.0.2.7", 5000, 0, 0), "192.0.2.7"),
    (("2001:db8:1:2:aaaa::1", 5000, 0, 0), "2001:db8:1:2::/64"),
    (("2001:db8:1:2:bbbb::9", 5000, 0, 0), "2001:db8:1:2::/64"),
    (("fe80::1%eth0", 5000, 0, 2), "fe80::/64"),
    ("", None),
])
def test_the_per_client_cap_counts_ipv4_addresses_and_ipv6_64s(peer: Any, client: Any) -> None:
    class Transport(asyncio.BaseTransport):
        def get_extra_info(self, name: str, default: Any = None) -> Any:
            return peer if name == "peername" else default

    assert _serve._client_of(Transport()) == client
