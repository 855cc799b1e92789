"""Issue 9, item 4: two runs at once on one store.

Two real ``vrm`` processes against a real vendor (vendor_adapter, its SQLite
CRM) slowed to answer in seconds. A message one run is sending is claimed in
the outbox, so another run does not send it; a killed run's claim is taken over
at once when its process is gone, a frozen run's when its lease lapses
(``Limits.claim_lease``); and the first valid receipt of a message is kept for
ever, never replaced by a later ``duplicate``."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import sys
from pathlib import Path
from typing import Any

from .conftest import PASSPHRASE, Shop
from .test_cli import vrm  # noqa: F401 - the fixture that runs the real `vrm`

LAPSED = "2000-01-01T00:00:00.000000Z"


async def _spawn(home: Path, *args: str) -> asyncio.subprocess.Process:
    """A `vrm` process left running (the first of the two runs)."""
    env = {**os.environ, "VRM_HOME": str(home), "VRM_PASSPHRASE": PASSPHRASE,
           "COLUMNS": "200"}
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "agent.cli", *args, env=env, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)


async def _until(condition: Any, what: str, seconds: float = 30.0) -> None:
    for _ in range(int(seconds / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def _receipts(home: Path) -> dict[str, str]:
    """message type -> the status of the receipt stored for it (the latest message)."""
    with sqlite3.connect(home / "vrm.db") as conn:
        return dict(conn.execute(
            "SELECT o.type, r.status FROM receipts r JOIN outbox o ON o.id = r.message_id "
            "ORDER BY o.rowid").fetchall())


def _lapse_claims(home: Path) -> None:
    """The claim's lease runs out (set in the past rather than waiting a minute)."""
    with sqlite3.connect(home / "vrm.db") as conn:
        changed = conn.execute("UPDATE outbox SET claim_expires = ? "
                               "WHERE claim_expires IS NOT NULL", (LAPSED,)).rowcount
    assert changed == 1


async def _one_vendor(vrm, shops) -> Shop:  # noqa: F811
    await vrm("init")
    [shop] = await shops(1)
    await vrm("vendor", "add", shop.url, "--share", "email")
    return shop


async def test_a_message_in_flight_is_not_sent_by_a_second_run(vrm, shops, home: Path  # noqa: F811
                                                               ) -> None:
    shop = await _one_vendor(vrm, shops)
    posts = shop.posts
    second_done = asyncio.Event()

    async def slow(request: Any) -> None:
        # the vendor answers the first run in seconds: once the second run is over
        if shop.posts == posts + 1:
            await second_done.wait()

    shop.before = slow
    first = await _spawn(home, "profile", "set", "email=ann@example.org", "--json")
    await _until(lambda: shop.posts == posts + 1, "the first run's POST")
    second = await vrm("deliver", "--json")
    assert first.returncode is None  # the two runs overlapped
    assert second.json()["results"] == []  # the second run sent nothing
    second_done.set()
    stdout, stderr = await first.communicate()
    assert first.returncode == 0, stderr
    [result] = json.loads(stdout)["results"]
    assert (result["status"], result["receipt_status"]) == ("delivered", "accepted")
    assert shop.posts == posts + 1  # one POST of the message, in all
    assert _receipts(home)["contact.update"] == "accepted"
    assert set(shop.copies().values()) == {1}
    [contact] = shop.crm.contacts()
    assert contact["email"] == "ann@example.org"


