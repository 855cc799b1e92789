"""sign() and parse(): round trips, and every rejection rule of PROTOCOL.md."""

from __future__ import annotations

import json

import pytest

import protocol
from protocol import (
    BadSignature,
    Expired,
    InvalidBody,
    MalformedMessage,
    MessageTooLarge,
    NotForMe,
    NotYetValid,
    Replayed,
    SigningError,
    SigningKey,
    UnknownKey,
    UnknownMessageType,
    b64url_decode,
    b64url_encode,
    parse,
    resolve_did_key,
    sign,
)

from .helpers import NOW, envelope, header_for, later, raw_jws, signed
from .samples import INVALID_BODIES, SAMPLE_BODIES, THREADED

AGENT = SigningKey.generate()
VENDOR = SigningKey.generate()


def read(raw: bytes, *, now=NOW, keys=resolve_did_key, recipient=None, **kw):
    return parse(raw, now=now, keys=keys, recipient=recipient or VENDOR.did, **kw)


def payload(type_: str = "feedback", body: dict | None = None, **extra) -> dict:
    if type_ in THREADED and "thread" not in extra:
        extra["thread"] = "intent-1"
    return envelope(AGENT.did, VENDOR.did, type_,
                    SAMPLE_BODIES[type_] if body is None else body, **extra)


# --- round trips ---------------------------------------------------------------

@pytest.mark.parametrize("type_", sorted(SAMPLE_BODIES))
def test_every_type_round_trips_bytes_model_bytes(type_):
    raw = signed(json.dumps(payload(type_), separators=(",", ":")).encode(), AGENT)
    message = read(raw)
    assert message.type == type_
    assert type(message) is protocol.CORE_REGISTRY[type_]
    # model -> bytes -> model -> bytes is stable, and keeps exactly the sent members
    again = read(sign(message, AGENT))
    assert again == message
    assert protocol.encode_payload(again) == protocol.encode_payload(message)
    wire = json.loads(protocol.encode_payload(message))
    assert wire["body"] == SAMPLE_BODIES[type_]


def test_sign_emits_the_documented_header_and_payload():
    message = protocol.Feedback(id="m1", sender=AGENT.did, to=VENDOR.did, created=NOW,
                                body=protocol.FeedbackBody(score=10))
    jws = json.loads(sign(message, AGENT))
    assert set(jws) == {"protected", "payload", "signature"}
    assert json.loads(b64url_decode(jws["protected"])) == {
        "alg": "Ed25519", "kid": AGENT.kid, "typ": "vrm+json"}
    assert json.loads(b64url_decode(jws["payload"])) == {
        "vrm": "1", "id": "m1", "type": "feedback", "from": AGENT.did, "to": VENDOR.did,
        "created": "2026-06-01T12:00:00Z", "body": {"score": 10}}


def test_merge_patch_nulls_survive_the_round_trip():
    message = read(signed(payload("contact.update"), AGENT))
    changes = message.body.changes
    assert changes.phone is None and "phone" in changes.model_fields_set
    assert "email" in changes.model_fields_set and "given_name" not in changes.model_fields_set
    assert json.loads(protocol.encode_payload(message))["body"]["changes"]["phone"] is None


def test_verification_uses_the_bytes_received_not_a_reserialization():
    # Whitespace and member order the sender chose are signed as they are.
    text = ('{ "body" : {"score":7},"type":"feedback", "vrm":"1","id":"x1",'
            f'"from":"{AGENT.did}","to":"{VENDOR.did}","created":"2026-06-01T12:00:00Z" }}')
    message = read(signed(text.encode(), AGENT))
    assert message.body.score == 7


def test_sign_refuses_a_message_from_another_did():
    message = protocol.Feedback(id="m1", sender=VENDOR.did, to=AGENT.did, created=NOW,
                                body=protocol.FeedbackBody(score=1))
    with pytest.raises(SigningError):
        sign(message, AGENT)


def test_sign_refuses_a_message_too_large_for_the_wire():
    message = protocol.Feedback(id="m1", sender=AGENT.did, to=VENDOR.did, created=NOW,
                                body=protocol.FeedbackBody(score=1, comment="x" * 4000))
    assert read(sign(message, AGENT)).body.comment == "x" * 4000
    big = protocol.RelationshipRequest(
        id="m2", sender=AGENT.did, to=VENDOR.did, created=NOW,
        body=protocol.RelationshipRequestBody(terms=[f"myterms:{'t' * 190}{i}" for i in range(32)]))
    assert len(protocol.encode_payload(big)) < protocol.MAX_PAYLOAD_BYTES
    sign(big, AGENT)  # fits
    receipt = protocol.Receipt(thread="m1",
        id="r", sender=AGENT.did, to=VENDOR.did, created=NOW,
        body=protocol.ReceiptBody(status="accepted", messages=[
            protocol.FlattenedJWS(protected="a", payload="b" * 1000, signature="c")] * 60))
    with pytest.raises(MessageTooLarge):
        sign(receipt, AGENT)


