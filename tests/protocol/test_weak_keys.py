"""Issue 9, item 1: weak Ed25519 public keys are refused wherever a key is decoded.

The table is every encoding of a point of small order (the 8 points of order
1, 2, 4 and 8, each in both sign-bit forms: libsodium's blocklist,
crypto_core/ed25519/ref10 ``ge25519_has_small_order``, which ignores the sign
bit) and non-canonical encodings with y >= p (RFC 8032 §5.1.3, step 1: "If
the resulting value is >= p, decoding fails"). The installed OpenSSL accepts
all of them, so the check is ours.
"""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

import protocol
from protocol import DiscoveryError, PublicKey, UnknownKey, b64url_encode
from protocol._didkey import did_from_public_bytes

from .helpers import NOW, envelope

P = 2**255 - 19
SIGN = 1 << 255


def encode(y: int, sign: int = 0) -> bytes:
    return (y | (SIGN if sign else 0)).to_bytes(32, "little")


ORDER_8_A = bytes.fromhex("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05")
ORDER_8_B = bytes.fromhex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a")

WEAK_KEYS = {
    "identity (order 1)": encode(1),
    "identity, sign bit set": encode(1, 1),
    "y = p - 1 (order 2)": encode(P - 1),
    "y = p - 1, sign bit set": encode(P - 1, 1),
    "y = 0 (order 4)": encode(0),
    "y = 0, sign bit set (order 4)": encode(0, 1),
    "order 8, first y": ORDER_8_A,
    "order 8, first y, sign bit set": encode(int.from_bytes(ORDER_8_A, "little"), 1),
    "order 8, second y": ORDER_8_B,
    "order 8, second y, sign bit set": encode(int.from_bytes(ORDER_8_B, "little"), 1),
    "y = p (non-canonical 0)": encode(P),
    "y = p + 1 (non-canonical identity)": encode(P + 1),
    "y = p + 1, sign bit set": encode(P + 1, 1),
    "y = 2^255 - 1 (largest non-canonical)": encode(2**255 - 1),
    "y = p + 18, sign bit set": encode(P + 18, 1),
}
CASES = pytest.mark.parametrize("raw", list(WEAK_KEYS.values()), ids=list(WEAK_KEYS))

IDENTITY_DID = "did:key:z6MkeXATEjyXENzBXBxgC5EHk2JE5aqd7qMGGtDpLUH1e2Sj"


def forged(did: str, payload: dict) -> bytes:
    """A JWS 'signed' by the identity key without any private key: R = A, S = 0."""
    header = {"alg": "Ed25519", "kid": protocol.kid_for_did(did), "typ": "vrm+json"}
    protected = b64url_encode(json.dumps(header).encode())
    body = b64url_encode(json.dumps(payload).encode())
    signature = encode(1) + bytes(32)
    return json.dumps({"protected": protected, "payload": body,
                       "signature": b64url_encode(signature)}).encode()


def test_the_issue_s_did_is_the_identity_point() -> None:
    assert did_from_public_bytes(encode(1)) == IDENTITY_DID


def test_the_attack_is_real_openssl_verifies_the_forgery() -> None:
    """Why the check exists: the bare library accepts 'R = A, S = 0' under the identity key."""
    message = b"any message at all"
    Ed25519PublicKey.from_public_bytes(encode(1)).verify(encode(1) + bytes(32), message)


@CASES
def test_check_public_key_refuses(raw: bytes) -> None:
    with pytest.raises(UnknownKey):
        protocol.check_public_key(raw)


@CASES
def test_a_did_key_of_a_weak_key_is_not_a_did_key(raw: bytes) -> None:
    did = did_from_public_bytes(raw)
    assert not protocol.is_did_key(did)
    with pytest.raises(UnknownKey):
        PublicKey.from_did(did)
    with pytest.raises(UnknownKey):
        protocol.resolve_did_key(protocol.kid_for_did(did))


@CASES
def test_a_jwk_of_a_weak_key_is_refused(raw: bytes) -> None:
    with pytest.raises(UnknownKey):
        PublicKey.from_jwk({"kty": "OKP", "crv": "Ed25519", "x": b64url_encode(raw)})


def test_ordinary_keys_still_pass() -> None:
    for _ in range(50):
        key = protocol.SigningKey.generate()
        assert protocol.check_public_key(key.public.raw) == key.public.raw
        assert protocol.is_did_key(key.did)


def test_parse_refuses_a_forged_message_from_the_identity_key() -> None:
    vendor = protocol.SigningKey.generate()
    raw = forged(IDENTITY_DID, envelope(IDENTITY_DID, vendor.did, "relationship.request", {}))
    with pytest.raises(UnknownKey) as caught:
        protocol.parse(raw, now=NOW, keys=protocol.resolve_did_key, recipient=vendor.did)
    assert caught.value.problem == "unknown-key"


@CASES
def test_discovery_refuses_a_vendor_whose_key_is_weak(raw: bytes) -> None:
    did = did_from_public_bytes(raw)
    document = {"vrm": ["1"], "id": did, "name": "Weak", "inbox": "https://shop.example/inbox",
                "keys": [{"kty": "OKP", "crv": "Ed25519", "x": b64url_encode(raw),
                          "kid": protocol.kid_for_did(did)}],
                "types": ["relationship.request"]}
    with pytest.raises(DiscoveryError):
        protocol.parse_discovery(json.dumps(document).encode(), url="https://shop.example")


def test_a_receipt_forged_under_a_weak_key_is_refused_by_a_pinned_resolver() -> None:
    # A pinned key cannot even be built from a weak key, so a forged receipt
    # has nothing to verify against.
    with pytest.raises(UnknownKey):
        protocol.pinned_keys(PublicKey.from_did(IDENTITY_DID))
