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


def b64url_encode(data: bytes) -> str:
    # base64.urlsafe_b64encode, without its layers of wrappers.
    return binascii.b2a_base64(data, newline=False).translate(_TO_URLSAFE).rstrip(
        b"=").decode("ascii")


def b64url_decode(text: object, *, what: str = "value") -> bytes:
    """Decode unpadded base64url, refusing padding, other alphabets and bad lengths."""
    if not isinstance(text, str) or _ALPHABET.fullmatch(text) is None or len(text) % 4 == 1:
        raise MalformedMessage(f"{what} is not unpadded base64url (RFC 7515 §2)")
    try:
        # The alphabet is checked above, so this is base64.urlsafe_b64decode
        # without its layers of wrappers.
        return binascii.a2b_base64(
            (text + _PADDING[len(text) % 4]).encode("ascii").translate(_TO_STANDARD))
    except (binascii.Error, ValueError):  # pragma: no cover - alphabet already checked
        raise MalformedMessage(f"{what} is not unpadded base64url (RFC 7515 §2)") from None
