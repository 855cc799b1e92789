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
           "is_did_key", "check_public_key"]

_B58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {c: i for i, c in enumerate(_B58_ALPHABET)}
_ED25519_PUB = b"\xed\x01"  # multicodec ed25519-pub, as an unsigned varint
_PREFIX = "did:key:"
# An Ed25519 did:key is 8 + 48 characters; anything much longer is not one.
_MAX_DID_LENGTH = 64


_P = 2**255 - 19
# The y-coordinates of the 8 Ed25519 points of small order (RFC 8032 §5.1; the
# curve's cofactor is 8): the identity (y = 1, order 1), y = p - 1 (order 2),
# y = 0 (two points, order 4) and the two y-coordinates below (four points,
# order 8). This is libsodium's blocklist (crypto_core/ed25519/ref10,
# ge25519_has_small_order), which likewise ignores the sign bit, so both
# encodings of each point are refused. A small-order public key A makes
# "R = A, S = 0" verify for every message (the identity always; see
# tests/protocol/test_weak_keys.py), and OpenSSL accepts such keys.
_SMALL_ORDER_Y = frozenset({
    0,
    1,
    _P - 1,
    int.from_bytes(bytes.fromhex(
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05"), "little"),
    int.from_bytes(bytes.fromhex(
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"), "little"),
})


def check_public_key(public: bytes) -> bytes:
    """Return ``public`` if it is an acceptable Ed25519 public key, else raise :class:`UnknownKey`.

    The one check every decoded key passes (did:key and JWK alike): 32 bytes;
    a canonical encoding of y (y < p; RFC 8032 §5.1.3 step 1 says decoding
    fails otherwise); and not one of the 8 points of small order in either
    sign-bit form (libsodium's blocklist; RFC 8032 §5.1.7 leaves this to the
    verifier).
    """
    if len(public) != 32:
        raise UnknownKey("an Ed25519 public key is 32 bytes")
    y = int.from_bytes(public, "little") & ((1 << 255) - 1)
    if y >= _P:
        raise UnknownKey("the Ed25519 public key is not canonically encoded (y >= p, RFC 8032 §5.1.3)")
    if y in _SMALL_ORDER_Y:
        raise UnknownKey("the Ed25519 public key is a point of small order, which verifies forged "
                         "signatures; it is refused")
    return public


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
    try:
        return check_public_key(decoded[2:])
    except UnknownKey as exc:
        raise UnknownKey(f"{did!r}: {exc}") from None


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
