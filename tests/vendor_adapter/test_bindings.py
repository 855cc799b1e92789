"""Issue 12 §1: the ASGI binding answers every input exactly as the aiohttp
binding does, byte for byte.

Two copies of one vendor database (the same key, the same records), one
behind aiohttp (``GuardedAppRunner``), one behind the ASGI app in uvicorn,
both on a fixed clock and with receipt ids drawn from the same sequence: each
request goes to both, as raw bytes, and the answers must agree in status, in
every header the binding sets (only the servers' own ``Date`` and ``Server``
may differ, and the reason phrase) and in every byte of the body, receipts
included. Then the ASGI app mounted in FastAPI, Starlette and a Django ASGI
dispatcher, with and without lifespan events."""

from __future__ import annotations

import json
import shutil
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

import pytest

import protocol
from vendor_adapter import Vendor
from vendor_adapter import asgi as vrm_asgi
from vendor_adapter.aiohttp import vrm_app

from .conftest import (
    LIMITS,
    PASSPHRASE,
    GuardedTestServer,
    HttpClient,
    Person,
    UvicornServer,
    exchange,
    request_head,
    verify_receipt,
)

FIXED = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)
PUBLIC = "https://shop.example/vrm"
#: Headers that are the server's, not the binding's.
SERVERS_OWN = {"date", "server"}


def fixed_clock() -> datetime:
    return FIXED


class Twins:
    def __init__(self, servers: list[tuple[str, int]], vendors: list[Vendor]) -> None:
        self.servers = servers
        self.vendors = vendors

    async def both(self, monkeypatch: Any, head: bytes, body: bytes = b""
                   ) -> tuple[int, dict[str, str], bytes]:
        """Send the request to both; assert the answers are the same; return it."""
        answers = []
        for host, port in self.servers:
            ids = iter(range(1000))
            monkeypatch.setattr(protocol, "new_message_id",
                                lambda: protocol.b64url_encode(next(ids).to_bytes(16, "big")))
            result = await exchange(host, port, head, [body] if body else [],
                                    stop_at_answer=False)
            answers.append(split(result.answer))
        assert answers[0] == answers[1], answers
        return answers[0]