async def test_a_killed_run_s_claim_is_taken_over(vrm, shops, home: Path  # noqa: F811
                                                 ) -> None:
    """The first run is SIGKILLed with its POST in flight: its claim names a process
    that no longer exists on this host, so the next run takes the message over
    at once instead of waiting for the lease to lapse."""
    shop = await _one_vendor(vrm, shops)
    posts = shop.posts
    held = asyncio.Event()

    async def hold(request: Any) -> None:
        if shop.posts == posts + 1:  # the first run's POST never gets an answer
            await held.wait()

    shop.before = hold
    first = await _spawn(home, "profile", "set", "email=ann@example.org")
    await _until(lambda: shop.posts == posts + 1, "the first run's POST")
    first.kill()
    await first.wait()
    with sqlite3.connect(home / "vrm.db") as conn:
        [(claimed_by, expires)] = conn.execute(
            "SELECT claimed_by, claim_expires FROM outbox WHERE type = 'contact.update'")
    assert claimed_by.split(":")[1] == str(first.pid) and expires > "2026"  # a live lease
    taken_over = (await vrm("deliver", "--json")).json()["results"]
    assert [(r["type"], r["status"], r["receipt_status"]) for r in taken_over] == [
        ("contact.update", "delivered", "accepted")]
    held.set()
    assert _receipts(home)["contact.update"] == "accepted"
    [contact] = shop.crm.contacts()
    assert contact["email"] == "ann@example.org"
    assert set(shop.copies().values()) == {1}


async def test_the_first_receipt_is_kept_for_ever(vrm, shops, home: Path) -> None:  # noqa: F811
    """A run that froze past its lease: another run takes the message over and gets
    its ``accepted`` receipt; when the frozen run's POST reaches the vendor at last,
    it is answered ``duplicate``, and that later receipt replaces nothing."""
    shop = await _one_vendor(vrm, shops)
    posts = shop.posts
    second_done = asyncio.Event()

    async def first_waits_for_the_second(request: Any) -> None:
        if shop.posts == posts + 1:  # the first run's POST, held at the vendor's door
            await second_done.wait()

    shop.before = first_waits_for_the_second
    first = await _spawn(home, "profile", "set", "email=ann@example.org", "--json")
    await _until(lambda: shop.posts == posts + 1, "the first run's POST")
    _lapse_claims(home)
    second = (await vrm("deliver", "--json")).json()["results"]
    assert [(r["status"], r["receipt_status"]) for r in second] == [("delivered", "accepted")]
    assert _receipts(home)["contact.update"] == "accepted"
    second_done.set()
    stdout, stderr = await first.communicate()
    assert first.returncode == 0, stderr
    [result] = json.loads(stdout)["results"]
    assert result["receipt_status"] == "duplicate"  # the first run's own answer
    # the proof kept is the first valid receipt: accepted, not replaced by duplicate
    assert _receipts(home)["contact.update"] == "accepted"
    outbox = (await vrm("outbox", "--json")).json()
    [row] = [row for row in outbox if row["type"] == "contact.update"]
    assert (row["status"], row["receipt_status"]) == ("delivered", "accepted")
    assert shop.posts == posts + 2 and set(shop.copies().values()) == {1}


async def test_a_long_run_renews_its_claims(agent, shops, home: Path) -> None:
    """A run that takes longer than the lease is alive, so it renews its claims
    (every third of the lease): a second agent on the same store, as another
    process would be, sends nothing meanwhile."""
    from dataclasses import replace

    from agent import Agent

    from .conftest import FAST

    short = replace(FAST, timeout=10.0, claim_lease=0.6)
    [shop] = await shops(1)
    await agent.add_vendor(shop.url, share=["email"])
    await agent.close()
    agent = await Agent.open(home, passphrase=PASSPHRASE, limits=short)
    posts = shop.posts
    release = asyncio.Event()

    async def slow(request: Any) -> None:
        await release.wait()

    shop.before = slow
    first = asyncio.create_task(agent.set_profile({"email": "ann@example.org"}))
    await _until(lambda: shop.posts == posts + 1, "the first run's POST")
    other = await Agent.open(home, passphrase=PASSPHRASE, limits=short)
    try:
        for _ in range(3):  # well past the first claim's lease
            await asyncio.sleep(0.5)
            assert await other.deliver() == []
    finally:
        await other.close()
    release.set()
    try:
        [result] = (await first).results
    finally:
        await agent.close()
    assert (result.status, result.receipt_status) == ("delivered", "accepted")
    assert shop.posts == posts + 1
