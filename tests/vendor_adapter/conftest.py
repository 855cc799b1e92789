"""Fixtures for the vendor adapter: a vendor on each store (``store``: a
temporary SQLite file, or a fresh database on a throwaway PostgreSQL server),
served by either binding (``binding``: the aiohttp one the way ``vrm-vendor
serve`` serves it, through ``GuardedAppRunner``; the ASGI one through a real
uvicorn server on 127.0.0.1, port 0), and people (agents) who sign messages
with protocol/ or with jwcrypto, an independent JOSE implementation.

What a test runs against follows from the fixtures it takes (directly or
through others), by ``pytest_generate_tests`` below:

- a store and a binding (``inbox``, or ``served_app`` with ``vendor``): three
  runs, ``aiohttp-sqlite``, ``asgi-sqlite`` and ``aiohttp-postgresql``. The
  bindings differ only above the core and the stores only below it, so the
  fourth pairing (ASGI on PostgreSQL) would test nothing the three do not,
  and would cost a quarter more of the suite's time;
- a store only (``store``, ``vendor``): ``sqlite`` and ``postgresql``;
- a binding only (``served_app`` with SQLite files of the test's own):
  ``aiohttp`` and ``asgi``.

The ids are fixed strings, the same in every pytest-xdist worker. The
PostgreSQL server is started once per session (``postgres``, from
tests/postgres.py) and each test gets a database of its own, copied from a
template that holds the schema. Tests of ``GuardedAppRunner`` itself (its
slow-client guard and its connection counts) are aiohttp-only
(``aiohttp_inbox``): ASGI servers bring their own (README.md)."""

from __future__ import annotations

import asyncio
import json
import socket
import sqlite3
from collections.abc import AsyncIterator, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import aiohttp
import pytest
import uvicorn
from aiohttp import web
from aiohttp.test_utils import TestServer
from jwcrypto import jwk, jws
from yarl import URL

import protocol
from tests.postgres import postgres  # noqa: F401 (the session's PostgreSQL server)
from vendor_adapter import Vendor
from vendor_adapter import asgi as vrm_asgi
from vendor_adapter._store import is_dsn
from vendor_adapter.aiohttp import (
    ConnectionStats,
    GuardedAppRunner,
    InboxLimits,
    ServerLimits,
    vrm_app,
)

JOSE = {"Content-Type": "application/jose+json"}
PASSPHRASE = "correct horse battery staple"


def now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class Person:
    """One pairwise identity of a person's agent, signing with protocol/."""

    vendor_did: str
    key: protocol.SigningKey = field(default_factory=protocol.SigningKey.generate)

    @property
    def did(self) -> str:
        return self.key.did

    def envelope(self, type_: str, body: dict[str, Any], **extra: Any) -> dict[str, Any]:
        created = extra.pop("created", now())
        payload = {"vrm": "1", "id": extra.pop("id", protocol.new_message_id()), "type": type_,
                   "from": self.did, "to": extra.pop("to", self.vendor_did),
                   "created": protocol.format_time(created), "body": body}
        payload.update(extra)
        return payload

    def sign_payload(self, payload: dict[str, Any] | bytes) -> bytes:
        raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        return protocol.sign_payload(raw, self.key)

    def message(self, type_: str, body: dict[str, Any], **extra: Any) -> bytes:
        return self.sign_payload(self.envelope(type_, body, **extra))

    def request(self, **profile: Any) -> bytes:
        return self.message("relationship.request", {"profile": profile} if profile else {})


