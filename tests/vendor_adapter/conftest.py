"""Fixtures for the vendor adapter: a vendor on a temporary SQLite file, its
aiohttp test client, and people (agents) who sign messages with protocol/ or
with jwcrypto, an independent JOSE implementation."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from jwcrypto import jwk, jws

import protocol
from vendor_adapter import Vendor
from vendor_adapter.aiohttp import InboxLimits, vrm_app

JOSE = {"Content-Type": "application/jose+json"}
PASSPHRASE = "correct horse battery staple"


def now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class Person:
    """One pairwise identity of a person's agent, signing with protocol/."""

    vendor_did: str
    key: protocol.SigningKey = field(default_factory=protocol.SigningKey.generate)

    @property
    def did(self) -> str:
        return self.key.did

    def envelope(self, type_: str, body: dict[str, Any], **extra: Any) -> dict[str, Any]:
        created = extra.pop("created", now())
        payload = {"vrm": "1", "id": extra.pop("id", protocol.new_message_id()), "type": type_,
                   "from": self.did, "to": extra.pop("to", self.vendor_did),
                   "created": protocol.format_time(created), "body": body}
        payload.update(extra)
        return payload

    def sign_payload(self, payload: dict[str, Any] | bytes) -> bytes:
        raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        return protocol.sign_payload(raw, self.key)

    def message(self, type_: str, body: dict[str, Any], **extra: Any) -> bytes:
        return self.sign_payload(self.envelope(type_, body, **extra))

    def request(self, **profile: Any) -> bytes:
        return self.message("relationship.request", {"profile": profile} if profile else {})


class JwcryptoPerson(Person):
    """The same person, signing with jwcrypto instead of protocol/ (alg EdDSA, RFC 8037)."""

    def __init__(self, vendor_did: str) -> None:
        self.jwk = jwk.JWK.generate(kty="OKP", crv="Ed25519")
        raw = protocol.b64url_decode(self.jwk.export_public(as_dict=True)["x"], what="x")
        self.public = protocol.PublicKey(raw)
        super().__init__(vendor_did)

    @property
    def did(self) -> str:  # type: ignore[override]
        return self.public.did

    def sign_payload(self, payload: dict[str, Any] | bytes, *, header: dict[str, Any] | None = None
                     ) -> bytes:
        raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        token = jws.JWS(raw)
        protected = header or {"alg": "EdDSA", "kid": self.public.kid, "typ": "vrm+json"}
        token.add_signature(self.jwk, alg=protected["alg"], protected=json.dumps(protected))
        return token.serialize().encode()


def verify_receipt(raw: bytes, discovery: dict[str, Any], to: str) -> dict[str, Any]:
    """Verify a receipt with jwcrypto against the key in the discovery document;
    return its payload. The algorithm is pinned, never taken from the header."""
    (key_doc,) = [k for k in discovery["keys"] if k["kid"].startswith(discovery["id"] + "#")]
    key = jwk.JWK(**key_doc)
    token = jws.JWS()
    token.allowed_algs = ["Ed25519", "EdDSA"]
    token.deserialize(raw.decode())
    token.verify(key)
    header = json.loads(protocol.b64url_decode(json.loads(raw)["protected"], what="h"))
    assert header["kid"] == key_doc["kid"]
    payload = json.loads(token.payload)
    assert payload["type"] == "receipt"
    assert payload["from"] == discovery["id"]
    assert payload["to"] == to
    return payload


@pytest.fixture
def db_path(tmp_path: Any) -> str:
    return str(tmp_path / "crm.db")


@pytest.fixture
def vendor(db_path: str) -> Iterator[Vendor]:
    v = Vendor.open(db_path, name="Bikes4U", passphrase=PASSPHRASE)
    yield v
    v.close()


LIMITS = InboxLimits(body_timeout=1.0)


@dataclass
class Inbox:
    """The vendor behind a real aiohttp test server, and helpers to talk to it."""

    client: Any
    vendor: Vendor
    discovery: dict[str, Any]

    async def post(self, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, str, bytes]:
        resp = await self.client.post("/inbox", data=body, headers=headers or JOSE)
        return resp.status, resp.headers.get("Content-Type", ""), await resp.read()

    async def send(self, person: Person, raw: bytes, *, status: int = 200) -> dict[str, Any]:
        """Post a signed message; check the HTTP status; return the verified receipt body."""
        code, ctype, body = await self.post(raw)
        assert code == status, (code, body[:500])
        assert ctype.startswith("application/jose+json")
        return verify_receipt(body, self.discovery, person.did)["body"]

    async def problem(self, raw: bytes, status: int, urn: str,
                      headers: dict[str, str] | None = None) -> dict[str, Any]:
        code, ctype, body = await self.post(raw, headers)
        assert code == status, (code, body[:500])
        assert ctype.startswith("application/problem+json")
        problem = json.loads(body)
        assert problem["type"] == urn
        assert problem["status"] == status
        return problem

    def person(self) -> Person:
        return Person(self.vendor.did)

    async def related(self, **profile: Any) -> Person:
        person = self.person()
        receipt = await self.send(person, person.request(**profile))
        assert receipt["status"] == "accepted"
        return person

    def snapshot(self) -> tuple[Any, ...]:
        crm = self.vendor.crm
        return (crm.contacts(), crm.leads(), crm.activities(), crm.feedback())


@pytest.fixture
async def inbox(vendor: Vendor, aiohttp_client: Any) -> AsyncIterator[Inbox]:
    client = await aiohttp_client(vrm_app(vendor, limits=LIMITS))
    resp = await client.get("/.well-known/vrm")
    assert resp.status == 200
    yield Inbox(client, vendor, await resp.json())


__all__ = ["Person", "JwcryptoPerson", "verify_receipt", "Inbox", "JOSE", "PASSPHRASE", "now",
           "timedelta"]
