"""The protocol's exceptions, and the problem table they are built from.

Every error that ``protocol`` raises derives from :class:`ProtocolError`::

    ProtocolError
    ├── InvalidMessage            a message was refused; carries a problem name
    │   ├── MalformedMessage      urn:vrm:problem:malformed           400
    │   ├── BadSignature          urn:vrm:problem:bad-signature       401
    │   ├── UnknownKey            urn:vrm:problem:unknown-key         401
    │   ├── MessageTooLarge       urn:vrm:problem:too-large           413
    │   ├── UnsupportedMediaType  urn:vrm:problem:unsupported-media-type 415
    │   ├── RequestTimeout        urn:vrm:problem:request-timeout     408
    │   ├── Unavailable           urn:vrm:problem:unavailable         503
    │   ├── NotForMe              urn:vrm:problem:not-for-me          422 *
    │   ├── Expired               urn:vrm:problem:expired             422 *
    │   ├── NotYetValid           urn:vrm:problem:not-yet-valid       422 *
    │   ├── UnknownRelationship   urn:vrm:problem:unknown-relationship 422 *
    │   ├── RelationshipRefused   urn:vrm:problem:relationship-refused 422 *
    │   ├── UnknownMessageType    urn:vrm:problem:unsupported-type    422 *
    │   └── InvalidBody           urn:vrm:problem:invalid-body        422 *
    ├── Replayed                  a valid message whose id was seen before
    ├── DiscoveryError            a vendor's /.well-known/vrm document is unusable
    ├── SealedKeyError            a sealed private key could not be opened
    │   └── WrongPassphrase       the passphrase does not open the key store
    └── SigningError              a message cannot be signed as asked

Problems marked * are found only after the signature has been verified, so the
sender is known: receivers answer them with a signed receipt. The others are
answered with an RFC 9457 problem document, because nobody is authenticated.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "PROBLEM_PREFIX",
    "PROBLEMS",
    "ProtocolError",
    "InvalidMessage",
    "MalformedMessage",
    "BadSignature",
    "UnknownKey",
    "MessageTooLarge",
    "UnsupportedMediaType",
    "RequestTimeout",
    "Unavailable",
    "NotForMe",
    "Expired",
    "NotYetValid",
    "UnknownRelationship",
    "RelationshipRefused",
    "UnknownMessageType",
    "InvalidBody",
    "Replayed",
    "DiscoveryError",
    "SealedKeyError",
    "WrongPassphrase",
    "SigningError",
    "problem_urn",
    "problem_name",
]

PROBLEM_PREFIX = "urn:vrm:problem:"


def problem_urn(name: str) -> str:
    return PROBLEM_PREFIX + name


def problem_name(urn: object) -> str | None:
    """``"urn:vrm:problem:expired"`` -> ``"expired"``; None for anything else."""
    if isinstance(urn, str) and urn.startswith(PROBLEM_PREFIX):
        return urn[len(PROBLEM_PREFIX):] or None
    return None


class ProtocolError(Exception):
    """The root of every error raised by ``protocol``."""


class InvalidMessage(ProtocolError):
    """A message was refused. ``problem`` names why; see :data:`PROBLEMS`.

    When the signature was verified before the problem was found,
    ``sender`` and (if the envelope could be read) ``message_id`` and
    ``message_type`` say who sent what, so that a receiver can sign a receipt.
    """

    problem: ClassVar[str]
    title: ClassVar[str]
    status_hint: ClassVar[int]
    #: True when the problem is found after authentication (answer with a receipt).
    authenticated: ClassVar[bool] = False
    #: The receipt status that answers this problem.
    receipt_status: ClassVar[str] = "rejected"

    def __init__(
        self,
        detail: str,
        *,
        sender: str | None = None,
        message_id: str | None = None,
        message_type: str | None = None,
    ) -> None:
        # Details quote untrusted input (a header, a member name). Text that
        # cannot be UTF-8 encoded (lone surrogates, as HTTP libraries make of
        # undecodable header bytes) is escaped here, once, so that every problem
        # document and receipt built from this error can be serialized.
        if not detail.isascii():
            detail = detail.encode("utf-8", "backslashreplace").decode("utf-8")
        super().__init__(detail)
        self.detail = detail
        self.sender = sender
        self.message_id = message_id
        self.message_type = message_type

    @property
    def urn(self) -> str:
        return problem_urn(self.problem)

    def to_problem(self) -> dict[str, object]:
        """The RFC 9457 problem details object for this error."""
        return {
            "type": self.urn,
            "title": self.title,
            "status": self.status_hint,
            "detail": self.detail,
        }


def _problem(name: str, title: str, status: int, *, authenticated: bool = False,
             receipt_status: str = "rejected"):
    def decorate(cls: type[InvalidMessage]) -> type[InvalidMessage]:
        cls.problem = name
        cls.title = title
        cls.status_hint = status
        cls.authenticated = authenticated
        cls.receipt_status = receipt_status
        return cls

    return decorate


@_problem("malformed", "The message is not well-formed", 400)
class MalformedMessage(InvalidMessage):
    pass


@_problem("bad-signature", "The signature does not verify", 401)
class BadSignature(InvalidMessage):
    pass


@_problem("unknown-key", "The signing key is not known", 401)
class UnknownKey(InvalidMessage):
    pass


@_problem("too-large", "The message is too large", 413)
class MessageTooLarge(InvalidMessage):
    pass


@_problem("unsupported-media-type", "The media type is not application/jose+json", 415)
class UnsupportedMediaType(InvalidMessage):
    pass


@_problem("request-timeout", "The message did not arrive in time", 408)
class RequestTimeout(InvalidMessage):
    """The body trickled in too slowly; the receiver gave up on the connection.
    A transport problem, not the message's: the sender retries."""


