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


@given(st.binary(max_size=500).map(bytearray) | st.binary(max_size=500).map(memoryview)
       | st.text(max_size=200) | json_values)
def test_arbitrary_objects_as_the_message(raw):
    # Not only bytes: a str, None or a list is refused with MalformedMessage.
    attempt(raw)
    try:
        protocol.parse_discovery(raw, url="https://shop.example/.well-known/vrm")
    except ProtocolError:
        pass


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


# --- discovery documents that look right, with odd values where it matters --------

url_parts = st.tuples(
    st.sampled_from(["https://", "http://", "HTTPS://", "ftp://", "", "https:", "//"]),
    st.sampled_from(["", "", "user:pw@", "@", ":@"]),
    st.sampled_from(["shop.example", "[::1", "::1]", "[::1]", "[zz]", "[", "]", "",
                     "127.0.0.1", "SHOP.example", "xn--", "%5B", "a]b", "\u0130.example"]),
    st.sampled_from(["", "", ":", ":443", ":80", ":99999", ":-1", ":0x1", ":\u0661"]),
    st.sampled_from(["/", "/vrm/inbox", "/.well-known/vrm", "", "?q#f"]) | st.text(max_size=8),
).map("".join)
odd_urls = url_parts | st.text(max_size=40)
odd_jwks = st.fixed_dictionaries(
    {}, optional={"kty": st.sampled_from(["OKP", "RSA", 1]),
                  "crv": st.sampled_from(["Ed25519", "X25519", None]),
                  "x": st.sampled_from([VENDOR.public.to_jwk()["x"], "", "!!", "AA"]) | st.text(),
                  "kid": st.sampled_from([VENDOR.kid, VENDOR.did]) | st.text(max_size=5),
                  "d": st.text(max_size=5)})
DROP = object()
#: For each member of a discovery document: values that are wrong, or nearly right.
odd_members = {
    "vrm": st.sampled_from([["1", "2"], [], ["2"], "1", [1], ["1"] * 11, DROP]),
    "id": st.sampled_from([AGENT.did, "did:web:x", "", VENDOR.kid, DROP]) | json_values,
    "name": st.text(max_size=5) | json_values | st.just(DROP),
    "inbox": json_values | st.just(DROP),
    "keys": st.lists(odd_jwks | st.just(VENDOR.public.to_jwk()), max_size=3)
    | json_values | st.just(DROP),
    "types": st.lists(st.sampled_from(sorted(SAMPLE_BODIES)) | st.text(max_size=5), max_size=3)
    | json_values | st.just(DROP),
    "extra": json_values,
}


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_structured_discovery_documents(data):
    """Documents built member by member: mostly valid, with odd URLs, and a few
    members replaced by odd values. Only the package's own errors escape."""
    document = {"vrm": ["1"], "id": VENDOR.did, "name": "Bikes4U", "inbox": data.draw(odd_urls),
                "keys": [VENDOR.public.to_jwk()], "types": ["intent"]}
    url = data.draw(odd_urls | json_values)
    for member in data.draw(st.sets(st.sampled_from(sorted(odd_members)), max_size=2)):
        value = data.draw(odd_members[member])
        if value is DROP:
            document.pop(member, None)
        else:
            document[member] = value
    try:
        parsed = protocol.parse_discovery(json.dumps(document).encode(), url=url)
    except ProtocolError:
        return
    # Whatever got through is safe to use: the inbox is on the document's origin,
    # and the vendor's own key is there.
    assert protocol.same_origin(parsed.inbox, url)
    assert parsed.key == VENDOR.public
