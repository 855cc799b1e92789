"""Property-based: any input gives a message or one of the package's own errors."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings, strategies as st

import protocol
from protocol import ProtocolError, SigningKey, parse, resolve_did_key

from .helpers import NOW, envelope, raw_jws, signed
from .samples import SAMPLE_BODIES

AGENT = SigningKey.generate()
VENDOR = SigningKey.generate()

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                  max_size=4),
    max_leaves=20,
)


def attempt(raw: bytes) -> None:
    try:
        parse(raw, now=NOW, keys=resolve_did_key, recipient=VENDOR.did)
    except ProtocolError:
        pass


@given(st.binary(max_size=2000))
def test_arbitrary_bytes(raw):
    attempt(raw)


@given(json_values)
def test_arbitrary_json_as_the_message(value):
    attempt(json.dumps(value).encode())


@given(st.dictionaries(st.sampled_from(["alg", "kid", "typ", "crit", "jwk", "b64", "x"]),
                       json_values, max_size=4), json_values)
def test_arbitrary_headers_and_payloads(header, payload):
    attempt(raw_jws(header, json.dumps(payload).encode(), AGENT))


@given(st.sampled_from(sorted(SAMPLE_BODIES)), json_values)
def test_signed_messages_with_arbitrary_bodies(type_, body):
    attempt(signed(envelope(AGENT.did, VENDOR.did, type_, body, thread="t"), AGENT))


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(SAMPLE_BODIES)),
       st.sampled_from(["vrm", "id", "type", "from", "to", "created", "expires", "thread"]),
       json_values)
def test_signed_messages_with_one_arbitrary_envelope_member(type_, member, value):
    data = envelope(AGENT.did, VENDOR.did, type_, SAMPLE_BODIES[type_], thread="t")
    data[member] = value
    attempt(signed(data, AGENT))


@given(st.text(max_size=300))
def test_arbitrary_text_payload(text):
    attempt(signed(text.encode("utf-8", "surrogatepass"), AGENT))


@given(st.binary(max_size=300))
def test_arbitrary_discovery_documents(raw):
    try:
        protocol.parse_discovery(raw, url="https://shop.example/.well-known/vrm")
    except ProtocolError:
        pass
