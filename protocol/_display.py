"""Untrusted text made safe to show: every string a peer or a person sent
(a vendor's name, an offer's summary, a problem's detail, a CRM field) passes
through :func:`display_text` before it reaches a terminal, and every JSON
document printed for people or scripts through :func:`display_json`.

What is neutralised, and why (ECMA-48; Unicode UAX #9):
- C0 controls (U+0000-U+001F) and DEL (U+007F): ESC starts terminal escape
  sequences (clear the screen ``ESC[2J``, set the window title ``ESC]0;``,
  write the clipboard ``ESC]52;``, hidden hyperlinks ``ESC]8;;``); CR and LF
  forge whole lines.
- C1 controls (U+0080-U+009F): U+009B is a one-character CSI, U+009D an OSC.
- The bidirectional controls U+061C, U+200E, U+200F, U+202A-U+202E and
  U+2066-U+2069: they reorder what is shown (U+202E turns ``txt.exe`` around).

Each is shown visibly escaped (``\\x1b``, ``\\u202e``), never interpreted. A
backslash is left alone, so the output is for reading, not a reversible
encoding; ``--json`` output keeps the exact value, as ``\\u`` escapes.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["display_text", "display_json", "UNSAFE_CHARACTERS"]

_BIDI = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
#: Every character that :func:`display_text` escapes (a regex character class).
UNSAFE_CHARACTERS = "\x00-\x1f\x7f-\x9f" + _BIDI
_UNSAFE = re.compile(f"[{UNSAFE_CHARACTERS}]")
# The same, but for the line feed.
_UNSAFE_BUT_LF = re.compile(f"[\x00-\x09\x0b-\x1f\x7f-\x9f{_BIDI}]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def display_text(value: object, *, multiline: bool = False, limit: int | None = None) -> str:
    """``value`` as text that shows as itself on a terminal: never markup,
    never a control sequence.

    ``multiline=True`` keeps line feeds (for a comment shown as a block);
    otherwise they are escaped too, so a field never forges a line. ``limit``
    cuts the result to that many characters, ending with ``…``. Surrogates
    that cannot be encoded (a lone ``\\ud800``) are escaped as well.
    """
    text = value if isinstance(value, str) else str(value)
    pattern = _UNSAFE_BUT_LF if multiline else _UNSAFE
    text = pattern.sub(_escape, text)
    if not text.isascii():
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    if limit is not None and len(text) > limit:
        text = text[: max(limit - 1, 0)] + "…"
    return text


def _json_escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def display_json(value: Any, **dumps: Any) -> str:
    """``json.dumps(value, ensure_ascii=False, **dumps)`` with every character
    of :data:`UNSAFE_CHARACTERS` written as a ``\\u`` escape (RFC 8259 §7), so
    the JSON holds the exact value and a terminal shows no raw control.
    Lone surrogates are written as ``\\u`` escapes too.
    """
    text = json.dumps(value, ensure_ascii=False, **dumps)
    # json.dumps escapes C0 controls inside strings itself; outside strings
    # JSON holds only ASCII punctuation and the line feeds of ``indent``,
    # which are kept. So this touches only DEL, C1 and bidi controls in strings.
    text = _UNSAFE_BUT_LF.sub(_json_escape, text)
    if not text.isascii():
        text = "".join(c if not 0xD800 <= ord(c) <= 0xDFFF else f"\\u{ord(c):04x}" for c in text)
    return text
