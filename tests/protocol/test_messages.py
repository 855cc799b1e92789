"""The message models (protocol/_messages.py): the CoreMessage union, and what null means."""

from __future__ import annotations

import pytest
from pydantic import TypeAdapter, ValidationError

import protocol
from protocol import CORE_REGISTRY, CoreMessage, SigningKey, parse, resolve_did_key, sign

from .helpers import NOW, envelope, signed
from .samples import SAMPLE_BODIES, THREADED

AGENT = SigningKey.generate()
VENDOR = SigningKey.generate()
CORE = TypeAdapter(CoreMessage)


def wire(type_: str, body: dict | None = None, **extra) -> dict:
    if type_ in THREADED:
        extra.setdefault("thread", "m0")
    return envelope(AGENT.did, VENDOR.did, type_,
                    SAMPLE_BODIES[type_] if body is None else body, **extra)


@pytest.mark.parametrize("type_", sorted(SAMPLE_BODIES))
def test_the_core_union_picks_the_class_by_type(type_):
    message = CORE.validate_python(wire(type_), by_alias=True, by_name=False)
    assert type(message) is CORE_REGISTRY[type_]
    assert message.type == type_


def test_the_core_union_refuses_an_unknown_type_by_its_tag():
    with pytest.raises(ValidationError) as info:
        CORE.validate_python(wire("feedback") | {"type": "x-org.example.points"})
    assert info.value.errors()[0]["type"] == "union_tag_invalid"


def test_the_core_union_does_not_fall_back_to_another_member():
    # A feedback body under the offer tag is an invalid offer, never a feedback.
    with pytest.raises(ValidationError) as info:
        CORE.validate_python(wire("offer", SAMPLE_BODIES["feedback"]))
    assert all(error["loc"][0] == "offer" for error in info.value.errors())


# --- null: the same as leaving the member out (PROTOCOL.md §3.2) --------------------------

def read(data: dict) -> protocol.Message:
    return parse(signed(data, AGENT), now=NOW, keys=resolve_did_key, recipient=VENDOR.did)


@pytest.mark.parametrize("type_, with_nulls, without", [
    ("feedback", {"score": 3, "comment": None, "subject": None}, {"score": 3}),
    ("intent", {"summary": "bike", "category": None, "quantity": None, "budget": None,
                "needed_by": None, "location": None, "valid_until": None}, {"summary": "bike"}),
    ("relationship.request", {"profile": None, "terms": None}, {}),
    ("relationship.end", {"reason": None}, {}),
    ("receipt", {"status": "accepted", "problem": None, "record": None, "messages": None,
                 "cursor": None}, {"status": "accepted"}),
    ("preferences.update", {"channels": {"email": True, "sms": None}, "marketing": None},
     {"channels": {"email": True}}),
    ("messages.fetch", {"after": None}, {"after": None}),
])
def test_an_optional_member_that_is_null_means_the_same_as_absent(type_, with_nulls, without):
    common = {"id": "m1", **({"thread": "m0"} if type_ in THREADED else {})}
    nulls = read(wire(type_, with_nulls, expires=None, **common))
    absent = read(wire(type_, without, **common))
    assert nulls == absent
    assert nulls.expires_at == absent.expires_at


def test_an_envelope_thread_that_is_null_means_no_thread():
    assert read(wire("feedback", thread=None)).thread is None


def test_in_contact_update_changes_null_removes_the_field_instead():
    # JSON Merge Patch (RFC 7386): the one place where null is not "absent".
    removed = read(wire("contact.update", {"changes": {"phone": None}})).body.changes
    assert "phone" in removed.model_fields_set and removed.phone is None
    with pytest.raises(protocol.InvalidBody):
        read(wire("contact.update", {"changes": None}))


def test_a_message_this_implementation_emits_round_trips_byte_for_byte():
    message = protocol.Receipt(
        id=protocol.new_message_id(), sender=VENDOR.did, to=AGENT.did, thread="m0",
        created=NOW.replace(microsecond=120000), expires=NOW.replace(day=2),
        body=protocol.ReceiptBody(
            status="accepted",
            problem=protocol.ProblemRef(type="urn:vrm:problem:invalid-body", title="t",
                                        detail="d"),
            record={"contact": "c-1", "count": 2, "erased": False, "none": None},
            messages=[protocol.FlattenedJWS.from_wire(protocol.loads(
                sign(protocol.Feedback(id="f1", sender=VENDOR.did, to=AGENT.did, created=NOW,
                                       body=protocol.FeedbackBody(score=1)), VENDOR)))],
            cursor="17"))
    raw = sign(message, VENDOR)
    again = parse(raw, now=NOW, keys=resolve_did_key, recipient=AGENT.did)
    assert again == message
    assert sign(again, VENDOR) == raw  # Ed25519 is deterministic: same payload, same bytes
    carried = parse(protocol.jws_bytes(again.body.messages[0]), now=NOW, keys=resolve_did_key,
                    recipient=AGENT.did)
    assert isinstance(carried, protocol.Feedback) and carried.body.score == 1
