"""The message models of VRM/1: one envelope, one body model per type.

Every model is strict (no coercion: ``"7"`` is not 7, ``true`` is not 1),
frozen, and refuses unknown members: a signed message means exactly what it
says, and a misspelt field is an error rather than silently ignored.

Serialization emits exactly the members that were set, so JSON Merge Patch
nulls survive a round trip and absent members stay absent.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, ClassVar, Literal, Self, Union, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, model_validator

from ._fields import (
    Amount,
    Country,
    Currency,
    Date,
    Did,
    Email,
    Label,
    Language,
    MessageId,
    Name,
    Phone,
    Quantity,
    RecipientId,
    ShortText,
    TermId,
    Text,
    Timestamp,
    Url,
)

__all__ = [
    "PROTOCOL_VERSION", "WIRE", "DEFAULT_LIFETIME", "MAX_LIFETIME", "MAX_TYPE_LENGTH", "WireModel", "Envelope", "Message",
    "PostalAddress", "Profile", "PostalAddressChanges", "ProfileChanges", "PROFILE_FIELDS",
    "RelationshipRequest", "RelationshipRequestBody", "ContactUpdate", "ContactUpdateBody",
    "Intent", "IntentBody", "Budget", "Location", "IntentCancel", "IntentCancelBody",
    "Offer", "OfferBody", "Price", "PreferencesUpdate", "PreferencesUpdateBody", "Channels",
    "Feedback", "FeedbackBody", "RelationshipEnd", "RelationshipEndBody",
    "MessagesFetch", "MessagesFetchBody", "Receipt", "ReceiptBody", "ProblemRef",
    "FlattenedJWS", "CORE_MESSAGE_TYPES", "CoreMessage",
]

PROTOCOL_VERSION = "1"
#: How long a message is valid when it names no ``expires``.
DEFAULT_LIFETIME = timedelta(days=7)
#: The longest validity a message may claim.
MAX_LIFETIME = timedelta(days=30)
#: The longest message type name.
MAX_TYPE_LENGTH = 100


#: Validation context for payloads received from the wire.
WIRE: dict[str, bool] = {"wire": True}


class WireModel(BaseModel):
    """Base of every wire model: strict, frozen, closed.

    A member with a wire name that Python cannot use (``from``) has an alias.
    Python code builds models by the field name (``sender=``); a payload read from
    the wire must use the wire name only (:meth:`from_wire`), so that
    ``{"sender": ...}`` is an unknown member there, not a second spelling of ``from``.
    """

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True,
                              validate_by_name=True, validate_by_alias=True)

    @classmethod
    def from_wire(cls, data: Any) -> Self:
        """Validate a payload (or part of one) received from the wire: wire names only."""
        return cls.model_validate(data, context=WIRE, by_alias=True, by_name=False)

    def to_wire(self) -> dict[str, Any]:
        """The JSON-ready dict of exactly the members that were set."""
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)


# --- profile -----------------------------------------------------------------

class PostalAddress(WireModel):
    street_address: ShortText | None = None
    locality: ShortText | None = None
    region: ShortText | None = None
    postal_code: Annotated[str, Field(max_length=20)] | None = None
    country: Country | None = None


class Profile(WireModel):
    """The profile fields a person may share with a vendor."""

    given_name: Name | None = None
    family_name: Name | None = None
    email: Email | None = None
    phone: Phone | None = None
    postal_address: PostalAddress | None = None
    language: Language | None = None


#: The names of the shareable profile fields, in order.
PROFILE_FIELDS: tuple[str, ...] = tuple(Profile.model_fields)


def _not_empty(model: WireModel, what: str) -> None:
    if not model.model_fields_set:
        raise ValueError(f"{what} must name at least one field")


class PostalAddressChanges(PostalAddress):
    """Changes to a postal address (RFC 7386): null removes a member."""

    model_config = ConfigDict(json_schema_extra={"minProperties": 1})

    @model_validator(mode="after")
    def _some(self) -> PostalAddressChanges:
        _not_empty(self, "postal_address changes")
        return self


class ProfileChanges(Profile):
    """Changes to a profile with JSON Merge Patch semantics (RFC 7386 §2):
    a member set to null is removed; ``postal_address`` is merged member by member."""

    model_config = ConfigDict(json_schema_extra={"minProperties": 1})

    postal_address: PostalAddressChanges | None = None

    @model_validator(mode="after")
    def _some(self) -> ProfileChanges:
        _not_empty(self, "changes")
        return self


# --- envelope ----------------------------------------------------------------

class FlattenedJWS(WireModel):
    """A signed message, as carried inside another message (RFC 7515 §7.2.2)."""

    protected: str
    payload: str
    signature: str


class Envelope(WireModel):
    """The members every message shares; ``body`` is checked by the type's model."""

    vrm: Literal["1"]
    id: MessageId
    type: Annotated[str, Field(min_length=1, max_length=MAX_TYPE_LENGTH)]
    sender: Did = Field(alias="from")
    to: RecipientId
    created: Timestamp
    expires: Timestamp | None = None
    thread: MessageId | None = None
    body: dict[str, Any]

    @model_validator(mode="after")
    def _lifetime(self) -> Envelope:
        if self.expires is not None:
            if self.expires <= self.created:
                raise ValueError("expires must be after created")
            if self.expires - self.created > MAX_LIFETIME:
                raise ValueError("expires is at most 30 days after created")
        return self

    @property
    def expires_at(self) -> datetime:
        """When the message stops being valid: ``expires``, or created + 7 days."""
        return self.expires if self.expires is not None else self.created + DEFAULT_LIFETIME


