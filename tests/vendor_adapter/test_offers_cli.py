"""`vrm-vendor offer`, `offers` and `offer withdraw` as real subprocesses, on a
real vendor database that a person's messages reach through the real inbox."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import protocol
from vendor_adapter import Vendor

from .conftest import PASSPHRASE, Person, now, verify_receipt
from .test_cli import fails, run


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
        db_path: str) -> None:
    vendor = Vendor.open(db_path, name="Bikes4U", passphrase=PASSPHRASE)
    try:
        person = Person(vendor.did)
        _post(vendor, person.request(email="ann@example.org"))
        _post(vendor, person.message("intent", {"summary": "Touring bike"}))
        [lead] = vendor.crm.leads()
        lead_id = str(lead["id"])
        offer = ("offer", lead_id, "--db", db_path, "--summary", "Trek 520")

        fails(run(*offer, "--price", "7,50"),
              "the price is a decimal number with a dot, like 7.50")
        fails(run(*offer, "--price", "cheap"), "the price is a decimal number with a dot")
        fails(run(*offer, "--price", "7.50", "--currency", "euro"),
              "the currency is a three-letter ISO 4217 code, like EUR")
        fails(run(*offer, "--price", "7.50", "--valid-until", "2020-01-01T00:00:00Z"),
              "is in the past")
        fails(run(*offer, "--price", "7.50", "--valid-until", "next week"),
              "RFC 3339 in UTC, like 2026-06-01T12:00:00Z")
        fails(run(*offer, "--price", "7.50", "--url", "shop dot example"),
              "the url is an http(s) address")
        assert vendor.offers() == [] and vendor.crm.leads()[0]["status"] == "open"

        later = protocol.format_time(now() + timedelta(days=2))
        made = run(*offer, "--price", "749.00", "--currency", " eur ", "--valid-until", later,
                   "--url", "https://bikes4u.example/trek-520", "--json")
        assert made.returncode == 0, made.stderr
        first = json.loads(made.stdout)
        assert (first["currency"], first["url"], first["status"]) == (
            "EUR", "https://bikes4u.example/trek-520", "waiting")
        ids, cursor = _fetched(vendor, person, None)
        assert ids == [first["id"]]

        second = run(*offer, "--price", "699.00")
        assert second.returncode == 0, second.stderr
        second_id = second.stdout.strip()
        listed = json.loads(run("offers", "--db", db_path, "--json").stdout)
        assert {o["id"]: o["status"] for o in listed} == {first["id"]: "fetched",
                                                          second_id: "waiting"}
        assert [o["fetched"] is not None for o in listed if o["id"] == first["id"]] == [True]
        table = run("offers", "--db", db_path, "--lead", lead_id)
        assert table.returncode == 0 and "fetched" in table.stdout and "waiting" in table.stdout

        fails(run("offer", "withdraw", first["id"], "--db", db_path),
              "can no longer be withdrawn")
        withdrawn = run("offer", "withdraw", second_id[:8], "--db", db_path)
        assert withdrawn.returncode == 0, withdrawn.stderr
        assert "never be delivered" in withdrawn.stdout
        # A withdrawn offer is never delivered, and the lead is open for another.
        assert _fetched(vendor, person, cursor)[0] == []
        assert _fetched(vendor, person, None)[0] == [first["id"]]
        assert vendor.crm.leads()[0]["status"] == "open"
        assert {o["id"]: o["status"] for o in vendor.offers(lead_id=lead_id)} == {
            first["id"]: "fetched", second_id: "withdrawn"}
        fails(run("offer", "withdraw", second_id, "--db", db_path), "withdrawn already")
        fails(run("offer", "withdraw", "nope", "--db", db_path), "no offer 'nope'")
    finally:
        vendor.close()


def test_serve_help_shows_every_default() -> None:
    text = " ".join(run("serve", "--help").stdout.split())
    for default in ("(default: 127.0.0.1)", "(default: 8080)", "(default: 10)",
                    "(default: 1000", "(default: http://HOST:PORT)",
                    '"VRM vendor" in a new one'):
        assert default in text, default
