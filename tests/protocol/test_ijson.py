"""Strict I-JSON parsing (RFC 7493)."""

from __future__ import annotations

import pytest

from protocol import MAX_DEPTH, MalformedMessage, dumps, loads


def test_parses_an_object():
    assert loads(b'{"a": [1, 2.5, "x", null, true], "b": {"c": "\\u00e9"}}') == {
        "a": [1, 2.5, "x", None, True], "b": {"c": "é"}}


@pytest.mark.parametrize("text, reason", [
    (b'{"amount": 1, "amount": 1000}', "duplicate"),
    (b'{"a": {"x": 1, "x": 1}}', "duplicate"),
    (b'{"a": NaN}', "NaN"),
    (b'{"a": Infinity}', "Infinity"),
    (b'{"a": -Infinity}', "Infinity"),
    (b'{"a": 1e400}', "overflows"),
    (b'{"a": 1152921504606846976}', "beyond"),  # 2^60
    (b'{"a": 9007199254740992}', "beyond"),  # 2^53
    (b'{"a": -9007199254740992}', "beyond"),
    (b'{"a": ' + b"1" * 5000 + b"}", "beyond"),
    (b'{"a": "\\ud800"}', "surrogate"),
    (b'{"\\udfff": 1}', "surrogate"),
    (b'[1, 2]', "not a JSON object"),
    (b'"text"', "not a JSON object"),
    (b'{"a": 1', "not valid JSON"),
    (b'', "not valid JSON"),
    (b'{"a": 1} trailing', "not valid JSON"),
    (b'\xff\xfe{\x00}\x00', "not UTF-8"),
    ('{"a": 1}'.encode("utf-16"), "not UTF-8"),
    (b'\xef\xbb\xbf{"a": 1}', "not valid JSON"),  # a UTF-8 byte order mark
    (b'{"a": "\xc3\x28"}', "not UTF-8"),
])
def test_rejects(text, reason):
    with pytest.raises(MalformedMessage, match=reason):
        loads(text)


def test_largest_safe_integers_are_accepted():
    assert loads(b'{"a": 9007199254740991, "b": -9007199254740991}') == {
        "a": 2**53 - 1, "b": -(2**53 - 1)}


def nested(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


def test_nesting_up_to_the_limit_is_accepted():
    loads(nested(MAX_DEPTH))
    loads(b'{"a":' + b"[" * (MAX_DEPTH - 1) + b"]" * (MAX_DEPTH - 1) + b"}")


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 10_000])
def test_deeper_nesting_is_refused(depth):
    with pytest.raises(MalformedMessage, match="nesting"):
        loads(nested(depth))


def test_deep_arrays_are_refused():
    with pytest.raises(MalformedMessage, match="nesting"):
        loads(b'{"a":' + b"[" * 10_000 + b"]" * 10_000 + b"}")


def test_dumps_is_compact_utf8():
    assert dumps({"a": "é", "b": [1, None]}) == '{"a":"é","b":[1,null]}'.encode()


def test_loads_takes_bytes_like_objects_and_refuses_the_rest():
    assert loads(memoryview(b'{"a": 1}')) == {"a": 1}
    assert loads(bytearray(b'{"a": 1}')) == {"a": 1}
    for value in ('{"a": 1}', None, 3):
        with pytest.raises(MalformedMessage, match="bytes"):
            loads(value)
