"""Issue 6, item 4: hypothesis drives the framework-free core with arbitrary
bodies and content types. No 500 (nor 503, which would mean a bug was caught),
no escaping exception, and every answer is a problem document or a receipt
that verifies. ``pytest -m slow`` runs many more examples."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import protocol
from vendor_adapter import InboxCore, Outcome, Vendor

from .conftest import PASSPHRASE, Person, now

SLOW = settings(max_examples=5000, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])
STATUSES = {200, 400, 401, 410, 413, 415, 422}


@pytest.fixture(scope="module")
def fuzz_vendor(tmp_path_factory: Any) -> Iterator[tuple[Vendor, Person]]:
    vendor = Vendor.open(str(tmp_path_factory.mktemp("fuzz") / "crm.db"), name="Fuzz",
                         passphrase=PASSPHRASE)
    person = Person(vendor.did)
    assert vendor.handle_sync(person.request(), protocol.MEDIA_TYPE).status == 200
    yield vendor, person
    vendor.close()


def check(vendor: Vendor, body: bytes, content_type: str | None) -> None:
    response = vendor.handle_sync(body, content_type)
    assert response.status in STATUSES, (response.status, response.body[:300])
    if response.content_type == protocol.PROBLEM_MEDIA_TYPE:
        problem = json.loads(response.body)
        assert problem["type"].startswith(protocol.PROBLEM_PREFIX)
        assert problem["status"] == response.status
    else:
        assert response.content_type == protocol.MEDIA_TYPE
        receipt = json.loads(protocol.b64url_decode(json.loads(response.body)["payload"],
                                                    what="payload"))
        assert receipt["type"] == "receipt" and receipt["from"] == vendor.did
        assert len(response.body) <= protocol.MAX_MESSAGE_BYTES


content_types = st.one_of(
    st.none(), st.just(protocol.MEDIA_TYPE), st.just("application/jose+json; charset=utf-8"),
    st.text(max_size=60))
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=30)
message_types = st.sampled_from([
    "relationship.request", "contact.update", "intent", "intent.cancel", "preferences.update",
    "feedback", "relationship.end", "messages.fetch", "receipt", "offer", "x-org.example.a",
]) | st.text(max_size=20)


def _fuzz_bytes(fuzz_vendor: tuple[Vendor, Person], body: bytes, ctype: str | None) -> None:
    check(fuzz_vendor[0], body, ctype)


def _fuzz_json(fuzz_vendor: tuple[Vendor, Person], value: Any) -> None:
    check(fuzz_vendor[0], json.dumps(value).encode(), protocol.MEDIA_TYPE)


def _fuzz_signed(fuzz_vendor: tuple[Vendor, Person], type_: str, body: Any,
                 extra: dict[str, Any], fresh: bool) -> None:
    vendor, person = fuzz_vendor
    sender = Person(vendor.did) if fresh else person
    payload = sender.envelope(type_, body)
    payload.update(extra)
    check(vendor, sender.sign_payload(json.dumps(payload).encode()), protocol.MEDIA_TYPE)


_signed_args = dict(
    type_=message_types,
    body=st.dictionaries(st.sampled_from(["profile", "changes", "summary", "score", "after",
                                          "erase", "channels", "marketing", "terms"]),
                         json_values, max_size=4) | json_values,
    extra=st.dictionaries(st.sampled_from(["expires", "thread", "created", "vrm", "extra"]),
                          json_values, max_size=2),
    fresh=st.booleans())


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.binary(max_size=2000), ctype=content_types)
def test_arbitrary_bytes(fuzz_vendor: tuple[Vendor, Person], body: bytes,
                         ctype: str | None) -> None:
    _fuzz_bytes(fuzz_vendor, body, ctype)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=json_values)
def test_arbitrary_json(fuzz_vendor: tuple[Vendor, Person], value: Any) -> None:
    _fuzz_json(fuzz_vendor, value)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(**_signed_args)
def test_arbitrary_signed_messages(fuzz_vendor: tuple[Vendor, Person], type_: str, body: Any,
                                   extra: dict[str, Any], fresh: bool) -> None:
    _fuzz_signed(fuzz_vendor, type_, body, extra, fresh)


@pytest.mark.slow
@SLOW
@given(body=st.binary(max_size=5000), ctype=content_types)
def test_arbitrary_bytes_slow(fuzz_vendor: tuple[Vendor, Person], body: bytes,
                              ctype: str | None) -> None:
    _fuzz_bytes(fuzz_vendor, body, ctype)


@pytest.mark.slow
@SLOW
@given(**_signed_args)
def test_arbitrary_signed_messages_slow(fuzz_vendor: tuple[Vendor, Person], type_: str,
                                        body: Any, extra: dict[str, Any], fresh: bool) -> None:
    _fuzz_signed(fuzz_vendor, type_, body, extra, fresh)


def test_an_unexpected_failure_is_a_503_not_a_500(caplog: Any) -> None:
    key = protocol.SigningKey.generate()
    core = InboxCore(key, clock=now)
    person = Person(key.did)

    def broken(item: Any) -> Outcome:
        raise RuntimeError("the CRM fell over")

    response = core.handle(person.request(), protocol.MEDIA_TYPE, broken)
    assert response.status == 503
    assert response.content_type == protocol.PROBLEM_MEDIA_TYPE
    assert "the CRM fell over" in caplog.text  # logged, not shown to the sender
    assert b"fell over" not in response.body
