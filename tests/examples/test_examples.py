"""Each example runs as it is, as a real subprocess."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import aiohttp
import pytest

from agent import Agent
from vendor_adapter import Vendor
from vendor_adapter.aiohttp import vrm_app

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
PASSPHRASE = "example passphrase"
FAST_SCRYPT = 2**10


async def start(*args: str, env: dict[str, str] | None = None) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, *args, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})}, cwd=EXAMPLES.parent)


@pytest.fixture
async def shop(tmp_path):
    process = await start(str(EXAMPLES / "shop_app.py"), "--db", str(tmp_path / "shop.db"),
                          "--port", "0", env={"VRM_VENDOR_PASSPHRASE": "shop secret"})
    line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
    assert line.startswith("shop ready at "), line + (await process.stderr.read()).decode()
    yield line.split()[3]
    process.terminate()
    assert await asyncio.wait_for(process.wait(), 30) == 0  # a clean stop on SIGTERM


async def test_shop_app_keeps_its_own_routes_and_field_names(shop, tmp_path):
    agent = await Agent.init(tmp_path / "agent", passphrase=PASSPHRASE, scrypt_n=FAST_SCRYPT)
    try:
        await agent.set_profile({"given_name": "Ada", "email": "ada@example.org",
                                 "postal_address.locality": "Berlin"})
        added = await agent.add_vendor(shop + "/vrm", share=["given_name", "email",
                                                             "postal_address"])
        assert added["name"] == "Example Cycles"
        moved = await agent.set_profile({"postal_address.locality": "Hamburg"})
        assert [r.status for r in moved.results] == ["delivered"]
        await agent.intent("A touring bike", budget=("800.00", "EUR"))
    finally:
        await agent.close()
    async with aiohttp.ClientSession() as session:
        async with session.get(shop + "/products") as response:
            assert [p["sku"] for p in await response.json()] == ["TREK-520", "SURLY-DT"]
        async with session.get(shop + "/admin/customers") as response:
            records = await response.json()
    [customer] = records["customers"]
    assert customer["first_name"] == "Ada" and customer["mail"] == "ada@example.org"
    assert customer["town"] == "Hamburg"
    assert "locality" not in customer and "did" not in customer  # the shop's table only
    assert customer["vrm_messages"] == {"relationship.request": 1, "contact.update": 1,
                                        "intent": 1}
    [enquiry] = records["enquiries"]
    assert enquiry["wants"] == "A touring bike" and enquiry["budget"] == "800.00"


async def test_broadcast_move_tells_every_vendor(tmp_path, aiohttp_server):
    vendors = [Vendor.open(tmp_path / f"v{i}.db", name=f"Shop {i}", passphrase="v")
               for i in range(3)]
    servers = [await aiohttp_server(vrm_app(v)) for v in vendors]
    home = tmp_path / "agent"
    agent = await Agent.init(home, passphrase=PASSPHRASE, scrypt_n=FAST_SCRYPT)
    await agent.set_profile({"email": "ada@example.org", "postal_address.locality": "Berlin"})
    for index, server in enumerate(servers):
        # The third vendor may not see the address: it must not be told.
        share = ["email"] if index == 2 else ["email", "postal_address"]
        await agent.add_vendor(str(server.make_url("/")), share=share)
    await agent.close()

    process = await start(str(EXAMPLES / "broadcast_move.py"), "Jungfernstieg 7", "Hamburg",
                          "20354", "DE", env={"VRM_HOME": str(home), "VRM_PASSPHRASE": PASSPHRASE})
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, stderr.decode()
    assert sorted(stdout.decode().splitlines()) == [
        "Shop 0: delivered (accepted)", "Shop 1: delivered (accepted)"]
    for vendor, town in zip(vendors, ["Hamburg", "Hamburg", None]):
        [contact] = vendor.crm.contacts()
        assert contact.get("locality") == town
        vendor.close()


async def test_broadcast_move_explains_a_missing_store(tmp_path):
    process = await start(str(EXAMPLES / "broadcast_move.py"), "a", "b", "c", "DE",
                          env={"VRM_HOME": str(tmp_path / "none"), "VRM_PASSPHRASE": "x"})
    _, stderr = await process.communicate()
    assert process.returncode == 1
    assert stderr.decode().startswith("error: ") and "vrm init" in stderr.decode()


async def test_loyalty_points_extension_end_to_end(tmp_path):
    process = await start(str(EXAMPLES / "loyalty_points.py"))
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, stderr.decode()
    lines = stdout.decode().splitlines()
    # relationship.request, intent and the query itself: three messages, ten points each
    assert lines[0].startswith("Bikes4U: 30 points in the gold programme (signed receipt ")
    assert lines[1] == ("Velo Berlin: not asked, because Velo Berlin does not accept "
                        "x-org.example.loyalty.points messages")


async def test_the_extension_registry_gets_a_json_schema(tmp_path):
    process = await start("-m", "protocol", "schema", str(tmp_path), "--registry",
                          "examples.loyalty_points:registry")
    _, stderr = await process.communicate()
    assert process.returncode == 0, stderr.decode()
    schema = json.loads((tmp_path / "x-org.example.loyalty.points.json").read_text())
    assert schema["properties"]["type"]["const"] == "x-org.example.loyalty.points"
