"""Issue 6, item 4: hypothesis drives the vendor with arbitrary and near-valid input.

Three layers, each with its own oracle:

- the core (``Vendor.handle_sync``: verify, ledger, SQLite) with arbitrary
  bodies and content types: every answer is a problem document or a receipt
  that verifies with the vendor's key, never a 5xx;
- the core with *near-valid* messages, signed with a real key: fuzzed
  protected headers, and fuzzed envelopes (ids, types, times, addressees,
  bodies). The outcome must be exactly the one PROTOCOL.md §4 prescribes, so
  nothing malformed is ever accepted;
- each HTTP binding, through a real server on 127.0.0.1 (aiohttp served the
  way ``vrm-vendor serve`` serves; the ASGI app through uvicorn), with
  arbitrary methods, paths and header fields: never a 5xx, never an error
  logged by the adapter or the server.

A 503 fails too: the adapter answers 503 only when it caught a bug (or its
database failed), and here neither should happen.

The default run tries about 3,700 cases (the counts below); ``pytest -m
slow`` runs 5,000 or more per test.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import protocol
from vendor_adapter import SUPPORTED_TYPES, InboxCore, Outcome, Vendor
from vendor_adapter.aiohttp import InboxLimits, ServerLimits, serve, vrm_app

from vendor_adapter import asgi as vrm_asgi

from .conftest import BINDINGS, PASSPHRASE, Person, UvicornServer, now

#: Examples per test in the default run (CI runs exactly the README's command).
#: In all, about 3,700 cases; the file takes about 30 s on a 2-core machine.
CASES = {"bytes": 1000, "json": 500, "signed": 500, "headers": 500, "envelopes": 900,
         "http": 300}


def fuzz(cases: int) -> settings:
    # Scaled with the profile's max_examples (100 by default: tests/conftest.py),
    # so that VRM_HYPOTHESIS_PROFILE=quick shortens these too.
    scale = settings.default.max_examples / 100
    return settings(max_examples=max(1, round(cases * scale)), deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])


SLOW = fuzz(5000)
STATUSES = {200, 400, 401, 410, 413, 415, 422}
MAX_SAFE_INTEGER = 2**53 - 1


@pytest.fixture(scope="module")
def fuzz_vendor(tmp_path_factory: Any) -> Iterator[tuple[Vendor, Person]]:
    vendor = Vendor.open(str(tmp_path_factory.mktemp("fuzz") / "crm.db"), name="Fuzz",
                         passphrase=PASSPHRASE)
    person = Person(vendor.did)
    assert vendor.handle_sync(person.request(), protocol.MEDIA_TYPE).status == 200
    yield vendor, person
    vendor.close()


@pytest.fixture
def related(fuzz_vendor: tuple[Vendor, Person]) -> tuple[Vendor, Person]:
    """The fuzz vendor and a person of its own with an active relationship (other
    tests may end theirs)."""
    vendor = fuzz_vendor[0]
    person = Person(vendor.did)
    assert vendor.handle_sync(person.request(), protocol.MEDIA_TYPE).status == 200
    return vendor, person


# --- what an answer must be -------------------------------------------------------------

@dataclass(frozen=True)
class Answer:
    status: int
    #: The problem URN: of the problem document, or of the receipt's problem.
    problem: str | None
    #: The receipt's status (accepted, duplicate, rejected, unsupported), if a receipt.
    receipt: str | None


def read_answer(vendor: Vendor, response: Any, *, to: str | None = None,
                thread: str | None = None) -> Answer:
    """Check that a response is well-formed; a receipt must VERIFY with the
    vendor's key (pinned, as an agent pins it) and be addressed to ``to``."""
    assert response.status in STATUSES, (response.status, response.body[:300])
    if response.content_type == protocol.PROBLEM_MEDIA_TYPE:
        assert response.status not in (200, 410, 422)
        problem = json.loads(response.body)
        assert problem["type"].startswith(protocol.PROBLEM_PREFIX)
        assert problem["status"] == response.status
        return Answer(response.status, problem["type"], None)
    assert response.content_type == protocol.MEDIA_TYPE
    assert response.status in (200, 410, 422)
    assert len(response.body) <= protocol.MAX_MESSAGE_BYTES
    if to is None:  # the sender is unknown to the caller: read who it is addressed to
        to = json.loads(protocol.b64url_decode(json.loads(response.body)["payload"],
                                               what="payload"))["to"]
    receipt = protocol.parse(response.body, now=now(), recipient=to,
                             keys=protocol.pinned_keys(vendor.public_key))
    assert isinstance(receipt, protocol.Receipt)
    assert receipt.sender == vendor.did
    if thread is not None:
        assert receipt.thread == thread
    body = receipt.body
    assert (response.status == 200) == (body.status in ("accepted", "duplicate"))
    return Answer(response.status, body.problem.type if body.problem else None, body.status)


