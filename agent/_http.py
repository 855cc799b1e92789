"""HTTP for the agent: one aiohttp session, its limits, and the two requests the
agent makes (GET a discovery document, POST a signed message). Every aiohttp
error is translated here; nothing above this module imports aiohttp."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import aiohttp
from multidict import CIMultiDict
from yarl import URL

import protocol

from ._errors import VendorUnreachable

__all__ = ["Limits", "HttpAnswer", "TransportFailure", "Http", "read_answer", "parse_retry_after",
           "media_type"]

_MAX_ANSWER_BYTES = protocol.MAX_MESSAGE_BYTES * 2 + 16 * 1024  # fetch receipts carry messages
#: Built once: aiohttp would otherwise copy a plain dict into a CIMultiDict per request.
_POST_HEADERS = CIMultiDict({"Content-Type": protocol.MEDIA_TYPE, "Accept": protocol.MEDIA_TYPE})
_MAX_CACHED_URLS = 100_000


@dataclass(frozen=True)
class Limits:
    """Connection and retry settings; the defaults suit a laptop talking to 1000 vendors."""

    #: Open connections at once, across all vendors (aiohttp TCPConnector limit).
    max_connections: int = 100
    #: Per vendor host; loopback demos put many vendors on one host.
    max_connections_per_host: int = 100
    #: Seconds for one request, connection included.
    timeout: float = 10.0
    connect_timeout: float = 5.0
    #: First retry delay in seconds; each retry doubles it, up to ``retry_cap``.
    retry_base: float = 2.0
    retry_cap: float = 3600.0
    #: How long an outgoing message stays valid (and is retried).
    message_lifetime: timedelta = timedelta(days=7)
    #: Seconds a delivery run's claim on the outbox rows it is sending lasts; the
    #: run renews it every third of that while it works, so only a run that was
    #: killed (or froze) lets its claims lapse, and another run takes them over.
    claim_lease: float = 60.0


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    status: int
    content_type: str
    body: bytes
    #: Seconds the server asked us to wait (Retry-After), if any.
    retry_after: float | None


class TransportFailure(Exception):
    """The request got no HTTP answer: refused, reset, timed out, cut off. Transient."""


class _TooLarge(Exception):
    pass


async def _read_body(response: aiohttp.ClientResponse) -> bytes:
    """The whole answer, or ``_TooLarge`` beyond ``_MAX_ANSWER_BYTES``.

    ``content.read(n)`` would return only what has arrived so far: an answer
    written in pieces would be cut short, and judged on half a receipt."""
    length = response.content_length
    if length is not None and length > _MAX_ANSWER_BYTES:
        raise _TooLarge  # refused on the header alone
    content = response.content
    if content.is_eof():
        # The usual case: a small answer that came with its headers.
        body = content.read_nowait()
        if len(body) > _MAX_ANSWER_BYTES:
            raise _TooLarge
        return body
    chunks: list[bytes] = []
    size = 0
    while chunk := await content.readany():
        size += len(chunk)
        if size > _MAX_ANSWER_BYTES:  # chunked answers carry no Content-Length
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


#: Delay-seconds longer than this many digits is not a delay anyone means.
_MAX_DELAY_DIGITS = 10
_MAX_RETRY_AFTER_SECONDS = 86400 * 30
_DAYS = "Mon|Tue|Wed|Thu|Fri|Sat|Sun"
_LONG_DAYS = "Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday"
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov",
           "Dec")
_MONTH = "|".join(_MONTHS)
_TIME = r"([0-9]{2}):([0-9]{2}):([0-9]{2})"
#: The three forms of HTTP-date (RFC 9110 §5.6.7): IMF-fixdate, then the obsolete
#: rfc850-date and asctime-date. Each yields (day, month, year, hour, minute, second).
_IMF_FIXDATE = re.compile(rf"(?:{_DAYS}), ([0-9]{{2}}) ({_MONTH}) ([0-9]{{4}}) {_TIME} GMT")
_RFC850_DATE = re.compile(rf"(?:{_LONG_DAYS}), ([0-9]{{2}})-({_MONTH})-([0-9]{{2}}) {_TIME} GMT")
_ASCTIME_DATE = re.compile(rf"(?:{_DAYS}) ({_MONTH}) ([0-9 ][0-9]) {_TIME} ([0-9]{{4}})")
_DELAY_SECONDS = re.compile(rf"[0-9]{{1,{_MAX_DELAY_DIGITS}}}")


def _http_date(value: str, now: datetime) -> datetime | None:
    """An HTTP-date (RFC 9110 §5.6.7) as an aware UTC datetime, or None."""
    if match := _IMF_FIXDATE.fullmatch(value):
        day, month, year, hour, minute, second = match.groups()
    elif match := _RFC850_DATE.fullmatch(value):
        day, month, short, hour, minute, second = match.groups()
        # §5.6.7: a two-digit year more than 50 years in the future is in the past.
        year = str(now.year // 100 * 100 + int(short))
        if int(year) > now.year + 50:
            year = str(int(year) - 100)
    elif match := _ASCTIME_DATE.fullmatch(value):
        month, day, hour, minute, second, year = match.groups()
    else:
        return None
    try:
        return datetime(int(year), _MONTHS.index(month) + 1, int(day), int(hour), int(minute),
                        int(second), tzinfo=timezone.utc)
    except ValueError:  # 31 February, hour 25, second 61...
        return None


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (RFC 9110 §10.2.3), or None.

    Only delay-seconds written in ASCII digits (at most ten of them) or an
    HTTP-date count; anything else (``²``, ``٣``, 5,000 nines, a surrogate) is
    ignored, as if the header were absent. The result is within [0, 30 days].
    Total: never raises, whatever ``value`` holds."""
    if not value or len(value) > 64 or not value.isascii():
        return None
    value = value.strip(" \t")
    if _DELAY_SECONDS.fullmatch(value):
        return float(min(int(value), _MAX_RETRY_AFTER_SECONDS))
    when = _http_date(value, now)
    if when is None:
        return None
    return min(max(0.0, (when - now).total_seconds()), float(_MAX_RETRY_AFTER_SECONDS))


