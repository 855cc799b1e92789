"""``vrm-vendor serve`` as a real subprocess: clients that do not read (issue 9,
item 5), and the database it is pointed at (issue 9, item 6)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import psycopg
import pytest

from .conftest import PASSPHRASE, database_snapshot

ENV = {**os.environ, "VRM_VENDOR_PASSPHRASE": PASSPHRASE}
WELL_KNOWN = b"GET /.well-known/vrm HTTP/1.1\r\nHost: vendor.test\r\n\r\n"


def run(*args: str, env: dict[str, str | bytes] | None = None
        ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vendor_adapter.cli", *args],
                          env=env or ENV, capture_output=True, text=True, timeout=60)


def one_sentence(result: subprocess.CompletedProcess[str], words: str) -> None:
    assert result.returncode == 1, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], result.stderr
    assert result.stdout == ""


class Serving:
    """``vrm-vendor serve --port 0 ...`` running; ``url`` is what it printed."""

    def __init__(self, process: asyncio.subprocess.Process, url: str) -> None:
        self.process = process
        self.url = url
        self.host, port = url.removeprefix("http://").rsplit(":", 1)
        self.port = int(port)

    async def stop(self) -> None:
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(self.process.wait(), 30) == 0


async def serving(db: str, *options: str) -> Serving:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "vendor_adapter.cli", "serve", "--db", db, "--port", "0",
        *options, env=ENV, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode().strip()
    assert line.startswith("http://127.0.0.1:"), line + (await process.stderr.read()).decode()
    return Serving(process, line)


async def open_from(source: str, server: Serving, *, receive_buffer: int | None = None
                    ) -> socket.socket:
    """A plain non-blocking socket connected to ``server`` from the loopback
    address ``source`` (all of 127.0.0.0/8 is this host), optionally with a small
    receive buffer (set before connecting, so that the window is small from the
    start). Nothing reads it unless the test does."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if receive_buffer is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.bind((source, 0))
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (server.host, server.port))
    return sock


async def until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes (EOF or reset)."""
    loop = asyncio.get_running_loop()
    received = bytearray()
    try:
        while data := await loop.sock_recv(sock, 1 << 16):
            received += data
    except ConnectionError:
        pass
    return bytes(received)


async def honest_discovery(server: Serving) -> tuple[dict[str, Any], int]:
    """What a well-behaved client does: GET the discovery document, and on a 503
    try again shortly (Retry-After says 5 s; this client is impatient). Returns
    the document and how many 503s came first."""
    busy = 0
    async with aiohttp.ClientSession() as session:
        while True:
            async with session.get(server.url + "/.well-known/vrm") as resp:
                if resp.status == 200:
                    return await resp.json(), busy
                assert resp.status == 503, resp.status
                busy += 1
            await asyncio.sleep(0.1)


# --- issue 9, item 5: clients that do not read ---------------------------------------------

WRITE_TIMEOUT = 1.0


@pytest.fixture
async def small_server(db_path: str) -> AsyncIterator[Serving]:
    server = await serving(db_path, "--name", "Bikes4U", "--max-connections", "50",
                           "--write-timeout", str(WRITE_TIMEOUT), "--max-pipelined", "4",
                           "--max-queued-bytes", "4096", "--max-connections-per-client", "10")
    yield server
    await server.stop()


async def test_clients_that_never_read_are_dropped_and_an_honest_one_is_served(
        small_server: Serving) -> None:
    # 50 attackers, each from an address of its own (so that the per-client cap
    # does not stop them), fill every connection. Each pipelines a hundred
    # requests for the discovery document (70 KB of answers) and reads none.
    loop = asyncio.get_running_loop()
    attackers = [await open_from(f"127.0.0.{2 + n}", small_server, receive_buffer=4096)
                 for n in range(50)]
    for sock in attackers:
        await loop.sock_sendall(sock, WELL_KNOWN * 100)
    # The honest client is turned away (503) while the attackers hold every
    # connection, and served once their answers have waited --write-timeout
    # (without it, never: neither the head, nor the body, nor the idle timer
    # runs while an answer waits to be written).
    discovery, busy = await asyncio.wait_for(honest_discovery(small_server),
                                             10 * WRITE_TIMEOUT)
    assert discovery["name"] == "Bikes4U"
    assert busy > 0  # the attack did hold every connection at first
    # Every attacker's connection was closed (reset) by the server.
    await asyncio.wait_for(asyncio.gather(*map(until_closed, attackers)), 10 * WRITE_TIMEOUT)
    for sock in attackers:
        sock.close()


async def test_one_address_holds_at_most_its_share_of_connections(
        small_server: Serving) -> None:
    loop = asyncio.get_running_loop()
    held = [await open_from("127.0.0.2", small_server) for _ in range(10)]
    for sock in held:  # each is served: they are well-behaved, just many
        await loop.sock_sendall(sock, WELL_KNOWN)
        assert (await loop.sock_recv(sock, 65536)).startswith(b"HTTP/1.1 200 ")
    # The 11th from the same address is refused at once, with 503 and Retry-After.
    sock = await open_from("127.0.0.2", small_server)
    refused = await asyncio.wait_for(until_closed(sock), 10)
    assert refused.startswith(b"HTTP/1.1 503 ") and b"\r\nRetry-After: 5\r\n" in refused
    assert json.loads(refused.partition(b"\r\n\r\n")[2])["type"] == "urn:vrm:problem:unavailable"
    sock.close()
    # Another address is not affected.
    assert (await honest_discovery(small_server)) == (
        (await honest_discovery(small_server))[0], 0)
    for sock in held:
        sock.close()


# --- issue 9, item 6: the database serve is pointed at ---------------------------------------

def file_state(path: str) -> tuple[bytes, list[str]]:
    """The file's bytes, and which SQLite side files exist next to it."""
    with open(path, "rb") as file:
        content = file.read()
    return content, [suffix for suffix in ("-wal", "-shm", "-journal")
                     if os.path.exists(path + suffix)]


