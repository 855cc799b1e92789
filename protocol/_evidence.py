"""Receipts as evidence: checking a kept receipt against a kept message, at any
time later (PROTOCOL.md §5.11, "Receipts as evidence").

A receipt shows that the vendor acknowledged a message. To check one, a third
party needs the bytes of both, and the vendor's public key; the time does not
matter, so ``expires`` is not checked (a receipt is evidence long after it
would be refused as a live message).
"""

from __future__ import annotations

from pydantic import ValidationError

from ._codec import describe_validation_error
from ._errors import BadSignature, InvalidBody, MalformedMessage
from ._ijson import loads
from ._jws import verify_jws
from ._keys import PublicKey, pinned_keys, resolve_did_key
from ._messages import Envelope, Receipt

__all__ = ["verify_evidence"]


def verify_evidence(receipt: bytes, message: bytes, *, vendor_key: PublicKey) -> Receipt:
    """Check that ``receipt`` is ``vendor_key``'s acknowledgement of ``message``.

    The steps, in order: (1) ``message`` verifies with the key its ``kid`` names
    and its ``from`` is that DID; (2) ``receipt`` verifies with ``vendor_key`` and
    its ``from`` is the vendor's DID; (3) the receipt's ``thread`` is the message's
    ``id``, its ``to`` the message's ``from``, and the message's ``to`` the
    vendor's DID; (4) the receipt's status is ``accepted`` or ``duplicate``. Times
    are not checked. Returns the receipt; raises ``protocol.InvalidMessage``
    (``bad-signature``, ``unknown-key``, ``malformed`` or ``invalid-body``) otherwise.
    """
    sent = verify_jws(message, resolve_did_key)
    try:
        envelope = Envelope.from_wire(loads(sent.payload, what="the message"))
    except ValidationError as exc:
        raise MalformedMessage(f"the message is invalid: {describe_validation_error(exc)}") \
            from None
    if envelope.sender != sent.signer:
        raise BadSignature("the message's from is not the DID of its kid")
    answer = verify_jws(receipt, pinned_keys(vendor_key))
    try:
        kept = Receipt.from_wire(loads(answer.payload, what="the receipt"))
    except ValidationError as exc:
        raise MalformedMessage(f"the receipt is invalid: {describe_validation_error(exc)}") \
            from None
    if kept.sender != answer.signer:
        raise BadSignature("the receipt's from is not the DID of its kid")
    if kept.thread != envelope.id or kept.to != envelope.sender:
        raise InvalidBody("the receipt answers another message")
    if envelope.to != vendor_key.did:
        raise InvalidBody("the message was addressed to someone else than this vendor")
    if kept.body.status not in ("accepted", "duplicate"):
        raise InvalidBody(f"the receipt says {kept.body.status}, not accepted")
    return kept
