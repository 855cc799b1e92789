"""Reading a ``messages.fetch`` page, as an agent does (PROTOCOL.md §6.4).

``read_fetch_page`` is the agent's half of the pull loop, with no I/O: given
the verified receipt that answered a fetch, it verifies each carried message,
says which are new, which were dropped and why, what to send as ``after``
next, and whether to fetch again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from ._b64 import b64url_decode
from ._codec import SeenCheck, jws_bytes, parse
from ._errors import InvalidMessage, ProtocolError, Replayed
from ._ijson import loads
from ._keys import PublicKey, pinned_keys
from ._messages import Message, Receipt
from ._registry import CORE_REGISTRY, MessageRegistry

__all__ = ["FetchPage", "MAX_FETCH_PAGES", "read_fetch_page"]

#: The most pages an agent reads from one vendor in one sync (PROTOCOL.md §6.4).
MAX_FETCH_PAGES = 100


@dataclass(frozen=True)
class FetchPage:
    """What one page of ``messages.fetch`` brought."""

    #: The carried messages that verified and are new, oldest first.
    messages: list[tuple[Message, bytes]] = field(default_factory=list)
    #: Carried messages that failed verification: (their id if readable, the problem).
    dropped: list[tuple[str | None, InvalidMessage]] = field(default_factory=list)
    #: The ``after`` to send next time (the page's cursor, or the one sent).
    cursor: str | None = None
    #: Whether to fetch again now: the page carried messages and moved the cursor.
    more: bool = False


def _readable_id(raw: bytes) -> str | None:
    try:
        data = loads(b64url_decode(loads(raw).get("payload"), what="payload"))
    except ProtocolError:
        return None
    value = data.get("id")
    return value if isinstance(value, str) else None


def read_fetch_page(receipt: Receipt, *, after: str | None, vendor_key: PublicKey,
                    recipient: str, now: datetime, seen: SeenCheck | None = None,
                    registry: MessageRegistry = CORE_REGISTRY) -> FetchPage:
    """Read the page ``receipt`` (already verified as the answer to a fetch sent with
    ``after``). Each carried message is verified like any other (section 4) with the
    pinned ``vendor_key`` and ``to`` = ``recipient``; one that fails is dropped and the
    rest kept. A message that fails is never a key change: only the receipt itself,
    which the exchange authenticated, can show one (section 6.1). ``seen(from, id)``
    tells messages already held; they are skipped."""
    body = receipt.body
    keys = pinned_keys(vendor_key)
    fresh: list[tuple[Message, bytes]] = []
    dropped: list[tuple[str | None, InvalidMessage]] = []
    for jws in body.messages or []:
        raw = jws_bytes(jws)
        try:
            message = parse(raw, now=now, keys=keys, recipient=recipient, seen=seen,
                            registry=registry)
        except Replayed:
            continue
        except InvalidMessage as exc:
            dropped.append((_readable_id(raw), exc))
            continue
        fresh.append((message, raw))
    cursor = body.cursor if body.cursor is not None else after
    more = (body.status == "accepted" and bool(body.messages) and body.cursor is not None
            and body.cursor != after)
    return FetchPage(fresh, dropped, cursor, more)
