"""The terms the person proffers to every vendor: ids from a public roster of
agreements, like IEEE 7012-2025 (MyTerms) entries (``myterms:nostalking``).

They travel in the ``terms`` member of ``relationship.request`` (PROTOCOL.md
§5.2): ``vrm vendor add`` carries them, and a change re-states them to every
vendor with a new request, which replaces the terms (and the profile fields)
the vendor holds. This module keeps the list (the store's ``meta`` row
``terms``, a JSON array) and builds the request's body; the :class:`Agent`
signs and sends it.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import ValidationError

import protocol

from ._errors import UsageError
from ._profile import nest, visible_to
from ._store import Store

__all__ = ["MAX_TERMS", "check_terms", "current_terms", "store_terms", "request_body"]

#: At most this many terms in one relationship.request (PROTOCOL.md §5.2).
MAX_TERMS = 32
_META = "terms"


def check_terms(ids: Iterable[str]) -> list[str]:
    """The term ids, checked (``scheme:id``, PROTOCOL.md §3 ``term``) and
    de-duplicated in the order given. Raises :class:`UsageError` naming the
    first id that is not one, or when there are more than :data:`MAX_TERMS`."""
    checked: list[str] = []
    for raw in ids:
        term = raw.strip()
        try:
            protocol.RelationshipRequestBody(terms=[term])
        except ValidationError:
            shown = protocol.display_text(term, limit=60)
            raise UsageError(f"'{shown}' is not a term id; a term id is scheme:id, in lower "
                             f"case before the colon, like myterms:nostalking") from None
        if term not in checked:
            checked.append(term)
    if len(checked) > MAX_TERMS:
        raise UsageError(f"at most {MAX_TERMS} terms can be proffered, not {len(checked)}")
    return checked


def current_terms(store: Store) -> list[str]:
    """The terms proffered now (an empty list: none)."""
    return list(json.loads(store.get_meta(_META) or "[]"))


def store_terms(store: Store, conn: sqlite3.Connection, terms: list[str]) -> None:
    store.set_meta(conn, _META, json.dumps(terms))


def request_body(profile: Mapping[str, str], share: Iterable[str],
                 terms: list[str]) -> tuple[protocol.RelationshipRequestBody, dict[str, Any]]:
    """A relationship.request body stating exactly the profile fields the vendor
    may see (``share``) and the ``terms``; returns it and those fields (flat)."""
    visible = visible_to(profile, share)
    data: dict[str, Any] = {}
    if visible:
        data["profile"] = nest(visible)
    if terms:
        data["terms"] = terms
    return protocol.RelationshipRequestBody.model_validate(data), visible
