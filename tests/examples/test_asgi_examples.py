"""The ASGI examples (issue 12 §1), each run as a real process: a FastAPI shop
and a Django project that serve VRM at /vrm with vendor_adapter.asgi, and the
rest of the site with their own framework. A person's agent (the real
``Agent``) adds the vendor and sends it a change; the shop's own pages show it."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from agent import Agent

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
PASSPHRASE = "example passphrase"
FAST_SCRYPT = 2**10


async def running(script: Path, db: Path) -> tuple[asyncio.subprocess.Process, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(script), "--db", str(db), "--port", "0",
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, cwd=EXAMPLES.parent,
        env={**os.environ, "VRM_VENDOR_PASSPHRASE": "shop secret"})
    assert process.stdout is not None and process.stderr is not None
    line = (await asyncio.wait_for(process.stdout.readline(), 60)).decode()
    assert line.startswith("shop ready at "), line + (await process.stderr.read()).decode()
    return process, line.split()[3]


@pytest.fixture(params=["fastapi_shop.py", "django_shop/serve.py"])
async def shop(request, tmp_path) -> AsyncIterator[str]:
    process, url = await running(EXAMPLES / request.param, tmp_path / "shop.db")
    yield url
    process.send_signal(signal.SIGTERM)
    # A clean stop: uvicorn shuts down (the vendor is closed in the lifespan
    # shutdown), then exits by the signal it got, as it does since 0.29.
    assert await asyncio.wait_for(process.wait(), 30) in (0, -signal.SIGTERM)
    stderr = (await process.stderr.read()).decode()  # type: ignore[union-attr]
    assert "Traceback" not in stderr and "Exception" not in stderr, stderr
    # The vendor was closed: SQLite removes the write-ahead log with the last connection.
    assert not (tmp_path / "shop.db-wal").exists()


async def test_an_agent_talks_to_the_shop_and_the_shop_keeps_its_own_pages(shop, tmp_path):
    agent = await Agent.init(tmp_path / "agent", passphrase=PASSPHRASE, scrypt_n=FAST_SCRYPT)
    try:
        await agent.set_profile({"given_name": "Ada", "email": "ada@example.org"})
        added = await agent.add_vendor(shop + "/vrm", share=["given_name", "email"])
        assert added["name"] in ("Example Cycles", "Django Cycles")
        moved = await agent.set_profile({"email": "ada@example.net"})
        assert [r.status for r in moved.results] == ["delivered"]
        await agent.intent("A touring bike", budget=("800.00", "EUR"))
    finally:
        await agent.close()
    async with aiohttp.ClientSession() as session:
        async with session.get(shop + "/products") as response:
            assert response.status == 200
            assert (await response.json())[0]["sku"] == "TREK-520"
        async with session.get(shop + "/admin/customers") as response:
            records = await response.json()
        async with session.get(shop + "/vrm/nowhere") as response:
            assert response.status == 404  # the adapter's own 404 under its prefix
        async with session.get(shop + "/vrm/.well-known/vrm",
                               headers={"Host": "a@b@c"}) as response:
            assert response.status == 400  # a Host that is not host[:port]
    [customer] = records["customers"]
    assert customer["given_name"] == "Ada" and customer["email"] == "ada@example.net"
    assert customer["message_counts"] == {"relationship.request": 1, "contact.update": 1,
                                          "intent": 1}
    [lead] = records["enquiries"]
    assert lead["summary"] == "A touring bike"
