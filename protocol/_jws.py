"""JWS in the flattened JSON serialization (RFC 7515 §7.2.2), Ed25519 only.

Verification works on the base64url strings exactly as received: the signing
input is ``ASCII(protected) || '.' || ASCII(payload)`` (RFC 7515 §5.2), so no
message is ever re-serialized to be checked.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from ._b64 import b64url_decode, b64url_encode
from ._didkey import did_from_kid
from ._errors import BadSignature, MalformedMessage, MessageTooLarge, UnknownKey
from ._ijson import as_bytes, loads

if TYPE_CHECKING:
    from ._keys import KeyResolver, PublicKey, SigningKey

__all__ = [
    "MAX_MESSAGE_BYTES",
    "ACCEPTED_ALGORITHMS",
    "JWS_TYP",
    "VerifiedJWS",
    "protected_header_b64",
    "sign_payload",
    "verify_jws",
    "verify_signature",
    "check_header",
    "split_jws",
]

#: The largest message (the serialized JWS, as sent) that anyone must accept.
MAX_MESSAGE_BYTES = 64 * 1024
#: RFC 9864 names Ed25519; RFC 8037 called it EdDSA. Nothing else is accepted.
ACCEPTED_ALGORITHMS = frozenset({"Ed25519", "EdDSA"})
#: RFC 7515 §4.1.9: the media type application/vrm+json, shortened.
JWS_TYP = "vrm+json"
_ACCEPTED_TYP = frozenset({JWS_TYP, "application/" + JWS_TYP})
_HEADER_MEMBERS = frozenset({"alg", "kid", "typ"})
# Named so that the error says what was refused: these let a sender choose
# the key, or change how the signature is checked (RFC 8725 §3.1, RFC 7797).
_DANGEROUS_MEMBERS = ("jwk", "jku", "x5u", "x5c", "x5t", "x5t#S256", "crit", "b64")


def protected_header_b64(kid: str) -> bytes:
    header = {"alg": "Ed25519", "kid": kid, "typ": JWS_TYP}
    return b64url_encode(json.dumps(header, separators=(",", ":")).encode()).encode("ascii")


def sign_payload(payload: bytes, key: SigningKey) -> bytes:
    """Sign payload bytes; return the flattened JWS as compact JSON bytes."""
    payload_b64 = b64url_encode(payload).encode("ascii")
    signing_input = key.protected_b64 + b"." + payload_b64
    signature_b64 = b64url_encode(key.sign(signing_input)).encode("ascii")
    return (b'{"protected":"' + key.protected_b64 + b'","payload":"' + payload_b64
            + b'","signature":"' + signature_b64 + b'"}')


@dataclass(frozen=True, slots=True)
class VerifiedJWS:
    header: dict[str, Any]
    payload: bytes
    #: The key that verified the signature; its kid is the header's kid.
    key: PublicKey
    #: The DID the header's kid names: the only ``from`` the payload may carry.
    signer: str


def split_jws(jws: object) -> tuple[str, str, str]:
    """The three members of a flattened JWS object, refusing anything else."""
    if not isinstance(jws, dict):
        raise MalformedMessage("a message is a JWS object (RFC 7515 §7.2.2)")
    if set(jws) != {"protected", "payload", "signature"}:
        extra = sorted(set(jws) - {"protected", "payload", "signature"})
        missing = sorted({"protected", "payload", "signature"} - set(jws))
        detail = f"unexpected members {extra}" if extra else f"missing members {missing}"
        raise MalformedMessage(f"a message is exactly {{protected, payload, signature}}: {detail}")
    protected, payload, signature = jws["protected"], jws["payload"], jws["signature"]
    if not (isinstance(protected, str) and isinstance(payload, str)
            and isinstance(signature, str)):
        raise MalformedMessage("JWS members must be strings")
    return protected, payload, signature


def check_header(header: dict[str, Any]) -> tuple[str, str]:
    """Refuse every header but ours; return (alg, kid)."""
    for name in _DANGEROUS_MEMBERS:
        if name in header:
            raise BadSignature(f"header member {name!r} is not accepted")
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in ACCEPTED_ALGORITHMS:
        raise BadSignature(f"algorithm {str(alg)[:40]!r} is not accepted; use Ed25519")
    unknown = set(header) - _HEADER_MEMBERS
    if unknown:
        raise MalformedMessage(f"unknown header members {sorted(unknown)[:5]}")
    typ = header.get("typ")
    if not isinstance(typ, str) or typ.lower() not in _ACCEPTED_TYP:
        raise MalformedMessage(f"typ must be {JWS_TYP!r}")
    kid = header.get("kid")
    if not isinstance(kid, str):
        raise UnknownKey("the header has no kid")
    return alg, kid


#: Protected headers up to this long are remembered once checked (ours are ~150
#: characters); a sender uses the same header for every message it signs.
_CACHED_HEADER_LENGTH = 512


@lru_cache(maxsize=8192)
def _read_header(protected_b64: str) -> tuple[dict[str, Any], str, str]:
    """Decode and check a protected header; return it, its kid and the kid's DID.
    Refusals raise (and so are never cached); callers copy the header before
    handing it out."""
    header = loads(b64url_decode(protected_b64, what="protected"), what="the protected header")
    _, kid = check_header(header)
    # The kid must be <did:key>#<its key> whatever key resolver the caller uses:
    # the DID it names is the sender the payload must claim (PROTOCOL.md §1, §4).
    return header, kid, did_from_kid(kid)


def verify_jws(raw: bytes | bytearray | memoryview, keys: KeyResolver) -> VerifiedJWS:
    """Check a flattened JWS and return its header, payload bytes and key.

    Refusals are ordered cheapest first: size, JSON, shape, header, key, and
    only then the signature.
    """
    raw = as_bytes(raw, what="a message")
    if len(raw) > MAX_MESSAGE_BYTES:
        raise MessageTooLarge(f"a message is at most {MAX_MESSAGE_BYTES} bytes")
    protected_b64, payload_b64, signature_b64 = split_jws(loads(raw, what="the message"))
    if len(protected_b64) <= _CACHED_HEADER_LENGTH:
        header, kid, signer = _read_header(protected_b64)
        header = dict(header)
    else:
        header, kid, signer = _read_header.__wrapped__(protected_b64)
    key = keys(kid)
    if key is None:
        raise UnknownKey(f"key {kid[:100]!r} is not known here")
    if key.kid != kid:
        # A resolver that answers with some other key must not let that key
        # sign in the name of the DID the kid names.
        raise UnknownKey(f"the key found for {kid[:100]!r} is another key ({key.kid[:100]!r})")
    payload = b64url_decode(payload_b64, what="payload")
    if not verify_signature(protected_b64, payload_b64, signature_b64, key):
        raise BadSignature("the signature does not verify with the sender's key")
    return VerifiedJWS(header, payload, key, signer)


def verify_signature(protected_b64: str, payload_b64: str, signature_b64: str,
                     key: PublicKey) -> bool:
    """Check an Ed25519 JWS signature over the base64url text exactly as received:
    the signing input is ASCII(protected) || '.' || ASCII(payload) (RFC 7515 §5.2)."""
    signature = b64url_decode(signature_b64, what="signature")
    if not (isinstance(protected_b64, str) and isinstance(payload_b64, str)):
        raise MalformedMessage("JWS members must be strings")
    try:
        signing_input = f"{protected_b64}.{payload_b64}".encode("ascii")
    except UnicodeEncodeError:
        raise MalformedMessage("JWS members must be base64url text") from None
    return len(signature) == 64 and key.verify(signature, signing_input)