class JwcryptoPerson(Person):
    """The same person, signing with jwcrypto instead of protocol/ (alg EdDSA, RFC 8037)."""

    def __init__(self, vendor_did: str) -> None:
        self.jwk = jwk.JWK.generate(kty="OKP", crv="Ed25519")
        raw = protocol.b64url_decode(self.jwk.export_public(as_dict=True)["x"], what="x")
        self.public = protocol.PublicKey(raw)
        super().__init__(vendor_did)

    @property
    def did(self) -> str:  # type: ignore[override]
        return self.public.did

    def sign_payload(self, payload: dict[str, Any] | bytes, *, header: dict[str, Any] | None = None
                     ) -> bytes:
        raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        token = jws.JWS(raw)
        protected = header or {"alg": "EdDSA", "kid": self.public.kid, "typ": "vrm+json"}
        token.add_signature(self.jwk, alg=protected["alg"], protected=json.dumps(protected))
        return token.serialize().encode()


def verify_receipt(raw: bytes, discovery: dict[str, Any], to: str) -> dict[str, Any]:
    """Verify a receipt with jwcrypto against the key in the discovery document;
    return its payload. The algorithm is pinned, never taken from the header."""
    (key_doc,) = [k for k in discovery["keys"] if k["kid"].startswith(discovery["id"] + "#")]
    key = jwk.JWK(**key_doc)
    token = jws.JWS()
    token.allowed_algs = ["Ed25519", "EdDSA"]
    token.deserialize(raw.decode())
    token.verify(key)
    header = json.loads(protocol.b64url_decode(json.loads(raw)["protected"], what="h"))
    assert header["kid"] == key_doc["kid"]
    payload = json.loads(token.payload)
    assert payload["type"] == "receipt"
    assert payload["from"] == discovery["id"]
    assert payload["to"] == to
    return payload


@pytest.fixture
def db_path(tmp_path: Any) -> str:
    """A SQLite file (for what only SQLite has: files, modes, WAL)."""
    return str(tmp_path / "crm.db")


STORES = ("sqlite", "postgresql")
BINDINGS = ("aiohttp", "asgi")
#: The (binding, store) pairs a test that takes both runs with; the ids are fixed.
PAIRS = (("aiohttp", "sqlite"), ("asgi", "sqlite"), ("aiohttp", "postgresql"))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrise ``store`` and ``binding`` (see the module's docstring): both
    together as the three ``PAIRS``, or either alone over all its values. The
    fixtures take no ``params`` of their own: pytest would cross them."""
    names = metafunc.fixturenames
    if "store" in names and "binding" in names:
        metafunc.parametrize(("binding", "store"), PAIRS, indirect=True,
                             ids=[f"{b}-{s}" for b, s in PAIRS])
    elif "store" in names:
        metafunc.parametrize("store", STORES, indirect=True)
    elif "binding" in names:
        metafunc.parametrize("binding", BINDINGS, indirect=True)


@pytest.fixture
def store(request: Any, tmp_path: Any) -> Iterator[str]:
    """Where a vendor is kept: a SQLite path, or the DSN of a fresh PostgreSQL
    database (dropped after the test)."""
    if request.param == "sqlite":
        yield str(tmp_path / "crm.db")
        return
    server = request.getfixturevalue("postgres")
    with server.database() as dsn:
        yield dsn


@pytest.fixture
def foreign_db(tmp_path: Any) -> str:
    """A SQLite file of someone else's: one table and one row, and no vendor."""
    path = str(tmp_path / "other.sqlite")
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total TEXT)")
    conn.execute("INSERT INTO invoices (total) VALUES ('12.50')")
    conn.commit()
    conn.close()
    return path


@pytest.fixture
def vendor(store: str) -> Iterator[Vendor]:
    v = Vendor.open(store, name="Bikes4U", passphrase=PASSPHRASE)
    yield v
    v.close()


LIMITS = InboxLimits(body_timeout=1.0)
#: Small, so that the tests of slow clients are quick.
SERVER_LIMITS = ServerLimits(header_timeout=1.0)