def test_serve_refuses_a_database_that_holds_no_vendor(foreign_db: str, tmp_path: Any) -> None:
    # Someone else's SQLite file, and a copy of the agent's store stand-in: any
    # non-empty file without a vendor is refused, and left exactly as it was.
    before = file_state(foreign_db)
    one_sentence(run("serve", "--db", foreign_db, "--port", "0"), "is not a vendor database")
    assert file_state(foreign_db) == before
    # A vendor database whose schema exists but that holds no vendor, too.
    empty_schema = str(tmp_path / "schema-only.db")
    conn = sqlite3.connect(empty_schema)
    conn.execute("CREATE TABLE vrm_keystore (id INTEGER PRIMARY KEY, params TEXT)")
    conn.execute("CREATE TABLE vrm_vendor (did TEXT PRIMARY KEY, name TEXT)")
    conn.commit()
    conn.close()
    before = file_state(empty_schema)
    one_sentence(run("serve", "--db", empty_schema, "--port", "0"), "is not a vendor database")
    assert file_state(empty_schema) == before


async def discovery_of(db: str, *options: str) -> dict[str, Any]:
    server = await serving(db, *options)
    try:
        document, _ = await honest_discovery(server)
    finally:
        await server.stop()
    return document


async def test_a_name_typed_in_another_case_is_the_same_vendor(store: str) -> None:
    first = await discovery_of(store, "--name", "Bikes4U")
    again = await discovery_of(store, "--name", "bikes4u")
    assert (again["id"], again["name"]) == (first["id"], "Bikes4U")  # the same key: no new vendor
    assert len(database_snapshot(store)["vrm_vendor"]) == 1


async def test_a_second_vendor_is_added_only_with_new_vendor(store: str) -> None:
    first = await discovery_of(store, "--name", "Bikes4U")
    before = database_snapshot(store)
    result = await asyncio.to_thread(run, "serve", "--db", store, "--port", "0",
                                     "--name", "Bikes4You")
    one_sentence(result, "--new-vendor")
    assert database_snapshot(store) == before
    second = await discovery_of(store, "--name", "Bikes4You", "--new-vendor")
    assert second["name"] == "Bikes4You" and second["id"] != first["id"]
    # --new-vendor on a name that exists serves that vendor; it makes no third.
    again = await discovery_of(store, "--name", "BIKES4YOU", "--new-vendor")
    assert again["id"] == second["id"]
    assert len(database_snapshot(store)["vrm_vendor"]) == 2


async def test_a_postgresql_database_without_a_vendor_is_a_new_one(postgres: Any) -> None:
    # An empty database (createdb), without even the adapter's tables: serve
    # creates them and the vendor, which the next serve finds again.
    with postgres.database(template="template0") as dsn:
        first = await discovery_of(dsn, "--name", "Bikes4U")
        assert first["name"] == "Bikes4U"
        again = await discovery_of(dsn)
        assert again["id"] == first["id"]
        assert len(database_snapshot(dsn)["vrm_vendor"]) == 1


def test_a_postgresql_database_of_another_application_is_refused(postgres: Any) -> None:
    # Its own table has a name the adapter's schema uses: one sentence, and its
    # table and row are as they were, with none of the adapter's tables made.
    with postgres.database(template="template0") as dsn:
        with psycopg.connect(dsn) as conn:
            conn.execute("CREATE TABLE contact (id INTEGER PRIMARY KEY, phone TEXT)")
            conn.execute("INSERT INTO contact VALUES (1, '+32 2 555 01 01')")
        result = run("serve", "--db", dsn, "--port", "0", "--name", "Bikes4U")
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        tables = database_snapshot(dsn)
        assert tables["contact"] == [(1, "+32 2 555 01 01")]
        assert not any(name.startswith("vrm_") and name != "vrm_migrations"
                       for name in tables)


def test_a_passphrase_that_is_not_utf_8_is_one_sentence_and_leaves_nothing(
        tmp_path: Any) -> None:
    db = tmp_path / "new.db"
    env: dict[str, Any] = {**os.environ, "VRM_VENDOR_PASSPHRASE": b"caf\xe9 \xff"}
    result = run("serve", "--db", str(db), "--port", "0", env=env)
    one_sentence(result, "VRM_VENDOR_PASSPHRASE is not valid UTF-8")
    assert sorted(os.listdir(tmp_path)) == []


def test_the_library_refuses_such_a_passphrase_before_touching_a_file(tmp_path: Any) -> None:
    from vendor_adapter import PassphraseError, Vendor
    with pytest.raises(PassphraseError, match="UTF-8"):
        Vendor.open(tmp_path / "new.db", passphrase="caf\udce9")
    assert os.listdir(tmp_path) == []
