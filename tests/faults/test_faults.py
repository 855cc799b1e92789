"""Faults, end to end, with real processes (issue 6, item 3).

Vendors run as ``benchmarks.vendor_farm`` processes and the agent as the
``vrm`` command, so SIGKILL hits a real process between real system calls.
Each test asserts that its fault really landed mid-way (some deliveries done,
some not), and then that every vendor ended with exactly one copy.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent import Agent

ROOT = Path(__file__).resolve().parents[2]
PASSPHRASE = "fault passphrase"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Farm:
    """A vendor_farm process; restartable on the same port and database."""

    def __init__(self, db: Path, vendors: int, *, latency_ms: float = 0, first: int = 0):
        self.db, self.vendors, self.latency_ms, self.first = db, vendors, latency_ms, first
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        self.urls: list[str] = []

    def start(self) -> Farm:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.vendor_farm", "--vendors", str(self.vendors),
             "--first", str(self.first), "--db", str(self.db), "--port", str(self.port),
             "--latency-ms", str(self.latency_ms)],
            cwd=ROOT, stdout=subprocess.PIPE, text=True)
        line = self.process.stdout.readline()
        assert line, "the vendor farm did not start"
        self.urls = json.loads(line)["urls"]
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=30)
        self.process = None

    def copies(self, message_type: str = "contact.update") -> dict[str, int]:
        """Per vendor DID, how many activities of ``message_type`` its CRM holds."""
        with sqlite3.connect(self.db, timeout=10) as conn:
            counts = dict.fromkeys((row[0] for row in conn.execute(
                "SELECT did FROM vrm_vendor")), 0)
            counts.update(conn.execute(
                "SELECT vendor, COUNT(*) FROM activity WHERE type = ? GROUP BY vendor",
                (message_type,)).fetchall())
        return counts

    def delivered_so_far(self) -> int:
        try:
            with sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=1) as conn:
                return conn.execute("SELECT COUNT(*) FROM activity "
                                    "WHERE type = 'contact.update'").fetchone()[0]
        except sqlite3.OperationalError:
            return 0


@pytest.fixture
def farms():
    started: list[Farm] = []

    def make(*args, **kwargs) -> Farm:
        farm = Farm(*args, **kwargs)
        started.append(farm)
        return farm.start()

    yield make
    for farm in started:
        farm.stop(signal.SIGKILL)


def vrm(home: Path, *args: str, wait: bool = True) -> subprocess.Popen | subprocess.CompletedProcess:
    env = {**os.environ, "VRM_HOME": str(home), "VRM_PASSPHRASE": PASSPHRASE}
    command = [sys.executable, "-m", "agent", *args]
    if not wait:
        return subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
    result = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def make_agent(home: Path, urls: list[str]) -> None:
    async def setup() -> None:
        agent = await Agent.init(home, passphrase=PASSPHRASE, scrypt_n=2**10)
        await agent.set_profile({"email": "ada@example.org", "postal_address.locality": "Berlin"})
        semaphore = asyncio.Semaphore(50)

        async def add(url: str) -> None:
            async with semaphore:
                await agent.add_vendor(url, share=["email", "postal_address"])

        await asyncio.gather(*(add(url) for url in urls))
        assert len(agent.vendors()) == len(urls)
        await agent.close()

    asyncio.run(setup())


def wait_until(condition, timeout: float = 60.0, interval: float = 0.005):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("timed out waiting")


def outbox_statuses(home: Path) -> dict[str, int]:
    result = vrm(home, "outbox", "--json")
    assert result.returncode == 0, result.stderr
    statuses: dict[str, int] = {}
    for row in json.loads(result.stdout):
        if row["type"] == "contact.update":
            statuses[row["status"]] = statuses.get(row["status"], 0) + 1
    return statuses


def test_agent_killed_mid_broadcast_to_200_vendors(tmp_path, farms):
    farm = farms(tmp_path / "farm.db", 200, latency_ms=200)
    home = tmp_path / "agent"
    make_agent(home, farm.urls)

    broadcast = vrm(home, "profile", "set", "postal_address.locality=Hamburg", wait=False)
    landed = wait_until(farm.delivered_so_far)
    broadcast.send_signal(signal.SIGKILL)
    broadcast.wait(timeout=30)
    at_kill = farm.delivered_so_far()
    assert 0 < landed <= at_kill < 200, "the kill must land mid-broadcast"

    result = vrm(home, "deliver", "--wait", "60")
    assert result.returncode == 0, result.stderr
    assert outbox_statuses(home) == {"delivered": 200}
    assert set(farm.copies().values()) == {1}  # every vendor, exactly one copy


def test_half_the_vendors_down_then_back(tmp_path, farms):
    up = farms(tmp_path / "up.db", 10)
    down = farms(tmp_path / "down.db", 10, first=10)
    home = tmp_path / "agent"
    make_agent(home, up.urls + down.urls)
    down.stop()

    result = vrm(home, "profile", "set", "postal_address.locality=Hamburg")
    assert result.returncode == 0, result.stderr
    assert outbox_statuses(home) == {"delivered": 10, "pending": 10}
    assert set(up.copies().values()) == {1}

    down.start()  # the same port and database
    result = vrm(home, "deliver", "--wait", "60")
    assert result.returncode == 0, result.stderr
    assert outbox_statuses(home) == {"delivered": 20}
    assert set(up.copies().values()) == {1} and set(down.copies().values()) == {1}


def test_vendor_killed_mid_write_recovers_and_the_retry_lands_once(tmp_path, farms):
    farm = farms(tmp_path / "farm.db", 300, latency_ms=100)
    home = tmp_path / "agent"
    make_agent(home, farm.urls)

    broadcast = vrm(home, "profile", "set", "postal_address.locality=Hamburg", wait=False)
    wait_until(farm.delivered_so_far)
    farm.stop(signal.SIGKILL)
    broadcast.wait(timeout=120)
    assert broadcast.returncode == 0, broadcast.stderr.read().decode()

    with sqlite3.connect(farm.db) as conn:  # opening recovers the WAL after the crash
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        # The CRM change and the replay record were committed together or not at all.
        orphans = conn.execute(
            "SELECT COUNT(*) FROM activity a WHERE NOT EXISTS (SELECT 1 FROM vrm_seen s "
            "WHERE s.vendor = a.vendor AND s.sender = a.did AND s.message_id = a.message_id)"
        ).fetchone()[0]
        unrecorded = conn.execute(
            "SELECT COUNT(*) FROM vrm_seen s WHERE NOT EXISTS (SELECT 1 FROM activity a "
            "WHERE s.vendor = a.vendor AND s.sender = a.did AND s.message_id = a.message_id)"
        ).fetchone()[0]
    assert orphans == 0 and unrecorded == 0
    counts = farm.copies()
    done = sum(counts.values())
    assert 0 < done < 300, "the kill must land mid-broadcast"
    assert set(counts.values()) == {0, 1}

    farm.start()
    result = vrm(home, "deliver", "--wait", "60")
    assert result.returncode == 0, result.stderr
    assert outbox_statuses(home) == {"delivered": 300}
    assert set(farm.copies().values()) == {1}
