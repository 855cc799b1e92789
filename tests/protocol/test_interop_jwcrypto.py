"""Interop with jwcrypto, an implementation we did not write."""

from __future__ import annotations

import json

import pytest
from jwcrypto import jwk, jws

import protocol
from protocol import SigningKey, b64url_encode, parse, resolve_did_key, sign

from .helpers import NOW, envelope


def jwcrypto_private_key(key: SigningKey) -> jwk.JWK:
    return jwk.JWK(kty="OKP", crv="Ed25519", x=b64url_encode(key.public.raw),
                   d=b64url_encode(key.private_bytes()))


def test_our_signature_verifies_in_jwcrypto():
    agent, vendor = SigningKey.generate(), SigningKey.generate()
    message = protocol.Intent(id=protocol.new_message_id(), sender=agent.did, to=vendor.did,
                              created=NOW, body=protocol.IntentBody(summary="A touring bike"))
    raw = sign(message, agent)

    token = jws.JWS()
    token.allowed_algs = ["Ed25519"]  # pinned: never let the header choose
    token.deserialize(raw.decode())
    public = jwk.JWK(**agent.public.to_jwk())
    token.verify(public)
    assert json.loads(token.payload)["body"] == {"summary": "A touring bike"}
    assert token.jose_header["kid"] == agent.kid


def test_jwcrypto_rejects_our_message_with_another_key():
    agent = SigningKey.generate()
    message = protocol.Feedback(id="m", sender=agent.did, to="v", created=NOW,
                                body=protocol.FeedbackBody(score=3))
    token = jws.JWS()
    token.allowed_algs = ["Ed25519"]
    token.deserialize(sign(message, agent).decode())
    with pytest.raises(jws.InvalidJWSSignature):
        token.verify(jwk.JWK(**SigningKey.generate().public.to_jwk()))


@pytest.mark.parametrize("alg", ["Ed25519", "EdDSA"])
def test_jwcrypto_signature_verifies_here(alg):
    agent, vendor = SigningKey.generate(), SigningKey.generate()
    payload = envelope(agent.did, vendor.did, "contact.update",
                       {"changes": {"email": "ada@example.org"}})
    token = jws.JWS(json.dumps(payload).encode())
    token.allowed_algs = [alg]
    token.add_signature(jwcrypto_private_key(agent), alg=alg,
                        protected={"alg": alg, "kid": agent.kid, "typ": "vrm+json"})
    raw = token.serialize(compact=False).encode()

    message = parse(raw, now=NOW, keys=resolve_did_key, recipient=vendor.did)
    assert isinstance(message, protocol.ContactUpdate)
    assert message.body.changes.email == "ada@example.org"


def test_jwcrypto_hs256_forgery_is_refused():
    # The classic confusion: HMAC keyed with the public key bytes.
    agent, vendor = SigningKey.generate(), SigningKey.generate()
    payload = envelope(agent.did, vendor.did, "feedback", {"score": 0})
    secret = jwk.JWK(kty="oct", k=b64url_encode(agent.public.raw))
    token = jws.JWS(json.dumps(payload).encode())
    token.allowed_algs = ["HS256"]
    token.add_signature(secret, alg="HS256",
                        protected={"alg": "HS256", "kid": agent.kid, "typ": "vrm+json"})
    with pytest.raises(protocol.BadSignature):
        parse(token.serialize(compact=False).encode(), now=NOW, keys=resolve_did_key,
              recipient=vendor.did)


def test_jwk_round_trips_through_jwcrypto():
    key = SigningKey.generate()
    theirs = jwk.JWK(**key.public.to_jwk())
    ours = protocol.PublicKey.from_jwk(json.loads(theirs.export_public()))
    assert ours == key.public
