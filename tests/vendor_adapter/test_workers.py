"""Many inbox processes on one PostgreSQL database, exactly once (issue 13).

Real ``vrm-vendor serve`` processes on a real PostgreSQL server. A race is
made certain, not hoped for: the test holds the relationship's lock (the
advisory lock ``PgTx.lock`` takes) or a row a worker's transaction needs,
sends the racing requests, waits until PostgreSQL shows them waiting
(``pg_locks``), and only then lets go.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import aiohttp
import psycopg
import pytest

import protocol

from .conftest import PASSPHRASE, Person, table_rows, verify_receipt

ENV = {**os.environ, "VRM_VENDOR_PASSPHRASE": PASSPHRASE}


class Serve:
    """A ``vrm-vendor serve`` process (with its workers, if any)."""

    def __init__(self, dsn: str, *extra: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "vendor_adapter.cli", "serve", "--db", dsn, "--port", "0",
             "--name", "Bikes4U", *extra],
            env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self.url = self.proc.stdout.readline().strip()
        assert self.url.startswith("http://127.0.0.1:"), self.proc.stderr.read()
        deadline = time.monotonic() + 60
        while True:  # the workers start after the URL is printed
            try:
                with urllib.request.urlopen(self.url + "/.well-known/vrm", timeout=10) as resp:
                    self.discovery: dict[str, Any] = json.load(resp)
                break
            except OSError:
                assert time.monotonic() < deadline and self.proc.poll() is None
                time.sleep(0.05)

    def stop(self) -> str:
        """Stop it (SIGTERM); return what it wrote on stderr."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        _, err = self.proc.communicate(timeout=60)
        assert self.proc.returncode == 0, err
        return err


@pytest.fixture
def dsn(postgres: Any) -> Iterator[str]:
    with postgres.database() as dsn:
        yield dsn


@pytest.fixture
def serves() -> Iterator[Any]:
    started: list[Serve] = []

    def start(dsn: str, *extra: str) -> Serve:
        started.append(Serve(dsn, *extra))
        return started[-1]

    yield start
    for serve in started:
        if serve.proc.poll() is None:
            serve.proc.send_signal(signal.SIGTERM)
            serve.proc.communicate(timeout=60)


async def post(session: aiohttp.ClientSession, serve: Serve, person: Person, raw: bytes
               ) -> tuple[int, dict[str, Any]]:
    """POST ``raw``; the HTTP status and the verified receipt's body."""
    async with session.post(serve.discovery["inbox"], data=raw,
                            headers={"Content-Type": protocol.MEDIA_TYPE}) as resp:
        body = await resp.read()
        return resp.status, verify_receipt(body, serve.discovery, person.did)["body"]


async def send(serve: Serve, person: Person, raw: bytes) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as session:
        return await post(session, serve, person, raw)


def waiting(conn: psycopg.Connection[Any], locktype: str) -> list[tuple[int, str, str]]:
    """The backends waiting for a lock of ``locktype``: (pid, application_name, query)."""
    return conn.execute(
        "SELECT a.pid, a.application_name, a.query FROM pg_locks AS l "
        "JOIN pg_stat_activity AS a ON a.pid = l.pid "
        "WHERE NOT l.granted AND l.locktype = %s", (locktype,)).fetchall()


def wait_for(condition: Any, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)
    return result


async def race(dsn: str, person: Person, *sends: tuple[Serve, bytes]
               ) -> list[tuple[int, dict[str, Any]]]:
    """Send each (process, message) at once, all held at the relationship's lock
    until every one of them waits for it inside its transaction; the answers."""
    with psycopg.connect(dsn, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))",
                       (f"{person.vendor_did}\x1f{person.did}",))
        racing = [asyncio.create_task(send(serve, person, raw)) for serve, raw in sends]
        await asyncio.to_thread(wait_for,
                                lambda: len(waiting(holder, "advisory")) == len(sends))
        names = {name for _, name, _ in waiting(holder, "advisory")}
        assert len(names) == len(sends)  # as many processes
        holder.execute("SELECT pg_advisory_unlock_all()")
        return await asyncio.gather(*racing)


def activities(dsn: str, did: str, type_: str) -> list[dict[str, Any]]:
    return [row for row in table_rows(dsn)["activity"]
            if row["did"] == did and row["type"] == type_]


async def test_the_same_message_racing_through_two_processes_is_applied_once(
        dsn: str, serves: Any) -> None:
    a, b = serves(dsn), serves(dsn)
    vendor_did = a.discovery["id"]
    assert b.discovery["id"] == vendor_did  # one vendor, one key, two processes
    person = Person(vendor_did)
    assert (await send(a, person, person.request(given_name="Ann")))[1]["status"] == "accepted"
    update = person.message("contact.update", {"changes": {"email": "ann@example.org"}})

    answers = await race(dsn, person, (a, update), (b, update))

    assert sorted(body["status"] for _, body in answers) == ["accepted", "duplicate"]
    assert [code for code, _ in answers] == [200, 200]
    assert len(activities(dsn, person.did, "contact.update")) == 1
    (contact,) = [c for c in table_rows(dsn)["contact"] if c["did"] == person.did]
    assert json.loads(contact["message_counts"])["contact.update"] == 1


