"""Sealing private keys at rest: scrypt (RFC 7914) derives a key-encryption
key from a passphrase once; AES-256-GCM then seals each private key with its
DID as associated data, so a sealed key cannot be moved to another identity.

Deriving once per store (not once per key) keeps opening a store with
thousands of pairwise keys fast while each guess at the passphrase still
costs a full scrypt.
"""

from __future__ import annotations

import hmac
import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from ._b64 import b64url_decode, b64url_encode
from ._errors import MalformedMessage, SealedKeyError, WrongPassphrase
from ._keys import SigningKey

__all__ = ["KeySealer"]

_CHECK_LABEL = b"vrm key-encryption-key check"


@dataclass(frozen=True)
class KeySealer:
    """Seals and opens private keys under one passphrase-derived key."""

    _kek: bytes
    params: dict[str, object]

    @classmethod
    def create(cls, passphrase: str, *, n: int = 2**15, r: int = 8, p: int = 1) -> KeySealer:
        """A new sealer with a fresh salt. Store ``params``; it is not secret."""
        if not passphrase:
            raise SealedKeyError("the passphrase is empty")
        salt = os.urandom(16)
        kek = cls._derive(passphrase, salt, n, r, p)
        check = hmac.new(kek, _CHECK_LABEL, "sha256").digest()
        params = {"kdf": "scrypt", "n": n, "r": r, "p": p, "salt": b64url_encode(salt),
                  "check": b64url_encode(check)}
        return cls(kek, params)

    @classmethod
    def open(cls, passphrase: str, params: dict[str, object]) -> KeySealer:
        """Re-derive the key from stored ``params``; a wrong passphrase is refused."""
        try:
            if params["kdf"] != "scrypt":
                raise SealedKeyError(f"unknown key derivation {params['kdf']!r}")
            n, r, p = int(params["n"]), int(params["r"]), int(params["p"])  # type: ignore[arg-type]
            salt = b64url_decode(params["salt"], what="salt")
            check = b64url_decode(params["check"], what="check")
        except (KeyError, TypeError, ValueError, MalformedMessage) as exc:
            raise SealedKeyError(f"the key store's parameters are damaged: {exc}") from None
        kek = cls._derive(passphrase, salt, n, r, p)
        if not hmac.compare_digest(hmac.new(kek, _CHECK_LABEL, "sha256").digest(), check):
            raise WrongPassphrase("the passphrase is wrong")
        return cls(kek, dict(params))

    @staticmethod
    def _derive(passphrase: str, salt: bytes, n: int, r: int, p: int) -> bytes:
        return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase.encode("utf-8"))

    def seal(self, key: SigningKey) -> str:
        nonce = os.urandom(12)
        sealed = AESGCM(self._kek).encrypt(nonce, key.private_bytes(), key.did.encode())
        return b64url_encode(nonce + sealed)

    def unseal(self, sealed: str, *, did: str) -> SigningKey:
        try:
            blob = b64url_decode(sealed, what="sealed key")
            raw = AESGCM(self._kek).decrypt(blob[:12], blob[12:], did.encode())
        except (MalformedMessage, InvalidTag, ValueError):
            raise SealedKeyError(f"the sealed key for {did} cannot be opened") from None
        key = SigningKey.from_private_bytes(raw)
        if key.did != did:
            raise SealedKeyError(f"the sealed key does not belong to {did}")
        return key

    def __repr__(self) -> str:
        return "KeySealer(<secret>)"
