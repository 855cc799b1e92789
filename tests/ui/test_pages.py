"""The dashboard's pages and actions over real HTTP (agent.ui.app), for what
the browser scenario does not reach: a vendor that is down (the outbox and
"deliver now"), changing what a vendor may see, cancelling an intent, the
backup and export downloads, and a mistake in a form."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from agent import Agent, Limits
from agent.ui import Gate, start_dashboard
from vendor_adapter import Vendor
from vendor_adapter.aiohttp import vrm_app

FAST = Limits(timeout=2.0, connect_timeout=1.0, retry_base=0.01, retry_cap=0.02)


@dataclass
class Site:
    agent: Agent
    gate: Gate
    session: aiohttp.ClientSession
    vendor: Vendor
    down: list[bool]

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.gate.port}"

    async def page(self, path: str) -> str:
        async with self.session.get(self.base + path) as response:
            assert response.status == 200, path
            return await response.text()

    async def act(self, path: str, **form: str | list[str]) -> str:
        """POST a form as the page would, wait for the action, return its page."""
        data = [("csrf", self.gate.csrf)]
        for name, value in form.items():
            data += [(name, v) for v in (value if isinstance(value, list) else [value])]
        async with self.session.post(self.base + path, data=data,
                                     headers={"Origin": self.base}) as response:
            assert response.status == 200
            job = response.url.path
        for _ in range(400):
            async with self.session.get(self.base + job + ".json") as response:
                if (await response.json())["state"] in ("done", "failed"):
                    break
            await asyncio.sleep(0.02)
        return await self.page(job)


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    vendor = await asyncio.to_thread(Vendor.open, tmp_path / "v.db", name="Bikes4U",
                                     passphrase="vendor passphrase")
    down = [False]

    @web.middleware
    async def outage(request: web.Request,
                     handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                     ) -> web.StreamResponse:
        if down[0] and request.method == "POST":
            return web.Response(status=503, text="down for maintenance")
        return await handler(request)

    app = vrm_app(vendor)
    app.middlewares.insert(0, outage)
    vendor_runner = web.AppRunner(app, access_log=None)
    await vendor_runner.setup()
    await web.TCPSite(vendor_runner, "127.0.0.1", 0).start()
    agent = await Agent.init(tmp_path / "agent", passphrase="pw", name="Ann", scrypt_n=2**10,
                             limits=FAST)
    await agent.set_profile({"email": "ann@example.org", "phone": "+4930123456"})
    await agent.add_vendor(f"http://127.0.0.1:{vendor_runner.addresses[0][1]}",
                           share=["email"])
    runner, gate = await start_dashboard(agent)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        async with session.get(gate.url()) as response:
            assert response.status == 200
        try:
            yield Site(agent, gate, session, vendor, down)
        finally:
            await runner.cleanup()
            await agent.close()
            await vendor_runner.cleanup()
            vendor.close()


def text(html: str) -> str:
    """The page's words, without tags, spaces collapsed."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


async def test_a_vendor_that_is_down_shows_in_the_outbox_until_delivered(site: Site) -> None:
    site.down[0] = True
    page = text(await site.act("/profile", email="ann@example.net"))
    assert "Bikes4U contact.update pending" in page
    overview = text(await site.page("/"))
    assert "1 pending" in overview and "Not delivered 1 pending" in overview
    outbox = text(await site.page("/outbox"))
    assert "Bikes4U contact.update" in outbox and "pending" in outbox
    assert "503" in outbox  # the reason
    site.down[0] = False
    await asyncio.sleep(0.05)  # the retry falls due
    page = text(await site.act("/deliver"))
    assert "Bikes4U contact.update delivered receipt: accepted" in page
    assert "Tried 1 messages; 0 still pending." in page
    assert "Nothing is pending or failed." in await site.page("/outbox")
    assert site.vendor.crm.contacts()[0]["email"] == "ann@example.net"


