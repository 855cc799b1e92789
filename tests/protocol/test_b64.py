from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from protocol import MalformedMessage, b64url_decode, b64url_encode


@given(st.binary(max_size=200))
def test_round_trip(data):
    text = b64url_encode(data)
    assert "=" not in text and "+" not in text and "/" not in text
    assert b64url_decode(text) == data


@pytest.mark.parametrize("text", ["YQ==", "a+b/", "a b", "abcde", "é", 12, None, "YQ\n"])
def test_rejects_padding_other_alphabets_and_bad_lengths(text):
    with pytest.raises(MalformedMessage):
        b64url_decode(text)


ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


@given(st.binary(min_size=1, max_size=100), st.sampled_from(ALPHABET))
def test_only_the_canonical_encoding_decodes(data, last):
    # RFC 4648 §3.5: the unused bits of the last character must be zero, so
    # each byte string has one encoding and nothing signed can be re-spelled.
    text = b64url_encode(data)
    other = text[:-1] + last
    if other == text:
        assert b64url_decode(other) == data
    else:
        try:
            decoded = b64url_decode(other)
        except MalformedMessage:
            return
        assert b64url_encode(decoded) == other and decoded != data


@pytest.mark.parametrize("text, canonical", [("YR", "YQ"), ("YWJ", "YWI"), ("_x", "_w")])
def test_non_zero_trailing_bits_are_refused(text, canonical):
    assert b64url_decode(canonical)
    with pytest.raises(MalformedMessage, match="canonical"):
        b64url_decode(text)
