"""The person's profile as flat dotted fields (``postal_address.locality``),
normalised where a value has one obvious meaning, checked against
``protocol.Profile``, and turned into what each vendor may see.

Normalisation (:func:`normalise`), before the protocol's checks:

- ``postal_address.country``: upper-cased (``de`` -> ``DE``, ISO 3166-1 alpha-2).
- ``phone``: spaces, dashes, dots and parentheses removed, and a leading ``00``
  read as ``+`` (``+44 (20) 7946-0958`` -> ``+442079460958``, E.164). A number
  without its country code has no one meaning: refused, saying so.
- ``language``: a valid BCP 47 tag (RFC 5646) in its standard case and form
  (``EN-gb`` -> ``en-GB``), checked against the IANA registry with
  ``langcodes``; a language's name is refused, suggesting its tag
  (``English`` -> "use en").
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import ValidationError

import protocol

from ._errors import UsageError
from ._explain import explain

__all__ = ["FIELD_NAMES", "SHAREABLE", "check_changes", "check_share", "nest", "normalise",
           "visible_to", "top_level"]

#: What ``--share`` accepts: the top-level profile fields.
SHAREABLE: tuple[str, ...] = protocol.PROFILE_FIELDS
_ADDRESS_FIELDS: tuple[str, ...] = tuple(protocol.PostalAddress.model_fields)
#: Every leaf field a person can set.
FIELD_NAMES: tuple[str, ...] = tuple(
    name for field in SHAREABLE
    for name in ([f"{field}.{sub}" for sub in _ADDRESS_FIELDS] if field == "postal_address"
                 else [field])
)


def top_level(field: str) -> str:
    return field.split(".", 1)[0]


def check_share(share: Iterable[str]) -> list[str]:
    """The share list, checked and de-duplicated, in profile order."""
    wanted = {name.strip() for name in share if name.strip()}
    unknown = sorted(wanted - set(SHAREABLE))
    if unknown:
        raise UsageError(f"cannot share {', '.join(unknown)}: the shareable fields are "
                         f"{', '.join(SHAREABLE)}")
    return [name for name in SHAREABLE if name in wanted]


def nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    """``{"postal_address.locality": "Leeds"}`` -> ``{"postal_address": {"locality": "Leeds"}}``."""
    nested: dict[str, Any] = {}
    for field, value in flat.items():
        head, _, sub = field.partition(".")
        if sub:
            nested.setdefault(head, {})[sub] = value
        else:
            nested[head] = value
    return nested


def check_changes(changes: Mapping[str, str | None]) -> dict[str, str | None]:
    """Check field names and values; an empty value (or None) removes the field."""
    if not changes:
        raise UsageError("name at least one field to set, like email=ann@example.org")
    cleaned: dict[str, str | None] = {}
    for field, value in changes.items():
        if field not in FIELD_NAMES:
            hint = (" (set its parts, like postal_address.locality=Leeds)"
                    if field == "postal_address" else "")
            raise UsageError(f"{field!r} is not a profile field{hint}; the fields are "
                             f"{', '.join(FIELD_NAMES)}")
        cleaned[field] = normalise(field, value) if value else None
    try:
        protocol.ProfileChanges.model_validate(nest(cleaned))
    except ValidationError as exc:
        raise UsageError(explain(exc)) from None
    return cleaned


_PHONE_PUNCTUATION = re.compile(r"[\s\-.()/]")


def normalise(field: str, value: str) -> str:
    """``value`` in the one form it obviously means, for the profile field
    ``field`` (see the module's docstring); other fields are returned as given.

    Raises :class:`UsageError` (one sentence, with the right value when there
    is one) for a phone number without its country code or a language that is
    not a BCP 47 tag."""
    if field == "postal_address.country":
        return value.strip().upper() if value.strip().isascii() else value
    if field == "phone":
        return _phone(value)
    if field == "language":
        return _language(value)
    return value


def _phone(value: str) -> str:
    digits = _PHONE_PUNCTUATION.sub("", value)
    if digits.startswith("00") and digits[2:].isascii() and digits[2:].isdigit():
        digits = "+" + digits[2:]
    if digits.isascii() and digits.isdigit():
        raise UsageError(f"phone must be an international number with its country code, "
                         f"like +44 20 7946 0958, not {value!r}")
    return digits if digits.startswith("+") and digits[1:].isascii() else value


def _language(value: str) -> str:
    import langcodes

    tag = value.strip()
    if len(tag) <= 64 and langcodes.tag_is_valid(tag):
        return langcodes.standardize_tag(tag)
    suggestion = None
    if 0 < len(tag) <= 64:
        try:
            suggestion = langcodes.find(tag).to_tag()
        except (LookupError, ValueError):
            suggestion = None
    if suggestion:
        raise UsageError(f"language is a BCP 47 language tag: for {value!r}, use "
                         f"language={suggestion}")
    raise UsageError(f"language must be a BCP 47 language tag like en, en-GB or de-CH, "
                     f"not {value!r}")


def visible_to(flat: Mapping[str, Any], share: Iterable[str]) -> dict[str, Any]:
    """Only the fields whose top-level name the vendor may see."""
    allowed = set(share)
    return {field: value for field, value in flat.items() if top_level(field) in allowed}