async def test_changing_what_a_vendor_may_see_tells_it(site: Site) -> None:
    page = text(await site.act("/vendors/1/share", share=["email", "phone"]))
    assert "Bikes4U may now see email, phone." in page
    assert site.agent.vendor(1)["share"] == ["email", "phone"]
    assert site.vendor.crm.contacts()[0]["phone"] == "+4930123456"
    vendor_page = text(await site.page("/vendors/1"))
    assert vendor_page.count("signature verifies") == 2
    page = text(await site.act("/vendors/1/share", share=["phone"]))
    assert "Bikes4U may now see phone." in page
    assert "phone removed: email" in text(await site.page("/vendors/1"))
    # A receipt spoilt in the store is shown as not verifying (checked again on
    # each view, with the pinned key).
    [first, *_] = site.agent.vendor_history(1)["messages"]
    stored = json.loads(bytes(site.agent.store.one(
        "SELECT jws FROM receipts WHERE message_id = ?", (first["message_id"],))["jws"]))
    stored["signature"] = ("A" if stored["signature"][0] != "A" else "B") + stored["signature"][1:]
    with site.agent.store.transaction() as conn:
        conn.execute("UPDATE receipts SET jws = ? WHERE message_id = ?",
                     (json.dumps(stored).encode(), first["message_id"]))
    vendor_page = text(await site.page("/vendors/1"))
    assert vendor_page.count("signature verifies") == 2
    assert vendor_page.count("does not verify:") == 1


async def test_cancelling_an_intent_from_its_page(site: Site) -> None:
    page = text(await site.act("/intents", summary="Touring bike", budget="800",
                               currency="eur", category="bicycles", location="Hamburg"))
    assert "Intent sent; 1 of 1 vendors confirmed it." in page
    [intent] = site.agent.intents()
    assert intent["body"]["budget"] == {"max": "800", "currency": "EUR"}
    [lead] = site.vendor.crm.leads()
    await site.vendor.make_offer(lead["id"], summary="Trek 520", price="749.00")
    assert "1 new message" in text(await site.act("/sync"))
    intents = text(await site.page("/intents"))
    assert ("bicycles · up to 800 EUR · Hamburg · sent" in intents
            and f"to 1 vendors, 1 confirmed · id {intent['short_id']}" in intents)
    assert "Bikes4U : Trek 520 , 749.00 EUR live" in intents
    assert f'action="/intents/{intent["id"]}/cancel"' in await site.page("/intents")
    # Any unique start of the id will do, as with `vrm intent cancel`.
    page = text(await site.act(f"/intents/{intent['short_id']}/cancel"))
    assert "Intent cancelled; 1 vendors were told." in page
    intents = await site.page("/intents")
    assert "status-cancelled" in intents and "/cancel" not in intents
    assert "Bikes4U : Trek 520 , 749.00 EUR intent cancelled" in text(intents)
    assert site.vendor.crm.leads()[0]["status"] == "cancelled"
    vendor_page = text(await site.page("/vendors/1"))
    assert "Trek 520 , 749.00 EUR intent cancelled received" in vendor_page
    assert "for Touring bike" in vendor_page
    # Cancelled already: one sentence, nothing sent again.
    page = text(await site.act(f"/intents/{intent['id']}/cancel"))
    assert "is already cancelled" in page
    assert [m["type"] for m in site.agent.outbox()].count("intent.cancel") == 1


async def test_a_mistake_is_one_sentence_and_changes_nothing(site: Site) -> None:
    page = text(await site.act("/intents", summary="Bike", budget="lots"))
    assert "It did not work." in page and "the intent is not valid" in page
    assert site.agent.intents() == []
    page = text(await site.act("/vendors", url="ftp://shop.example"))
    assert "is not an http(s) URL" in page


async def test_the_export_downloads_as_json(site: Site) -> None:
    async with site.session.get(site.base + "/backup/export.json") as response:
        assert response.headers["Content-Disposition"] == (
            'attachment; filename="vrm-export.json"')
        data = json.loads(await response.text())
    assert data["format"] == "vrm-export/1"
    assert data["profile"]["email"] == "ann@example.org"


async def test_a_backup_downloads_and_restores(site: Site, tmp_path: Path) -> None:
    async with site.session.get(site.base + "/backup/vrm-backup.db") as response:
        assert response.headers["Content-Disposition"] == (
            'attachment; filename="vrm-backup.db"')
        (tmp_path / "backup.db").write_bytes(await response.read())
    restored = await Agent.restore(tmp_path / "backup.db", tmp_path / "restored",
                                   passphrase="pw")
    try:
        assert restored.profile() == site.agent.profile()
        assert [v["pairwise_did"] for v in restored.vendors()] == [
            v["pairwise_did"] for v in site.agent.vendors()]
    finally:
        await restored.close()