def urn(name: str) -> str:
    return protocol.PROBLEM_PREFIX + name


# --- (a) arbitrary bodies and content types ---------------------------------------------

content_types = st.one_of(
    st.none(), st.just(protocol.MEDIA_TYPE), st.just("application/jose+json; charset=utf-8"),
    st.text(max_size=60))
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=10)
#: JSON that is always I-JSON: safe integers, finite numbers, shallow.
i_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=8)
message_types = st.sampled_from([
    "relationship.request", "contact.update", "intent", "intent.cancel", "preferences.update",
    "feedback", "relationship.end", "messages.fetch", "receipt", "offer", "x-org.example.a",
]) | st.text(max_size=20)


def _fuzz_bytes(vendor: Vendor, body: bytes, ctype: str | None) -> None:
    answer = read_answer(vendor, vendor.handle_sync(body, ctype))
    # Bytes that are not a signed message can never be accepted.
    assert answer.receipt is None, answer


_signed_args = dict(
    type_=message_types,
    body=st.dictionaries(st.sampled_from(["profile", "changes", "summary", "score", "after",
                                          "erase", "channels", "marketing", "terms"]),
                         json_values, max_size=4) | json_values,
    extra=st.dictionaries(st.sampled_from(["expires", "thread", "created", "vrm", "extra"]),
                          json_values, max_size=2),
    fresh=st.booleans())


def _fuzz_signed(fuzz_vendor: tuple[Vendor, Person], type_: str, body: Any,
                 extra: dict[str, Any], fresh: bool) -> None:
    vendor, person = fuzz_vendor
    sender = Person(vendor.did) if fresh else person
    payload = sender.envelope(type_, body)
    payload.update(extra)
    response = vendor.handle_sync(sender.sign_payload(json.dumps(payload).encode()),
                                  protocol.MEDIA_TYPE)
    answer = read_answer(vendor, response, to=sender.did, thread=payload["id"])
    if answer.receipt in ("accepted", "duplicate"):
        # Only a message the vendor takes, from a relationship, with no unknown member.
        assert type_ in SUPPORTED_TYPES
        assert not fresh or type_ == "relationship.request"
        assert "extra" not in extra and extra.get("vrm", "1") == "1"
    if type_ not in SUPPORTED_TYPES and answer.receipt is not None:
        assert answer.receipt == "unsupported" and answer.problem == urn("unsupported-type")


@fuzz(CASES["bytes"])
@given(body=st.binary(max_size=2000), ctype=content_types)
def test_arbitrary_bytes(fuzz_vendor: tuple[Vendor, Person], body: bytes,
                         ctype: str | None) -> None:
    _fuzz_bytes(fuzz_vendor[0], body, ctype)


@fuzz(CASES["json"])
@given(value=json_values)
def test_arbitrary_json(fuzz_vendor: tuple[Vendor, Person], value: Any) -> None:
    _fuzz_bytes(fuzz_vendor[0], json.dumps(value).encode(), protocol.MEDIA_TYPE)


@fuzz(CASES["signed"])
@given(**_signed_args)
def test_arbitrary_signed_messages(fuzz_vendor: tuple[Vendor, Person], type_: str, body: Any,
                                   extra: dict[str, Any], fresh: bool) -> None:
    _fuzz_signed(fuzz_vendor, type_, body, extra, fresh)


# --- (b1) protected headers -------------------------------------------------------------

#: RFC 8725 §3.1, RFC 7797: members that let a sender pick the key or change the rules.
DANGEROUS = ("jwk", "jku", "x5u", "x5c", "x5t", "x5t#S256", "crit", "b64")
ACCEPTED_TYP = ("vrm+json", "application/vrm+json")
OTHER_KEY = protocol.SigningKey.generate()
MISSING = object()



