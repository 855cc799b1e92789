"""did:key identifiers (W3C CCG did:key method)."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

import protocol
from protocol import PublicKey, SigningKey, UnknownKey, did_from_kid, kid_for_did
from protocol._didkey import _b58decode, did_from_public_bytes, public_bytes_from_did

# From the did:key specification's example DID document (also used by
# aries-framework-go's fingerprint tests): base58 public key -> DID.
SPEC_PUBLIC_B58 = "B12NYF8RrR3h41TDCTJojY59usg3mbtbjnFs7Eud1Y6u"
SPEC_DID = "did:key:z6MkpTHR8VNsBxYAAWHut2Geadd9jSwuBV8xRoAnwWsdvktH"


def test_spec_vector_encodes_and_decodes():
    public = _b58decode(SPEC_PUBLIC_B58)
    assert did_from_public_bytes(public) == SPEC_DID
    assert public_bytes_from_did(SPEC_DID) == public


def test_kid_is_did_hash_multibase():
    assert kid_for_did(SPEC_DID) == SPEC_DID + "#z6MkpTHR8VNsBxYAAWHut2Geadd9jSwuBV8xRoAnwWsdvktH"
    assert did_from_kid(kid_for_did(SPEC_DID)) == SPEC_DID


@given(st.binary(min_size=32, max_size=32).filter(
    lambda raw: protocol.is_did_key(did_from_public_bytes(raw))))
def test_any_public_key_round_trips(raw):
    did = did_from_public_bytes(raw)
    assert did.startswith("did:key:z6Mk")
    assert public_bytes_from_did(did) == raw


def test_generated_key_did_matches_public_key():
    key = SigningKey.generate()
    assert PublicKey.from_did(key.did) == key.public
    assert key.kid == kid_for_did(key.did)


@pytest.mark.parametrize("did", [
    "did:web:example.com",
    "did:key:",
    "did:key:z",
    "did:key:zzzz0OIl",  # 0, O, I and l are not base58btc
    "did:key:z6LSbysY2xFMRpGMhb7tFTLMpeuPRaqaWM1yECx2AtzE3KCc",  # an X25519 key, not Ed25519
    SPEC_DID + "x",
    SPEC_DID[:-1],
    "did:key:z" + "1" * 200,
    42,
    None,
])
def test_not_an_ed25519_did_key(did):
    with pytest.raises(UnknownKey):
        public_bytes_from_did(did)
    assert not protocol.is_did_key(did)


@pytest.mark.parametrize("kid", [
    SPEC_DID,  # no fragment
    SPEC_DID + "#key-1",
    SPEC_DID + "#z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp",  # another key's fragment
    "https://example.com/keys/1",
    123,
])
def test_kid_must_be_the_dids_own_key(kid):
    with pytest.raises(UnknownKey):
        did_from_kid(kid)
