"""Issue 9, item 3: untrusted text is shown as text (protocol._display)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, strategies as st

from protocol import display_json, display_text

HOSTILE = {
    "clear screen": ("a\x1b[2Jb", "a\\x1b[2Jb"),
    "window title": ("\x1b]0;pwned\x07", "\\x1b]0;pwned\\x07"),
    "clipboard": ("\x1b]52;c;ZXZpbA==\x07", "\\x1b]52;c;ZXZpbA==\\x07"),
    "hyperlink": ("\x1b]8;;https://evil.example\x1b\\Bob\x1b]8;;\x1b\\",
                  "\\x1b]8;;https://evil.example\\x1b\\Bob\\x1b]8;;\\x1b\\"),
    "newline forging a warning": ("Shop\nvrm: warning: x", "Shop\\x0avrm: warning: x"),
    "carriage return": ("a\rb", "a\\x0db"),
    "NUL and DEL": ("a\x00b\x7f", "a\\x00b\\x7f"),
    "C1 CSI": ("a\x9b2Jb", "a\\x9b2Jb"),
    "right-to-left override": ("exe.\u202etxt", "exe.\\u202etxt"),
    "isolates and marks": ("\u2066\u2069\u200e\u200f\u061c", "\\u2066\\u2069\\u200e\\u200f\\u061c"),
    "rich markup is only text": ("[link=https://evil.example]Bob[/link]",
                                 "[link=https://evil.example]Bob[/link]"),
    "a lone surrogate": ("\ud800", "\\ud800"),
}


@pytest.mark.parametrize("raw,shown", HOSTILE.values(), ids=list(HOSTILE))
def test_display_text_escapes_controls_visibly(raw: str, shown: str) -> None:
    assert display_text(raw) == shown


def test_multiline_keeps_line_feeds_only() -> None:
    assert display_text("a\nb\r\x1b", multiline=True) == "a\nb\\x0d\\x1b"


def test_limit() -> None:
    assert display_text("abcdef", limit=4) == "abc…"
    assert display_text("abc", limit=4) == "abc"


@given(st.text())
def test_display_text_never_leaves_a_control(text: str) -> None:
    shown = display_text(text)
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F or c in "\u061c\u200e\u200f"
                   or 0x202A <= ord(c) <= 0x202E or 0x2066 <= ord(c) <= 0x2069
                   or 0xD800 <= ord(c) <= 0xDFFF for c in shown)
    shown.encode("utf-8")


@given(st.recursive(st.none() | st.text() | st.integers(),
                    lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner)))
def test_display_json_is_the_same_value_without_raw_controls(value) -> None:
    for indent in (None, 2):
        text = display_json(value, indent=indent)
        assert json.loads(text) == value
        assert not any(ord(c) < 0x20 and c != "\n" or 0x7F <= ord(c) <= 0x9F
                       or 0x202A <= ord(c) <= 0x202E or 0xD800 <= ord(c) <= 0xDFFF
                       for c in text)


def test_display_json_escapes_bidi_and_c1() -> None:
    assert display_json({"name": "a\u202eb\x9b"}) == '{"name": "a\\u202eb\\u009b"}'
