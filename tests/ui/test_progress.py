"""Saving the profile shows each vendor's delivery as it happens: one vendor
answers at once, the other is held back until the test lets it go, and the
browser (app.js polling /jobs/ID.json) shows the first receipt meanwhile."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web
from playwright.async_api import async_playwright, expect

from agent import Agent
from agent.ui import start_dashboard
from vendor_adapter import Vendor
from vendor_adapter.aiohttp import vrm_app

from .conftest import CHROMIUM, CHROMIUM_ARGS, OUTPUT


async def _shop(tmp_path: Path, name: str, gate: asyncio.Event | None
                ) -> tuple[Vendor, web.AppRunner, str]:
    vendor = await asyncio.to_thread(Vendor.open, tmp_path / f"{name}.db", name=name,
                                     passphrase="vendor passphrase")
    app = vrm_app(vendor)
    if gate is not None:
        @web.middleware
        async def hold(request: web.Request,
                       handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                       ) -> web.StreamResponse:
            if request.method == "POST":
                await gate.wait()
            return await handler(request)

        app.middlewares.insert(0, hold)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return vendor, runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


async def test_each_vendors_delivery_shows_as_it_happens(tmp_path: Path) -> None:
    release = asyncio.Event()
    release.set()
    shops = [await _shop(tmp_path, "Quick Bikes", None),
             await _shop(tmp_path, "Slow Cycles", release)]
    agent = await Agent.init(tmp_path / "agent", passphrase="pw", name="Ann", scrypt_n=2**10)
    runner = None
    try:
        await agent.set_profile({"email": "ann@example.org"})
        for _, _, url in shops:
            await agent.add_vendor(url, share=["email"])
        runner, gate = await start_dashboard(agent)
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=CHROMIUM,
                                                       args=CHROMIUM_ARGS)
            page = await browser.new_page()
            await page.goto(gate.url("/profile"))
            release.clear()  # Slow Cycles now holds every message
            await page.get_by_label("email").fill("ann@example.net")
            await page.get_by_role("button", name="Save and tell my vendors").click()
            rows = page.locator("#job-rows tbody tr")
            await expect(rows).to_have_count(1)
            await expect(rows.first).to_contain_text("Quick Bikes")
            await expect(rows.first.locator(".status")).to_have_text("delivered")
            await expect(page.locator("#job-state")).to_have_text("Working… 1 of 2")
            assert await page.locator("[data-job]").get_attribute("data-state") != "done"
            OUTPUT.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=str(OUTPUT / "profile-progress.png"))
            release.set()
            await expect(page.locator("[data-job]")).to_have_attribute("data-state", "done")
            await expect(rows).to_have_count(2)
            await expect(rows.filter(has_text="Slow Cycles").locator(".status")).to_have_text(
                "delivered")
            await browser.close()
    finally:
        release.set()
        if runner is not None:
            await runner.cleanup()
        await agent.close()
        for vendor, vendor_runner, _ in shops:
            await vendor_runner.cleanup()
            vendor.close()