async def test_an_end_racing_an_update_gives_one_serial_order(dsn: str, serves: Any) -> None:
    a, b = serves(dsn), serves(dsn)
    vendor_did = a.discovery["id"]
    person = Person(vendor_did)
    assert (await send(a, person, person.request(given_name="Ann",
                                                 postal_address={"locality": "Ghent"})
                       ))[1]["status"] == "accepted"
    update = person.message("contact.update", {"changes": {"postal_address": {
        "locality": "Bruges"}}})
    end = person.message("relationship.end", {})

    (update_code, update_body), (end_code, end_body) = await race(
        dsn, person, (a, update), (b, end))

    assert (end_code, end_body["status"]) == (200, "accepted")
    (contact,) = [c for c in table_rows(dsn)["contact"] if c["did"] == person.did]
    assert contact["status"] == "ended"
    kinds = [row["type"] for row in sorted(table_rows(dsn)["activity"], key=lambda r: r["id"])
             if row["did"] == person.did]
    if update_body["status"] == "accepted":  # the update, then the end
        assert update_code == 200
        assert contact["locality"] == "Bruges"
        assert kinds == ["relationship.request", "contact.update", "relationship.end"]
    else:  # the end, then the update: refused, as for any message after an end
        assert (update_code, update_body["status"]) == (410, "rejected")
        assert contact["locality"] == "Ghent"
        assert kinds == ["relationship.request", "relationship.end"]


async def test_workers_share_one_port_and_apply_a_flood_of_copies_once(
        dsn: str, serves: Any) -> None:
    serve = serves(dsn, "--workers", "2")
    person = Person(serve.discovery["id"])
    assert (await send(serve, person, person.request(given_name="Ann")))[1]["status"] == \
        "accepted"
    update = person.message("contact.update", {"changes": {"given_name": "Anna"}})
    connector = aiohttp.TCPConnector(force_close=True)  # a new connection for each
    async with aiohttp.ClientSession(connector=connector) as session:
        answers = await asyncio.gather(*(post(session, serve, person, update)
                                         for _ in range(20)))
    assert [code for code, _ in answers] == [200] * 20
    assert sorted(body["status"] for _, body in answers) == ["accepted"] + ["duplicate"] * 19
    assert len(activities(dsn, person.did, "contact.update")) == 1
    # Two worker processes share the port (which one the kernel hands each
    # connection to is its choice: one may take them all).
    assert len(await asyncio.to_thread(wait_for, lambda: (
        pids if len(pids := child_pids(serve.proc.pid)) == 2 else None))) == 2
    err = serve.stop()
    assert err.count("started") >= 2 and "Traceback" not in err


async def test_a_worker_killed_mid_transaction_and_the_retry_lands_once(
        dsn: str, serves: Any) -> None:
    serve = serves(dsn, "--workers", "2")
    vendor_did = serve.discovery["id"]
    person = Person(vendor_did)
    assert (await send(serve, person, person.request(given_name="Ann")))[1]["status"] == \
        "accepted"
    update = person.message("contact.update", {"changes": {"email": "ann@example.org"}})
    message_id = json.loads(protocol.b64url_decode(json.loads(update)["payload"],
                                                   what="p"))["id"]

    # pg_stat_activity is read once per transaction: watch from autocommit.
    with psycopg.connect(dsn) as blocker, psycopg.connect(dsn, autocommit=True) as watcher:
        # An uncommitted row with the message's key: the worker's last statement,
        # the seen row, waits for it, after the CRM changes are written.
        blocker.execute("INSERT INTO vrm_seen (vendor, sender, message_id, expires, status) "
                        "VALUES (%s, %s, %s, '2999-01-01T00:00:00Z', 'accepted')",
                        (vendor_did, person.did, message_id))
        sending = asyncio.create_task(send(serve, person, update))
        ((_, name, query),) = await asyncio.to_thread(
            wait_for, lambda: waiting(watcher, "transactionid"))
        assert query.startswith("INSERT INTO vrm_seen")
        worker = int(name.split()[-1])
        os.kill(worker, signal.SIGKILL)
        with pytest.raises(aiohttp.ClientError):  # the agent saw no answer
            await sending
        blocker.rollback()
        # The killed worker's transaction never committed: its backend ends.
        await asyncio.to_thread(wait_for, lambda: not watcher.execute(
            "SELECT 1 FROM pg_stat_activity WHERE application_name = %s", (name,)).fetchone())

    # The agent retries (through whichever worker takes the connection).
    code, body = await send(serve, person, update)
    assert (code, body["status"]) == (200, "accepted")
    assert (await send(serve, person, update))[1]["status"] == "duplicate"
    assert len(activities(dsn, person.did, "contact.update")) == 1
    (contact,) = [c for c in table_rows(dsn)["contact"] if c["did"] == person.did]
    assert contact["email"] == "ann@example.org"
    assert json.loads(contact["message_counts"]) == {"relationship.request": 1,
                                                     "contact.update": 1}
    await asyncio.to_thread(replaced, serve, worker)  # and another took its place
    serve.stop()


