"""Faults, end to end, with real processes (issue 6, item 3).

Vendors run as ``benchmarks.vendor_farm`` processes and the agent as the
installed ``vrm`` command, so SIGKILL hits a real process between real system
calls. Each test proves that its fault took the hard path, not only that the
end state is right:

- the agent killed mid-broadcast: some vendors applied the change but the
  agent never recorded their receipts, and the retry is answered ``duplicate``;
- half the vendors down: ``vrm deliver`` sends to those, and only those;
- a vendor killed mid-write: the kill lands while a batch transaction is open
  and its pages are already in the WAL (the farm's --stall-after), that batch
  is rolled back on recovery, and the retry applies it exactly once.

Nothing here waits on a timer that only usually suffices: every wait is on an
observable event (a row in a vendor's CRM, a line from the farm, a process
exit), with a generous timeout.
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from agent import Agent

ROOT = Path(__file__).resolve().parents[2]
#: The installed CLI, next to the interpreter running the tests.
VRM = Path(sys.executable).with_name("vrm")
PASSPHRASE = "fault passphrase"
NEW_LOCALITY = "Hamburg"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Farm:
    """A vendor_farm process; restartable on the same port and database, with the
    same or other fault options (``write_delay_ms``, ``stall_after``)."""

    def __init__(self, db: Path, vendors: int, *, latency_ms: float = 0, first: int = 0):
        self.db, self.vendors, self.latency_ms, self.first = db, vendors, latency_ms, first
        self.write_delay_ms: float = 0
        self.stall_after: int | None = None
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        self.urls: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()

    def start(self) -> Farm:
        options = ["--write-delay-ms", str(self.write_delay_ms)]
        if self.stall_after is not None:
            options += ["--stall-after", str(self.stall_after)]
        self.process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.vendor_farm", "--vendors", str(self.vendors),
             "--first", str(self.first), "--db", str(self.db), "--port", str(self.port),
             "--latency-ms", str(self.latency_ms), *options],
            cwd=ROOT, stdout=subprocess.PIPE, text=True)
        self._lines = queue.Queue()
        threading.Thread(target=self._read, args=(self.process.stdout, self._lines),
                         daemon=True).start()
        self.urls = self.next_line()["urls"]
        return self

    @staticmethod
    def _read(stdout, lines: queue.Queue[str | None]) -> None:
        for line in stdout:
            lines.put(line)
        lines.put(None)

    def next_line(self, timeout: float = 60.0) -> dict:
        """The farm's next stdout line (JSON): its ready line, or its stalled line."""
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"the vendor farm said nothing for {timeout} s") from None
        assert line is not None, "the vendor farm exited"
        return json.loads(line)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=30)
        self.process = None

    def _query(self, sql: str, params: tuple = ()) -> list[tuple]:
        with sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=10) as conn:
            return conn.execute(sql, params).fetchall()

    def copies(self, message_type: str = "contact.update") -> dict[str, int]:
        """Per vendor DID, how many activities of ``message_type`` its CRM holds."""
        counts = dict.fromkeys((row[0] for row in self._query("SELECT did FROM vrm_vendor")), 0)
        assert len(counts) == self.vendors
        counts.update(self._query("SELECT vendor, COUNT(*) FROM activity WHERE type = ? "
                                  "GROUP BY vendor", (message_type,)))
        return counts

    def applied(self) -> set[str]:
        """The ids of the contact.update messages the CRM holds (committed)."""
        return {row[0] for row in self._query(
            "SELECT message_id FROM activity WHERE type = 'contact.update'")}

    def localities(self) -> dict[str, str | None]:
        """Per vendor DID, the locality its contact row holds."""
        return dict(self._query("SELECT vendor, locality FROM contact"))

    def delivered_so_far(self) -> int:
        try:
            return self._query("SELECT COUNT(*) FROM activity "
                               "WHERE type = 'contact.update'")[0][0]
        except sqlite3.OperationalError:  # the file is being created
            return 0

    def assert_consistent(self) -> None:
        """The file is sound, and every CRM change came with its replay record (and
        the other way round): no message is half-applied. Opening the file for
        writing recovers the WAL after a crash, as the next vendor process would."""
        with sqlite3.connect(self.db, timeout=10) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
            orphans = conn.execute(
                "SELECT COUNT(*) FROM activity a WHERE NOT EXISTS (SELECT 1 FROM vrm_seen s "
                "WHERE s.vendor = a.vendor AND s.sender = a.did AND s.message_id = a.message_id)"
            ).fetchone()[0]
            unrecorded = conn.execute(
                "SELECT COUNT(*) FROM vrm_seen s WHERE NOT EXISTS (SELECT 1 FROM activity a "
                "WHERE s.vendor = a.vendor AND s.sender = a.did AND s.message_id = a.message_id)"
            ).fetchone()[0]
        assert (orphans, unrecorded) == (0, 0)

    def assert_exactly_one_copy_each(self) -> None:
        assert set(self.copies().values()) == {1}
        localities = self.localities()
        assert len(localities) == self.vendors
        assert set(localities.values()) == {NEW_LOCALITY}


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