class Message(Envelope):
    """A message of one type. Subclasses fix ``type`` and ``body``.

    Build one with keyword arguments; ``vrm`` and ``type`` fill themselves in::

        ContactUpdate(id=new_message_id(), sender=did, to=vendor_did, created=now,
                      body=ContactUpdateBody(changes=ProfileChanges(email="a@b.example")))
    """

    type: str
    body: WireModel  # type: ignore[assignment]

    #: The message type, e.g. "contact.update"; set on each subclass.
    message_type: ClassVar[str] = ""
    #: Whether ``thread`` must name the message this one answers. A type that
    #: declares ``thread: MessageId`` (required) gets True; an extension may also
    #: just set it.
    requires_thread: ClassVar[bool] = False

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        literal = get_args(cls.model_fields["type"].annotation)
        if len(literal) == 1 and isinstance(literal[0], str):
            cls.message_type = literal[0]
        if cls.model_fields["thread"].is_required():
            cls.requires_thread = True

    @model_validator(mode="before")
    @classmethod
    def _fill_constants(cls, data: Any, info: ValidationInfo) -> Any:
        # Marks vrm and type as set, so that they are always serialized. A
        # received payload is taken as it is: there, a missing vrm is an error.
        if info.context is WIRE:
            return data
        if isinstance(data, dict) and cls.message_type:
            data = {"vrm": PROTOCOL_VERSION, "type": cls.message_type, **data}
        return data

    @model_validator(mode="after")
    def _thread(self) -> Message:
        if self.requires_thread and self.thread is None:
            raise ValueError(f"{self.type} must name in thread the message it answers")
        return self


# --- the core types ----------------------------------------------------------

class RelationshipRequestBody(WireModel):
    profile: Profile | None = None
    terms: Annotated[list[TermId], Field(max_length=32)] | None = None


class RelationshipRequest(Message):
    """Agent to vendor: open a relationship, sharing the chosen profile fields."""

    type: Literal["relationship.request"]
    body: RelationshipRequestBody


class ContactUpdateBody(WireModel):
    changes: ProfileChanges


class ContactUpdate(Message):
    """Agent to vendor: profile changes, as a JSON Merge Patch."""

    type: Literal["contact.update"]
    body: ContactUpdateBody


class Budget(WireModel):
    max: Amount
    currency: Currency


class Location(WireModel):
    locality: ShortText | None = None
    postal_code: Annotated[str, Field(max_length=20)] | None = None
    country: Country | None = None


class IntentBody(WireModel):
    summary: Annotated[str, Field(min_length=1, max_length=500)]
    category: Label | None = None
    quantity: Quantity | None = None
    budget: Budget | None = None
    needed_by: Date | None = None
    location: Location | None = None
    valid_until: Timestamp | None = None


class Intent(Message):
    """Agent to vendors: an intentcast, a personal request for offers."""

    type: Literal["intent"]
    body: IntentBody


class IntentCancelBody(WireModel):
    reason: ShortText | None = None


class IntentCancel(Message):
    """Agent to vendor: withdraw the intent named in ``thread``."""

    type: Literal["intent.cancel"]
    thread: MessageId
    body: IntentCancelBody


class Price(WireModel):
    amount: Amount
    currency: Currency