def mostly(valid: Any, fuzzed: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``valid`` about three times in four, else ``fuzzed``: so that the cases
    where only one member is wrong, and the valid ones, are common."""
    return st.one_of(st.just(valid), st.just(valid), st.just(valid), fuzzed)


algs = mostly("Ed25519", st.sampled_from(["EdDSA", "none", "HS256", "RS256", "ES256", "EdDSA ",
                                         "ed25519", "", MISSING])
              | st.text(max_size=12) | i_json_values)
typs = mostly("vrm+json", st.sampled_from(["application/vrm+json", "VRM+JSON",
                                          "Application/Vrm+Json", "JWT", "vrm",
                                          "application/json", "", MISSING])
              | st.text(max_size=12) | i_json_values)
kids = mostly("own", st.sampled_from(["other", "vendor", MISSING]) | st.text(max_size=40)
              | i_json_values)
extra_members = mostly({}, st.dictionaries(
    st.sampled_from(DANGEROUS) | st.text(max_size=10).filter(
        lambda name: name not in ("alg", "kid", "typ")),
    i_json_values, min_size=1, max_size=2))


def expected_for_header(header: dict[str, Any], signer_kid: str,
                        other_kids: set[str]) -> tuple[int, str]:
    """PROTOCOL.md §4, steps 3 to 5, for a message signed with ``signer_kid``'s key:
    the status and problem URN (none when the message gets through)."""
    if any(name in header for name in DANGEROUS):
        return 401, urn("bad-signature")
    alg = header.get("alg")
    if not (isinstance(alg, str) and alg in ("Ed25519", "EdDSA")):
        return 401, urn("bad-signature")
    if set(header) - {"alg", "kid", "typ"}:
        return 400, urn("malformed")
    typ = header.get("typ")
    if not (isinstance(typ, str) and typ.lower() in ACCEPTED_TYP):
        return 400, urn("malformed")
    kid = header.get("kid")
    if kid == signer_kid:
        return 200, ""
    if isinstance(kid, str) and kid in other_kids:
        return 401, urn("bad-signature")  # a real key, but not the one that signed
    return 401, urn("unknown-key")


@fuzz(CASES["headers"])
@given(alg=algs, typ=typs, kid=kids, extra=extra_members, score=st.integers(0, 10))
def test_fuzzed_protected_headers(related: tuple[Vendor, Person], alg: Any, typ: Any,
                                  kid: Any, extra: dict[str, Any], score: int) -> None:
    vendor, person = related
    kid = {"own": person.key.kid, "other": OTHER_KEY.kid,
           "vendor": vendor.public_key.kid}.get(kid, kid) if isinstance(kid, str) else kid
    header = {name: value for name, value in (("alg", alg), ("typ", typ), ("kid", kid))
              if value is not MISSING}
    header.update(extra)
    payload = person.envelope("feedback", {"score": score})
    b64 = protocol.b64url_encode
    protected = b64(json.dumps(header).encode())
    payload_b64 = b64(json.dumps(payload).encode())
    signature = b64(person.key.sign(f"{protected}.{payload_b64}".encode()))
    raw = json.dumps({"protected": protected, "payload": payload_b64,
                      "signature": signature}).encode()
    answer = read_answer(vendor, vendor.handle_sync(raw, protocol.MEDIA_TYPE),
                         to=person.did, thread=payload["id"])
    status, problem = expected_for_header(header, person.key.kid,
                                          {OTHER_KEY.kid, vendor.public_key.kid})
    assert (answer.status, answer.problem or "") == (status, problem), header
    if status == 200:
        assert answer.receipt == "accepted"


# --- (b2) envelopes ---------------------------------------------------------------------

ENVELOPE_MEMBERS = ("vrm", "id", "type", "from", "to", "created", "expires", "thread", "body")
REQUIRED_MEMBERS = ("vrm", "id", "type", "from", "to", "created", "body")
MESSAGE_ID = re.compile(r"[\x21-\x7e]{1,128}")
RECIPIENT_ID = re.compile(r"[\x21-\x7e]{1,256}")
#: Clock margins: a case never lands within this of a boundary that moves with the clock.
MARGIN = 60
SKEW, LIFETIME, MAX_LIFETIME = 300, 7 * 86400, 30 * 86400


def _bad_time_formats(moment: datetime) -> list[str]:
    text = protocol.format_time(moment)
    return [text.replace("T", "t"), text.replace("Z", "+00:00"), text[:-1], text[:10],
            text.replace("Z", "z"), text + " ", moment.isoformat(), str(int(moment.timestamp()))]


def _not_i_json(value: Any) -> bool:
    """Holds what I-JSON refuses (RFC 7493 §2.2): an integer beyond ±(2^53 - 1),
    or a number that is not finite (json.dumps writes Infinity)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return abs(value) > MAX_SAFE_INTEGER
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, list):
        return any(map(_not_i_json, value))
    if isinstance(value, dict):
        return any(map(_not_i_json, value.values()))
    return False