@_problem("unavailable", "The receiver cannot take messages right now", 503)
class Unavailable(InvalidMessage):
    """Not the sender's fault: the receiver failed or is overloaded. Try again later."""


@_problem("not-for-me", "The message is addressed to someone else", 422, authenticated=True)
class NotForMe(InvalidMessage):
    pass


@_problem("expired", "The message has expired", 422, authenticated=True)
class Expired(InvalidMessage):
    pass


@_problem("not-yet-valid", "The message was created in the future", 422, authenticated=True)
class NotYetValid(InvalidMessage):
    pass


@_problem("unknown-relationship", "There is no relationship with the sender", 422,
          authenticated=True)
class UnknownRelationship(InvalidMessage):
    pass


@_problem("relationship-refused", "The vendor declined the relationship", 422,
          authenticated=True)
class RelationshipRefused(InvalidMessage):
    pass


@_problem("unsupported-type", "The message type is not supported", 422,
          authenticated=True, receipt_status="unsupported")
class UnknownMessageType(InvalidMessage):
    pass


@_problem("invalid-body", "The message body is not valid for its type", 422,
          authenticated=True)
class InvalidBody(InvalidMessage):
    pass


#: Every problem name, mapped to its exception class. Receivers and other
#: implementations use these names; they never change within protocol version 1.
PROBLEMS: dict[str, type[InvalidMessage]] = {
    cls.problem: cls
    for cls in (
        MalformedMessage, BadSignature, UnknownKey, MessageTooLarge,
        UnsupportedMediaType, RequestTimeout, Unavailable, NotForMe, Expired, NotYetValid,
        UnknownRelationship, RelationshipRefused, UnknownMessageType, InvalidBody,
    )
}


class Replayed(ProtocolError):
    """A valid message whose (sender, id) the caller's ``seen`` store already holds.

    Receivers answer it with status ``duplicate`` and the original outcome,
    never with a second effect. ``message`` is the verified message.
    """

    def __init__(self, message: object) -> None:
        super().__init__("this message was received before")
        self.message = message


class DiscoveryError(ProtocolError):
    """A vendor's discovery document is malformed or unsafe to use."""


class SealedKeyError(ProtocolError):
    """A sealed private key could not be opened (wrong passphrase or damaged data)."""


class WrongPassphrase(SealedKeyError):
    """The passphrase does not open the key store (its check value does not match)."""


class SigningError(ProtocolError):
    """A message cannot be signed as asked (for example, ``from`` is not the key's DID)."""
