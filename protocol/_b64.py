"""base64url without padding (RFC 7515 §2, RFC 4648 §5), decoded strictly."""

from __future__ import annotations

import base64
import binascii
import re

from ._errors import MalformedMessage

__all__ = ["b64url_encode", "b64url_decode"]

_ALPHABET = re.compile(r"[A-Za-z0-9_-]*")


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: object, *, what: str = "value") -> bytes:
    """Decode unpadded base64url, refusing padding, other alphabets and bad lengths."""
    if not isinstance(text, str) or _ALPHABET.fullmatch(text) is None or len(text) % 4 == 1:
        raise MalformedMessage(f"{what} is not unpadded base64url (RFC 7515 §2)")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):  # pragma: no cover - alphabet already checked
        raise MalformedMessage(f"{what} is not unpadded base64url (RFC 7515 §2)") from None