def _valid_feedback_body(body: Any) -> bool:
    return (isinstance(body, dict) and set(body) == {"score"}
            and type(body["score"]) is int and 0 <= body["score"] <= 10)


@st.composite
def mutations(draw: st.DrawFn) -> tuple[str, Any]:
    """One change to a valid feedback message, and its argument."""
    kind = draw(st.sampled_from([
        "valid", "id", "to", "from", "vrm", "created", "created-format", "expires", "type",
        "extra", "drop", "body"]))
    if kind == "valid":  # a valid feedback of any shape: a score, maybe words, a thread
        body = {"score": draw(st.integers(0, 10))}
        for name, size in (("comment", 4000), ("subject", 200)):
            if draw(st.booleans()):
                body[name] = draw(st.text(max_size=min(size, 50)) | st.just("x" * size))
        thread = draw(st.none() | st.text(
            alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1,
            max_size=128))
        return kind, (body, thread)
    if kind == "id":
        return kind, draw(st.text(max_size=140) | st.text(
            alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1,
            max_size=130))
    if kind == "to":
        return kind, draw(st.sampled_from(["vendor", "other", OTHER_KEY.kid, "*"])
                          | st.text(max_size=40))
    if kind == "from":
        return kind, draw(st.sampled_from(["other", "vendor"]) | st.text(max_size=60))
    if kind == "vrm":
        return kind, draw(i_json_values.filter(lambda value: value != "1"))
    if kind == "created":  # seconds from now, away from the 5-minute and 7-day edges
        return kind, draw(st.integers(-LIFETIME + MARGIN, SKEW - MARGIN)
                          | st.integers(SKEW + MARGIN, 10**8)
                          | st.integers(-10**9, -LIFETIME - MARGIN))
    if kind == "created-format":
        return kind, draw(st.integers(0, 7))
    if kind == "expires":  # seconds after created, which is one day ago
        return kind, draw(st.integers(-10**7, 0) | st.integers(1, 86400 - MARGIN)
                          | st.integers(86400 + MARGIN, MAX_LIFETIME)
                          | st.integers(MAX_LIFETIME + 1, 10**8))
    if kind == "type":
        return kind, draw(st.sampled_from([*SUPPORTED_TYPES, "receipt", "offer", "x-org.a.b",
                                           "", "f" * 101]) | st.text(max_size=20))
    if kind == "extra":
        return kind, (draw(st.text(max_size=12).filter(lambda n: n not in ENVELOPE_MEMBERS)),
                      draw(i_json_values))
    if kind == "drop":
        return kind, draw(st.sampled_from(REQUIRED_MEMBERS))
    if kind == "body":
        return kind, draw(st.dictionaries(st.just("score") | st.text(max_size=8),
                                          json_values, max_size=3)
                          | st.fixed_dictionaries({"score": json_values}) | json_values)
    return kind, None


