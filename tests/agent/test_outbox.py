"""Outbox durability: a crash between the outbox write and delivery loses nothing,
and nothing reaches a CRM twice."""

from __future__ import annotations

import asyncio
from pathlib import Path

import protocol
from agent import Agent

from .conftest import FAST, PASSPHRASE, FakeVendor


async def _open(home: Path) -> Agent:
    return await Agent.open(home, passphrase=PASSPHRASE, limits=FAST)


async def _fleet(agent: Agent, serve, n: int) -> list[FakeVendor]:
    vendors = []
    for i in range(n):
        vendor, url = await serve(FakeVendor(f"V{i}"))
        await agent.add_vendor(url, share=["email"])
        vendors.append(vendor)
    return vendors


async def test_crash_after_the_outbox_write(agent: Agent, home: Path, serve) -> None:
    vendors = await _fleet(agent, serve, 4)
    broadcast = await agent.intent("Touring bike", budget=("800", "EUR"), send=False)
    # the crash: the process ends here, before any network I/O
    await agent.close()
    assert all(len(v.of_type(protocol.Intent)) == 0 for v in vendors)
    agent = await _open(home)
    try:
        results = await agent.deliver()
        assert sorted(r.message_id for r in results) == sorted(broadcast.message_ids)
        assert {r.status for r in results} == {"delivered"}
        assert [len(v.of_type(protocol.Intent)) for v in vendors] == [1, 1, 1, 1]
    finally:
        await agent.close()


async def test_crash_after_sending_before_recording(agent: Agent, home: Path, serve,
                                                    monkeypatch) -> None:
    vendors = await _fleet(agent, serve, 4)
    # the vendors got the messages, but the agent dies before committing the results
    monkeypatch.setattr(type(agent._deliverer), "_flush", lambda self, batch: None)
    await agent.set_profile({"email": "ann@example.org"})
    monkeypatch.undo()
    await agent.close()
    agent = await _open(home)
    try:
        assert {row["status"] for row in agent.outbox()
                if row["type"] == "contact.update"} == {"pending"}
        # the dead run's claims on the rows lapse (claim_lease), then they are sent
        results = await agent.deliver(patience=10)
        assert {r.receipt_status for r in results} == {"duplicate"}
        assert {r.status for r in results} == {"delivered"}
        assert [len(v.of_type(protocol.ContactUpdate)) for v in vendors] == [1, 1, 1, 1]
    finally:
        await agent.close()


async def test_interrupted_broadcast_carries_on(agent: Agent, home: Path, serve) -> None:
    vendors = await _fleet(agent, serve, 5)
    vendors[2].mode = vendors[4].mode = "hang"
    task = asyncio.create_task(agent.set_profile({"email": "ann@example.org"}))
    while sum(len(v.of_type(protocol.ContactUpdate)) for v in vendors) < 3:
        await asyncio.sleep(0.01)
    task.cancel()  # Ctrl-C in the middle of the broadcast
    try:
        await task
    except asyncio.CancelledError:
        pass
    await agent.close()
    for vendor in vendors:
        vendor.mode = "ok"
    agent = await _open(home)
    try:
        await agent.deliver(patience=5)
        assert {row["status"] for row in agent.outbox()} == {"delivered"}
        assert [len(v.of_type(protocol.ContactUpdate)) for v in vendors] == [1] * 5
    finally:
        await agent.close()


async def test_the_next_command_carries_on(agent: Agent, serve) -> None:
    [vendor] = await _fleet(agent, serve, 1)
    await agent.set_profile({"email": "ann@example.org"}, send=False)
    # any later broadcast delivers the leftovers too, in order
    await agent.set_profile({"email": "ann@example.net"})
    updates = vendor.of_type(protocol.ContactUpdate)
    assert [u.body.changes.email for u in updates] == ["ann@example.org", "ann@example.net"]


async def test_one_transaction_for_the_whole_fan_out(agent: Agent, serve) -> None:
    await _fleet(agent, serve, 3)
    statements: list[str] = []
    agent.store.db.conn.set_trace_callback(statements.append)
    await agent.set_profile({"email": "ann@example.org"}, send=False)
    agent.store.db.conn.set_trace_callback(None)
    assert sum(1 for s in statements if s.strip().upper() == "COMMIT") == 1
