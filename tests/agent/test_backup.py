"""Issue 11 §2: a store that survives the laptop. `vrm backup`, `vrm restore`,
`vrm passphrase`, the passphrase prompt, read-only and damaged stores, all
through the real `vrm` command (subprocesses) against real vendor_adapter apps."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import stat
import sys
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import pexpect
import pytest

import protocol
from agent import Agent
from agent._store import DB_NAME

from .conftest import FAST, PASSPHRASE

NEW_PASSPHRASE = "a new and longer passphrase"


@dataclass
class Ran:
    status: int
    stdout: bytes
    stderr: str

    @property
    def text(self) -> str:
        return self.stdout.decode()

    def json(self):
        return json.loads(self.stdout)


#: As root, file modes do not stop writes; without these capabilities they do
#: (setpriv, util-linux): how a test makes a store read-only for real.
WITHOUT_OVERRIDE = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search,-fowner"]


async def vrm(home: Path, *args: str, passphrase: str | None = PASSPHRASE, ok: bool = True,
              env: dict[str, str] | None = None, prefix: list[str] | None = None) -> Ran:
    environment = {**os.environ, "VRM_HOME": str(home), "COLUMNS": "200", **(env or {})}
    environment.pop("VRM_DEBUG", None)
    environment.pop("VRM_PASSPHRASE", None)
    if passphrase is not None:
        environment["VRM_PASSPHRASE"] = passphrase
    process = await asyncio.create_subprocess_exec(
        *(prefix or []), sys.executable, "-m", "agent.cli", *args, env=environment,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    stdout, stderr = await process.communicate()
    ran = Ran(process.returncode or 0, stdout, stderr.decode())
    assert "Traceback" not in ran.stderr, ran.stderr
    if ok:
        assert ran.status == 0, ran.stderr
    return ran


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def _store_with_vendors(home: Path, shops, n: int = 2) -> list:
    started = await shops(n)
    await vrm(home, "init", "--name", "Ann")
    for shop in started:
        await vrm(home, "vendor", "add", shop.url, "--share", "email")
    await vrm(home, "profile", "set", "email=ann@example.org")
    return started


async def test_backup_and_restore_keep_identities_receipts_and_offers(tmp_path: Path,
                                                                       shops) -> None:
    home, elsewhere = tmp_path / "laptop", tmp_path / "new-laptop"
    await _store_with_vendors(home, shops)
    backup = tmp_path / "vrm-backup.db"
    ran = await vrm(home, "backup", "-o", str(backup))
    assert "Backed up" in ran.stderr and ran.stdout == b""
    assert _mode(backup) == 0o600
    with open(backup, "rb") as handle:
        header = handle.read(100)
    assert header.startswith(b"SQLite format 3\0")
    assert header[18:20] == b"\x01\x01"  # journal mode DELETE: one self-contained file
    assert not Path(str(backup) + "-wal").exists()

    await vrm(elsewhere, "restore", str(backup))
    assert _mode(elsewhere) == 0o700 and _mode(elsewhere / DB_NAME) == 0o600
    before = (await vrm(home, "export")).json()
    after = (await vrm(elsewhere, "export")).json()
    for part in ("did", "profile", "vendors", "outbox", "receipts", "inbox", "keys"):
        assert after[part] == before[part], part
    assert [v["pairwise_did"] for v in after["vendors"]] and after["receipts"]


async def test_a_backup_made_mid_broadcast_delivers_exactly_once_after_restore(
        tmp_path: Path, shops) -> None:
    home, elsewhere = tmp_path / "laptop", tmp_path / "new-laptop"
    started = await _store_with_vendors(home, shops, 3)
    for shop in started:
        await shop.down()
    # The broadcast is signed and queued, then every vendor is unreachable.
    async with await Agent.open(home, passphrase=PASSPHRASE, limits=FAST) as agent:
        broadcast = await agent.set_profile({"email": "ann@example.net"})
        assert {r.status for r in broadcast.results} == {"pending"}
        # The backup is made while this agent still has the store open.
        await vrm(home, "backup", "-o", str(tmp_path / "mid.db"))
    await vrm(elsewhere, "restore", str(tmp_path / "mid.db"))
    for shop in started:
        await shop.up()  # the same port
    delivered = (await vrm(elsewhere, "deliver", "--wait", "30", "--json")).json()
    # The restored store sent the pending messages, one per vendor.
    assert [r["status"] for r in delivered["results"]] == ["delivered"] * 3
    assert delivered["pending"] == 0
    # The lost laptop comes back and sends the same messages again: same ids.
    await vrm(home, "deliver", "--wait", "30", "--json")
    for shop in started:
        copies = shop.copies()
        assert copies and set(copies.values()) == {1}, (shop.name, copies)
        [contact] = shop.crm.contacts()
        assert contact["email"] == "ann@example.net"
        updates = [a for a in shop.crm.activities() if a["type"] == "contact.update"]
        assert len(updates) == 2  # the first set, and the mid-broadcast one: once each


async def test_backup_to_standard_output_restores(tmp_path: Path, shops) -> None:
    home = tmp_path / "laptop"
    await _store_with_vendors(home, shops, 1)
    ran = await vrm(home, "backup", "-o", "-")
    assert ran.stdout.startswith(b"SQLite format 3\0")
    piped = tmp_path / "piped.db"
    piped.write_bytes(ran.stdout)
    await vrm(tmp_path / "again", "restore", str(piped))
    listed = (await vrm(tmp_path / "again", "vendor", "list", "--json")).json()
    assert [v["name"] for v in listed] == ["Shop0"]


async def test_restore_refuses_and_leaves_nothing_behind(tmp_path: Path, shops) -> None:
    home = tmp_path / "laptop"
    await _store_with_vendors(home, shops, 1)
    backup = tmp_path / "b.db"
    await vrm(home, "backup", "-o", str(backup))

    ran = await vrm(home, "restore", str(backup), ok=False)  # not empty
    assert ran.status == 1 and "not empty" in ran.stderr

    target = tmp_path / "target"
    ran = await vrm(target, "restore", str(backup), passphrase="not the passphrase", ok=False)
    assert ran.status == 1 and "passphrase does not open" in ran.stderr
    assert not target.exists() or not any(target.iterdir())

    stranger = tmp_path / "stranger.db"
    with closing(sqlite3.connect(stranger)) as conn:
        conn.execute("CREATE TABLE invoices (id INTEGER)")
    ran = await vrm(target, "restore", str(stranger), ok=False)
    assert ran.status == 1 and "not a vrm store" in ran.stderr

    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database at all" * 100)
    ran = await vrm(target, "restore", str(garbage), ok=False)
    assert ran.status == 1 and ran.stderr.count("\n") == 1
    assert not target.exists() or not any(target.iterdir())


async def test_backup_refuses_a_symlink_and_a_fifo(tmp_path: Path, shops) -> None:
    home = tmp_path / "laptop"
    await _store_with_vendors(home, shops, 1)
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    os.chmod(victim, 0o644)
    link = tmp_path / "link.db"
    link.symlink_to(victim)
    ran = await vrm(home, "backup", "-o", str(link), ok=False)
    assert ran.status == 1 and "symbolic link" in ran.stderr
    assert victim.read_text() == "keep me" and _mode(victim) == 0o644
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    ran = await vrm(home, "backup", "-o", str(fifo), ok=False)
    assert ran.status == 1 and "FIFO" in ran.stderr


async def test_a_new_passphrase_opens_every_key_and_the_old_one_none(tmp_path: Path,
                                                                      shops) -> None:
    home = tmp_path / "laptop"
    await _store_with_vendors(home, shops)
    ran = await vrm(home, "passphrase", env={"VRM_NEW_PASSPHRASE": NEW_PASSPHRASE})
    assert "new passphrase" in ran.stdout.decode()
    ran = await vrm(home, "profile", "show", ok=False)
    assert ran.status == 1 and "wrong" in ran.stderr
    await vrm(home, "profile", "show", passphrase=NEW_PASSPHRASE)
    # Every pairwise key still signs: a broadcast to both vendors is delivered.
    ran = await vrm(home, "profile", "set", "email=ann@example.com", "--json",
                    passphrase=NEW_PASSPHRASE)
    assert {r["status"] for r in ran.json()["results"]} == {"delivered"}


def _opens(home: Path, passphrase: str) -> bool:
    async def attempt() -> bool:
        try:
            agent = await Agent.open(home, passphrase=passphrase)
        except Exception:
            return False
        try:
            for row in agent.store.rows("SELECT did FROM keys"):
                agent._keys.get(row["did"])  # every key unseals
        finally:
            await agent.close()
        return True

    return asyncio.run(attempt())


async def test_a_passphrase_change_killed_at_any_moment_leaves_one_passphrase_working(
        tmp_path: Path) -> None:
    home = tmp_path / "laptop"
    agent = await Agent.init(home, passphrase=PASSPHRASE, name="Ann", scrypt_n=2**12)
    with agent.store.transaction() as conn:
        for _ in range(3000):  # enough keys that the re-sealing takes a while
            agent._keys.new_key(conn, "pairwise", protocol.parse_time("2026-01-01T00:00:00Z"))
    await agent.close()
    environment = {**os.environ, "VRM_HOME": str(home)}
    current, other = PASSPHRASE, NEW_PASSPHRASE

    async def change(kill_after: float | None) -> float:
        started = asyncio.get_running_loop().time()
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "agent.cli", "passphrase",
            env={**environment, "VRM_PASSPHRASE": current, "VRM_NEW_PASSPHRASE": other},
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL)
        if kill_after is not None:
            await asyncio.sleep(kill_after)
            if process.returncode is None:
                process.send_signal(signal.SIGKILL)
        await process.wait()
        return asyncio.get_running_loop().time() - started

    # One whole run: how long a change takes on this machine, now.
    whole = await change(None)
    assert await asyncio.to_thread(_opens, home, other)
    current, other = other, current
    outcomes = set()
    # Then kills spread over the second half of that time, where the keys are
    # re-sealed and committed: each leaves exactly one passphrase working.
    for step in range(10):
        await change(whole * (0.5 + 0.06 * step))
        old_works = await asyncio.to_thread(_opens, home, current)
        new_works = await asyncio.to_thread(_opens, home, other)
        assert old_works != new_works, (step, old_works, new_works)
        outcomes.add(new_works)
        if new_works:
            current, other = other, current


# --- at the terminal ---------------------------------------------------------------

def _spawn(home: Path, *args: str) -> pexpect.spawn:
    environment = {k: v for k, v in os.environ.items() if k not in ("VRM_PASSPHRASE",
                                                                      "VRM_DEBUG")}
    environment["VRM_HOME"] = str(home)
    return pexpect.spawn(sys.executable, ["-m", "agent.cli", *args], env=environment,
                         encoding="utf-8", timeout=30)


async def test_init_asks_twice_and_warns_about_a_short_passphrase(tmp_path: Path) -> None:
    home = tmp_path / "laptop"

    def run() -> tuple[str, int]:
        child = _spawn(home, "init", "--name", "Ann")
        child.expect("choose a passphrase: ")
        child.sendline("short")
        child.expect("repeat it: ")
        child.sendline("short")
        child.expect(pexpect.EOF)
        child.close()
        return child.before, child.exitstatus

    output, status = await asyncio.to_thread(run)
    assert status == 0
    assert "shorter than 12 characters" in output and "Traceback" not in output

    def differ() -> tuple[str, int]:
        child = _spawn(tmp_path / "other", "init")
        child.expect("choose a passphrase: ")
        child.sendline("one long passphrase")
        child.expect("repeat it: ")
        child.sendline("another long passphrase")
        child.expect(pexpect.EOF)
        child.close()
        return child.before, child.exitstatus

    output, status = await asyncio.to_thread(differ)
    assert status == 1 and "differ" in output
    assert not (tmp_path / "other" / DB_NAME).exists()


async def test_a_wrong_passphrase_at_the_prompt_is_asked_again(tmp_path: Path) -> None:
    home = tmp_path / "laptop"
    await vrm(home, "init", "--name", "Ann")

    def run(answers: list[str]) -> tuple[str, int]:
        child = _spawn(home, "profile", "show")
        seen = ""
        for answer in answers:
            child.expect("vrm passphrase: ")
            seen += child.before
            child.sendline(answer)
        child.expect(pexpect.EOF)
        child.close()
        return seen + child.before, child.exitstatus

    output, status = await asyncio.to_thread(run, ["wrong", "still wrong", PASSPHRASE])
    assert status == 0 and output.count("try again") == 2

    output, status = await asyncio.to_thread(run, ["wrong", "wrong", "wrong"])
    assert status == 1
    assert "you typed is wrong (3 tries)" in output
    assert "VRM_PASSPHRASE" not in output  # it speaks of the prompt


# --- read-only and damaged stores ----------------------------------------------------

async def test_a_read_only_store_answers_the_commands_that_read(tmp_path: Path,
                                                                shops) -> None:
    home = tmp_path / "laptop"
    await _store_with_vendors(home, shops, 1)
    for path in home.iterdir():
        os.chmod(path, 0o400)
    os.chmod(home, 0o500)
    prefix = WITHOUT_OVERRIDE if os.geteuid() == 0 else None
    for command in (["profile", "show", "--json"], ["vendor", "list", "--json"],
                    ["outbox", "--json"], ["offers", "--json"], ["shared", "--json"],
                    ["export"]):
        ran = await vrm(home, *command, prefix=prefix)
        json.loads(ran.stdout)
    ran = await vrm(home, "backup", "-o", "-", prefix=prefix)
    assert ran.stdout.startswith(b"SQLite format 3\0")
    ran = await vrm(home, "profile", "set", "email=x@example.org", prefix=prefix, ok=False)
    assert ran.status == 1 and "read-only" in ran.stderr
    assert ran.stderr.count("\n") == 1
    os.chmod(home, 0o700)


async def test_a_damaged_store_points_to_restore(tmp_path: Path) -> None:
    home = tmp_path / "laptop"
    await vrm(home, "init", "--name", "Ann")
    for suffix in ("-wal", "-shm"):
        Path(str(home / DB_NAME) + suffix).unlink(missing_ok=True)
    (home / DB_NAME).write_bytes(b"\0garbage, not SQLite" * 512)
    ran = await vrm(home, "profile", "show", ok=False)
    assert ran.status == 1
    assert "damaged" in ran.stderr and "vrm restore" in ran.stderr
    assert ran.stderr.count("\n") == 1
