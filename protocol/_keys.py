"""Ed25519 keys: signing keys, public keys, did:key identities and JWKs (RFC 8037)."""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from ._b64 import b64url_decode, b64url_encode
from ._didkey import check_public_key, did_from_kid, did_from_public_bytes, kid_for_did, public_bytes_from_did
from ._errors import MalformedMessage, UnknownKey
from ._jws import protected_header_b64

__all__ = ["PublicKey", "SigningKey", "KeyResolver", "resolve_did_key", "pinned_keys"]


class PublicKey:
    """An Ed25519 public key with its did:key identity."""

    __slots__ = ("_key", "raw", "did", "kid")

    def __init__(self, raw: bytes) -> None:
        self._key = Ed25519PublicKey.from_public_bytes(raw)
        self.raw = raw
        self.did = did_from_public_bytes(raw)
        self.kid = kid_for_did(self.did)

    @classmethod
    def from_did(cls, did: str) -> PublicKey:
        return cls(public_bytes_from_did(did))

    @classmethod
    def from_jwk(cls, jwk: object) -> PublicKey:
        """Read a public OKP/Ed25519 JWK (RFC 8037 §2). Private members are refused."""
        if not isinstance(jwk, dict) or jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
            raise UnknownKey("the JWK is not an OKP Ed25519 key (RFC 8037 §2)")
        if "d" in jwk:
            raise UnknownKey("the JWK holds a private key; publish only the public part")
        try:
            raw = b64url_decode(jwk.get("x"), what="JWK x")
        except MalformedMessage as exc:
            raise UnknownKey(str(exc)) from None
        key = cls(check_public_key(raw))
        if "kid" in jwk and jwk["kid"] != key.kid:
            raise UnknownKey(f"the JWK's kid {str(jwk['kid'])[:80]!r} is not {key.kid!r}")
        return key

    def to_jwk(self) -> dict[str, str]:
        return {"kty": "OKP", "crv": "Ed25519", "x": b64url_encode(self.raw), "kid": self.kid}

    def verify(self, signature: bytes, data: bytes) -> bool:
        try:
            self._key.verify(signature, data)
        except InvalidSignature:
            return False
        return True

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PublicKey) and other.raw == self.raw

    def __hash__(self) -> int:
        return hash(self.raw)

    def __repr__(self) -> str:
        return f"PublicKey({self.did!r})"


class SigningKey:
    """An Ed25519 private key. Its ``repr`` never shows the secret."""

    __slots__ = ("_key", "public", "protected_b64")

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key
        raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.public = PublicKey(raw)
        # The protected header is the same for every message this key signs.
        self.protected_b64 = protected_header_b64(self.public.kid)

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_private_bytes(cls, raw: bytes) -> SigningKey:
        return cls(Ed25519PrivateKey.from_private_bytes(raw))

    def private_bytes(self) -> bytes:
        """The 32-byte seed. Seal it (see ``protocol.seal``) before storing it."""
        return self._key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())

    @property
    def did(self) -> str:
        return self.public.did

    @property
    def kid(self) -> str:
        return self.public.kid

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data)

    def __repr__(self) -> str:
        return f"SigningKey({self.did!r})"


#: Given a ``kid`` from a protected header, return the key to verify with,
#: or None if the key is not acceptable to the caller.
KeyResolver = Callable[[str], "PublicKey | None"]


@lru_cache(maxsize=65536)
def _public_key_for_did(did: str) -> PublicKey:
    return PublicKey.from_did(did)


def resolve_did_key(kid: str) -> PublicKey:
    """Resolve any did:key kid to its key: did:key DIDs are self-certifying.

    Vendors use this: anyone may open a relationship, and the DID is the key.
    """
    return _public_key_for_did(did_from_kid(kid))


def pinned_keys(*keys: PublicKey) -> KeyResolver:
    """A resolver that knows only ``keys`` (an agent pins each vendor's key)."""
    table = {key.kid: key for key in keys}
    return table.get