def mutate(person: Person, vendor: Vendor, kind: str, arg: Any
           ) -> tuple[dict[str, Any], set[tuple[int, str | None]]]:
    """A mutated payload, and the answers PROTOCOL.md §4 allows for it (status, URN)."""
    ok = {(200, None)}
    moment = now()
    payload = person.envelope("feedback", {"score": 7}, created=moment)
    if kind == "valid":
        payload["body"], thread = arg
        if thread is not None:
            payload["thread"] = thread
        return payload, ok
    if kind == "id":
        payload["id"] = arg
        return payload, ok if MESSAGE_ID.fullmatch(arg) else {(400, urn("malformed"))}
    if kind == "to":
        payload["to"] = {"vendor": vendor.did, "other": OTHER_KEY.did}.get(arg, arg)
        if payload["to"] == vendor.did:
            return payload, ok
        if not RECIPIENT_ID.fullmatch(payload["to"]):
            return payload, {(400, urn("malformed"))}
        return payload, {(422, urn("not-for-me"))}
    if kind == "from":
        payload["from"] = {"other": OTHER_KEY.did, "vendor": vendor.did}.get(arg, arg)
        # Someone else's DID is a forgery (step 7); something that is no DID, malformed.
        return payload, ({(401, urn("bad-signature"))} if arg in ("other", "vendor")
                         else {(400, urn("malformed"))})
    if kind == "vrm":
        payload["vrm"] = arg
        return payload, {(400, urn("malformed"))}
    if kind == "created":
        payload["created"] = protocol.format_time(moment + timedelta(seconds=arg))
        if arg > SKEW:
            return payload, {(422, urn("not-yet-valid"))}
        if arg < -LIFETIME:
            return payload, {(422, urn("expired"))}
        return payload, ok
    if kind == "created-format":
        payload["created"] = _bad_time_formats(moment)[arg]
        return payload, {(400, urn("malformed"))}
    if kind == "expires":
        created = moment - timedelta(days=1)
        payload["created"] = protocol.format_time(created)
        payload["expires"] = protocol.format_time(created + timedelta(seconds=arg))
        if arg <= 0 or arg > MAX_LIFETIME:
            return payload, {(400, urn("malformed"))}
        return payload, {(422, urn("expired"))} if arg < 86400 else ok
    if kind == "type":
        payload["type"] = arg
        if arg == "feedback":
            return payload, ok
        if not 1 <= len(arg) <= 100:
            return payload, {(400, urn("malformed"))}
        if arg in SUPPORTED_TYPES:  # a type the vendor takes, with a feedback's body
            return payload, {(422, urn("invalid-body"))}
        return payload, {(422, urn("unsupported-type"))}
    if kind == "extra":
        name, value = arg
        payload[name] = value
        return payload, {(400, urn("malformed"))}
    if kind == "drop":
        del payload[arg]
        return payload, {(400, urn("malformed"))}
    if kind == "body":
        payload["body"] = arg
        if _not_i_json(arg):
            return payload, {(400, urn("malformed"))}
        if not isinstance(arg, dict):
            return payload, {(400, urn("malformed"))}  # the envelope's body is an object
        return payload, ok if _valid_feedback_body(arg) else {(422, urn("invalid-body"))}
    return payload, ok


def _fuzz_envelope(fuzz_vendor: tuple[Vendor, Person], mutation: tuple[str, Any]) -> None:
    vendor, person = fuzz_vendor
    payload, allowed = mutate(person, vendor, *mutation)
    raw = person.sign_payload(json.dumps(payload).encode())
    thread = payload.get("id") if isinstance(payload.get("id"), str) else None
    answer = read_answer(vendor, vendor.handle_sync(raw, protocol.MEDIA_TYPE), to=person.did,
                         thread=thread)
    assert (answer.status, answer.problem) in allowed, (mutation, answer)
    if answer.status == 200:
        # a fuzzed id may repeat an earlier one: then the earlier message's duplicate
        assert answer.receipt == "accepted" or (mutation[0] == "id"
                                                and answer.receipt == "duplicate")
        assert answer.problem is None


@fuzz(CASES["envelopes"])
@given(mutation=mutations())
def test_fuzzed_envelopes(related: tuple[Vendor, Person], mutation: tuple[str, Any]) -> None:
    _fuzz_envelope(related, mutation)


# --- (c) each HTTP binding, through a real server ----------------------------------------

TOKEN = "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
#: Framing is ours to set, so that every case ends without waiting on a timeout.
FRAMING = {"content-length", "transfer-encoding", "connection", "host"}
latin1 = st.characters(min_codepoint=0, max_codepoint=255, exclude_characters="\r\n")

# Mostly the inbox's own method and path, so that most cases reach the adapter.
methods = mostly("POST", st.sampled_from(["GET", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH",
                                          "TRACE", "CONNECT", "PRI", "post"])
                 | st.text(TOKEN, min_size=1, max_size=10))
paths = mostly("/inbox", st.sampled_from(["/.well-known/vrm", "/", "/inbox?x=1", "/inbox/",
                                          "//inbox", "/%ff", "/.well-known/vrm/..", "*"])
               | st.text(latin1, max_size=30).map(lambda text: "/" + text))
header_names = st.sampled_from(["Content-Type", "Accept", "Expect", "Content-Encoding",
                                "Upgrade", "Accept-Encoding", "Cookie", "X-Forwarded-For"]) \
    | st.text(TOKEN, min_size=1, max_size=20) | st.text(latin1, min_size=1, max_size=10)
