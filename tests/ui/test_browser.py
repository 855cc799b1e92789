"""A person uses the dashboard in a real browser (Debian's Chromium, via
Playwright), against real vendor servers and a real ``vrm ui`` process.

Screenshots of every page go to tests/output/ui/ (desktop and 360 px wide).
With VRM_UI_SCREENSHOT_DOCS=1 the last one also replaces docs/ui-overview.png,
the picture in README.md.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from datetime import date, timedelta
from pathlib import Path

from playwright.sync_api import Page, expect

from .conftest import Dashboard

SHOPS = ("Bikes4U", "Velo Berlin", "Kettenblatt")
PHONE = {"width": 360, "height": 740}
DOCS = Path(__file__).resolve().parents[2] / "docs"


def finish(page: Page) -> None:
    """Wait until the action's page shows its outcome (app.js reloads it then)."""
    expect(page.locator("[data-job]")).to_have_attribute(
        "data-state", re.compile("done|failed"), timeout=30_000)


def snap(page: Page, folder: Path, name: str, *, full_page: bool = True) -> None:
    page.screenshot(path=str(folder / f"{name}.png"), full_page=full_page)


def test_a_person_manages_vendors_profile_intents_and_an_ending(
        dashboard: Dashboard, vendor_servers, browser, screenshots: Path) -> None:
    shops = vendor_servers(*SHOPS)
    context = browser.new_context(viewport={"width": 1200, "height": 800})
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))

    # The printed URL lets the browser in; the token leaves the address bar.
    page.goto(dashboard.url)
    assert page.url == dashboard.origin + "/"
    expect(page.get_by_role("heading", name="Your vendors")).to_be_visible()
    expect(page.get_by_text("No vendors yet")).to_be_visible()

    # The profile first, with no vendor yet to tell.
    page.get_by_role("link", name="Profile").click()
    page.get_by_label("given name").fill("Ann")
    page.get_by_label("email").fill("ann@example.org")
    page.get_by_label("address: street address").fill("Unter den Linden 1")
    page.get_by_label("address: locality").fill("Berlin")
    page.get_by_label("address: postal code").fill("10117")
    page.get_by_label("address: country").fill("DE")
    snap(page, screenshots, "profile")
    page.get_by_role("button", name="Save and tell my vendors").click()
    finish(page)
    expect(page.get_by_text("no vendor may see the fields that changed")).to_be_visible()

    # Three vendors, each allowed the name, email and address.
    for shop in shops:
        page.get_by_role("link", name="Overview").click()
        page.get_by_label("The vendor's address").fill(shop.url)
        for field in ("given_name", "email", "postal_address"):
            page.get_by_role("checkbox", name=field, exact=True).check()
        page.get_by_role("button", name="Add the vendor").click()
        finish(page)
        expect(page.locator(".message")).to_have_text(f"Added {shop.name} (active).")
    page.get_by_role("link", name="Overview").click()
    cards = page.locator(".cards > li")
    expect(cards).to_have_count(3)
    for shop in SHOPS:
        card = cards.filter(has_text=shop)
        expect(card.locator(".status").first).to_have_text("active")
        expect(card).to_contain_text("given_name, email, postal_address")
        expect(card).to_contain_text("accepted for relationship.request")
    snap(page, screenshots, "overview")

    # Moving house: one save, three signed receipts.
    page.get_by_role("link", name="Profile").click()
    expect(page.get_by_label("address: locality")).to_have_value("Berlin")
    page.get_by_label("address: street address").fill("Jungfernstieg 7")
    page.get_by_label("address: locality").fill("Hamburg")
    page.get_by_label("address: postal code").fill("20354")
    page.get_by_role("button", name="Save and tell my vendors").click()
    finish(page)
    rows = page.locator("#job-rows tbody tr")
    expect(rows).to_have_count(3)
    for shop in SHOPS:
        row = rows.filter(has_text=shop)
        expect(row).to_contain_text("contact.update")
        expect(row.locator(".status")).to_have_text("delivered")
        expect(row).to_contain_text("receipt: accepted")
    expect(page.locator(".message")).to_have_text(
        "Profile saved; 3 of 3 vendors confirmed the change with a signed receipt.")
    snap(page, screenshots, "profile-saved")
    # The receipts prove delivery; one vendor's own CRM shows what that means.
    contacts = json.loads(shops[1].run("crm", "contacts", "--json").stdout)
    assert [(c["locality"], c["street_address"]) for c in contacts] == [
        ("Hamburg", "Jungfernstieg 7")]

    # An intent to every vendor.
    page.get_by_role("link", name="Intents").click()
    page.get_by_label("What you want").fill("Touring bike, steel frame")
    page.get_by_label("Category").fill("bicycles")
    page.get_by_label("Budget").fill("800.00")
    page.get_by_label("Currency").fill("EUR")
    page.get_by_label("Needed by").fill((date.today() + timedelta(days=60)).isoformat())
    page.get_by_label("Location").fill("Hamburg")
    page.get_by_role("button", name="Send the intent").click()
    finish(page)
    expect(page.locator(".message")).to_contain_text("3 of 3 vendors confirmed it")

    # The first vendor answers with an offer, from its own command line.
    leads = json.loads(shops[0].run("crm", "leads", "--json").stdout)
    [lead] = [lead for lead in leads if lead["status"] == "open"]
    shops[0].run("offer", str(lead["id"]), "--summary", "Trek 520 touring bike",
                 "--price", "749.00", "--currency", "EUR")

    page.get_by_role("link", name="Back to your intents").click()
    intent = page.locator("article.intent").filter(has_text="Touring bike, steel frame")
    expect(intent).to_contain_text("No offers yet.")
    # From the keyboard: the skip link first, then into the page, then Enter.
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to the content")).to_be_focused()
    page.keyboard.press("Enter")
    check = page.get_by_role("button", name="Check for offers")
    for _ in range(5):
        if check.evaluate("b => b === document.activeElement"):
            break
        page.keyboard.press("Tab")
    expect(check).to_be_focused()
    page.keyboard.press("Enter")
    finish(page)
    expect(page.locator(".message")).to_have_text("Asked 3 vendors; 1 new message.")
    page.get_by_role("link", name="Back to your intents").click()
    offer = intent.locator(".offer")
    expect(offer).to_have_count(1)
    expect(offer).to_contain_text("Bikes4U: Trek 520 touring bike, 749.00 EUR")
    expect(offer.locator(".status")).to_have_text("live")
    expect(intent.locator(".status").first).to_have_text("open")
    snap(page, screenshots, "intents")
    page.set_viewport_size(PHONE)
    snap(page, screenshots, "intents-phone")
    page.get_by_role("link", name="Overview").click()
    snap(page, screenshots, "overview-phone")
    page.set_viewport_size({"width": 1200, "height": 800})

    # The outbox: everything delivered, nothing pending.
    page.get_by_role("link", name="Outbox").click()
    expect(page.get_by_text("Nothing is pending or failed.")).to_be_visible()
    snap(page, screenshots, "outbox")
    page.get_by_role("link", name="Backup").click()
    snap(page, screenshots, "backup")

    # Ending one relationship with erasure, after a confirmation step.
    page.get_by_role("link", name="Overview").click()
    page.get_by_role("link", name="Kettenblatt").click()
    history = page.locator("section[aria-labelledby=history] tbody tr")
    expect(history).to_have_count(3)  # request, the move, the intent
    expect(history.filter(has_text="contact.update")).to_contain_text("signature verifies")
    expect(history.filter(has_text="contact.update")).to_contain_text(
        "postal_address.locality")
    snap(page, screenshots, "vendor")
    page.get_by_role("link", name="End and erase my data").click()
    expect(page.get_by_role("heading")).to_contain_text("End and erase your relationship")
    snap(page, screenshots, "confirm-end")
    page.get_by_role("button", name="Yes, end and erase").click()
    finish(page)
    expect(page.locator(".message")).to_have_text(
        "Kettenblatt confirmed with a signed receipt that the relationship has ended and "
        "that it will erase your data.")
    page.get_by_role("link", name="Back to Kettenblatt").click()
    expect(page.locator("h1 .status")).to_have_text(["ended", "erased"])
    expect(history.filter(has_text="relationship.end")).to_contain_text("signature verifies")
    contacts = json.loads(shops[2].run("crm", "contacts", "--json").stdout)
    assert all(c["erased"] and not c["email"] for c in contacts), contacts  # erased
    # The others keep going.
    page.get_by_role("link", name="Overview").click()
    expect(cards.filter(has_text="Bikes4U").locator(".status").first).to_have_text("active")
    expect(cards.filter(has_text="Kettenblatt").locator(".status").first).to_have_text("ended")
    page.set_viewport_size({"width": 1000, "height": 700})
    snap(page, screenshots, "overview-final", full_page=False)
    if os.environ.get("VRM_UI_SCREENSHOT_DOCS"):  # refreshes README.md's picture
        shutil.copy(screenshots / "overview-final.png", DOCS / "ui-overview.png")
    page.set_viewport_size(PHONE)  # every page at phone width, for a look
    for name, path in (("overview-phone-end", "/"), ("intents-phone-end", "/intents"),
                       ("vendor-phone", "/vendors/3"), ("profile-phone", "/profile"),
                       ("outbox-phone", "/outbox"), ("backup-phone", "/backup")):
        page.goto(dashboard.origin + path)
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], name
        snap(page, screenshots, name)
    assert errors == []  # no CSP violation, no script error
    context.close()

    # Without JavaScript (a new browser session: the printed address again), an
    # action's page refreshes itself until it shows the outcome.
    plain = browser.new_context(java_script_enabled=False)
    page = plain.new_page()
    page.goto(dashboard.url)
    page.get_by_role("link", name="Profile").click()
    page.get_by_label("phone").fill("+4940123456")
    page.get_by_role("button", name="Save and tell my vendors").click()
    finish(page)
    expect(page.locator(".message")).to_have_text(
        "Profile saved; no vendor may see the fields that changed.")
    plain.close()
