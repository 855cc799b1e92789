"""base64url without padding (RFC 7515 §2, RFC 4648 §5), decoded strictly."""

from __future__ import annotations

import binascii
import re

from ._errors import MalformedMessage

__all__ = ["b64url_encode", "b64url_decode"]

_ALPHABET = re.compile(r"[A-Za-z0-9_-]*")


_TO_STANDARD = bytes.maketrans(b"-_", b"+/")
_TO_URLSAFE = bytes.maketrans(b"+/", b"-_")
_PADDING = ("", "", "==", "=")
# RFC 4648 §3.5: the bits of the last character beyond the data are zero in the
# canonical encoding. Decoders ignore them, so without this check one byte
# string has 4 (or 16) encodings: a signature could change and still verify.
# By the length modulo 4: 2 characters carry 8 bits of 12, so the last one's
# index is a multiple of 16; 3 characters carry 16 bits of 18, a multiple of 4.
_CANONICAL_LAST = {2: frozenset("AQgw"), 3: frozenset("AEIMQUYcgkosw048")}


def b64url_encode(data: bytes) -> str:
    # base64.urlsafe_b64encode, without its layers of wrappers.
    return binascii.b2a_base64(data, newline=False).translate(_TO_URLSAFE).rstrip(
        b"=").decode("ascii")


def b64url_decode(text: object, *, what: str = "value") -> bytes:
    """Decode unpadded base64url, refusing padding, other alphabets, bad lengths and
    non-canonical text: ``b64url_encode(b64url_decode(text)) == text`` always holds."""
    if not isinstance(text, str) or _ALPHABET.fullmatch(text) is None or len(text) % 4 == 1:
        raise MalformedMessage(f"{what} is not unpadded base64url (RFC 7515 §2)")
    last = _CANONICAL_LAST.get(len(text) % 4)
    if last is not None and text[-1] not in last:
        raise MalformedMessage(
            f"{what} is not canonical base64url: the unused bits of its last character "
            f"are not zero (RFC 4648 §3.5)")
    try:
        # The alphabet is checked above, so this is base64.urlsafe_b64decode
        # without its layers of wrappers.
        return binascii.a2b_base64(
            (text + _PADDING[len(text) % 4]).encode("ascii").translate(_TO_STANDARD))
    except (binascii.Error, ValueError):  # pragma: no cover - alphabet already checked
        raise MalformedMessage(f"{what} is not unpadded base64url (RFC 7515 §2)") from None
