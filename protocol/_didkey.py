"""did:key identifiers for Ed25519 keys (W3C CCG did:key method, v0.7).

A did:key DID is the public key itself: ``did:key:`` + multibase base58btc
(prefix ``z``) of the multicodec varint for ed25519-pub (0xed 0x01) followed by
the 32 key bytes. Every such DID therefore begins ``did:key:z6Mk``. Its only
verification method is ``<did>#<multibase value>``, which is our ``kid``.
"""

from __future__ import annotations

from functools import lru_cache

from ._errors import UnknownKey

__all__ = ["did_from_public_bytes", "public_bytes_from_did", "kid_for_did", "did_from_kid",
           "is_did_key"]

_B58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {c: i for i, c in enumerate(_B58_ALPHABET)}
_ED25519_PUB = b"\xed\x01"  # multicodec ed25519-pub, as an unsigned varint
_PREFIX = "did:key:"
# An Ed25519 did:key is 8 + 48 characters; anything much longer is not one.
_MAX_DID_LENGTH = 64


def _b58encode(data: bytes) -> str:
    number = int.from_bytes(data, "big")
    out = []
    while number:
        number, rem = divmod(number, 58)
        out.append(_B58_ALPHABET[rem])
    zeros = len(data) - len(data.lstrip(b"\0"))
    return "1" * zeros + "".join(reversed(out))


def _b58decode(text: str) -> bytes:
    number = 0
    for char in text:
        digit = _B58_INDEX.get(char)
        if digit is None:
            raise ValueError(f"{char!r} is not a base58btc character")
        number = number * 58 + digit
    zeros = len(text) - len(text.lstrip("1"))
    body = number.to_bytes((number.bit_length() + 7) // 8, "big") if number else b""
    return b"\0" * zeros + body


def did_from_public_bytes(public: bytes) -> str:
    if len(public) != 32:
        raise ValueError("an Ed25519 public key is 32 bytes")
    return _PREFIX + "z" + _b58encode(_ED25519_PUB + public)


def public_bytes_from_did(did: object) -> bytes:
    """The 32 public key bytes of an Ed25519 did:key, or :class:`UnknownKey`."""
    if not isinstance(did, str) or not did.startswith(_PREFIX + "z") or len(did) > _MAX_DID_LENGTH:
        raise UnknownKey(f"{str(did)[:80]!r} is not an Ed25519 did:key")
    return _decode(did)


# Decoding is pure; a receiver sees the same few DIDs again and again.
@lru_cache(maxsize=65536)
def _decode(did: str) -> bytes:
    try:
        decoded = _b58decode(did[len(_PREFIX) + 1:])
    except ValueError as exc:
        raise UnknownKey(f"{did!r} is not an Ed25519 did:key: {exc}") from None
    if len(decoded) != 34 or decoded[:2] != _ED25519_PUB:
        raise UnknownKey(f"{did!r} is not an Ed25519 did:key")
    return decoded[2:]


def is_did_key(value: object) -> bool:
    try:
        public_bytes_from_did(value)
    except UnknownKey:
        return False
    return True


def kid_for_did(did: str) -> str:
    return f"{did}#{did[len(_PREFIX):]}"


def did_from_kid(kid: object) -> str:
    """The DID a ``kid`` names; the fragment must be the DID's own key."""
    if not isinstance(kid, str):
        raise UnknownKey("kid is not a string")
    did, sep, fragment = kid.partition("#")
    if not sep or fragment != did[len(_PREFIX):]:
        raise UnknownKey(f"kid {kid[:80]!r} is not <did:key>#<its key>")
    public_bytes_from_did(did)
    return did