class GuardedTestServer(TestServer):
    """aiohttp's TestServer, running the app through ``GuardedAppRunner`` as
    ``vrm-vendor serve`` does."""

    def __init__(self, app: web.Application, *, limits: ServerLimits = SERVER_LIMITS,
                 **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.limits = limits

    async def _make_runner(self, **kwargs: Any) -> GuardedAppRunner:
        return GuardedAppRunner(self.app, limits=self.limits, **kwargs)


def database_snapshot(path: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table in the store at ``path`` (a SQLite file or a
    PostgreSQL DSN), read through a connection of its own: the CRM, and the
    adapter's ledger (vrm_seen, vrm_relationship, vrm_outbox, the identities) too."""
    if is_dsn(path):
        return {table: sorted(map(tuple, (row.values() for row in rows)), key=repr)
                for table, rows in table_rows(path).items()}
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        tables = [name for (name,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        # Sorted in Python: WITHOUT ROWID tables have no rowid to order by.
        return {table: sorted(conn.execute(f'SELECT * FROM "{table}"').fetchall(), key=repr)
                for table in tables}


def table_rows(path: str) -> dict[str, list[dict[str, Any]]]:
    """Every row of every table (as dicts, in storage order) in the store at
    ``path``: a SQLite file or a PostgreSQL DSN."""
    if is_dsn(path):
        import psycopg
        from psycopg.rows import dict_row
        with psycopg.connect(path, row_factory=dict_row) as conn:
            names = [r["tablename"] for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
                "ORDER BY tablename")]
            return {name: conn.execute(f'SELECT * FROM "{name}"').fetchall() for name in names}
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        names = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
        return {name: [dict(r) for r in conn.execute(f'SELECT * FROM "{name}"')]
                for name in names}
    finally:
        conn.close()


def crm_records(vendor: Vendor) -> tuple[Any, ...]:
    crm = vendor.crm
    return (crm.contacts(), crm.leads(), crm.activities(), crm.feedback())


@dataclass
class Inbox:
    """The vendor behind a real aiohttp test server, and helpers to talk to it."""

    client: Any
    vendor: Vendor
    discovery: dict[str, Any]
    #: The store: a SQLite path or a PostgreSQL DSN (with its password, if any).
    target: str = ""

    @property
    def stats(self) -> ConnectionStats:
        """The server's own connection counts (a guarded server only)."""
        return self.client.server.runner.stats

    async def post(self, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, str, bytes]:
        # The inbox the discovery document names (a sub-app's is under its prefix).
        path = URL(self.discovery["inbox"]).path
        resp = await self.client.post(path, data=body, headers=headers or JOSE)
        return resp.status, resp.headers.get("Content-Type", ""), await resp.read()

    async def send(self, person: Person, raw: bytes, *, status: int = 200) -> dict[str, Any]:
        """Post a signed message; check the HTTP status; return the verified receipt body."""
        code, ctype, body = await self.post(raw)
        assert code == status, (code, body[:500])
        assert ctype.startswith("application/jose+json")
        return verify_receipt(body, self.discovery, person.did)["body"]

    async def problem(self, raw: bytes, status: int, urn: str,
                      headers: dict[str, str] | None = None) -> dict[str, Any]:
        code, ctype, body = await self.post(raw, headers)
        assert code == status, (code, body[:500])
        assert ctype.startswith("application/problem+json")
        problem = json.loads(body)
        assert problem["type"] == urn
        assert problem["status"] == status
        return problem

    def person(self) -> Person:
        return Person(self.vendor.did)

    async def related(self, **profile: Any) -> Person:
        person = self.person()
        receipt = await self.send(person, person.request(**profile))
        assert receipt["status"] == "accepted"
        return person

    def snapshot(self) -> dict[str, list[tuple[Any, ...]]]:
        """The whole database, every table's rows: equal only to an identical one."""
        return database_snapshot(self.target or self.vendor.db_path)

    def crm(self) -> tuple[Any, ...]:
        """The CRM's records: (contacts, leads, activities, feedback)."""
        return crm_records(self.vendor)

    def tables(self) -> dict[str, list[dict[str, Any]]]:
        """Every row of every table, read through a connection of its own."""
        return table_rows(self.target or self.vendor.db_path)


# --- the ASGI binding through uvicorn -------------------------------------------------

class UvicornServer:
    """A real uvicorn server on 127.0.0.1 (a free port), in the test's event loop."""

    def __init__(self, app: Any, **config: Any) -> None:
        config.setdefault("lifespan", "auto")
        self.config = uvicorn.Config(app, log_level="warning", access_log=False,
                                     timeout_graceful_shutdown=1, **config)
        self.server = uvicorn.Server(self.config)
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind(("127.0.0.1", 0))
        self.host, self.port = self.socket.getsockname()[:2]
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> UvicornServer:
        self._task = asyncio.create_task(self.server.serve(sockets=[self.socket]))
        for _ in range(1000):
            if self.server.started or self._task.done():
                break
            await asyncio.sleep(0.01)
        assert self.server.started, "uvicorn did not start"
        return self

    async def close(self) -> None:
        self.server.should_exit = True
        if self._task is not None:
            await asyncio.wait_for(self._task, 30)
        self.socket.close()


class HttpClient:
    """What tests use of aiohttp's TestClient, for any server on 127.0.0.1."""

    def __init__(self, server: Any) -> None:
        self.server = server
        self.session = aiohttp.ClientSession()

    def make_url(self, path: str) -> URL:
        return URL(f"http://{self.server.host}:{self.server.port}").join(URL(path))

    async def request(self, method: str, path: str, **options: Any) -> aiohttp.ClientResponse:
        response = await self.session.request(method, self.make_url(path), **options)
        await response.read()
        return response

    async def get(self, path: str, **options: Any) -> aiohttp.ClientResponse:
        return await self.request("GET", path, **options)

    async def post(self, path: str, **options: Any) -> aiohttp.ClientResponse:
        return await self.request("POST", path, **options)

    async def close(self) -> None:
        await self.session.close()


def asgi_mounts(mounts: dict[str, Any]) -> Any:
    """The ASGI apps under their prefixes, mounted with Starlette's ``Mount``."""
    from starlette.applications import Starlette
    from starlette.routing import Mount
    return Starlette(routes=[Mount(prefix, app=app) for prefix, app in mounts.items()])


@pytest.fixture
def binding(request: Any) -> str:
    """Which binding serves the vendor (parametrised by ``pytest_generate_tests``)."""
    return request.param


@pytest.fixture
async def served_app(binding: str, aiohttp_client: Any) -> AsyncIterator[Any]:
    """``await served_app(vendor, **options)`` serves ``vrm_app(vendor, **options)``
    (``limits`` defaults to ``LIMITS``) with the binding under test and returns a
    client; ``await served_app({"/a": vendor_a, "/b": vendor_b})`` mounts several
    vendors under their prefixes (``add_subapp``, or Starlette's ``Mount``)."""
    servers: list[Any] = []

    async def serve_it(vendors: Vendor | dict[str, Vendor], **options: Any) -> Any:
        options.setdefault("limits", LIMITS)
        if binding == "aiohttp":
            if isinstance(vendors, Vendor):
                app = vrm_app(vendors, **options)
            else:
                app = web.Application()
                for prefix, vendor in vendors.items():
                    app.add_subapp(prefix, vrm_app(vendor, **options))
            return await aiohttp_client(GuardedTestServer(app))
        if isinstance(vendors, Vendor):
            asgi_app = vrm_asgi.vrm_app(vendors, **options)
        else:
            asgi_app = asgi_mounts({prefix: vrm_asgi.vrm_app(vendor, **options)
                                    for prefix, vendor in vendors.items()})
        server = await UvicornServer(asgi_app).start()
        client = HttpClient(server)
        servers.append((server, client))
        return client

    yield serve_it
    for server, client in servers:
        await client.close()
        await server.close()


@pytest.fixture
async def inbox(vendor: Vendor, store: str, served_app: Any) -> AsyncIterator[Inbox]:
    """The vendor on ``store``, served by ``binding``: the three ``PAIRS``."""
    client = await served_app(vendor)
    resp = await client.get("/.well-known/vrm")
    assert resp.status == 200
    yield Inbox(client, vendor, await resp.json(), store)


@pytest.fixture
async def aiohttp_inbox(vendor: Vendor, store: str, aiohttp_client: Any
                        ) -> AsyncIterator[Inbox]:
    """The inbox behind aiohttp and ``GuardedAppRunner`` only, for tests of the guard."""
    client = await aiohttp_client(GuardedTestServer(vrm_app(vendor, limits=LIMITS)))
    resp = await client.get("/.well-known/vrm")
    assert resp.status == 200
    yield Inbox(client, vendor, await resp.json(), store)


# --- HTTP/1.1 by hand, for what a well-behaved client never sends ---------------------

@dataclass
class Exchange:
    """What a hand-made request got back."""

    #: Every byte the server sent before it closed the connection.
    answer: bytes
    #: The server closed the connection (the client saw EOF) before the client
    #: stopped sending.
    cut_off: bool

    @property
    def status(self) -> int:
        return int(self.answer.split(b" ", 2)[1]) if self.answer else 0

    @property
    def body(self) -> bytes:
        return self.answer.partition(b"\r\n\r\n")[2]

    def problem(self) -> dict[str, Any]:
        assert b"\r\ncontent-type: application/problem+json" in self.answer.lower(), \
            self.answer[:300]
        return json.loads(self.body)


async def exchange(host: str, port: int, head: bytes, chunks: list[bytes], *,
                   pause: float = 0.001, shut: bool = False, wait: float = 20.0,
                   stop_at_answer: bool = True) -> Exchange:
    """Send ``head`` then ``chunks`` (``pause`` seconds apart), reading all the
    while; half-close the connection at the end if ``shut``. Return what the
    server sent by the time it closed the connection.

    The server may close (even reset) the connection once it has answered, so
    sending stops at the first byte of an answer (or, unless
    ``stop_at_answer``, only once the server has closed). The client never closes
    first: if the server does not close within ``wait`` seconds after the
    client is done, this raises ``TimeoutError``, which is the failure of a
    server that holds on to a connection.
    """
    reader, writer = await asyncio.open_connection(host, port)
    received = bytearray()

    async def read() -> None:
        try:
            while data := await reader.read(65536):
                received.extend(data)
        except ConnectionError:
            pass

    reading = asyncio.create_task(read())
    cut_off = False
    try:
        writer.write(head)
        for chunk in chunks:
            if reading.done() or (received and stop_at_answer):
                cut_off = True  # the server answered or let go while we were sending
                break
            writer.write(chunk)
            await writer.drain()
            await asyncio.sleep(pause)
        else:
            cut_off = reading.done()
        if shut and not reading.done():
            writer.write_eof()
    except ConnectionError:
        cut_off = True
    try:
        await asyncio.wait_for(reading, wait)
    finally:
        writer.close()
    return Exchange(bytes(received), cut_off)


def request_head(length: int | None, ctype: str = "application/jose+json", *,
                 path: str = "/inbox") -> bytes:
    framing = (f"Content-Length: {length}" if length is not None
               else "Transfer-Encoding: chunked")
    # Header bytes are latin-1 (RFC 9110 §5.5), so "\xff" in ctype is the byte 0xff.
    return (f"POST {path} HTTP/1.1\r\nHost: vendor.test\r\nContent-Type: {ctype}\r\n"
            f"{framing}\r\n\r\n").encode("latin-1")


__all__ = ["UvicornServer", "HttpClient", "asgi_mounts", "BINDINGS", "STORES", "PAIRS",
           "Person", "JwcryptoPerson", "verify_receipt", "Inbox", "JOSE", "PASSPHRASE", "now",
           "timedelta", "GuardedTestServer", "SERVER_LIMITS", "Exchange", "exchange",
           "request_head", "database_snapshot", "crm_records", "table_rows"]