def test_the_agents_retry_lands_once_after_a_worker_is_killed_mid_write(
        dsn: str, serves: Any, tmp_path: Any) -> None:
    """The person's real agent (the ``vrm`` command) tells the vendor a new
    address; the worker taking it is killed with its CRM changes written and
    its transaction open; ``vrm deliver`` retries, and it lands exactly once."""
    from tests.faults.test_faults import Background, contact_updates, make_agent, vrm

    serve = serves(dsn, "--workers", "2")
    home = tmp_path / "agent"
    make_agent(home, [serve.url])  # adds the vendor: relationship.request, accepted
    (person_did,) = [c["did"] for c in table_rows(dsn)["contact"]]

    with psycopg.connect(dsn) as blocker, psycopg.connect(dsn, autocommit=True) as watcher:
        # Reads of vrm_seen go on; the seen row, the last write of a message, waits.
        blocker.execute("LOCK TABLE vrm_seen IN SHARE MODE")
        change = Background(home, "profile", "set", "postal_address.locality=Hamburg")
        ((_, name, query), *_) = wait_for(lambda: waiting(watcher, "relation"))
        assert query.startswith("INSERT INTO vrm_seen")  # the CRM changes are written
        worker = int(name.split()[-1])
        os.kill(worker, signal.SIGKILL)
        blocker.rollback()
        # The agent keeps what got no receipt, and exits (or, had it retried at
        # once through the other worker, has its receipt already).
        change.finish()
        wait_for(lambda: not watcher.execute(
            "SELECT 1 FROM pg_stat_activity WHERE application_name = %s", (name,)).fetchone())

    vrm(home, "deliver", "--wait", "60")
    (update,) = contact_updates(home).values()
    assert (update["status"], update["receipt_status"]) == ("delivered", "accepted")
    assert len(activities(dsn, person_did, "contact.update")) == 1
    (contact,) = table_rows(dsn)["contact"]
    assert contact["locality"] == "Hamburg"
    assert json.loads(contact["message_counts"])["contact.update"] == 1
    replaced(serve, worker)
    serve.stop()


def replaced(serve: Serve, worker: int) -> list[int]:
    """Wait until ``serve`` runs its two workers again, ``worker`` not among
    them (its parent reaped it and started another); their pids."""
    return wait_for(lambda: (pids if len(pids := child_pids(serve.proc.pid)) == 2
                             and worker not in pids else None))


def child_pids(pid: int) -> list[int]:
    """The pids of the processes whose parent is ``pid`` (zombies included)."""
    children = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                if int(stat.read().rsplit(")", 1)[1].split()[1]) == pid:
                    children.append(int(entry))
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile
    return children


def workers_of(pid: int) -> list[list[str]]:
    """The command lines of the processes whose parent is ``pid``."""
    commands = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                parent = int(stat.read().rsplit(")", 1)[1].split()[1])
            if parent == pid:
                with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                    commands.append(cmdline.read().decode().split("\0")[:-1])
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile
    return commands


def served_or_refused(url: str, source: str) -> tuple[socket.socket, bytes]:
    """A connection from ``source`` that asks for the discovery document, kept
    open; what came back on it first."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=30, source_address=(source, 0))
    sock.sendall(b"GET /.well-known/vrm HTTP/1.1\r\nHost: vendor.test\r\n\r\n")
    return sock, sock.recv(65536)


async def test_every_worker_gets_the_server_limits(dsn: str, serves: Any) -> None:
    limits = ["--max-connections-per-client", "1", "--write-timeout", "7",
              "--max-pipelined", "3", "--max-queued-bytes", "8192"]
    serve = serves(dsn, "--workers", "2", *limits)
    commands = await asyncio.to_thread(wait_for, lambda: (
        found if len(found := workers_of(serve.proc.pid)) == 2 else None))
    for command in commands:
        for option, value in zip(limits[::2], limits[1::2]):
            assert command[command.index(option) + 1] == value, command
        assert command[-3] == "--name=Bikes4U" and command[-2] == "--listen-fd"
    # One client address: each worker serves it one connection, so of six held
    # open at once, at most two are served and the others are refused (503).
    held = [await asyncio.to_thread(served_or_refused, serve.url, "127.0.0.9")
            for _ in range(6)]
    answers = [first.split(b" ", 2)[1] for _, first in held]
    assert answers.count(b"200") <= 2 and answers.count(b"503") >= 4, answers
    for sock, _ in held:
        sock.close()
    assert "Traceback" not in serve.stop()
