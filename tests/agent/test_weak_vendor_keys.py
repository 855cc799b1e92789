"""Issue 9, item 1 (the agent's part): a vendor whose key is the identity point
(a point of small order: "R = A, S = 0" verifies for every message with it,
libsodium's blocklist, RFC 8032 §5.1.7) is refused by ``vrm vendor add``, and a
receipt "signed" that way never counts as a receipt. The protocol refuses such
keys where keys are decoded (``protocol.check_public_key``); these tests hold
the agent to it through the real ``vrm`` command and real loopback servers."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from aiohttp import web

import protocol

from .conftest import FakeVendor, now
from .test_cli import vrm  # noqa: F401 - the fixture that runs the real `vrm`

IDENTITY = bytes([1]) + bytes(31)  # the point (0, 1), encoded
IDENTITY_DID = "did:key:z6MkeXATEjyXENzBXBxgC5EHk2JE5aqd7qMGGtDpLUH1e2Sj"
IDENTITY_JWK = {"kty": "OKP", "crv": "Ed25519", "x": protocol.b64url_encode(IDENTITY)}


def forge(message: protocol.Message, key: protocol.SigningKey) -> bytes:
    """``message``, sent ``from`` the identity key's DID, as a JWS "signed" by that
    key without any private key: the signature is R = A (the key itself), S = 0.
    (The models refuse that DID as a sender, so the payload is edited as JSON.)"""
    header = {"alg": "Ed25519", "kid": protocol.kid_for_did(IDENTITY_DID), "typ": "vrm+json"}
    signed = json.loads(protocol.sign(message, key))
    payload = json.loads(protocol.b64url_decode(signed["payload"]))
    payload["from"] = IDENTITY_DID
    return json.dumps({"protected": protocol.b64url_encode(json.dumps(header).encode()),
                       "payload": protocol.b64url_encode(json.dumps(payload).encode()),
                       "signature": protocol.b64url_encode(IDENTITY + bytes(32))}).encode()


class IdentityKeyVendor(FakeVendor):
    """A vendor that shows the identity key in its discovery document (``weak``)
    and answers every message with an ``accepted`` receipt forged under it."""

    def __init__(self, *, weak: bool) -> None:
        super().__init__("Forger")
        self.weak = weak

    async def discovery(self, request: web.Request) -> web.Response:
        if not self.weak:
            return await super().discovery(request)
        document = {"vrm": ["1"], "id": IDENTITY_DID, "name": self.name,
                    "inbox": f"{request.url.origin()}/inbox",
                    "keys": [{**IDENTITY_JWK, "kid": protocol.kid_for_did(IDENTITY_DID)}],
                    "types": self.types}
        return web.json_response(document)

    async def inbox(self, request: web.Request) -> web.StreamResponse:
        if not self.weak:
            return await super().inbox(request)
        self.hits += 1
        message = protocol.parse(await request.read(), now=now(),
                                 keys=protocol.resolve_did_key, recipient=self.did)
        receipt = protocol.Receipt(
            id=protocol.new_message_id(), sender=self.did, to=message.sender,
            created=now(), thread=message.id,
            body=protocol.ReceiptBody.model_validate({"status": "accepted"}))
        return self.jose(forge(receipt, self.key))


def _receipts(home: Path) -> list[Any]:
    with sqlite3.connect(home / "vrm.db") as conn:
        return conn.execute("SELECT status FROM receipts").fetchall()


async def test_vendor_add_refuses_a_vendor_whose_key_is_the_identity_point(  # noqa: F811
        vrm, serve) -> None:
    forger, url = await serve(IdentityKeyVendor(weak=True))
    await vrm("init")
    ran = await vrm("vendor", "add", url, ok=False)
    assert ran.status != 0 and ran.stderr.startswith("vrm: ") and ran.stderr.count("\n") == 1
    assert "small order" in ran.stderr, ran.stderr
    assert forger.hits == 0  # no relationship.request was sent to it
    assert (await vrm("vendor", "list", "--json")).json() == []  # nothing pinned


async def test_a_receipt_forged_under_the_identity_key_is_no_receipt(  # noqa: F811
        vrm, serve, home: Path) -> None:
    """A sound vendor whose inbox (or someone on the path of its plain-http inbox)
    answers with receipts 'signed' R = A, S = 0 by the identity key: no receipt
    is stored, the message is not delivered, and the vendor is not held as if a
    real other key had signed."""
    forger, url = await serve(IdentityKeyVendor(weak=False))
    await vrm("init")
    await vrm("vendor", "add", url, "--share", "email")
    forger.weak = True  # from now on, the inbox answers with forged receipts
    hits = forger.hits
    ran = await vrm("profile", "set", "email=ann@example.org", "--json")
    [result] = ran.json()["results"]
    assert result["status"] == "pending" and result["receipt_status"] is None, result
    assert "not a valid receipt" in result["detail"]
    assert forger.hits == hits + 1
    assert [status for (status,) in _receipts(home)] == ["accepted"]  # the request's only
    [vendor] = (await vrm("vendor", "list", "--json")).json()
    assert vendor["status"] == "active"


async def test_a_store_that_pinned_the_identity_key_sends_nothing(  # noqa: F811
        vrm, serve, home: Path) -> None:
    """A store written before such keys were refused, with the identity key pinned:
    nothing is sent to that vendor (no receipt under its key could prove
    anything), the run ends with a result, and no forged receipt is stored."""
    forger, url = await serve(IdentityKeyVendor(weak=False))
    honest, honest_url = await serve(FakeVendor("Honest"))
    await vrm("init")
    await vrm("vendor", "add", url, "--share", "email")
    await vrm("vendor", "add", honest_url, "--share", "email")
    with sqlite3.connect(home / "vrm.db") as conn:
        conn.execute("UPDATE vendors SET vendor_did = ?, vendor_jwk = ? WHERE name = 'Forger'",
                     (IDENTITY_DID, json.dumps(IDENTITY_JWK)))
    forger.weak = True
    hits = forger.hits
    ran = await vrm("profile", "set", "email=ann@example.org", "--json", ok=False)
    assert "unexpected error" not in ran.stderr, ran
    results = {r["vendor"]: r for r in ran.json()["results"]}
    assert results["Forger"]["status"] == "failed" and results["Forger"]["receipt_status"] is None
    assert results["Honest"]["status"] == "delivered"
    assert forger.hits == hits  # nothing sent to it
    assert sorted(status for (status,) in _receipts(home)) == ["accepted"] * 3
    listed = {v["name"]: v["status"] for v in (await vrm("vendor", "list", "--json")).json()}
    assert listed == {"Forger": "key-changed", "Honest": "active"}
