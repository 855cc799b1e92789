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
