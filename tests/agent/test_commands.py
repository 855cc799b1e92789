"""Issue 11 §1 through the real `vrm` process, against real vendor_adapter
vendors on loopback: feedback, preferences, terms, intents and their cancel,
offers' status, profile unset, a relationship's history, receipts checked
again, vendors with the same name, and erasure asking first."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import select
import sqlite3
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from agent import UsageError

from agent import Agent
from agent.cli import _score

from .conftest import FAST, PASSPHRASE, Shop
from .test_cli import vrm  # noqa: F401 - the fixture: `vrm` as a real subprocess


async def _setup(home: Path, *vendors: tuple[str, list[str]],
                 profile: dict[str, str] | None = None) -> None:
    """What earlier tests cover already (init, profile set, vendor add), done through
    the API: each `vrm` process costs seconds of imports on a loaded machine."""
    agent = await Agent.init(home, passphrase=PASSPHRASE, scrypt_n=2**10, limits=FAST)
    try:
        if profile:
            await agent.set_profile(profile)
        for url, share in vendors:
            await agent.add_vendor(url, share=share)
    finally:
        await agent.close()


async def _on_a_terminal(home: Path, argv: list[str], typed: str) -> tuple[int, str]:
    """Run vrm with a pseudo-terminal as stdin, stdout and stderr, ``typed`` waiting
    in its input; return the exit status and everything it showed."""
    main, child = pty.openpty()
    env = {**os.environ, "VRM_HOME": str(home), "VRM_PASSPHRASE": PASSPHRASE, "COLUMNS": "200"}
    env.pop("VRM_DEBUG", None)
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "agent.cli", *argv, env=env, stdin=child, stdout=child,
            stderr=child)
        os.write(main, typed.encode())
        shown = b""
        loop = asyncio.get_running_loop()
        while process.returncode is None:
            ready = await loop.run_in_executor(None, _read_some, main)
            shown += ready
            if not ready:
                await asyncio.sleep(0.05)
            if process.returncode is None:
                try:
                    await asyncio.wait_for(process.wait(), 0.05)
                except asyncio.TimeoutError:
                    pass
        shown += _read_some(main)
    finally:
        os.close(child)
        os.close(main)
    text = shown.decode("utf-8", "replace")
    assert "Traceback" not in text, text
    return process.returncode or 0, text


def _read_some(fd: int) -> bytes:
    data = b""
    while select.select([fd], [], [], 0.05)[0]:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        data += chunk
    return data


async def _add(home: Path, url: str) -> None:
    async with await Agent.open(home, passphrase=PASSPHRASE, limits=FAST) as agent:
        await agent.add_vendor(url)


def _j(value):
    """A CRM column as a value (the CRM view may give it parsed already)."""
    return json.loads(value) if isinstance(value, str) else value


def _contact(shop: Shop) -> dict:
    [contact] = shop.crm.contacts()
    return contact


def test_a_score_is_a_whole_number_from_0_to_10() -> None:
    assert [_score(text) for text in ("0", "7", " 10 ")] == [0, 7, 10]
    for text in ("11", "7.5", "-1", "nine", "", "\u0669", "1e1"):
        with pytest.raises(UsageError, match="whole number from 0 to 10"):
            _score(text)


async def test_feedback_preferences_and_terms(vrm, shops, home: Path) -> None:  # noqa: F811
    a, b = await shops(2)
    await _setup(home, (a.url, ["email"]), (b.url, []), profile={"email": "ann@example.org"})

    rated = (await vrm("feedback", "Shop0", "9", "--comment", "Great \x1b[2Jservice",
                       "--subject", "order 42", "--json")).json()
    assert rated["nps_class"] == "promoter" and rated["score"] == 9
    assert rated["receipt"]["status"] == "accepted" and rated["receipt"]["verified"] is True
    [filed] = a.crm.feedback()
    assert (filed["score"], filed["nps_class"], filed["subject"]) == (9, "promoter", "order 42")
    assert filed["comment"] == "Great \x1b[2Jservice"
    assert b.crm.feedback() == []
    # Each `vrm` costs seconds of imports: what does not depend on the others runs at once.
    ran, wrong, preferences, wrong_to, terms = await asyncio.gather(
        vrm("feedback", "Shop1", "6"), vrm("feedback", "Shop0", "11", ok=False),
        vrm("preferences", "--json"), vrm("preferences", "--to", "Shop0", ok=False),
        vrm("terms", "--json"))
    assert "a detractor" in ran.stdout and "signed receipt" in ran.stdout
    assert b.crm.feedback()[0]["nps_class"] == "detractor"
    assert wrong.status == 1 and "whole number from 0 to 10" in wrong.stderr
    assert len(a.crm.feedback()) == 1
    assert preferences.json() == {"channels": {}, "marketing": None}
    assert wrong_to.status == 1 and "--no-sms" in wrong_to.stderr
    assert terms.json() == []

    told = (await vrm("preferences", "--no-sms", "--email", "--marketing", "--to", "Shop1",
                      "--json")).json()
    assert [r["vendor"] for r in told["results"]] == ["Shop1"]
    assert told["preferences"] == {"channels": {"email": True, "sms": False},
                                   "marketing": True}
    assert _j(_contact(b)["channels"]) == {"email": True, "sms": False}
    assert _contact(b)["marketing"] == 1 and _contact(a)["channels"] is None
    told = (await vrm("preferences", "--no-marketing", "--json")).json()
    assert sorted(r["vendor"] for r in told["results"]) == ["Shop0", "Shop1"]
    assert _contact(a)["marketing"] == 0 and _contact(b)["marketing"] == 0
    shown = (await vrm("preferences")).stdout
    assert "sms" in shown and "not stated" in shown  # post and phone were never stated

    restated = (await vrm("terms", "set", "myterms:nostalking", "myterms:nostalking",
                          "--json")).json()
    assert restated["terms"] == ["myterms:nostalking"]
    assert {r["status"] for r in restated["results"]} == {"delivered"}
    assert _j(_contact(a)["terms"]) == ["myterms:nostalking"]
    assert _j(_contact(b)["terms"]) == ["myterms:nostalking"]
    # The re-statement re-states the fields too: Shop0 still holds the email.
    assert _contact(a)["email"] == "ann@example.org" and _contact(b)["email"] is None
    listed, wrong, nothing = await asyncio.gather(
        vrm("terms"), vrm("terms", "set", "No Stalking", ok=False),
        vrm("terms", "set", ok=False))
    assert "myterms:nostalking" in listed.stdout
    assert wrong.status == 1 and "myterms:nostalking" in wrong.stderr
    assert nothing.status == 1 and "--none" in nothing.stderr  # never cleared by accident
    [c] = await shops(1, first=2)
    await _add(home, c.url)
    assert _j(_contact(c)["terms"]) == ["myterms:nostalking"]  # carried from now on
    cleared = (await vrm("terms", "set", "--none", "--json")).json()
    assert cleared["terms"] == [] and len(cleared["results"]) == 3
    assert (_j(_contact(a)["terms"]) or []) == []


async def test_intents_offers_and_cancel(vrm, shops, tmp_path: Path,  # noqa: F811
                                         home: Path) -> None:
    from vendor_adapter import Vendor

    a, b = await shops(2)
    await _setup(home, (a.url, []), (b.url, []))
    sent = (await vrm("intent", "Touring bike", "--json")).json()
    other = (await vrm("intent", "--to", "Shop0", "--json", "--", "cancel")).json()
    assert other["summary"] == "cancel"  # `--` makes the word a summary
    intents = (await vrm("intents", "--json")).json()
    assert [(i["summary"], i["told"], i["offers"], i["status"]) for i in intents] == [
        ("cancel", 1, 0, "open"), ("Touring bike", 2, 0, "open")]
    short = intents[1]["short_id"]
    assert sent["id"].startswith(short) and short in (await vrm("intents")).stdout

    [lead] = [lead for lead in a.crm.leads() if lead["summary"] == "Touring bike"]
    await a.vendor.make_offer(lead["id"], summary="Trek 520", price="749.00",
                              valid_until=datetime.now(timezone.utc) + timedelta(days=3))
    # An offer made yesterday, valid until an hour ago: expired by now.
    past = Vendor.open(tmp_path / "crm1.db", name="Shop1", passphrase="secret",
                       clock=lambda: datetime.now(timezone.utc) - timedelta(days=1))
    try:
        [lead_b] = b.crm.leads()
        await past.make_offer(lead_b["id"], summary="Old stock", price="500.00",
                              valid_until=datetime.now(timezone.utc) - timedelta(hours=1))
    finally:
        past.close()
    await vrm("sync")
    offers, mine, table, intents = await asyncio.gather(
        vrm("offers", "--json"), vrm("offers", "--intent", short, "--vendor", "Shop0", "--json"),
        vrm("offers"), vrm("intents", "--json"))
    assert {o["summary"]: o["status"] for o in offers.json()} == {"Trek 520": "live",
                                                                  "Old stock": "expired"}
    assert [o["summary"] for o in mine.json()] == ["Trek 520"]
    assert "expired" in table.stdout
    assert intents.json()[1]["offers"] == 2

    cancelled = (await vrm("intent", "cancel", short, "--reason", "bought one",
                           "--json")).json()
    assert sorted(r["vendor"] for r in cancelled["results"]) == ["Shop0", "Shop1"]
    assert {r["status"] for r in cancelled["results"]} == {"delivered"}
    assert {lead["status"] for lead in b.crm.leads()} == {"cancelled"}
    intents, offers, again, wrong, missing = await asyncio.gather(
        vrm("intents", "--json"), vrm("offers", "--json"),
        vrm("intent", "cancel", short, ok=False), vrm("intent", "cancel", "ab", ok=False),
        vrm("intent", "cancel", ok=False))
    statuses = {i["summary"]: i["status"] for i in intents.json()}
    assert statuses == {"Touring bike": "cancelled", "cancel": "open"}
    assert {o["status"] for o in offers.json()} == {"intent cancelled"}
    assert again.status == 1 and "already cancelled" in again.stderr
    assert wrong.status == 1 and "at least 4" in wrong.stderr
    assert missing.status != 0 and "INTENT" in missing.stderr  # not an intent named "cancel"
    assert len((await vrm("intents", "--json")).json()) == 2


async def test_profile_unset_vendor_show_and_receipts(vrm, shops, home: Path) -> None:  # noqa: F811
    [a] = await shops(1)
    await _setup(home, (a.url, ["email", "phone"]), profile={
        "email": "ann@example.org", "phone": "+441234567890",
        "postal_address.locality": "Leeds"})
    removed = (await vrm("profile", "unset", "phone", "postal_address", "--json")).json()
    assert sorted(removed["changed"]) == ["phone", "postal_address.locality"]
    assert [r["status"] for r in removed["results"]] == ["delivered"]
    assert _contact(a)["phone"] is None and _contact(a)["email"] == "ann@example.org"
    profile, again, wrong, history, text = await asyncio.gather(
        vrm("profile", "show", "--json"), vrm("profile", "unset", "phone"),
        vrm("profile", "unset", "shoe_size", ok=False), vrm("vendor", "show", "Shop0", "--json"),
        vrm("vendor", "show", "1"))
    assert profile.json() == {"email": "ann@example.org"}
    assert "Nothing changed" in again.stdout
    assert wrong.status == 1 and "not a profile field" in wrong.stderr
    assert "contact.update" in text.stdout and "signature verifies" in text.stdout

    history = history.json()
    assert history["vendor"]["name"] == "Shop0"
    request, update = history["messages"]
    assert (request["type"], request["fields"], request["delivery"]) == (
        "relationship.request", ["email", "phone"], "delivered")
    assert (update["type"], update["removed"], update["body"]) == (
        "contact.update", ["phone"], {"changes": {"phone": None}})
    assert all(m["receipt"]["verified"] and m["receipt"]["status"] == "accepted"
               for m in history["messages"])
    message = update["message_id"]
    shown, raw, text = await asyncio.gather(
        vrm("receipt", message[:8], "--json"), vrm("receipt", message, "--raw"),
        vrm("receipt", message))
    assert shown.json()["verified"] is True and shown.json()["message_type"] == "contact.update"
    assert "verifies with the pinned key" in text.stdout
    stored = sqlite3.connect(home / "vrm.db").execute(
        "SELECT jws FROM receipts WHERE message_id = ?", (message,)).fetchone()[0]
    assert raw.stdout.encode() == bytes(stored)  # exactly as received
    # Anyone can check it with a JOSE library we did not write.
    from jwcrypto import jwk, jws

    token = jws.JWS()
    token.deserialize(raw.stdout)
    token.verify(jwk.JWK(**a.vendor.public_key.to_jwk()), alg="Ed25519")
    assert json.loads(token.payload)["thread"] == message

    # A receipt spoilt in the store no longer verifies: said, and the status is 1.
    spoilt = json.loads(bytes(stored))
    spoilt["signature"] = ("A" if spoilt["signature"][0] != "A" else "B") + spoilt["signature"][1:]
    with sqlite3.connect(home / "vrm.db") as db:
        db.execute("UPDATE receipts SET jws = ? WHERE message_id = ?",
                   (json.dumps(spoilt).encode(), message))
    bad, history, text, wrong = await asyncio.gather(
        vrm("receipt", message, ok=False), vrm("vendor", "show", "Shop0", "--json"),
        vrm("vendor", "show", "Shop0"), vrm("receipt", "nope", ok=False))
    assert bad.status == 1 and "does not verify" in bad.stderr
    assert [m["receipt"]["verified"] for m in history.json()["messages"]] == [True, False]
    assert "FAILS" in text.stdout
    assert wrong.status == 1 and "no message" in wrong.stderr


async def test_vendors_with_one_name_and_erasure_asks_first(vrm, tmp_path: Path,  # noqa: F811
                                                            aiohttp_server, home: Path) -> None:
    from vendor_adapter import Vendor

    twins = []
    for i in range(2):
        vendor = Vendor.open(tmp_path / f"twin{i}.db", name="Twin", passphrase="secret")
        twins.append(await Shop(vendor, aiohttp_server, "").up())
    try:
        await _setup(home, *((twin.url, []) for twin in twins))
        wrong = await vrm("feedback", "Twin", "8", ok=False)
        assert wrong.status == 1 and "use the number" in wrong.stderr
        sent = (await vrm("feedback", "2", "8", "--json")).json()
        assert [r["vendor_id"] for r in sent["results"]] == [2]
        assert twins[1].crm.feedback()[0]["nps_class"] == "passive"
        shown, outbox, refused, intent = await asyncio.gather(
            vrm("vendor", "show", "2"), vrm("outbox"),
            vrm("vendor", "end", "1", "--erase", ok=False), vrm("intent", "Touring bike"))
        assert "Twin (#1)" in intent.stdout and "Twin (#2)" in intent.stdout
        assert "Twin (#2)" in shown.stdout
        assert "Twin (#1)" in outbox.stdout and "Twin (#2)" in outbox.stdout
        assert refused.status == 1 and "--yes" in refused.stderr
        assert twins[0].crm.contacts()[0]["erased"] == 0
        assert (await vrm("vendor", "show", "1", "--json")).json()["vendor"]["status"] == "active"
        # On a terminal it asks; anything but yes sends nothing.
        status, said = await _on_a_terminal(home, ["vendor", "end", "1", "--erase"], "n\n")
        assert status == 1 and "Ask Twin (#1) to erase your data?" in said
        assert "not confirmed" in said and twins[0].crm.contacts()[0]["erased"] == 0
        status, said = await _on_a_terminal(home, ["vendor", "end", "1", "--erase"], "yes\n")
        assert status == 0 and "erased" in said, said
        assert twins[0].crm.contacts()[0]["erased"] == 1
        ended = (await vrm("vendor", "end", "2", "--erase", "--yes", "--json")).json()
        assert ended["vendor"]["erased"] is True
        assert twins[1].crm.contacts()[0]["erased"] == 1
    finally:
        for twin in twins:
            twin.vendor.close()
