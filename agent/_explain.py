"""Validation errors as sentences a person can act on.

pydantic describes a refused value by its rule ("String should match pattern
'^(0|[1-9]…'"); a person needs the shape that would be accepted, with an
example. The hints are keyed by the field's own name (the last part of its
location), which is what the protocol's constrained types are named after.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

__all__ = ["explain"]

#: What each field must look like, by the last part of its location.
_SHAPES = {
    "max": "an amount like 250 or 249.99",
    "amount": "an amount like 250 or 249.99",
    "currency": "a three-letter currency code like EUR",
    "country": "a two-letter country code like DE or GB",
    "phone": "an international number like +441234567890 (a plus sign, then digits only)",
    "email": "an address like ann@example.org",
    "language": "a language tag like de or en-GB",
    "needed_by": "a date like 2027-06-01",
    "valid_until": "a time like 2027-06-01T12:00:00Z",
    "url": "an http or https address",
}

#: How to name a field in a sentence, by its full location.
_NAMES = {
    "budget.max": "the budget",
    "budget.currency": "the budget's currency",
    "needed_by": "the needed-by date",
    "summary": "the summary",
    "category": "the category",
    "quantity": "the quantity",
    "location.country": "the country",
    "location.postal_code": "the postal code",
    "score": "the score",
}


def explain(exc: ValidationError) -> str:
    """One sentence about the first error: which field, and what it must look like."""
    error = exc.errors(include_url=False)[0]
    loc = [str(part) for part in error["loc"] if not isinstance(part, int)]
    where = ".".join(loc)
    name = _NAMES.get(where, where or "the value")
    given = _given(error.get("input"))
    kind = error["type"]
    ctx: dict[str, Any] = error.get("ctx") or {}
    shape = _SHAPES.get(loc[-1]) if loc else None
    if kind == "missing":
        return f"{name} is missing"
    if kind == "string_too_long":
        return f"{name} must be at most {ctx.get('max_length')} characters"
    if kind == "string_too_short":
        return f"{name} must not be empty"
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than") and loc:
        low, high = _RANGES.get(loc[-1], (None, None))
        if low is not None:
            return f"{name} must be a whole number from {low} to {high}{given}"
    if shape is not None:
        return f"{name} must be {shape}{given}"
    message = str(error.get("msg", "is not valid"))
    if "pattern" in message:  # never show a person a regular expression
        return f"{name} is not valid{given}"
    return f"{name}: {message[0].lower()}{message[1:]}" if message else f"{name} is not valid"


_RANGES = {"score": (0, 10), "quantity": (1, 1_000_000)}


def _given(value: object) -> str:
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        text = str(value)
        return f", not {text[:60]!r}" if len(text) <= 60 else f", not {text[:57]!r}…"
    return ""
