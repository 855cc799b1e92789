"""What every forwarding target shares: the result of one attempt, how an HTTP
answer becomes one, the retry schedule, and the URL rules.

A target turns an :class:`~vendor_adapter.forward.Event` into the text kept in
the queue (``render``, in the writer's transaction, no I/O) and later sends
that text (``deliver``, in the relay, with the relay's one ``ClientSession``).
"""

from __future__ import annotations

import email.utils
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from .._errors import VendorAdapterError
from .._mapping import FieldMapping
from ._events import Event
from ._queue import Due

__all__ = ["Target", "Attempt", "ForwardError", "SVIX_SCHEDULE", "attempt_from_status",
           "check_url"]

#: Seconds to wait before each retry, after the first attempt (made at once):
#: Svix's schedule (5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h). Eight attempts in all;
#: after the last one fails the event is ``failed`` until ``forward retry``.
SVIX_SCHEDULE: tuple[float, ...] = (5, 300, 1800, 7200, 18000, 36000, 36000)
#: The longest Retry-After honoured (seconds): a server cannot park an event longer
#: than the schedule's own longest wait.
MAX_RETRY_AFTER = 36000.0
#: At most this much of an error (an answer's status line, a connection error) is kept.
MAX_ERROR = 300


class ForwardError(VendorAdapterError):
    """A forwarding target is configured wrongly (a bad URL, secret or token)."""


@dataclass(frozen=True, slots=True)
class Attempt:
    """How one delivery attempt ended."""

    ok: bool
    error: str | None = None
    #: Seconds the receiver asked us to wait (Retry-After on 429/503).
    retry_after: float | None = None
    #: 410 Gone: disable the target (Standard Webhooks).
    gone: bool = False
    #: The target's id for the contact, to keep (SCIM: POST /Users returned it).
    resource_id: str | None = None
    #: The target no longer holds the contact (SCIM: DELETE).
    forget_resource: bool = False


def retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Retry-After (RFC 9110 §10.2.3): delay-seconds or an HTTP-date; None if absent
    or unreadable. Bounded to [0, MAX_RETRY_AFTER]."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        seconds = float(value[:12])
    else:
        try:
            moment = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if moment is None or moment.tzinfo is None:
            return None
        seconds = moment.timestamp() - (time.time() if now is None else now)
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def attempt_from_status(status: int, headers: Any, reason: str = "") -> Attempt:
    """A non-2xx answer as an Attempt: 410 disables the target; 429 and 503 carry
    their Retry-After; anything else is a plain failure, retried on schedule."""
    error = f"HTTP {status} {reason}".strip()[:MAX_ERROR]
    if status == 410:
        return Attempt(False, error=error, gone=True)
    if status in (429, 503):
        return Attempt(False, error=error, retry_after=retry_after(headers.get("Retry-After")))
    return Attempt(False, error=error)


def check_url(url: str, *, what: str) -> str:
    """``url`` if it is an absolute http(s) URL without credentials; else ForwardError.
    (Credentials in a URL would show in ``forward status``; secrets go in the
    ``secret``/``token`` options.)"""
    if not isinstance(url, str) or any(c.isspace() or ord(c) < 0x20 for c in url):
        raise ForwardError(f"the {what} must be an http(s) URL")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ForwardError(f"the {what} must be an absolute http:// or https:// URL, "
                           f"not {url[:80]!r}")
    if parts.username is not None or parts.password is not None:
        raise ForwardError(f"the {what} must not carry credentials; pass them as the "
                           "secret or token")
    return url


class Target(ABC):
    """A place events are forwarded to. ``name`` (its URL) identifies it in the queue."""

    kind: str
    name: str
    #: Seconds before each retry (the first attempt is at once).
    schedule: tuple[float, ...]

    @abstractmethod
    def render(self, event: Event, mapping: FieldMapping) -> str | None:
        """The text to queue for ``event`` (sans-IO), or None if it does not concern
        this target."""

    @abstractmethod
    async def deliver(self, session: aiohttp.ClientSession, row: Due) -> Attempt:
        """Send one queued row. Never raises for what the network or the receiver
        does: that is an unsuccessful Attempt."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"
