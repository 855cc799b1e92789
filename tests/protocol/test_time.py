"""RFC 3339 UTC timestamps and dates (protocol/_time.py), and their JSON Schema patterns."""

from __future__ import annotations

import re
from datetime import datetime, timezone

import pytest
from hypothesis import given, strategies as st

from protocol import format_time, parse_time
from protocol._time import DATE_PATTERN, TIMESTAMP_PATTERN, parse_date


@given(st.text(alphabet="0123456789-:.TZtz+ ", max_size=32)
       | st.from_regex(TIMESTAMP_PATTERN, fullmatch=True))
def test_the_schema_pattern_is_the_shape_the_parser_takes(text):
    try:
        parse_time(text)
    except ValueError:
        return  # refused: by shape, or a date that does not exist (2026-02-30)
    assert re.search(TIMESTAMP_PATTERN, text)


@given(st.text(alphabet="0123456789-", max_size=12) | st.from_regex(DATE_PATTERN, fullmatch=True))
def test_the_date_pattern_is_the_shape_the_parser_takes(text):
    try:
        parse_date(text)
    except ValueError:
        return
    assert re.search(DATE_PATTERN, text)


@pytest.mark.parametrize("text, kept", [
    ("2026-06-01T12:00:00Z", "2026-06-01T12:00:00Z"),
    ("2026-06-01T12:00:00.5Z", "2026-06-01T12:00:00.5Z"),
    ("2026-06-01T12:00:00.500Z", "2026-06-01T12:00:00.5Z"),
    ("2026-06-01T12:00:00.123456Z", "2026-06-01T12:00:00.123456Z"),
    ("2026-06-01T12:00:00.123456789Z", "2026-06-01T12:00:00.123456Z"),  # truncated, not rounded
    ("2026-06-01T12:00:00.000000Z", "2026-06-01T12:00:00Z"),
    ("0999-01-01T00:00:00.01Z", "0999-01-01T00:00:00.01Z"),
])
def test_receivers_keep_microseconds_and_this_implementation_emits_the_shortest_form(text, kept):
    # PROTOCOL.md §3.3: up to 9 fractional digits are read, microseconds are kept
    # (the rest is dropped), and the shortest form is emitted.
    assert format_time(parse_time(text)) == kept


@pytest.mark.parametrize("text", ["2026-06-01T12:00:60Z", "2026-02-30T00:00:00Z",
                                  "2026-06-01T24:00:00Z", "0000-01-01T00:00:00Z"])
def test_times_that_do_not_exist_are_refused(text):
    with pytest.raises(ValueError):
        parse_time(text)


def test_emitted_times_parse_back_to_themselves():
    moment = datetime(2026, 6, 1, 12, 0, 0, 120000, tzinfo=timezone.utc)
    assert parse_time(format_time(moment)) == moment
