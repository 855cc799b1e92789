"""Fixtures for forwarding: a webhook receiver as a real process (verifying with
the ``standardwebhooks`` library), a vendor forwarding to it behind a real
aiohttp server, and helpers to wait for what arrives."""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from vendor_adapter import Vendor
from vendor_adapter.aiohttp import vrm_app

from ..conftest import PASSPHRASE, GuardedTestServer, Inbox

RECEIVER = str(Path(__file__).with_name("receiver.py"))
#: A quick retry schedule for the tests (the default is Svix's: 5 s, 5 min, ...).
QUICK = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)


def new_secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


class Receiver:
    """``receiver.py`` as a process; ``kill`` (SIGKILL) and ``start`` again on the same port."""

    def __init__(self, db: str, secret: str) -> None:
        self.db, self.secret = db, secret
        self.port = 0
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""

    def start(self) -> Receiver:
        self.proc = subprocess.Popen(
            [sys.executable, RECEIVER, "--db", self.db, "--secret", self.secret,
             "--port", str(self.port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        assert line.startswith("http://127.0.0.1:"), self.proc.stderr.read()  # type: ignore[union-attr]
        self.url = line
        self.port = int(line.split(":")[2].split("/")[0])
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def events(self) -> list[dict[str, Any]]:
        """Accepted events, one per id, in order of arrival."""
        if not os.path.exists(self.db):
            return []
        with closing(sqlite3.connect(self.db, timeout=10)) as conn:
            conn.row_factory = sqlite3.Row
            try:
                return [dict(r) for r in conn.execute("SELECT * FROM event ORDER BY n")]
            except sqlite3.OperationalError:  # not created yet
                return []

    def attempts(self) -> list[tuple[str, int]]:
        with closing(sqlite3.connect(self.db, timeout=10)) as conn:
            return conn.execute("SELECT id, verified FROM attempt ORDER BY n").fetchall()


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Receiver]:
    r = Receiver(str(tmp_path / "received.db"), new_secret()).start()
    yield r
    r.kill()


async def wait_for(predicate: Callable[[], bool], *, timeout: float = 30.0,
                   what: str = "the condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


@pytest.fixture
async def forwarding_inbox(tmp_path: Path, aiohttp_client: Any
                           ) -> AsyncIterator[Callable[..., Any]]:
    """``await forwarding_inbox(targets, mapping=...)``: an Inbox whose vendor forwards."""
    opened: list[Vendor] = []

    async def make(targets: list[Any], **options: Any) -> Inbox:
        options.setdefault("name", "Bikes4U")
        vendor = Vendor.open(str(tmp_path / "crm.db"), passphrase=PASSPHRASE,
                             forward=targets, **options)
        opened.append(vendor)
        await vendor.forwarding.start()
        client = await aiohttp_client(GuardedTestServer(vrm_app(vendor)))
        resp = await client.get("/.well-known/vrm")
        return Inbox(client, vendor, await resp.json())

    yield make
    for vendor in opened:
        await vendor.forwarding.stop()
        vendor.close()


def queue_rows(db: str) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        return conn.execute("SELECT seq, target, event_id, type, did, attempts, failed "
                            "FROM vrm_forward_queue ORDER BY seq").fetchall()


__all__ = ["Receiver", "new_secret", "wait_for", "QUICK", "queue_rows"]
