"""Sealing private keys under a passphrase."""

from __future__ import annotations

import pytest

from protocol import KeySealer, SealedKeyError, SigningKey, WrongPassphrase, b64url_decode

FAST = {"n": 2**10}  # the production default is 2**15; tests keep scrypt cheap


def test_seal_and_unseal():
    sealer = KeySealer.create("correct horse", **FAST)
    key = SigningKey.generate()
    sealed = sealer.seal(key)
    assert key.private_bytes() not in b64url_decode(sealed)
    reopened = KeySealer.open("correct horse", sealer.params)
    assert reopened.unseal(sealed, did=key.did).private_bytes() == key.private_bytes()


def test_wrong_passphrase_is_refused():
    sealer = KeySealer.create("correct horse", **FAST)
    with pytest.raises(WrongPassphrase, match="passphrase is wrong"):
        KeySealer.open("battery staple", sealer.params)


def test_a_sealed_key_cannot_be_moved_to_another_identity():
    sealer = KeySealer.create("pw", **FAST)
    key, other = SigningKey.generate(), SigningKey.generate()
    with pytest.raises(SealedKeyError):
        sealer.unseal(sealer.seal(key), did=other.did)


@pytest.mark.parametrize("params", [{}, {"kdf": "md5"}, {"kdf": "scrypt", "n": "x"}])
def test_damaged_parameters(params):
    with pytest.raises(SealedKeyError) as info:
        KeySealer.open("pw", params)
    assert not isinstance(info.value, WrongPassphrase)


def test_empty_passphrase_is_refused():
    with pytest.raises(SealedKeyError):
        KeySealer.create("")


def test_repr_hides_secrets():
    assert "secret" in repr(KeySealer.create("pw", **FAST))
    key = SigningKey.generate()
    assert key.private_bytes().hex() not in repr(key)
