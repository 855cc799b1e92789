"""python -m protocol schema DIR, and the committed schemas/ directory."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st
from pydantic import ValidationError

import protocol

from .helpers import envelope
from .jsonschema_subset import is_valid
from .samples import INVALID_BODIES, SAMPLE_BODIES, THREADED

ROOT = Path(__file__).resolve().parents[2]


def run_schema(directory: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "protocol", "schema", str(directory), *extra],
                          capture_output=True, text=True, cwd=ROOT)


def test_writes_one_schema_per_registered_type(tmp_path):
    result = run_schema(tmp_path)
    assert result.returncode == 0, result.stderr
    names = {p.name for p in tmp_path.iterdir()}
    assert names == {f"{t}.json" for t in protocol.CORE_REGISTRY} | {"jws.json", "discovery.json"}
    feedback = json.loads((tmp_path / "feedback.json").read_text())
    assert feedback["$id"] == "urn:vrm:schema:1:feedback"
    assert feedback["properties"]["type"]["const"] == "feedback"
    assert "from" in feedback["required"] and feedback["additionalProperties"] is False


def test_committed_schemas_are_up_to_date(tmp_path):
    run_schema(tmp_path)
    for path in tmp_path.iterdir():
        committed = ROOT / "schemas" / path.name
        assert committed.read_text() == path.read_text(), (
            f"schemas/{path.name} is stale: run python -m protocol schema schemas")


def test_extension_registries_are_included(tmp_path):
    result = run_schema(tmp_path, "--registry", "tests.protocol.test_registry:registry_for_schema")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "x-org.example.loyalty.points.json").exists()


def test_a_bad_registry_is_one_clear_error(tmp_path):
    result = run_schema(tmp_path, "--registry", "no.such.module:registry")
    assert result.returncode == 2
    assert result.stderr.startswith("error: cannot load the registry")
    assert "Traceback" not in result.stderr


# --- the committed schemas say what the code enforces --------------------------------------

AGENT = protocol.SigningKey.generate()
VENDOR = protocol.SigningKey.generate()


def committed(name: str) -> dict:
    return json.loads((ROOT / "schemas" / f"{name}.json").read_text())


#: Marks a member to leave out.
DROP = object()


def wire_payload(type_: str, body: dict | None = None, **extra) -> dict:
    if type_ in THREADED:
        extra.setdefault("thread", "m0")
    data = envelope(AGENT.did, VENDOR.did, type_,
                    SAMPLE_BODIES[type_] if body is None else body, **extra)
    return {k: v for k, v in data.items() if v is not DROP}


def code_accepts(type_: str, data: dict) -> bool:
    try:
        protocol.CORE_REGISTRY[type_].from_wire(data)
    except ValidationError:
        return False
    return True


@pytest.mark.parametrize("type_", sorted(SAMPLE_BODIES))
def test_every_sample_fits_its_schema(type_):
    data = wire_payload(type_)
    assert code_accepts(type_, data)
    assert is_valid(data, committed(type_))


@pytest.mark.parametrize("type_, body", INVALID_BODIES)
def test_bodies_the_code_refuses_the_schema_refuses(type_, body):
    data = wire_payload(type_, body)
    assert not code_accepts(type_, data)
    if body == {"score": 9.0}:
        # JSON Schema cannot tell 9.0 from 9 (both are integers to it); the code can.
        assert is_valid(data, committed(type_))
    else:
        assert not is_valid(data, committed(type_))


@pytest.mark.parametrize("type_, changes", [
    ("feedback", {"from": "did:web:shop.example"}),
    ("feedback", {"from": "did:key:z6Mk"}),
    ("feedback", {"from": "did:key:zQ3shokFTS3brHcDQrn82RUDfCZESWL1ZdCEJwekUDPQiYBme"}),
    ("feedback", {"created": "2026-06-01T12:00:00+00:00"}),
    ("feedback", {"created": "2026-06-01t12:00:00z"}),
    ("feedback", {"created": "2026-06-01T12:00:00.1234567890Z"}),
    ("feedback", {"expires": "2026-06-02 12:00:00Z"}),
    ("feedback", {"to": ""}),
    ("feedback", {"to": "has space"}),
    ("feedback", {"id": "x" * 129}),
    ("feedback", {"vrm": "2"}),
    ("offer", {"thread": DROP}),
    ("offer", {"thread": None}),
    ("intent.cancel", {"thread": DROP}),
    ("receipt", {"thread": DROP}),
    ("intent", {"body": {"summary": "x", "needed_by": "2027-6-1"}}),
    ("intent", {"body": {"summary": "x", "valid_until": "2027-06-01T00:00:00.000+01:00"}}),
])
def test_envelopes_the_code_refuses_the_schema_refuses(type_, changes):
    data = {**wire_payload(type_), **changes}
    data = {k: v for k, v in data.items() if v is not DROP}
    assert not code_accepts(type_, data)
    assert not is_valid(data, committed(type_))


@pytest.mark.parametrize("type_, body", [
    ("feedback", {"score": 0, "comment": None, "subject": None}),
    ("intent", {"summary": "x", "category": None, "budget": None, "valid_until": None}),
    ("preferences.update", {"channels": None, "marketing": True}),
    ("receipt", {"status": "accepted", "problem": None, "messages": [], "cursor": "7"}),
    ("contact.update", {"changes": {"phone": None}}),
])
def test_nulls_the_code_takes_the_schema_takes(type_, body):
    data = wire_payload(type_, body, expires=None)
    assert code_accepts(type_, data) and is_valid(data, committed(type_))


def discovery_document(**changes) -> dict:
    document = {"vrm": ["1"], "id": VENDOR.did, "name": "B", "inbox": "https://s.example/i",
                "keys": [VENDOR.public.to_jwk()], "types": ["intent"]}
    document.update(changes)
    return document


@pytest.mark.parametrize("changes, valid", [
    ({}, True),
    ({"logo": "https://s.example/logo.png"}, True),
    ({"vrm": ["2", "1"]}, True),
    ({"vrm": ["2"]}, False),
    ({"vrm": []}, False),
    ({"id": "did:web:s.example"}, False),
    ({"keys": [{**VENDOR.public.to_jwk(), "d": "c2VjcmV0"}]}, False),
    ({"keys": []}, False),
    ({"name": "x" * 201}, False),
    ({"types": ["x" * 101]}, False),
])
def test_the_discovery_schema(changes, valid):
    document = discovery_document(**changes)
    assert is_valid(document, committed("discovery")) is valid
    try:
        protocol.parse_discovery(json.dumps(document).encode(), url="https://s.example/w")
    except protocol.DiscoveryError:
        assert not valid
    else:
        assert valid


json_scalars = (st.none() | st.booleans() | st.integers(-3, 20) | st.text(max_size=6)
                | st.sampled_from(["DE", "EUR", "1.00", "2027-06-01", "2027-06-01T00:00:00Z",
                                   "ada@example.org", "+4930123456", "en-GB", "myterms:x",
                                   "https://s.example/x", "accepted", "rejected"]))
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["changes", "email", "phone", "postal_address", "country", "summary",
                         "price", "amount", "currency", "status", "problem", "type", "score",
                         "marketing", "channels", "sms", "after", "erase", "reason", "terms",
                         "profile", "given_name", "record", "cursor", "messages"]),
        inner, max_size=4),
    max_leaves=12)


@settings(max_examples=300)
@given(st.sampled_from(sorted(SAMPLE_BODIES)), json_values)
def test_whatever_the_code_accepts_the_schema_accepts(type_, body):
    data = wire_payload(type_, body if isinstance(body, dict) else {"x": body})
    if code_accepts(type_, data):
        assert is_valid(data, committed(type_)), data
