"""The person's profile as flat dotted fields (``postal_address.locality``),
checked against ``protocol.Profile``, and turned into what each vendor may see."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import ValidationError

import protocol

from ._errors import UsageError
from ._explain import explain

__all__ = ["FIELD_NAMES", "SHAREABLE", "check_changes", "check_share", "nest", "visible_to",
           "top_level"]

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
        cleaned[field] = value if value else None
    try:
        protocol.ProfileChanges.model_validate(nest(cleaned))
    except ValidationError as exc:
        raise UsageError(explain(exc)) from None
    return cleaned


def visible_to(flat: Mapping[str, Any], share: Iterable[str]) -> dict[str, Any]:
    """Only the fields whose top-level name the vendor may see."""
    allowed = set(share)
    return {field: value for field, value in flat.items() if top_level(field) in allowed}
