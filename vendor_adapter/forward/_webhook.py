"""Standard Webhooks delivery (https://www.standardwebhooks.com/, the spec behind Svix).

Each event is POSTed as its JSON payload ``{"type", "timestamp", "data"}`` with:

- ``webhook-id``: the event id, the same on every retry (receivers dedupe by it);
- ``webhook-timestamp``: the attempt's time, Unix seconds (receivers refuse one
  more than 5 minutes away, so each attempt is signed afresh);
- ``webhook-signature``: ``v1,`` and the base64 HMAC-SHA256, keyed with the
  secret's bytes, of ``"{id}.{timestamp}.{body}"`` over the exact body bytes.

The secret is given in the ``whsec_<base64>`` form (24 to 64 bytes once
decoded). A 2xx answer within 15 seconds is a delivery; 410 Gone disables the
target; 429 and 503 are retried no sooner than their Retry-After; redirects
are not followed (a redirect is a failure: the receiver's URL is configured,
not discovered).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time

import aiohttp

from .._mapping import FieldMapping
from ._events import Event
from ._queue import Due
from ._target import MAX_ERROR, SVIX_SCHEDULE, Attempt, ForwardError, Target, \
    attempt_from_status, check_url

__all__ = ["Webhook", "sign", "SECRET_PREFIX"]

SECRET_PREFIX = "whsec_"


def _secret_bytes(secret: str) -> bytes:
    if not isinstance(secret, str) or not secret.startswith(SECRET_PREFIX):
        raise ForwardError(f"a webhook secret has the form {SECRET_PREFIX}<base64>")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX):], validate=True)
    except (binascii.Error, ValueError):
        raise ForwardError(f"the webhook secret after {SECRET_PREFIX} is not base64") from None
    if not 24 <= len(key) <= 64:
        raise ForwardError("a webhook secret is 24 to 64 random bytes (Standard Webhooks)")
    return key


def sign(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: ``v1,<base64 HMAC-SHA256(key, id.timestamp.body)>``."""
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode("ascii")


class Webhook(Target):
    """POST each event to ``url``, signed with ``secret`` (``whsec_...``).

    ``schedule``: seconds before each retry (default Svix's); tests shorten it.
    Raises ForwardError for a URL that is not absolute http(s) or carries
    credentials, or a secret not in the ``whsec_`` form.
    """

    kind = "webhook"

    def __init__(self, url: str, *, secret: str,
                 schedule: tuple[float, ...] = SVIX_SCHEDULE) -> None:
        self.name = self.url = check_url(url, what="webhook URL")
        self._key = _secret_bytes(secret)
        self.schedule = tuple(schedule)

    def render(self, event: Event, mapping: FieldMapping) -> str:
        return event.body(mapping)

    async def deliver(self, session: aiohttp.ClientSession, row: Due) -> Attempt:
        body = row.body.encode("utf-8")
        timestamp = int(time.time())
        headers = {"Content-Type": "application/json", "webhook-id": row.event_id,
                   "webhook-timestamp": str(timestamp),
                   "webhook-signature": sign(self._key, row.event_id, timestamp, body)}
        try:
            async with session.post(self.url, data=body, headers=headers,
                                    allow_redirects=False) as resp:
                if 200 <= resp.status < 300:
                    return Attempt(True)
                return attempt_from_status(resp.status, resp.headers, resp.reason or "")
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return Attempt(False, error=(f"{type(exc).__name__}: {exc}")[:MAX_ERROR])