# --- the rejection rules, in the order parse() checks them -------------------------

def test_too_large():
    raw = b'{"protected":"' + b"a" * (protocol.MAX_MESSAGE_BYTES) + b'"}'
    with pytest.raises(MessageTooLarge) as info:
        read(raw)
    assert info.value.status_hint == 413 and info.value.urn == "urn:vrm:problem:too-large"


@pytest.mark.parametrize("raw", [
    b"not json",
    b'{"protected":"a","payload":"b"}',
    b'{"protected":"a","payload":"b","signature":"c","header":{"kid":"x"}}',
    b'{"protected":1,"payload":"b","signature":"c"}',
    b'{"protected":"a","protected":"a","payload":"b","signature":"c"}',
    b'{"protected":"!!!","payload":"b","signature":"c"}',
    b'{"protected":"bm90IGpzb24","payload":"b","signature":"c"}',
])
def test_malformed_jws(raw):
    with pytest.raises(MalformedMessage) as info:
        read(raw)
    assert info.value.status_hint == 400 and not info.value.authenticated


@pytest.mark.parametrize("changes", [
    {"alg": "none"}, {"alg": "HS256"}, {"alg": "RS256"}, {"alg": "ES256"}, {"alg": None},
    {"jwk": {"kty": "OKP"}}, {"jku": "https://evil.example/keys"}, {"x5u": "https://e.example"},
    {"x5c": ["MIIB"]}, {"crit": ["b64"]}, {"b64": False},
])
def test_unaccepted_algorithms_and_header_members(changes):
    raw = signed(payload(), AGENT, **changes)
    with pytest.raises(BadSignature):
        read(raw)


def test_alg_none_with_an_empty_signature():
    raw = raw_jws({"alg": "none", "kid": AGENT.kid, "typ": "vrm+json"}, payload(), None)
    with pytest.raises(BadSignature, match="algorithm"):
        read(raw)


def test_eddsa_is_accepted_as_ed25519():
    assert read(signed(payload(), AGENT, alg="EdDSA")).type == "feedback"


@pytest.mark.parametrize("changes", [{"typ": "JWT"}, {"typ": None}, {"cty": "json"}])
def test_other_header_members_and_types_are_malformed(changes):
    with pytest.raises(MalformedMessage):
        read(signed(payload(), AGENT, **changes))


@pytest.mark.parametrize("kid", [
    "https://example.com/key", "did:web:example.com#key-1", None, 7,
    VENDOR.did,  # a DID without the key fragment
], ids=["url", "did-web", "none", "number", "did-without-fragment"])
def test_kid_that_is_not_a_did_key(kid):
    with pytest.raises(UnknownKey) as info:
        read(raw_jws({"alg": "Ed25519", "kid": kid, "typ": "vrm+json"}, payload(), AGENT))
    assert info.value.status_hint == 401


def test_kid_unknown_to_a_pinned_resolver():
    raw = signed(payload(), AGENT)
    with pytest.raises(UnknownKey):
        read(raw, keys=protocol.pinned_keys(VENDOR.public))


def test_tampered_payload():
    jws = json.loads(signed(payload(), AGENT))
    body = json.loads(b64url_decode(jws["payload"]))
    body["body"]["score"] = 10
    jws["payload"] = b64url_encode(json.dumps(body).encode())
    with pytest.raises(BadSignature):
        read(json.dumps(jws).encode())


def test_signature_by_another_key():
    other = SigningKey.generate()
    raw = raw_jws(header_for(AGENT), payload(), other)
    with pytest.raises(BadSignature):
        read(raw)


def test_truncated_signature():
    jws = json.loads(signed(payload(), AGENT))
    jws["signature"] = jws["signature"][:40]
    with pytest.raises(BadSignature):
        read(json.dumps(jws).encode())


def test_kid_did_differs_from_from():
    other = SigningKey.generate()
    raw = signed(envelope(other.did, VENDOR.did, "feedback", {"score": 1}), AGENT)
    with pytest.raises(BadSignature, match="from"):
        read(raw)