class OfferBody(WireModel):
    summary: Annotated[str, Field(min_length=1, max_length=500)]
    price: Price
    valid_until: Timestamp | None = None
    url: Url | None = None


class Offer(Message):
    """Vendor to agent: an offer answering the intent named in ``thread``."""

    type: Literal["offer"]
    thread: MessageId
    body: OfferBody


class Channels(WireModel):
    email: bool | None = None
    sms: bool | None = None
    post: bool | None = None
    phone: bool | None = None


class PreferencesUpdateBody(WireModel):
    # At least one member that is not null (a null member means "absent" here).
    model_config = ConfigDict(json_schema_extra={"anyOf": [
        {"required": ["channels"], "properties": {"channels": {"type": "object"}}},
        {"required": ["marketing"], "properties": {"marketing": {"type": "boolean"}}},
    ]})

    channels: Channels | None = None
    marketing: bool | None = None

    @model_validator(mode="after")
    def _some(self) -> PreferencesUpdateBody:
        if self.channels is None and self.marketing is None:
            raise ValueError("preferences.update must set channels or marketing")
        return self


class PreferencesUpdate(Message):
    """Agent to vendor: which channels the vendor may use, and marketing consent."""

    type: Literal["preferences.update"]
    body: PreferencesUpdateBody


class FeedbackBody(WireModel):
    score: Annotated[int, Field(ge=0, le=10)]
    comment: Text | None = None
    subject: ShortText | None = None


class Feedback(Message):
    """Agent to vendor: a 0-10 score, as in a net promoter survey."""

    type: Literal["feedback"]
    body: FeedbackBody


class RelationshipEndBody(WireModel):
    erase: bool = False
    reason: ShortText | None = None


class RelationshipEnd(Message):
    """Agent to vendor: end the relationship; with ``erase``, erase the person's data."""

    type: Literal["relationship.end"]
    body: RelationshipEndBody


class MessagesFetchBody(WireModel):
    after: Annotated[str, Field(max_length=128)] | None


class MessagesFetch(Message):
    """Agent to vendor: collect what the vendor holds for this relationship."""

    type: Literal["messages.fetch"]
    body: MessagesFetchBody


#: A problem type is a URN (RFC 8141): ``urn:<NID>:<NSS>``, such as urn:vrm:problem:expired.
PROBLEM_TYPE_PATTERN = r"^urn:[A-Za-z0-9][A-Za-z0-9-]{0,31}:[\x21-\x7e]+$"


class ProblemRef(WireModel):
    type: Annotated[str, Field(min_length=1, max_length=200, pattern=PROBLEM_TYPE_PATTERN)]
    title: ShortText | None = None
    detail: Text | None = None


class ReceiptBody(WireModel):
    # JSON Schema for the rule in _problem below.
    model_config = ConfigDict(json_schema_extra={
        "if": {"required": ["status"],
               "properties": {"status": {"enum": ["rejected", "unsupported"]}}},
        "then": {"required": ["problem"], "properties": {"problem": {"type": "object"}}},
    })

    status: Literal["accepted", "duplicate", "rejected", "unsupported"]
    problem: ProblemRef | None = None
    record: dict[str, Annotated[str, Field(max_length=200)] | int | bool | None] | None = None
    messages: Annotated[list[FlattenedJWS], Field(max_length=100)] | None = None
    cursor: Annotated[str, Field(max_length=128)] | None = None

    @model_validator(mode="after")
    def _problem(self) -> ReceiptBody:
        if self.status in ("rejected", "unsupported") and self.problem is None:
            raise ValueError(f"a {self.status} receipt must carry a problem")
        return self


class Receipt(Message):
    """Vendor to agent: the signed outcome of the message named in ``thread``."""

    type: Literal["receipt"]
    # Always present: a receipt is sent only for an authenticated message whose
    # envelope (and so its id) could be read; anything less gets a problem document.
    thread: MessageId
    body: ReceiptBody


CORE_MESSAGE_TYPES: tuple[type[Message], ...] = (
    RelationshipRequest, ContactUpdate, Intent, IntentCancel, Offer, PreferencesUpdate,
    Feedback, RelationshipEnd, MessagesFetch, Receipt,
)

#: Every core message, discriminated by ``type`` (never by union order).
CoreMessage = Annotated[
    Union[RelationshipRequest, ContactUpdate, Intent, IntentCancel, Offer, PreferencesUpdate,
          Feedback, RelationshipEnd, MessagesFetch, Receipt],
    Field(discriminator="type"),
]
