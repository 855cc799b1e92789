"""Signing messages and parsing received ones: the two halves of the protocol.

``parse`` runs every check a receiver must make, cheapest first, and either
returns a verified, typed message or raises one :class:`ProtocolError`:

1. size, JSON and JWS shape, the protected header      -> malformed / too-large
2. ``kid`` is a did:key kid; the resolver's key for it -> unknown-key
   (and it is that very key), then the signature       -> bad-signature
3. the payload (I-JSON) and its envelope               -> malformed
4. ``from`` is the DID that ``kid`` names              -> bad-signature
5. ``to`` is the receiver                              -> not-for-me
6. ``created`` not in the future, not yet ``expires``  -> not-yet-valid / expired
7. the type is registered, the body fits its model     -> unsupported-type / invalid-body
8. the (sender, id) pair is new                        -> Replayed
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime, timedelta

from pydantic import ValidationError

from ._b64 import b64url_encode
from ._errors import (
    BadSignature,
    InvalidBody,
    MalformedMessage,
    MessageTooLarge,
    NotForMe,
    NotYetValid,
    Expired,
    Replayed,
    SigningError,
)
from ._ijson import dumps, loads
from ._jws import MAX_MESSAGE_BYTES, sign_payload, verify_jws
from ._keys import KeyResolver, SigningKey
from ._messages import WIRE, Envelope, FlattenedJWS, Message
from ._registry import CORE_REGISTRY, MessageRegistry
from ._time import utc

__all__ = [
    "MAX_CLOCK_SKEW", "MAX_PAYLOAD_BYTES", "SeenCheck", "new_message_id", "encode_payload",
    "sign", "parse", "jws_bytes", "describe_validation_error",
]

#: How far in the future ``created`` may be, for clocks that disagree.
MAX_CLOCK_SKEW = timedelta(minutes=5)
#: The largest payload accepted. A message is also limited to MAX_MESSAGE_BYTES
#: as a whole, which leaves about 48 KiB for the payload in practice.
MAX_PAYLOAD_BYTES = 64 * 1024

#: ``seen(sender, message_id)`` is True when the pair was received before.
SeenCheck = Callable[[str, str], bool]


def new_message_id() -> str:
    """A fresh message id: 128 random bits, base64url, never beginning with "-",
    so that a command line never reads an id people copy as an option
    (``vrm receipt ID``). Receivers accept any id (PROTOCOL.md §3)."""
    while True:
        value = b64url_encode(os.urandom(16))
        if not value.startswith("-"):
            return value


def encode_payload(message: Message) -> bytes:
    """The payload bytes: compact JSON of exactly the members that were set."""
    return message.model_dump_json(by_alias=True, exclude_unset=True).encode()


def sign(message: Message, key: SigningKey) -> bytes:
    """Sign ``message`` with ``key``; return the flattened JWS as bytes."""
    if message.sender != key.did:
        raise SigningError(f"message is from {message.sender}, but the key is {key.did}")
    payload = encode_payload(message)
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise MessageTooLarge(f"the payload is over {MAX_PAYLOAD_BYTES} bytes")
    jws = sign_payload(payload, key)
    if len(jws) > MAX_MESSAGE_BYTES:
        raise MessageTooLarge(f"the signed message is over {MAX_MESSAGE_BYTES} bytes")
    return jws


def jws_bytes(jws: FlattenedJWS) -> bytes:
    """The bytes of a JWS carried inside another message, ready for :func:`parse`.

    The signature covers the base64url strings, not the JSON around them,
    so re-serializing the outer object does not affect verification.
    """
    return dumps(jws.to_wire())


def describe_validation_error(exc: ValidationError, *, limit: int = 3) -> str:
    """A short, input-free description of what failed where."""
    parts = []
    for error in exc.errors(include_url=False, include_input=False)[:limit]:
        where = ".".join(str(p) for p in error["loc"]) or "(message)"
        parts.append(f"{where}: {error['msg']}")
    more = len(exc.errors()) - limit
    if more > 0:
        parts.append(f"and {more} more")
    return "; ".join(parts)


def parse(
    raw: bytes | bytearray | memoryview,
    *,
    now: datetime,
    keys: KeyResolver,
    recipient: str,
    seen: SeenCheck | None = None,
    registry: MessageRegistry = CORE_REGISTRY,
) -> Message:
    """Verify and read a received message. See the module docstring for the checks.

    ``raw`` is the bytes received (bytes, bytearray or memoryview); anything else,
    a str included, is :class:`MalformedMessage`.
    """
    now = utc(now)
    verified = verify_jws(raw, keys)
    if len(verified.payload) > MAX_PAYLOAD_BYTES:  # pragma: no cover - bounded by the JWS size
        raise MessageTooLarge(f"the payload is over {MAX_PAYLOAD_BYTES} bytes")
    data = loads(verified.payload, what="the payload")
    # The common case validates once, as the registered type. Only when that
    # fails is the envelope validated on its own, to tell a malformed message
    # (answered unauthenticated) from a bad body (answered with a receipt).
    kind = data.get("type")
    model = registry.get(kind) if isinstance(kind, str) else None
    message: Message | None = None
    body_error: ValidationError | None = None
    if model is not None:
        try:
            # model.from_wire(data), inlined: this is the hot path.
            message = envelope = model.model_validate(data, context=WIRE, by_alias=True,
                                                      by_name=False)
        except ValidationError as exc:
            body_error = exc
    if message is None:
        try:
            envelope = Envelope.from_wire(data)
        except ValidationError as exc:
            raise MalformedMessage(
                f"the envelope is invalid: {describe_validation_error(exc)}",
                sender=verified.signer,
            ) from None
    if envelope.sender != verified.signer:
        raise BadSignature("from is not the DID of the kid that signed the message")
    context = {"sender": envelope.sender, "message_id": envelope.id,
               "message_type": envelope.type}
    if envelope.to != recipient:
        raise NotForMe(f"the message is addressed to {envelope.to[:100]}", **context)
    if envelope.created > now + MAX_CLOCK_SKEW:
        raise NotYetValid("created is more than 5 minutes in the future", **context)
    if now >= envelope.expires_at:
        raise Expired("the message has expired", **context)
    if model is None:
        registry.lookup(envelope.type, **context)  # raises UnknownMessageType
    if message is None:
        assert body_error is not None
        raise InvalidBody(
            f"the {envelope.type} message is invalid: {describe_validation_error(body_error)}",
            **context,
        ) from None
    if seen is not None and seen(message.sender, message.id):
        raise Replayed(message)
    return message