@pytest.mark.parametrize("mutate", [
    lambda p: p.pop("id"),
    lambda p: p.pop("vrm"),
    lambda p: p.pop("type"),
    lambda p: p.pop("created"),
    lambda p: p.update(id="x" * 129),
    lambda p: p.update(id="has space"),
    lambda p: p.update(vrm="2"),
    lambda p: p.update(vrm=1),
    lambda p: p.update(created="2026-06-01 12:00:00"),
    lambda p: p.update(created="2026-06-01T12:00:00+02:00"),
    lambda p: p.update(created=1780000000),
    lambda p: p.update(expires="2026-06-01T11:00:00Z"),
    lambda p: p.update(expires="2026-07-02T12:00:01Z"),  # more than 30 days
    lambda p: p.update(body=[]),
    lambda p: p.update(extra="member"),
    lambda p: p.update(type=5),
    lambda p: p.pop("to"),
])
def test_bad_envelopes_are_malformed(mutate):
    data = payload()
    mutate(data)
    with pytest.raises(MalformedMessage):
        read(signed(data, AGENT))


@pytest.mark.parametrize("text", [
    b'{"vrm":"1","vrm":"1"}', b'{"a": NaN}', b'{"a": 1152921504606846976}',
    b'{"a":' + b"[" * 10_000 + b"]" * 10_000 + b"}",
])
def test_signed_payload_that_is_not_i_json(text):
    with pytest.raises(MalformedMessage):
        read(signed(text, AGENT))


def test_not_for_me_is_authenticated():
    raw = signed(payload(), AGENT)
    with pytest.raises(NotForMe) as info:
        read(raw, recipient=SigningKey.generate().did)
    error = info.value
    assert error.authenticated and error.status_hint == 422
    assert error.sender == AGENT.did and error.message_type == "feedback" and error.message_id


def test_created_up_to_five_minutes_ahead_is_accepted():
    assert read(signed(payload(created="2026-06-01T12:05:00Z"), AGENT)).type == "feedback"


def test_created_more_than_five_minutes_ahead():
    with pytest.raises(NotYetValid):
        read(signed(payload(created="2026-06-01T12:05:01Z"), AGENT))


def test_default_lifetime_is_seven_days():
    raw = signed(payload(), AGENT)
    assert read(raw, now=later(days=7, seconds=-1)).type == "feedback"
    with pytest.raises(Expired):
        read(raw, now=later(days=7))


def test_explicit_expiry():
    raw = signed(payload(expires="2026-06-01T12:10:00Z"), AGENT)
    assert read(raw, now=later(minutes=9)).expires_at == later(minutes=10)
    with pytest.raises(Expired):
        read(raw, now=later(minutes=10))


def test_thirty_days_is_the_longest_lifetime():
    raw = signed(payload(expires="2026-07-01T12:00:00Z"), AGENT)
    assert read(raw, now=later(days=29)).type == "feedback"


def test_unknown_type():
    with pytest.raises(UnknownMessageType) as info:
        read(signed(payload(body={}, type="x-org.example.unknown"), AGENT))
    assert info.value.receipt_status == "unsupported"
    assert info.value.urn == "urn:vrm:problem:unsupported-type"


@pytest.mark.parametrize("type_, body", INVALID_BODIES)
def test_invalid_bodies(type_, body):
    with pytest.raises(InvalidBody) as info:
        read(signed(payload(type_, body), AGENT))
    assert info.value.authenticated and info.value.message_type == type_


@pytest.mark.parametrize("type_", sorted(THREADED))
def test_answers_must_name_their_thread(type_):
    data = payload(type_)
    data.pop("thread")
    with pytest.raises(InvalidBody, match="thread"):
        read(signed(data, AGENT))


def test_replay_is_reported_with_the_verified_message():
    raw = signed(payload(), AGENT)
    store: set[tuple[str, str]] = set()

    def seen(sender: str, message_id: str) -> bool:
        if (sender, message_id) in store:
            return True
        store.add((sender, message_id))
        return False

    first = read(raw, seen=seen)
    with pytest.raises(Replayed) as info:
        read(raw, seen=seen)
    assert info.value.message == first


