"""The framework-free inbox: request bytes in, response bytes out.

``InboxCore`` owns no socket, no database and no event loop. It checks the
media type, verifies the message with ``protocol.parse``, hands a verified
message to an injected ``apply`` function (the ledger, behind the group-commit
writer) and turns the outcome, or the refusal, into a response:

- refused before the signature verified -> RFC 9457 problem document
  (400 malformed, 401 bad signature / unknown key, 413, 415);
- refused after it verified              -> receipt signed by the vendor,
  422 (``rejected`` / ``unsupported``), or 410 once the relationship ended;
- accepted or duplicate                  -> receipt, 200.

No input produces a 500: anything unexpected is logged and answered 503 with
a problem document (the failure is ours and a retry may succeed).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

import protocol

from ._sink import RecordRef

__all__ = ["Response", "Verified", "Outcome", "InboxCore", "check_media_type"]

log = logging.getLogger("vendor_adapter.inbox")

_JSON_HEADERS = (("Cache-Control", "no-store"),)


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    content_type: str
    body: bytes
    headers: tuple[tuple[str, str], ...] = _JSON_HEADERS


@dataclass(frozen=True, slots=True)
class Verified:
    """A message whose signature, addressing and lifetime checked out."""

    message: protocol.Message
    raw: bytes
    received: datetime


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the ledger made of a verified message."""

    status: str                                   # accepted | duplicate | rejected | unsupported
    record: RecordRef | None = None
    problem: protocol.InvalidMessage | None = None
    http_status: int = 200
    messages: list[protocol.FlattenedJWS] | None = field(default=None)
    cursor: str | None = None

    @classmethod
    def refused(cls, problem: protocol.InvalidMessage, *, http_status: int = 0) -> Outcome:
        return cls(problem.receipt_status, problem=problem,
                   http_status=http_status or problem.status_hint)


def check_media_type(content_type: str | None) -> None:
    """Accept application/jose+json (RFC 7515 §9.2.1), ignoring parameters such as charset."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media != protocol.MEDIA_TYPE:
        raise protocol.UnsupportedMediaType(
            f"send messages as {protocol.MEDIA_TYPE}, not {media[:80] or 'no content type'}")


def problem_response(problem: dict[str, object], status: int,
                     headers: tuple[tuple[str, str], ...] = _JSON_HEADERS) -> Response:
    return Response(status, protocol.PROBLEM_MEDIA_TYPE, protocol.dumps(problem), headers)


#: Answered when something unexpected failed on our side (never a 500).
UNAVAILABLE = problem_response(
    protocol.Unavailable(
        "the vendor could not process the message now; send it again later").to_problem(),
    503, (*_JSON_HEADERS, ("Retry-After", "30")))


class InboxCore:
    """Verify, apply, answer. ``clock`` and ``key`` are injected; so is ``apply``."""

    def __init__(
        self,
        key: protocol.SigningKey,
        *,
        clock: Callable[[], datetime],
        registry: protocol.MessageRegistry = protocol.CORE_REGISTRY,
        accepts: Iterable[str] | None = None,
        keys: protocol.KeyResolver = protocol.resolve_did_key,
    ) -> None:
        self.key = key
        self.clock = clock
        #: The types this inbox takes: ``accepts`` (the discovery document's
        #: ``types``) out of ``registry``, or all of ``registry``. Any other type is
        #: answered ``unsupported`` (PROTOCOL.md §4, step 11), before its body is
        #: checked: an offer or a receipt sent to a vendor, say.
        self.registry = registry.only(accepts) if accepts is not None else registry
        #: Resolves a sender's ``kid`` to its public key (did:key needs no lookup).
        self.keys = keys

    # --- the steps ---------------------------------------------------------------

    def verify(self, body: bytes, content_type: str | None) -> Verified:
        """Raise a ``protocol.InvalidMessage`` or return the verified message."""
        check_media_type(content_type)
        if len(body) > protocol.MAX_MESSAGE_BYTES:
            raise protocol.MessageTooLarge(
                f"a message is at most {protocol.MAX_MESSAGE_BYTES} bytes")
        now = self.clock()
        message = protocol.parse(body, now=now, keys=self.keys,
                                 recipient=self.key.did, registry=self.registry)
        return Verified(message, body, now)

    def refuse(self, exc: protocol.InvalidMessage, *, http_status: int = 0) -> Response:
        """Answer a refusal: a signed receipt if the sender is known, else a problem."""
        if exc.authenticated and exc.sender and exc.message_id:
            return self.answer_to(exc.sender, exc.message_id, Outcome.refused(
                exc, http_status=http_status))
        return problem_response(exc.to_problem(), exc.status_hint)

    def answer(self, verified: Verified, outcome: Outcome) -> Response:
        return self.answer_to(verified.message.sender, verified.message.id, outcome)

    def answer_to(self, to: str, thread: str, outcome: Outcome) -> Response:
        body: dict[str, object] = {"status": outcome.status}
        if outcome.problem is not None:
            problem = outcome.problem
            body["problem"] = protocol.ProblemRef(
                type=problem.urn, title=problem.title[:200], detail=problem.detail[:4000])
        if outcome.record is not None:
            body["record"] = outcome.record
        if outcome.messages is not None:
            body["messages"] = outcome.messages
        if outcome.cursor is not None:
            body["cursor"] = outcome.cursor
        receipt = protocol.Receipt(
            id=protocol.new_message_id(), sender=self.key.did, to=to, created=self.clock(),
            thread=thread, body=protocol.ReceiptBody(**body))
        return Response(outcome.http_status, protocol.MEDIA_TYPE,
                        protocol.sign(receipt, self.key))

    # --- the whole request ---------------------------------------------------------

    def handle(self, body: bytes, content_type: str | None,
               apply: Callable[[Verified], Outcome]) -> Response:
        """The whole request, synchronously. Never raises."""
        try:
            try:
                verified = self.verify(body, content_type)
            except protocol.InvalidMessage as exc:
                return self.refuse(exc)
            try:
                outcome = apply(verified)
            except protocol.InvalidMessage as exc:
                outcome = Outcome.refused(exc)  # a sink's refusal: answer this very message
            return self.answer(verified, outcome)
        except Exception:
            log.exception("the inbox failed on a message; answered 503")
            return UNAVAILABLE

    async def handle_async(self, body: bytes, content_type: str | None,
                           apply: Callable[[Verified], Awaitable[Outcome]]) -> Response:
        """The same, with an asynchronous ``apply`` (the group-commit writer). Never raises
        (except for cancellation, which belongs to the caller)."""
        try:
            try:
                verified = self.verify(body, content_type)
            except protocol.InvalidMessage as exc:
                return self.refuse(exc)
            try:
                outcome = await apply(verified)
            except protocol.InvalidMessage as exc:
                outcome = Outcome.refused(exc)  # a sink's refusal: answer this very message
            return self.answer(verified, outcome)
        except Exception:
            log.exception("the inbox failed on a message; answered 503")
            return UNAVAILABLE
