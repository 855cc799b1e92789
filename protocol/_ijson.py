"""Strict I-JSON (RFC 7493) parsing of untrusted bytes.

Python's ``json`` is permissive in ways that matter for signed messages:
it keeps the last of duplicate keys, accepts NaN and Infinity, turns huge
integers into exact ints, detects UTF-16/32 by itself and accepts lone
surrogates. Each of those lets two parties read one signed message two ways,
so each is refused here.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from ._errors import MalformedMessage

__all__ = ["MAX_DEPTH", "MAX_SAFE_INTEGER", "as_bytes", "loads", "dumps"]

#: Deepest nesting of objects and arrays accepted.
MAX_DEPTH = 32
#: RFC 7493 §2.2: integers must be exactly representable as IEEE 754 doubles.
MAX_SAFE_INTEGER = 2**53 - 1


def _reject_constant(name: str) -> Any:
    raise MalformedMessage(f"{name} is not allowed in I-JSON (RFC 7493 §2.2)")


def _parse_int(text: str) -> int:
    # Length first: int() of a very long digit string is quadratic.
    if len(text) > 17:
        raise MalformedMessage(f"integer {text[:20]}… is beyond ±2^53 (RFC 7493 §2.2)")
    value = int(text)
    if not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
        raise MalformedMessage(f"integer {text} is beyond ±2^53 (RFC 7493 §2.2)")
    return value


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise MalformedMessage(f"number {text[:20]} overflows a double (RFC 7493 §2.2)")
    return value


def _object_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise MalformedMessage(f"duplicate member {key!r} (RFC 7493 §2.3)")
            seen.add(key)
    return obj


_DECODER = json.JSONDecoder(
    object_pairs_hook=_object_pairs,
    parse_int=_parse_int,
    parse_float=_parse_float,
    parse_constant=_reject_constant,
)


# A lone surrogate can only come from a \\u escape: the text was decoded from
# valid UTF-8, which cannot encode surrogates.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _check_tree(value: Any) -> None:
    """Refuse nesting deeper than MAX_DEPTH and strings that are not valid Unicode."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            if depth > MAX_DEPTH:
                raise MalformedMessage(f"nesting deeper than {MAX_DEPTH}")
            for key, child in item.items():
                _check_string(key)
                if isinstance(child, (dict, list)):
                    stack.append((child, depth + 1))
                elif isinstance(child, str):
                    _check_string(child)
        elif isinstance(item, list):
            if depth > MAX_DEPTH:
                raise MalformedMessage(f"nesting deeper than {MAX_DEPTH}")
            for child in item:
                if isinstance(child, (dict, list)):
                    stack.append((child, depth + 1))
                elif isinstance(child, str):
                    _check_string(child)


def _check_string(text: str) -> None:
    # RFC 7493 §2.1: no unpaired surrogates. JSON escapes like "\ud800" decode
    # to a lone surrogate, which cannot be encoded back to UTF-8.
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise MalformedMessage("string holds an unpaired surrogate (RFC 7493 §2.1)") from None


def as_bytes(data: object, *, what: str) -> bytes:
    """``data`` as bytes: bytes, bytearray and memoryview are accepted, anything
    else (a str above all: its bytes are not the ones that were signed) is refused."""
    if type(data) is bytes:
        return data
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    raise MalformedMessage(
        f"{what} must be bytes, bytearray or memoryview, not {type(data).__name__}")


def loads(data: bytes | bytearray | memoryview, *, what: str = "JSON text") -> dict[str, Any]:
    """Parse ``data`` as an I-JSON object, or raise :class:`MalformedMessage`."""
    data = as_bytes(data, what=what)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedMessage(f"{what} is not UTF-8 (RFC 7493 §2.1)") from None
    try:
        value = _DECODER.decode(text)
    except MalformedMessage:
        raise
    except RecursionError:
        raise MalformedMessage(f"nesting deeper than {MAX_DEPTH}") from None
    except (ValueError, TypeError) as exc:
        raise MalformedMessage(f"{what} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise MalformedMessage(f"{what} is not a JSON object")
    # The walk is needed only when the text could break a rule: more brackets
    # than MAX_DEPTH, or a surrogate escape. Both are rare, and counting is fast.
    if (text.count("{") + text.count("[") > MAX_DEPTH
            or ("\\u" in text and _SURROGATE_ESCAPE.search(text))):
        _check_tree(value)
    return value


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON, the form this implementation puts on the wire."""
    return _ENCODER.encode(value).encode()