_retry_after = parse_retry_after  # the name the rules' tests know


def media_type(content_type: str | None) -> str:
    """The ``type/subtype`` of a Content-Type value, lower-cased (RFC 9110 §8.3.1);
    empty when there is none. Total: never raises."""
    if not content_type:
        return ""
    return content_type.partition(";")[0].strip(" \t").lower()[:200]


def read_answer(status: int, headers: Mapping[str, str], body: bytes, *,
                now: datetime) -> HttpAnswer:
    """The parts of an HTTP answer the agent judges, read from its status, headers
    and body as they came. Total: any header value gives an answer."""
    return HttpAnswer(status=status, content_type=media_type(headers.get("Content-Type")),
                      body=body, retry_after=parse_retry_after(headers.get("Retry-After"), now))


class Http:
    """The agent's single ClientSession, created on first use and closed once."""

    def __init__(self, limits: Limits, session: aiohttp.ClientSession | None = None) -> None:
        self.limits = limits
        self._session = session
        self._owned = session is None
        self._timeout = aiohttp.ClientTimeout(total=limits.timeout,
                                              sock_connect=limits.connect_timeout)
        # Parsed inbox URLs: parsing one costs more than the rest of building a request.
        self._urls: dict[str, URL] = {}

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self.limits.max_connections,
                                             limit_per_host=self.limits.max_connections_per_host)
            # No cookie jar: the agent has no use for cookies, and a jar shared by
            # every relationship could link the person's pairwise DIDs at one
            # vendor host. (It also saves a jar lookup and update per request.)
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=self._timeout,
                headers={"User-Agent": "vrm-agent/0.1"}, cookie_jar=aiohttp.DummyCookieJar())
        return self._session

    async def close(self) -> None:
        if self._session is not None and self._owned:
            await self._session.close()
        self._session = None

    async def get_discovery(self, url: str) -> bytes:
        try:
            # No redirects: the document's URL is what the same-origin check of its
            # inbox is made against (PROTOCOL.md §7).
            async with self.session.get(url, allow_redirects=False) as response:
                if response.status != 200:
                    raise VendorUnreachable(
                        f"{url} answered HTTP {response.status}; check the vendor's address")
                return await _read_body(response)
        except _TooLarge:
            raise VendorUnreachable(f"the document at {url} is larger than "
                                    f"{_MAX_ANSWER_BYTES} bytes; this is not a VRM "
                                    f"vendor") from None
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError) as exc:
            raise VendorUnreachable(
                f"cannot reach {url} ({_describe(exc)}); check the address and that the "
                f"vendor is up") from exc

    async def post(self, url: str, data: bytes, *, now: datetime) -> HttpAnswer:
        parsed = self._urls.get(url)
        if parsed is None:
            if len(self._urls) >= _MAX_CACHED_URLS:
                self._urls.clear()
            parsed = self._urls[url] = URL(url)
        try:
            async with self.session.post(
                parsed, data=data, allow_redirects=False, headers=_POST_HEADERS,
            ) as response:
                body = await _read_body(response)
                return read_answer(response.status, response.headers, body, now=now)
        except _TooLarge:
            raise TransportFailure(f"the answer is larger than {_MAX_ANSWER_BYTES} bytes, "
                                   f"so it is not a receipt") from None
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError) as exc:
            raise TransportFailure(_describe(exc)) from exc


def _describe(exc: BaseException) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return "timed out"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return "connection refused or host unknown"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the server dropped the connection"
    # aiohttp's text may quote what the server sent (a reason phrase, a header).
    return protocol.display_text(str(exc) or type(exc).__name__, limit=200)