def split(answer: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers: dict[str, str] = {}
    for line in lines:
        name, _, value = line.partition(":")
        if name.lower() not in SERVERS_OWN:
            assert name.lower() not in headers, f"{name} twice"
            headers[name.lower()] = value.strip()
    return int(status_line.split(" ")[1]), headers, body


@pytest.fixture
async def twins(tmp_path: Any, aiohttp_server: Any) -> AsyncIterator[Twins]:
    original = tmp_path / "a.db"
    Vendor.open(original, name="Twin Cycles", passphrase=PASSPHRASE).close()
    copy = tmp_path / "b.db"
    shutil.copy(original, copy)
    vendors = [Vendor.open(path, passphrase=PASSPHRASE, clock=fixed_clock)
               for path in (original, copy)]
    aiohttp_side = await aiohttp_server(
        vrm_app(vendors[0], public_base_url=PUBLIC, limits=LIMITS))
    asgi_side = await UvicornServer(
        vrm_asgi.vrm_app(vendors[1], public_base_url=PUBLIC, limits=LIMITS)).start()
    yield Twins([(aiohttp_side.host, aiohttp_side.port), (asgi_side.host, asgi_side.port)],
                vendors)
    await asgi_side.close()
    for vendor in vendors:
        vendor.close()


def get(path: str, *extra: str, version: str = "1.1") -> bytes:
    lines = [f"GET {path} HTTP/{version}", "Host: vendor.test", *extra, "Connection: close"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def post(body: bytes, ctype: str = "application/jose+json", *extra: str,
         length: int | None = None) -> bytes:
    lines = ["POST /inbox HTTP/1.1", "Host: vendor.test", f"Content-Type: {ctype}",
             f"Content-Length: {len(body) if length is None else length}", *extra,
             "Connection: close"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def test_the_same_bytes_for_every_kind_of_answer(twins: Twins, monkeypatch: Any) -> None:
    person = Person(twins.vendors[0].did)

    def signed(type_: str, body: dict[str, Any], **extra: Any) -> bytes:
        return person.message(type_, body, created=FIXED, **extra)

    # The discovery document (GET and HEAD), and its Host rules.
    status, headers, body = await twins.both(monkeypatch, get("/.well-known/vrm"))
    assert status == 200 and json.loads(body)["inbox"] == PUBLIC + "/inbox"
    assert headers["vary"] == "Host" and headers["cache-control"] == "max-age=300"
    await twins.both(monkeypatch, get("/.well-known/vrm").replace(b"GET", b"HEAD", 1))
    await twins.both(monkeypatch, get("/.well-known/vrm", "Expect: 200-ok"))
    # Receipts: accepted, duplicate, rejected (422), unsupported, a fetch, ended (410).
    request = signed("relationship.request", {"profile": {"given_name": "Ann"}})
    for _ in range(2):
        status, _, body = await twins.both(monkeypatch, post(request), request)
        assert status == 200
    assert verify_receipt(body, twins.vendors[0].discovery(PUBLIC + "/inbox").to_wire(),
                          person.did)["body"]["status"] == "duplicate"
    for raw in (signed("feedback", {"score": 11}), signed("x-org.example.points", {}),
                signed("feedback", {"score": 9}), signed("messages.fetch", {"after": None}),
                signed("relationship.end", {}), signed("feedback", {"score": 1})):
        await twins.both(monkeypatch, post(raw), raw)
    # Problem documents: malformed, bad signature, 415, 413 (by Content-Length and
    # while streaming), a message cut short, Expect.
    forged = json.loads(request)
    forged["signature"] = forged["signature"][::-1]
    for head, raw in (
            (post(b"{}"), b"{}"),
            (post(b"\xff"), b"\xff"),
            (post(json.dumps(forged).encode()), json.dumps(forged).encode()),
            (post(request, "application/json"), request),
            (post(request, "application/\xff"), request),
            (post(b"", length=10 * 1024 * 1024), b""),
            (post(b"", "application/jose+json", "Expect: 100-continue", length=1 << 20), b""),
            (post(request, "application/jose+json", "Expect: 200-ok"), request),
            (post(request, "application/jose+json", "Content-Encoding: gzip"), request),
            (request_head(None).replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"),
             b"%x\r\n%s\r\n" % (70_000, b"a" * 70_000)),
            (post(request[:100]), request[:100])):
        status, headers, body = await twins.both(monkeypatch, head, raw)
        assert status in (400, 401, 413, 415, 417), (status, body)
    # What is not the adapter's: another path, another method.
    await twins.both(monkeypatch, get("/elsewhere"))
    await twins.both(monkeypatch, get("/inbox"))
    # Both databases took the same records.
    assert twins.vendors[0].crm.contacts() == twins.vendors[1].crm.contacts()
    assert twins.vendors[0].crm.feedback() == twins.vendors[1].crm.feedback()


async def test_the_vendors_own_failure_is_the_same_503(twins: Twins, monkeypatch: Any) -> None:
    for vendor in twins.vendors:
        monkeypatch.setattr(vendor, "discovery", lambda url: 1 / 0)
    status, headers, body = await twins.both(monkeypatch, get("/.well-known/vrm"))
    assert status == 503 and headers["retry-after"] == "30"
    assert json.loads(body)["type"] == protocol.PROBLEM_PREFIX + "unavailable"


# --- mounted in frameworks ------------------------------------------------------------------

async def mounted_discovery(app: Any, path: str, *, lifespan: str) -> dict[str, Any]:
    server = await UvicornServer(app, lifespan=lifespan).start()
    client = HttpClient(server)
    try:
        resp = await client.get(path)
        assert resp.status == 200, await resp.text()
        document = await resp.json()
        person = Person(document["id"])
        # The inbox the document names is the one that answers.
        resp = await client.post(document["inbox"].removeprefix(str(client.make_url("/"))[:-1]),
                                 data=person.request(), headers={"Content-Type":
                                                                 protocol.MEDIA_TYPE})
        assert resp.status == 200
        assert verify_receipt(await resp.read(), document, person.did)["body"]["status"] \
            == "accepted"
        return document
    finally:
        await client.close()
        await server.close()


@pytest.mark.parametrize("lifespan", ["on", "off"])
async def test_mounted_in_fastapi(vendor: Vendor, lifespan: str) -> None:
    from fastapi import FastAPI
    app = FastAPI()

    @app.get("/products")
    def products() -> list[str]:
        return ["bike"]

    app.mount("/vrm", vrm_asgi.vrm_app(vendor))
    document = await mounted_discovery(app, "/vrm/.well-known/vrm", lifespan=lifespan)
    assert urlsplit(document["inbox"]).path == "/vrm/inbox"


async def test_mounted_with_starlette_mount_and_alone(vendor: Vendor) -> None:
    from starlette.applications import Starlette
    from starlette.routing import Mount
    nested = Starlette(routes=[Mount("/shop", routes=[
        Mount("/vrm", app=vrm_asgi.vrm_app(vendor))])])
    document = await mounted_discovery(nested, "/shop/vrm/.well-known/vrm", lifespan="on")
    assert urlsplit(document["inbox"]).path == "/shop/vrm/inbox"
    alone = await mounted_discovery(vrm_asgi.vrm_app(vendor), "/.well-known/vrm",
                                    lifespan="on")
    assert urlsplit(alone["inbox"]).path == "/inbox"


async def test_a_root_path_from_the_server(vendor: Vendor) -> None:
    # uvicorn --root-path (an app behind a proxy that strips the prefix): the
    # document names the prefixed inbox.
    server = await UvicornServer(vrm_asgi.vrm_app(vendor), root_path="/behind/proxy").start()
    client = HttpClient(server)
    try:
        resp = await client.get("/.well-known/vrm")
        document = await resp.json()
        assert document["inbox"] == str(client.make_url("/behind/proxy/inbox"))
    finally:
        await client.close()
        await server.close()