def _env(home: Path) -> dict[str, str]:
    return {**os.environ, "VRM_HOME": str(home), "VRM_PASSPHRASE": PASSPHRASE}


def vrm(home: Path, *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run([str(VRM), *args], env=_env(home), cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 0, result.stderr
    return result


class Background:
    """A ``vrm`` command running while the test does something to it or its vendors."""

    def __init__(self, home: Path, *args: str) -> None:
        # stderr to a file, not to a pipe nobody reads while the command runs.
        self.errors = home.parent / "vrm-stderr.txt"
        with self.errors.open("w") as errors:
            self.process = subprocess.Popen([str(VRM), *args], env=_env(home), cwd=ROOT,
                                            stdout=subprocess.DEVNULL, stderr=errors)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def finish(self) -> None:
        """Wait for the command to end by itself, successfully."""
        self.process.wait(timeout=120)
        errors = self.errors.read_text()
        assert self.process.returncode == 0 and "Traceback" not in errors, errors


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


def contact_updates(home: Path) -> dict[str, dict]:
    """The agent's contact.update outbox rows (``vrm outbox --json``), by message id."""
    rows = json.loads(vrm(home, "outbox", "--json").stdout)
    return {row["message_id"]: row for row in rows if row["type"] == "contact.update"}


def statuses(rows: dict[str, dict]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in rows.values():
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    return counts


# --- the WAL, read as https://sqlite.org/fileformat.html#the_write_ahead_log says ----

_WAL_MAGIC = {0x377F0682: "<", 0x377F0683: ">"}  # the byte order of the checksums


def _wal_checksum(data: bytes, s0: int, s1: int, order: str) -> tuple[int, int]:
    words = struct.unpack(f"{order}{len(data) // 4}I", data)
    for i in range(0, len(words), 2):
        s0 = (s0 + words[i] + s1) & 0xFFFFFFFF
        s1 = (s1 + words[i + 1] + s0) & 0xFFFFFFFF
    return s0, s1


def uncommitted_wal_pages(db: Path) -> bytes:
    """The page images that ``db``'s WAL holds after its last commit frame: what a
    transaction wrote to the log but never committed. The committed log is read as
    SQLite's recovery reads it: frames whose salts match the header and whose
    running checksum holds, up to the last commit frame (fileformat §4.3). The
    frames after it count if their salts match; their checksums need not hold,
    since SQLite rewrites an uncommitted frame in place and fixes the checksums
    only at COMMIT."""
    data = Path(f"{db}-wal").read_bytes()
    magic, _, page_size, _, salt1, salt2, *header_sum = struct.unpack(">8I", data[:32])
    order = _WAL_MAGIC[magic]
    checksum = _wal_checksum(data[:24], 0, 0, order)
    assert list(checksum) == header_sum, "the WAL header is damaged"
    frame_size = 24 + page_size
    frames = [data[at:at + frame_size]
              for at in range(32, len(data) - frame_size + 1, frame_size)]
    committed = 0  # frames up to and including the last valid commit frame
    for number, frame in enumerate(frames):
        _, commit_size, frame_salt1, frame_salt2, *frame_sum = struct.unpack(">6I", frame[:24])
        checksum = _wal_checksum(frame[:8] + frame[24:], *checksum, order)
        if (frame_salt1, frame_salt2) != (salt1, salt2) or list(checksum) != frame_sum:
            break
        if commit_size:
            committed = number + 1
    tail = []
    for frame in frames[committed:]:
        if struct.unpack(">2I", frame[8:16]) != (salt1, salt2):
            break  # left over from before the last checkpoint
        tail.append(frame[24:])
    return b"".join(tail)


# --- the tests ------------------------------------------------------------------------

def test_agent_killed_mid_broadcast_to_200_vendors(tmp_path, farms):
    farm = farms(tmp_path / "farm.db", 200, latency_ms=200)
    home = tmp_path / "agent"
    make_agent(home, farm.urls)

    broadcast = Background(home, "profile", "set", f"postal_address.locality={NEW_LOCALITY}")
    wait_until(farm.delivered_so_far)  # a first vendor committed the change
    broadcast.kill()
    assert 0 < len(farm.applied()) < 200, "the kill must land mid-broadcast"

    # The vendors that applied the change before the agent recorded their receipt:
    # their receipts died with the agent.
    after_kill = contact_updates(home)
    assert len(after_kill) == 200
    receipts_lost = {i for i in farm.applied() if after_kill[i]["status"] == "pending"}
    assert receipts_lost, "the kill must land between a vendor's commit and the agent's"

    vrm(home, "deliver", "--wait", "60")
    final = contact_updates(home)
    assert statuses(final) == {"delivered": 200}
    # The retry resent the same message id, and those vendors knew it already.
    assert {final[i]["receipt_status"] for i in receipts_lost} == {"duplicate"}
    farm.assert_consistent()
    farm.assert_exactly_one_copy_each()


def test_half_the_vendors_down_then_back(tmp_path, farms):
    up = farms(tmp_path / "up.db", 10)
    down = farms(tmp_path / "down.db", 10, first=10)
    home = tmp_path / "agent"
    make_agent(home, up.urls + down.urls)
    down.stop()

    vrm(home, "profile", "set", f"postal_address.locality={NEW_LOCALITY}")
    after_broadcast = contact_updates(home)
    assert statuses(after_broadcast) == {"delivered": 10, "pending": 10}
    waiting = {i for i, row in after_broadcast.items() if row["status"] == "pending"}
    down_names = {f"vendor-{n}" for n in range(10, 20)}
    assert {after_broadcast[i]["vendor"] for i in waiting} == down_names
    up.assert_exactly_one_copy_each()

    down.start()  # the same port and database
    report = json.loads(vrm(home, "deliver", "--wait", "60", "--json").stdout)["results"]
    # Sent to the vendors that were down, each once, and to no one else.
    assert sorted(r["message_id"] for r in report) == sorted(waiting)
    assert {(r["status"], r["receipt_status"]) for r in report} == {("delivered", "accepted")}
    assert statuses(contact_updates(home)) == {"delivered": 20}
    for farm in (up, down):
        farm.assert_consistent()
        farm.assert_exactly_one_copy_each()


def test_vendor_killed_mid_write_recovers_and_the_retry_lands_once(tmp_path, farms):
    farm = farms(tmp_path / "farm.db", 150)
    home = tmp_path / "agent"
    make_agent(home, farm.urls)
    # The same vendors, now with a CRM slow enough for batches to grow, that stops
    # dead inside the transaction of a batch of 30 (after a first batch committed).
    farm.stop()
    farm.write_delay_ms, farm.stall_after = 5, 30
    farm.start()

    broadcast = Background(home, "profile", "set", f"postal_address.locality={NEW_LOCALITY}")
    in_flight = set(farm.next_line()["stalled"]["batch"])
    farm.stop(signal.SIGKILL)  # the batch transaction is open: mid-write
    broadcast.finish()  # the agent notices, keeps the rest pending, and exits
    assert len(in_flight) == 30

    # The open batch had already written its rows to the WAL; recovery must drop them.
    uncommitted = uncommitted_wal_pages(farm.db)
    assert any(i.encode() in uncommitted for i in in_flight), "the kill must land mid-write"
    farm.assert_consistent()
    applied = farm.applied()
    assert 0 < len(applied) < 150, "the kill must land mid-broadcast"
    assert not applied & in_flight, "the batch in flight must be rolled back whole"
    after_crash = contact_updates(home)
    receipts_lost = {i for i in applied if after_crash[i]["status"] == "pending"}

    farm.write_delay_ms, farm.stall_after = 0, None
    farm.start()
    vrm(home, "deliver", "--wait", "60")
    final = contact_updates(home)
    assert statuses(final) == {"delivered": 150}
    # The rolled-back messages were applied afresh by the retry; any committed one
    # whose receipt was lost in the crash was recognised.
    assert {final[i]["receipt_status"] for i in in_flight} == {"accepted"}
    assert {final[i]["receipt_status"] for i in receipts_lost} <= {"duplicate"}
    farm.assert_consistent()
    farm.assert_exactly_one_copy_each()
