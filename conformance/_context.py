"""What the checks share: the endpoint, the checker's own key, and the helpers
that send messages and judge answers (PROTOCOL.md §4, §6).

Everything the vendor sends back is untrusted: answers are read with a size
cap and a time limit, and any text quoted in a reason goes through
``protocol.display_text`` before it reaches a terminal.
"""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

import protocol

__all__ = ["Answer", "Context", "CheckFailed", "NotRun", "OFFER_HOOK_ENV", "ANSWER_LIMIT",
           "json_of", "show"]

#: The environment variables an offer hook is given (see Context.run_offer_hook).
OFFER_HOOK_ENV = ("VRM_CONFORMANCE_THREAD", "VRM_CONFORMANCE_LEAD", "VRM_CONFORMANCE_RECORD",
                  "VRM_CONFORMANCE_AGENT", "VRM_CONFORMANCE_VENDOR", "VRM_CONFORMANCE_URL")
#: The most of an answer the checker reads (a receipt is at most 64 KiB).
ANSWER_LIMIT = 256 * 1024


class CheckFailed(Exception):
    """The vendor did something PROTOCOL.md forbids; the message says what."""


class NotRun(Exception):
    """The check could not be run; the message says why."""


def json_of(body: bytes) -> Any:
    """An answer's JSON, or None when it is not JSON (however it fails: a vendor may
    send anything, nesting included)."""
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None


def show(value: object, limit: int = 200) -> str:
    """Untrusted text, safe for a terminal and short."""
    return protocol.display_text(value, limit=limit)


OfferHook = Callable[..., Awaitable[None]]


@dataclass(frozen=True)
class Answer:
    """One HTTP answer, as received."""

    status: int
    content_type: str
    body: bytes
    location: str | None = None

    def describe(self) -> str:
        return f"HTTP {self.status} {show(self.content_type or 'without a content type', 60)}"


