"""The person's contact preferences: which channels vendors may use (email,
sms, post, phone) and whether they may market to the person.

Kept as one JSON object in the store's ``meta`` row ``preferences``, shaped
like the body of ``preferences.update`` (PROTOCOL.md §5.7)::

    {"channels": {"email": true, "sms": false}, "marketing": false}

A channel never stated is absent (the vendor was told nothing about it). The
choices are the person's, not a vendor's: ``vrm preferences --to VENDOR``
records them and tells only that vendor now.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from typing import Any

from ._store import Store

__all__ = ["CHANNELS", "current_preferences", "merge_preferences", "store_preferences"]

#: The channels of ``preferences.update``, in display order.
CHANNELS: tuple[str, ...] = ("email", "sms", "post", "phone")
_META = "preferences"


def current_preferences(store: Store) -> dict[str, Any]:
    """``{"channels": {name: bool}, "marketing": bool | None}``: what was last stated."""
    stored = json.loads(store.get_meta(_META) or "{}")
    return {"channels": dict(stored.get("channels") or {}),
            "marketing": stored.get("marketing")}


def merge_preferences(current: Mapping[str, Any], channels: Mapping[str, bool] | None,
                      marketing: bool | None) -> dict[str, Any]:
    """``current`` with the stated changes applied (what is not stated stays)."""
    merged = {**current.get("channels", {}), **(channels or {})}
    return {"channels": {name: merged[name] for name in CHANNELS if name in merged},
            "marketing": current.get("marketing") if marketing is None else marketing}


def store_preferences(store: Store, conn: sqlite3.Connection,
                      preferences: Mapping[str, Any]) -> None:
    store.set_meta(conn, _META, json.dumps(preferences))
