"""Constrained field types shared by the message models.

Patterns use ``[0-9]`` rather than ``\\d``: pydantic-core's regex engine
matches every Unicode digit with ``\\d``.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    PlainSerializer,
    StringConstraints,
    WithJsonSchema,
)

from ._didkey import public_bytes_from_did
from ._errors import UnknownKey
from ._time import DATE_PATTERN, TIMESTAMP_PATTERN, format_time, parse_date, parse_time, utc


def _as_datetime(value: object) -> object:
    return utc(value) if isinstance(value, datetime) else parse_time(value)


def _as_date(value: object) -> object:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    return parse_date(value)


def _check_did(value: str) -> str:
    try:
        public_bytes_from_did(value)
    except UnknownKey as exc:
        raise ValueError(str(exc)) from None
    return value


#: An RFC 3339 UTC timestamp on the wire; an aware datetime in Python.
Timestamp = Annotated[datetime, BeforeValidator(_as_datetime),
                      PlainSerializer(format_time, return_type=str),
                      WithJsonSchema({"type": "string", "format": "date-time",
                                      "pattern": TIMESTAMP_PATTERN})]
#: An ISO 8601 calendar date, YYYY-MM-DD.
Date = Annotated[date, BeforeValidator(_as_date),
                 PlainSerializer(date.isoformat, return_type=str),
                 WithJsonSchema({"type": "string", "format": "date", "pattern": DATE_PATTERN})]
#: Printable ASCII without spaces, 1 to 128 characters.
MessageId = Annotated[str, StringConstraints(pattern=r"^[\x21-\x7e]{1,128}$")]
#: An Ed25519 did:key: ``did:key:z6Mk`` and 44 more base58btc characters (the
#: pattern), which must decode to the ed25519-pub multicodec and 32 bytes (the validator).
DID_KEY_PATTERN = r"^did:key:z6Mk[1-9A-HJ-NP-Za-km-z]{44}$"
Did = Annotated[str, StringConstraints(pattern=DID_KEY_PATTERN), AfterValidator(_check_did)]
#: Whoever a message is addressed to: a DID, or another printable identifier.
RecipientId = Annotated[str, StringConstraints(pattern=r"^[\x21-\x7e]{1,256}$")]
#: A non-negative decimal amount as a string: "199.00". Never a JSON number.
Amount = Annotated[str, StringConstraints(pattern=r"^(0|[1-9][0-9]{0,14})(\.[0-9]{1,6})?$")]
#: ISO 4217 alphabetic currency code, checked for shape only (three upper-case
#: letters): whether a code is assigned is the receiver's business, so a newly
#: assigned code never breaks the wire format.
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
#: ISO 3166-1 alpha-2 country code, checked for shape only (two upper-case letters),
#: for the same reason.
Country = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
#: E.164 telephone number.
Phone = Annotated[str, StringConstraints(pattern=r"^\+[1-9][0-9]{1,14}$")]
#: An addr-spec, checked for shape only: one @, a dot after it, and no spaces or
#: control characters (C0, DEL, C1) anywhere. At most 254 characters (RFC 5321 §4.5.3.1.3).
Email = Annotated[str, StringConstraints(
    max_length=254,
    pattern=r"^[^@\s\x00-\x1f\x7f-\x9f]+@[^@\s\x00-\x1f\x7f-\x9f]+\.[^@\s\x00-\x1f\x7f-\x9f]+$")]
#: A BCP 47 language tag (RFC 5646 §2.1), checked for shape: a 2-8 letter language
#: and subtags of 1-8 letters or digits, or a private-use tag (``x-klingon``), or an
#: irregular grandfathered one (``i-klingon``). At most 64 characters.
Language = Annotated[str, StringConstraints(
    max_length=64,
    pattern=r"^(?:[A-Za-z]{2,8}(?:-[A-Za-z0-9]{1,8})*|[xXiI](?:-[A-Za-z0-9]{1,8})+)$")]
#: A URL for people to follow: ``http`` or ``https``, and only the characters
#: RFC 3986 allows in a URI (§2.2 reserved, §2.3 unreserved, ``%`` of §2.1), so no
#: white space, control (ESC, NUL, C1) or bidi character (U+202E) ever reaches
#: whoever shows or follows it. An IRI is sent percent-encoded (RFC 3987 §3.1).
URL_PATTERN = r"^https?://[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+$"
Url = Annotated[str, StringConstraints(max_length=2048, pattern=URL_PATTERN)]
#: A term id from a public roster, like "myterms:nostalking".
TermId = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9+.-]*:[\x21-\x7e]{1,200}$")]
#: A category or other short label.
Label = Annotated[str, StringConstraints(min_length=1, max_length=100)]
#: A person's given or family name.
Name = Annotated[str, StringConstraints(min_length=1, max_length=200)]
#: Short free text.
ShortText = Annotated[str, StringConstraints(max_length=200)]
#: Longer free text.
Text = Annotated[str, StringConstraints(max_length=4000)]
#: A count of things.
Quantity = Annotated[int, Field(ge=1, le=1_000_000)]