header_values = st.sampled_from(["application/jose+json", "application/jose+json; charset=x",
                                 "100-continue", "gzip", "websocket", "h2c", ""]) \
    | st.text(latin1, max_size=60)


@pytest.fixture(scope="module", params=BINDINGS)
def http_server(request: Any, fuzz_vendor: tuple[Vendor, Person]
                ) -> Iterator[tuple[Any, str, int]]:
    """The fuzz vendor behind a real server: aiohttp through GuardedAppRunner, or
    the ASGI app through uvicorn (the cases run once per binding)."""
    loop = asyncio.new_event_loop()
    limits = InboxLimits(body_timeout=5.0)
    if request.param == "aiohttp":
        runner = loop.run_until_complete(serve(
            vrm_app(fuzz_vendor[0], limits=limits), port=0,
            access_log=None, limits=ServerLimits(header_timeout=5.0)))
        host, port = runner.addresses[0][:2]
        yield loop, host, port
        loop.run_until_complete(runner.cleanup())
    else:
        server = loop.run_until_complete(
            UvicornServer(vrm_asgi.vrm_app(fuzz_vendor[0], limits=limits)).start())
        yield loop, server.host, server.port
        loop.run_until_complete(server.close())
    loop.close()


async def _send(host: str, port: int, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(request)
        # The request says Connection: close: the server must answer and close.
        return await asyncio.wait_for(reader.read(), 20)
    finally:
        writer.close()


def _final_status(answer: bytes) -> int:
    statuses = [int(code) for code in re.findall(rb"^HTTP/1\.[01] (\d{3})", answer, re.M)]
    final = [code for code in statuses if code >= 200]
    assert final, answer[:300]
    return final[-1]


@fuzz(CASES["http"])
@given(method=methods, path=paths,
       content_type=mostly("application/jose+json", header_values | st.just(MISSING)),
       headers=st.lists(st.tuples(header_names, header_values), max_size=6),
       body=st.sampled_from(["signed", "request", "empty"]) | st.binary(max_size=300))
def test_the_http_layer_with_arbitrary_methods_and_headers(
        http_server: tuple[Any, str, int], related: tuple[Vendor, Person],
        caplog: Any, method: str, path: str, content_type: Any,
        headers: list[tuple[str, str]], body: Any) -> None:
    loop, host, port = http_server
    vendor, person = related
    if body == "signed":
        body = person.message("feedback", {"score": 5})
    elif body == "request":
        body = Person(vendor.did).request()
    elif body == "empty":
        body = b""
    lines = [f"{method} {path} HTTP/1.1", "Host: fuzz.test"]
    if content_type is not MISSING:
        lines.append(f"Content-Type: {content_type}")
    lines += [f"{name}: {value}" for name, value in headers if name.lower() not in FRAMING]
    lines += [f"Content-Length: {len(body)}", "Connection: close"]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        answer = loop.run_until_complete(_send(host, port, request))
    status = _final_status(answer)
    assert status < 500, answer[:500]
    failures = [record for record in caplog.records
                if record.levelno >= logging.ERROR and (
                    record.name.startswith(("vendor_adapter", "asyncio", "uvicorn"))
                    or record.getMessage().startswith("Unhandled exception"))]
    assert not failures, [record.getMessage() for record in failures]


# --- under `pytest -m slow`: many more ----------------------------------------------------

@pytest.mark.slow
@SLOW
@given(body=st.binary(max_size=5000), ctype=content_types)
def test_arbitrary_bytes_slow(fuzz_vendor: tuple[Vendor, Person], body: bytes,
                              ctype: str | None) -> None:
    _fuzz_bytes(fuzz_vendor[0], body, ctype)


@pytest.mark.slow
@SLOW
@given(**_signed_args)
def test_arbitrary_signed_messages_slow(fuzz_vendor: tuple[Vendor, Person], type_: str,
                                        body: Any, extra: dict[str, Any], fresh: bool) -> None:
    _fuzz_signed(fuzz_vendor, type_, body, extra, fresh)


@pytest.mark.slow
@fuzz(20_000)
@given(mutation=mutations())
def test_fuzzed_envelopes_slow(related: tuple[Vendor, Person],
                               mutation: tuple[str, Any]) -> None:
    _fuzz_envelope(related, mutation)


# --- the last line of defence -------------------------------------------------------------

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
