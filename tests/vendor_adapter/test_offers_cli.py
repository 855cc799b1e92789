"""`vrm-vendor offer`, `offers` and `offer withdraw` as real subprocesses, on a
real vendor database that a person's messages reach through the real inbox."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

import protocol
from vendor_adapter import OfferError, Vendor
from tests.protocol.jsonschema_subset import is_valid
from vendor_adapter._offers import check_offer

from .conftest import PASSPHRASE, Person, now, verify_receipt
from .test_cli import ENV, fails, run

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("given, says", [
    ({"price": "7,50"}, "the price is a decimal number with a dot, like 7.50, not '7,50'"),
    ({"price": "1.234,50"}, "the price is a decimal number with a dot, like 7.50"),
    ({"price": "007"}, "the price has no leading zeros, like 7"),
    ({"price": "7.1234567"}, "6 after it"),
    ({"price": "\x1b[2J"}, "not '\\x1b[2J'"),  # shown escaped, never raw
    ({"currency": "euro"}, "the currency is a three-letter ISO 4217 code, like EUR"),
    ({"currency": 978}, "three-letter ISO 4217 code"),
    ({"valid_until": "2026-11-30T11:59:59Z"}, "is in the past; give a later one"),
    ({"valid_until": "2026-11-30T12:00:00Z"}, "is in the past"),
    ({"valid_until": "tomorrow"}, "RFC 3339 in UTC, like 2026-06-01T12:00:00Z"),
    ({"valid_until": datetime(2027, 1, 1)}, "needs a time zone"),
    ({"url": "ftp://shop.example/x"}, "the url is an http(s) address"),
    ({"url": "https://shop.example/a b"}, "the url is an http(s) address"),
    ({"summary": "  "}, "say what is offered in the summary"),
    ({"summary": "x" * 501}, "at most 500 characters"),
])
def test_each_offer_mistake_is_one_sentence(given: dict[str, Any], says: str) -> None:
    offer = {"summary": "Trek 520", "price": "749.00", "currency": "EUR",
             "valid_until": None, "url": None, **given}
    with pytest.raises(OfferError) as raised:
        check_offer(now=NOW, **offer)
    assert says in str(raised.value) and "\n" not in str(raised.value)


def test_offers_are_normalised_where_the_meaning_is_plain() -> None:
    body = check_offer(summary="Trek", price=" 7.50 ", currency=" eur", url=" https://s.example/t ",
                       valid_until="2026-12-01T00:00:00Z", now=NOW)
    assert body.to_wire() == {"summary": "Trek", "price": {"amount": "7.50", "currency": "EUR"},
                              "valid_until": "2026-12-01T00:00:00Z",
                              "url": "https://s.example/t"}


async def test_a_withdrawn_offer_is_never_delivered_whatever_the_race(store: str) -> None:
    """Withdraw and fetch at once, many times: each offer is either fetched (and the
    withdrawal refused) or withdrawn (and never in any fetch), never both."""
    vendor = Vendor.open(store, name="Bikes4U", passphrase=PASSPHRASE)
    try:
        person = Person(vendor.did)
        _post(vendor, person.request())
        _post(vendor, person.message("intent", {"summary": "Touring bike"}))
        [lead] = vendor.crm.leads()
        delivered: set[str] = set()
        withdrawn: set[str] = set()

        async def fetch() -> None:
            answer = await vendor.handle(person.message("messages.fetch", {"after": None}),
                                         protocol.MEDIA_TYPE)
            body = json.loads(protocol.b64url_decode(json.loads(answer.body)["payload"]))
            delivered.update(json.loads(protocol.b64url_decode(m["payload"]))["id"]
                             for m in body["body"]["messages"])

        async def withdraw(offer_id: str) -> None:
            try:
                await vendor.withdraw_offer(offer_id)
                withdrawn.add(offer_id)
            except OfferError as exc:
                assert "can no longer be withdrawn" in str(exc)

        made = []
        for _ in range(20):
            offer_id = await vendor.make_offer(lead["id"], summary="Trek", price="1.00")
            made.append(offer_id)
            await asyncio.gather(withdraw(offer_id), fetch())
        await fetch()
        assert delivered.isdisjoint(withdrawn)
        assert delivered | withdrawn == set(made)
        statuses = {o["id"]: o["status"] for o in vendor.offers()}
        assert {statuses[i] for i in withdrawn} <= {"withdrawn"}
        assert {statuses[i] for i in delivered} <= {"fetched"}
    finally:
        vendor.close()


def _all(*argvs: tuple[str, ...]) -> list[subprocess.CompletedProcess[str]]:
    """Run several vrm-vendor commands at once (each costs seconds of imports)."""
    processes = [subprocess.Popen([sys.executable, "-m", "vendor_adapter.cli", *argv],
                                  env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True) for argv in argvs]
    results = []
    for argv, process in zip(argvs, processes):
        stdout, stderr = process.communicate(timeout=60)
        results.append(subprocess.CompletedProcess(argv, process.returncode, stdout, stderr))
    return results


def _post(vendor: Vendor, raw: bytes) -> dict[str, Any]:
    response = vendor.handle_sync(raw, protocol.MEDIA_TYPE)
    assert response.status == 200, response.body
    return verify_receipt(response.body, vendor.discovery("http://x/inbox").to_wire(),
                          json.loads(protocol.b64url_decode(
                              json.loads(raw)["payload"]))["from"])["body"]


def _fetched(vendor: Vendor, person: Person, after: str | None) -> tuple[list[str], str]:
    body = _post(vendor, person.message("messages.fetch", {"after": after}))
    ids = [json.loads(protocol.b64url_decode(m["payload"]))["id"] for m in body["messages"]]
    return ids, body["cursor"]


def test_offer_mistakes_are_sentences_and_offers_list_fetched_and_withdrawn(
        store: str) -> None:
    vendor = Vendor.open(store, name="Bikes4U", passphrase=PASSPHRASE)
    try:
        person = Person(vendor.did)
        _post(vendor, person.request(email="ann@example.org"))
        _post(vendor, person.message("intent", {"summary": "Touring bike"}))
        [lead] = vendor.crm.leads()
        lead_id = str(lead["id"])
        offer = ("offer", lead_id, "--db", store, "--summary", "Trek 520")

        price, currency, past, url = _all(
            (*offer, "--price", "7,50"), (*offer, "--price", "7.50", "--currency", "euro"),
            (*offer, "--price", "7.50", "--valid-until", "2020-01-01T00:00:00Z"),
            (*offer, "--price", "7.50", "--url", "shop dot example"))
        fails(price, "vrm-vendor: the price is a decimal number with a dot, like 7.50")
        fails(currency, "the currency is a three-letter ISO 4217 code, like EUR")
        fails(past, "is in the past")
        fails(url, "the url is an http(s) address")
        assert vendor.offers() == [] and vendor.crm.leads()[0]["status"] == "open"

        later = protocol.format_time(now() + timedelta(days=2))
        made = run(*offer, "--price", "749.00", "--currency", " eur ", "--valid-until", later,
                   "--url", "https://bikes4u.example/trek-520", "--json")
        assert made.returncode == 0, made.stderr
        first = json.loads(made.stdout)
        assert is_valid(first, _schema("vrm-vendor-offer")), first
        assert (first["currency"], first["url"], first["status"]) == (
            "EUR", "https://bikes4u.example/trek-520", "waiting")
        ids, cursor = _fetched(vendor, person, None)
        assert ids == [first["id"]]

        second = run(*offer, "--price", "699.00")
        assert second.returncode == 0, second.stderr
        second_id = second.stdout.strip()
        listed = json.loads(run("offers", "--db", store, "--json").stdout)
        assert is_valid(listed, _schema("vrm-vendor-offers")), listed
        assert {o["id"]: o["status"] for o in listed} == {first["id"]: "fetched",
                                                          second_id: "waiting"}
        assert [o["fetched"] is not None for o in listed if o["id"] == first["id"]] == [True]
        table = run("offers", "--db", store, "--lead", lead_id)
        assert table.returncode == 0 and "fetched" in table.stdout and "waiting" in table.stdout

        fails(run("offer", "withdraw", first["id"], "--db", store),
              "can no longer be withdrawn")
        withdrawn = run("offer", "withdraw", second_id[:8], "--db", store)
        assert withdrawn.returncode == 0, withdrawn.stderr
        assert "never be delivered" in withdrawn.stdout
        # A withdrawn offer is never delivered, and the lead is open for another.
        assert _fetched(vendor, person, cursor)[0] == []
        assert _fetched(vendor, person, None)[0] == [first["id"]]
        assert vendor.crm.leads()[0]["status"] == "open"
        third = run(*offer, "--price", "649.00")
        gone = json.loads(run("offer", "withdraw", third.stdout.strip(), "--db", store,
                              "--json").stdout)
        assert gone["status"] == "withdrawn" and gone["withdrawn"]
        assert is_valid(gone, _schema("vrm-vendor-offer-withdraw")), gone
        assert {o["id"]: o["status"] for o in vendor.offers(lead_id=lead_id)
                if o["id"] != gone["id"]} == {
            first["id"]: "fetched", second_id: "withdrawn"}
        fails(run("offer", "withdraw", second_id, "--db", store), "withdrawn already")
        fails(run("offer", "withdraw", "nope", "--db", store), "no offer 'nope'")
    finally:
        vendor.close()


def test_serve_help_shows_every_default() -> None:
    text = " ".join(run("serve", "--help").stdout.split())
    for default in ("(default: 127.0.0.1)", "(default: 8080)", "(default: 10)",
                    "(default: 1000", "(default: http://HOST:PORT)",
                    '"VRM vendor" in a new one'):
        assert default in text, default


@pytest.mark.parametrize("argv, words", [
    (["offer", "withdraw", "--db", "x.db"],
     "vrm-vendor offer withdraw: name the offer to withdraw; `vrm-vendor offers` lists them"),
    (["offers", "--lead", "1"], "vrm-vendor offers: --db is required"),
    (["offers", "--db", "x.db", "--lead"], "--lead needs a value"),
])
def test_offer_command_line_mistakes(argv: list[str], words: str, tmp_path: Any) -> None:
    result = subprocess.run([sys.executable, "-m", "vendor_adapter.cli", *argv], env=ENV,
                            capture_output=True, text=True, timeout=60, cwd=tmp_path)
    fails(result, words)
    assert result.returncode == 2 and not (tmp_path / "x.db").exists()


def _schema(name: str) -> dict[str, Any]:
    """schemas/cli/<name>.json: the shape of a --json output (issue 11 §4)."""
    root = Path(__file__).resolve().parents[2]
    return json.loads((root / "schemas" / "cli" / f"{name}.json").read_text())
