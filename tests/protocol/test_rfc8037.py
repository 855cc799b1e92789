"""RFC 8037 Appendix A test vectors, transcribed from the RFC.

A.1: the Ed25519 private key {"kty":"OKP","crv":"Ed25519","d":..,"x":..}
A.4: the JWS of "Example of Ed25519 signing" with {"alg":"EdDSA"}
"""

from __future__ import annotations

import pytest

import protocol
from protocol import (
    MalformedMessage,
    PublicKey,
    SigningKey,
    b64url_decode,
    b64url_encode,
    verify_signature,
)

# RFC 8037 §A.1
A1_D = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"
A1_X = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
# RFC 8037 §A.4 (compact serialization)
A4_PROTECTED = "eyJhbGciOiJFZERTQSJ9"
A4_PAYLOAD = "RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc"
A4_SIGNATURE = ("hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg")


def test_a1_private_key_gives_the_a1_public_key():
    key = SigningKey.from_private_bytes(b64url_decode(A1_D))
    assert b64url_encode(key.public.raw) == A1_X
    assert key.public.to_jwk()["x"] == A1_X


def test_a4_jws_verifies_with_the_a1_public_key():
    public = PublicKey.from_jwk({"kty": "OKP", "crv": "Ed25519", "x": A1_X})
    assert verify_signature(A4_PROTECTED, A4_PAYLOAD, A4_SIGNATURE, public)
    assert b64url_decode(A4_PAYLOAD) == b"Example of Ed25519 signing"


def test_a4_header_names_an_accepted_algorithm():
    header = protocol.loads(b64url_decode(A4_PROTECTED))
    assert header == {"alg": "EdDSA"}
    assert header["alg"] in protocol.ACCEPTED_ALGORITHMS


def test_signing_the_a4_input_reproduces_the_a4_signature():
    # Ed25519 is deterministic (RFC 8032 §5.1.6), so our signer must match exactly.
    key = SigningKey.from_private_bytes(b64url_decode(A1_D))
    signature = key.sign(f"{A4_PROTECTED}.{A4_PAYLOAD}".encode())
    assert b64url_encode(signature) == A4_SIGNATURE


@pytest.mark.parametrize("tamper", ["payload", "signature", "protected"])
def test_a4_jws_fails_when_any_part_changes(tamper):
    public = PublicKey.from_jwk({"kty": "OKP", "crv": "Ed25519", "x": A1_X})
    parts = {"protected": A4_PROTECTED, "payload": A4_PAYLOAD, "signature": A4_SIGNATURE}
    value = parts[tamper]
    parts[tamper] = value[:-2] + ("A" if value[-2] != "A" else "B") + value[-1]
    assert not verify_signature(parts["protected"], parts["payload"], parts["signature"], public)


@pytest.mark.parametrize("protected, payload", [("é", A4_PAYLOAD), (A4_PROTECTED, None),
                                                (b"eyJ", A4_PAYLOAD)])
def test_verify_signature_refuses_members_that_are_not_base64url_text(protected, payload):
    public = PublicKey(b64url_decode(A1_X))
    with pytest.raises(MalformedMessage):
        verify_signature(protected, payload, A4_SIGNATURE, public)