def test_every_problem_has_a_stable_urn_and_status():
    expected = {
        "malformed": 400, "bad-signature": 401, "unknown-key": 401, "too-large": 413,
        "unsupported-media-type": 415, "request-timeout": 408, "unavailable": 503,
        "not-for-me": 422, "expired": 422,
        "not-yet-valid": 422, "unknown-relationship": 422, "relationship-refused": 422,
        "unsupported-type": 422, "invalid-body": 422,
    }
    assert {name: cls.status_hint for name, cls in protocol.PROBLEMS.items()} == expected
    for name, cls in protocol.PROBLEMS.items():
        problem = cls("why").to_problem()
        assert problem == {"type": f"urn:vrm:problem:{name}", "title": cls.title,
                           "status": expected[name], "detail": "why"}
        assert issubclass(cls, protocol.ProtocolError)
        assert protocol.problem_name(problem["type"]) == name
    assert protocol.problem_name("about:blank") is None and protocol.problem_name(None) is None


# --- wire names ------------------------------------------------------------------------

@pytest.mark.parametrize("type_", ["feedback", "receipt"])
def test_from_is_the_only_wire_name_of_the_sender(type_):
    # Python builds models with sender=...; on the wire only "from" is the sender.
    data = payload(type_)
    data["sender"] = data.pop("from")
    with pytest.raises(MalformedMessage, match="from"):
        read(signed(data, AGENT))
    data["from"] = data["sender"]  # both: "sender" is an unknown member
    with pytest.raises((MalformedMessage, InvalidBody), match="sender"):
        read(signed(data, AGENT))


def test_python_code_builds_models_by_field_name_and_from_wire_by_wire_name():
    message = protocol.Feedback(id="m1", sender=AGENT.did, to=VENDOR.did, created=NOW,
                                body=protocol.FeedbackBody(score=3))
    wire = message.to_wire()
    assert wire["from"] == AGENT.did and "sender" not in wire
    assert protocol.Feedback.from_wire(wire) == message
    with pytest.raises(ValueError):
        protocol.Feedback.from_wire({**{k: v for k, v in wire.items() if k != "from"},
                                     "sender": AGENT.did})


# --- the kid names the sender, whatever the key resolver --------------------------------

@pytest.mark.parametrize("kid", [
    "https://x/y", "did:web:example.com#key-1", "key-1", VENDOR.did,
    f"{AGENT.did}#key-1",                      # a did:key with some other fragment
], ids=["url", "did-web", "bare", "did-without-fragment", "did-key-other-fragment"])
def test_a_kid_that_is_not_a_did_key_kid_is_refused_even_by_a_lenient_resolver(kid):
    raw = raw_jws({"alg": "Ed25519", "kid": kid, "typ": "vrm+json"}, payload(), AGENT)
    with pytest.raises(UnknownKey):
        read(raw, keys=lambda _kid: AGENT.public)


def test_a_resolver_that_answers_with_another_key_is_refused():
    other = SigningKey.generate()
    # The kid names OTHER; the resolver hands back AGENT's key, which signed it.
    raw = raw_jws(header_for(AGENT, kid=other.kid), payload(), AGENT)
    with pytest.raises(UnknownKey, match="another key"):
        read(raw, keys=lambda _kid: AGENT.public)


def test_from_must_be_the_did_of_the_kid():
    other = SigningKey.generate()
    raw = raw_jws(header_for(AGENT),
                  envelope(other.did, VENDOR.did, "feedback", {"score": 1}), AGENT)
    with pytest.raises(BadSignature, match="from"):
        read(raw, keys=lambda _kid: AGENT.public)


# --- what parse() takes -----------------------------------------------------------------

@pytest.mark.parametrize("wrap", [bytes, bytearray, memoryview])
def test_parse_takes_bytes_bytearray_and_memoryview(wrap):
    raw = signed(payload(), AGENT)
    assert read(wrap(raw)).type == "feedback"


@pytest.mark.parametrize("value", [
    None, 7, 1.5, ["x"], {"protected": "a"}, object(),
    '{"protected":"a","payload":"b","signature":"c"}',  # str: not the bytes that were signed
])
def test_parse_refuses_what_is_not_bytes(value):
    with pytest.raises(MalformedMessage, match="bytes"):
        read(value)


def test_a_str_holding_a_valid_message_is_refused_too():
    with pytest.raises(MalformedMessage, match="not str"):
        read(signed(payload(), AGENT).decode())


# --- one message, one spelling ------------------------------------------------------------