@dataclass
class Context:
    """The state of one run: the endpoint, the checker's identity, what was learnt."""

    url: str
    session: aiohttp.ClientSession
    #: A shell command (the CLI's --offer-hook), or an async function called with
    #: the same values as keywords (thread, lead, record, agent, vendor).
    offer_hook: str | OfferHook | None = None
    hook_timeout: float = 60.0
    key: protocol.SigningKey = field(default_factory=protocol.SigningKey.generate)
    document: protocol.DiscoveryDocument | None = None
    vendor_key: protocol.PublicKey | None = None
    #: Values one check leaves for later ones (ids, cursors, raw messages).
    state: dict[str, Any] = field(default_factory=dict)
    #: Every problem document received: (the check, the answer).
    problems: list[tuple[str, Answer]] = field(default_factory=list)
    current: str = ""

    # --- the endpoint ------------------------------------------------------------

    @property
    def discovery_url(self) -> str:
        base = self.url.rstrip("/")
        if base.endswith(protocol.WELL_KNOWN_PATH):
            return base
        return base + protocol.WELL_KNOWN_PATH

    @property
    def inbox(self) -> str:
        if self.document is None:
            raise NotRun("the discovery document could not be read")
        return self.document.inbox

    @property
    def vendor(self) -> protocol.PublicKey:
        if self.vendor_key is None:
            raise NotRun("the vendor's key is not known")
        return self.vendor_key

    async def _read(self, response: aiohttp.ClientResponse) -> Answer:
        chunks: list[bytes] = []
        size = 0
        while chunk := await response.content.read(65536):  # read(n) may return less
            size += len(chunk)
            if size > ANSWER_LIMIT:
                raise CheckFailed(f"the answer is over {ANSWER_LIMIT} bytes")
            chunks.append(chunk)
        body = b"".join(chunks)
        media = response.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
        return Answer(response.status, media, body, response.headers.get("Location"))

    async def get(self, url: str) -> Answer:
        try:
            async with self.session.get(url, allow_redirects=False) as response:
                return await self._read(response)
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
            raise CheckFailed(f"GET {show(url)} failed: {show(exc)}") from None

    async def post(self, body: bytes, *, content_type: str = protocol.MEDIA_TYPE) -> Answer:
        """POST to the inbox; redirects are not followed (PROTOCOL.md §6.1)."""
        headers = {"Content-Type": content_type} if content_type else {}
        try:
            async with self.session.post(self.inbox, data=body, headers=headers,
                                         allow_redirects=False) as response:
                return await self._read(response)
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
            raise CheckFailed(f"POST to the inbox failed: {show(exc)}") from None

    # --- messages ------------------------------------------------------------------

    def now(self) -> datetime:
        return datetime.now(timezone.utc)

    def message(self, model: type[protocol.Message], body: protocol.WireModel | dict[str, Any],
                *, to: str | None = None, thread: str | None = None,
                created: datetime | None = None, expires: datetime | None = None,
                key: protocol.SigningKey | None = None) -> tuple[protocol.Message, bytes]:
        """A message from the checker (or ``key``), signed: (the model, its bytes)."""
        key = key or self.key
        fields: dict[str, Any] = {
            "id": protocol.new_message_id(), "sender": key.did,
            "to": to if to is not None else self.vendor.did,
            "created": created or self.now(), "body": body}
        if thread is not None:
            fields["thread"] = thread
        if expires is not None:
            fields["expires"] = expires
        message = model(**fields)
        return message, protocol.sign(message, key)

    def raw_message(self, payload: dict[str, Any] | bytes, *,
                    header: dict[str, Any] | None = None,
                    key: protocol.SigningKey | None = None,
                    signature: bytes | None = None) -> bytes:
        """A hand-made JWS: any header and payload, signed by ``key`` (default: ours)."""
        key = key or self.key
        head = header if header is not None else {"alg": "Ed25519", "kid": self.key.kid,
                                                  "typ": "vrm+json"}
        protected = protocol.b64url_encode(json.dumps(head, separators=(",", ":")).encode())
        data = payload if isinstance(payload, bytes) else json.dumps(
            payload, separators=(",", ":")).encode()
        encoded = protocol.b64url_encode(data)
        if signature is None:
            signature = key.sign(f"{protected}.{encoded}".encode())
        return json.dumps({"protected": protected, "payload": encoded,
                           "signature": protocol.b64url_encode(signature)},
                          separators=(",", ":")).encode()

    def payload(self, type_: str, body: Any, **extra: Any) -> dict[str, Any]:
        value = {"vrm": "1", "id": protocol.new_message_id(), "type": type_,
                 "from": self.key.did, "to": self.vendor.did,
                 "created": protocol.format_time(self.now()), "body": body}
        value.update(extra)
        return value

    # --- judging answers ------------------------------------------------------------

    def receipt(self, answer: Answer, message_id: str, *, http_status: int | tuple[int, ...],
                status: str | tuple[str, ...], problem: str | None = None,
                to: str | None = None) -> protocol.Receipt:
        """Check that ``answer`` is a receipt for ``message_id``: signed by the published
        key, addressed to us (or ``to``), naming the message (``thread``), with this HTTP
        status, receipt status and problem (PROTOCOL.md §5.11, §6.1)."""
        wanted_http = (http_status,) if isinstance(http_status, int) else http_status
        wanted = (status,) if isinstance(status, str) else status
        if answer.content_type != protocol.MEDIA_TYPE:
            raise CheckFailed(f"expected a receipt ({' or '.join(wanted)}), got "
                              f"{answer.describe()}{self._problem_of(answer)}")
        try:
            receipt = protocol.parse(answer.body, now=self.now(),
                                     keys=protocol.pinned_keys(self.vendor),
                                     recipient=to or self.key.did)
        except protocol.UnknownKey:
            raise CheckFailed("the receipt is not signed by the key the discovery document "
                              "publishes") from None
        except protocol.NotForMe:
            raise CheckFailed("the receipt is addressed to someone else, not to the "
                              "sender (to)") from None
        except protocol.ProtocolError as exc:
            raise CheckFailed(f"the answer is not a valid receipt: {show(exc)}") from None
        if not isinstance(receipt, protocol.Receipt):
            raise CheckFailed(f"the answer is a {show(receipt.type, 60)}, not a receipt")
        if receipt.thread != message_id:
            raise CheckFailed("the receipt names another message in thread")
        body = receipt.body
        got = body.problem.type if body.problem else None
        if body.status not in wanted:
            raise CheckFailed(f"expected status {' or '.join(wanted)}, got {body.status}"
                              + (f" ({show(got, 80)}: {show(body.problem.detail, 200)})"
                                 if body.problem else ""))
        if problem is not None and got != protocol.problem_urn(problem):
            raise CheckFailed(f"expected problem {protocol.problem_urn(problem)}, got "
                              f"{show(got, 80)}")
        if answer.status not in wanted_http:
            raise CheckFailed(f"a {body.status} receipt came with HTTP {answer.status}, "
                              f"not {' or '.join(map(str, wanted_http))}")
        return receipt

    def problem(self, answer: Answer, *, http_status: int, problem: str) -> dict[str, Any]:
        """Check that ``answer`` is the problem document ``problem`` with ``http_status``
        (PROTOCOL.md §6.3, §8). Its form is judged by the ``problem-documents`` check."""
        if answer.status != http_status:
            raise CheckFailed(f"expected HTTP {http_status} ({problem}), got "
                              f"{answer.describe()}{self._problem_of(answer)}")
        self.problems.append((self.current, answer))
        document = json_of(answer.body)
        if not isinstance(document, dict):
            raise CheckFailed("the problem document is not a JSON object")
        if document.get("type") != protocol.problem_urn(problem):
            raise CheckFailed(f"expected problem {protocol.problem_urn(problem)}, got "
                              f"{show(document.get('type'), 80)}")
        return document

    def _problem_of(self, answer: Answer) -> str:
        """A short quote of what the answer says, for a failure's reason."""
        document = json_of(answer.body)
        if isinstance(document, dict) and "type" in document:
            return f" ({show(document.get('type'), 80)}: {show(document.get('detail'), 160)})"
        return ""

    # --- the offer hook ----------------------------------------------------------------

    async def run_offer_hook(self, *, thread: str, record: dict[str, Any] | None) -> None:
        """Run ``offer_hook`` with ``sh -c``, so that the vendor makes an offer answering
        the intent ``thread``. It is given, in its environment:

        - ``VRM_CONFORMANCE_THREAD``: the intent's message id (the offer's ``thread``);
        - ``VRM_CONFORMANCE_LEAD``: ``record.lead`` of the intent's receipt, if any
          (the built-in vendor's lead id: ``vrm-vendor offer "$VRM_CONFORMANCE_LEAD" ...``);
        - ``VRM_CONFORMANCE_RECORD``: the receipt's whole ``record``, as JSON;
        - ``VRM_CONFORMANCE_AGENT``: the checker's DID (the offer's ``to``);
        - ``VRM_CONFORMANCE_VENDOR``: the vendor's DID; ``VRM_CONFORMANCE_URL``: the URL checked.

        It must exit 0 within ``hook_timeout`` seconds.
        """
        if not self.offer_hook:
            raise NotRun("no --offer-hook was given, so no offer can be asked for")
        lead = (record or {}).get("lead")
        if not isinstance(self.offer_hook, str):
            await self.offer_hook(thread=thread, lead=lead, record=record or {},
                                  agent=self.key.did, vendor=self.vendor.did)
            return
        env = {**os.environ,
               "VRM_CONFORMANCE_THREAD": thread,
               "VRM_CONFORMANCE_LEAD": "" if lead is None else str(lead),
               "VRM_CONFORMANCE_RECORD": json.dumps(record or {}),
               "VRM_CONFORMANCE_AGENT": self.key.did,
               "VRM_CONFORMANCE_VENDOR": self.vendor.did,
               "VRM_CONFORMANCE_URL": self.url}
        process = await asyncio.create_subprocess_shell(
            self.offer_hook, env=env, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        try:
            _, stderr = await asyncio.wait_for(process.communicate(), self.hook_timeout)
        except asyncio.TimeoutError:
            process.kill()
            await process.wait()
            raise CheckFailed(f"the offer hook did not finish in {self.hook_timeout:g} s") \
                from None
        if process.returncode != 0:
            said = stderr.decode("utf-8", "replace").strip()[-300:]
            raise CheckFailed(f"the offer hook exited with status {process.returncode}"
                              + (f": {show(said, 300)}" if said else ""))

    def later(self, **delta: float) -> datetime:
        return self.now() + timedelta(**delta)