def respell_last_character(text: str) -> str:
    """The same bytes, with the unused low bits of the last character set."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    spare = {2: 0b1111, 3: 0b11}[len(text) % 4]
    respelled = text[:-1] + alphabet[alphabet.index(text[-1]) | spare]
    assert respelled != text
    return respelled


def spare_bits(text: bytes) -> bytes:
    """JSON text padded with trailing spaces to a length that leaves spare bits in base64url."""
    return text + b" " * (1 if len(text) % 3 == 0 else 0)


@pytest.mark.parametrize("member", ["protected", "payload", "signature"])
def test_a_respelled_member_is_refused(member):
    # Decoders that ignore the spare bits read these as the same bytes, so the
    # signature would still verify: the same message in other bytes (malleable).
    header = spare_bits(json.dumps(header_for(AGENT)).encode())
    body = spare_bits(json.dumps(payload()).encode())
    jws = json.loads(raw_jws(header, body, AGENT))
    assert read(json.dumps(jws).encode()).type == "feedback"
    jws[member] = respell_last_character(jws[member])
    with pytest.raises(MalformedMessage, match="canonical"):
        read(json.dumps(jws).encode())


@pytest.mark.parametrize("type_", sorted(THREADED))
def test_answers_must_name_their_thread_in_python_too(type_):
    model = protocol.CORE_REGISTRY[type_]
    assert model.requires_thread
    body = model.model_fields["body"].annotation.from_wire(SAMPLE_BODIES[type_])
    with pytest.raises(ValueError, match="thread"):
        model(id="m1", sender=AGENT.did, to=VENDOR.did, created=NOW, body=body)
    with pytest.raises(InvalidBody, match="thread"):
        read(signed(payload(type_, thread=None), AGENT))


def test_only_answers_require_a_thread():
    assert {name for name, model in protocol.CORE_REGISTRY.items()
            if model.requires_thread} == THREADED


# --- the protected header and the bytes around the JWS, through parse() ---------------------

def with_header(text: bytes) -> bytes:
    """A JWS whose protected header is exactly ``text``, signed by AGENT."""
    return raw_jws(text, payload(), AGENT)


def test_duplicate_members_in_the_protected_header():
    text = (b'{"alg":"Ed25519","kid":"%s","typ":"vrm+json","alg":"none"}' % AGENT.kid.encode())
    with pytest.raises(MalformedMessage, match="duplicate"):
        read(with_header(text))


def test_nan_in_the_protected_header():
    text = b'{"alg":"Ed25519","kid":"%s","typ":"vrm+json","x":NaN}' % AGENT.kid.encode()
    with pytest.raises(MalformedMessage, match="NaN"):
        read(with_header(text))


@pytest.mark.parametrize("alg", [5, ["Ed25519"], {"name": "Ed25519"}, True, "ed25519", "EDDSA"])
def test_an_alg_that_is_not_the_string_ed25519_or_eddsa(alg):
    with pytest.raises(BadSignature, match="algorithm"):
        read(signed(payload(), AGENT, alg=alg))


@pytest.mark.parametrize("typ", ["vrm+json", "VRM+JSON", "Vrm+Json", "application/vrm+json",
                                 "Application/VRM+JSON"])
def test_typ_is_compared_without_regard_to_case(typ):
    assert read(signed(payload(), AGENT, typ=typ)).type == "feedback"


@pytest.mark.parametrize("typ", ["application/jose+json", "vrm", "JOSE", "vrm+json ",
                                 "application/vrm+json; charset=utf-8", 1])
def test_other_typs_are_malformed(typ):
    with pytest.raises(MalformedMessage, match="typ"):
        read(signed(payload(), AGENT, typ=typ))


@pytest.mark.parametrize("member", ["x5t", "x5t#S256"])
def test_certificate_thumbprint_headers_are_refused(member):
    raw = signed(payload(), AGENT, **{member: "NjVBRjY5MDlCMUIwNzU4RTA2QzZFMDQ4QzQ2MDAyQjVDNjk1RTM2Qg"})
    with pytest.raises(BadSignature, match="not accepted"):
        read(raw)


def test_a_byte_order_mark_before_the_jws():
    with pytest.raises(MalformedMessage):
        read(b"\xef\xbb\xbf" + signed(payload(), AGENT))


@pytest.mark.parametrize("escape", [b"\\ud800", b"\\udfff", b"\\ud83d x"])
def test_a_lone_surrogate_in_the_payload(escape):
    data = json.dumps(payload("feedback", {"score": 1, "comment": "@"})).encode()
    with pytest.raises(MalformedMessage, match="surrogate"):
        read(signed(data.replace(b'"@"', b'"' + escape + b'"'), AGENT))


def test_a_surrogate_pair_in_the_payload_is_one_character():
    data = json.dumps(payload("feedback", {"score": 1, "comment": "@"})).encode()
    message = read(signed(data.replace(b'"@"', b'"\\ud83d\\ude00"'), AGENT))
    assert message.body.comment == "\U0001f600"
