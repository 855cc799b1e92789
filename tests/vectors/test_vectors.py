"""vectors/: every case holds for this implementation, the files are what the
generator makes, and their signatures verify with jwcrypto (not our code)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from jwcrypto import jwk, jws

import protocol
from agent._delivery import classify
from agent._http import HttpAnswer
from protocol.__main__ import main as protocol_main
from protocol.__main__ import vector_files
from vendor_adapter._core import check_media_type

ROOT = Path(__file__).resolve().parents[2]
VECTORS = ROOT / "vectors"


def load(name: str) -> dict[str, Any]:
    return json.loads((VECTORS / name).read_text())


def cases(name: str, key: str = "cases") -> Any:
    items = load(name)[key]
    return pytest.mark.parametrize("case", items, ids=[c["name"] for c in items])


def raw_of(inputs: dict[str, Any], name: str = "message") -> bytes:
    if name in inputs:
        return inputs[name].encode("ascii")
    return protocol.b64url_decode(inputs[name + "_b64"])


def when(text: str) -> datetime:
    return protocol.parse_time(text)


def resolver(keys: Any) -> protocol.KeyResolver:
    if keys == "did:key":
        return protocol.resolve_did_key
    return protocol.pinned_keys(*(protocol.PublicKey.from_jwk(k) for k in keys))


def receive(inputs: dict[str, Any]) -> protocol.Message:
    """The receiver's checks of PROTOCOL.md §4 (and §6.1's media type), as this
    implementation runs them."""
    if inputs["role"] == "vendor":
        check_media_type(inputs["content_type"])
    seen = {(pair["from"], pair["id"]) for pair in inputs["seen"]}
    return protocol.parse(raw_of(inputs), now=when(inputs["now"]), keys=resolver(inputs["keys"]),
                          recipient=inputs["recipient"],
                          seen=lambda sender, id_: (sender, id_) in seen,
                          registry=protocol.CORE_REGISTRY.only(inputs["accepts"]))


# --- the files ---------------------------------------------------------------------------

def test_regenerating_changes_nothing() -> None:
    files = vector_files()
    assert sorted(files) == sorted(p.name for p in VECTORS.glob("*.json"))
    for name, data in files.items():
        assert (VECTORS / name).read_bytes() == data, (
            f"vectors/{name} is stale: run python -m protocol vectors vectors")


def test_the_command_writes_the_same_bytes(tmp_path: Path) -> None:
    assert protocol_main(["vectors", str(tmp_path / "out")]) == 0
    for path in VECTORS.glob("*.json"):
        assert (tmp_path / "out" / path.name).read_bytes() == path.read_bytes()


def test_case_names_are_unique_and_sections_exist() -> None:
    spec = (ROOT / "PROTOCOL.md").read_text()
    for path in VECTORS.glob("*.json"):
        document = json.loads(path.read_text())
        for key in ("cases", "jwk_cases", "evidence_cases"):
            items = document.get(key, [])
            names = [c["name"] for c in items]
            assert len(names) == len(set(names)), path.name
            for case in items:
                section = case["section"]
                assert f"## {section}." in spec or f"### {section} " in spec, (
                    f"{path.name}:{case['name']} names section {section}, not in PROTOCOL.md")


def test_the_keys_file_matches_its_seeds() -> None:
    for entry in load("keys.json")["keys"].values():
        key = protocol.SigningKey.from_private_bytes(protocol.b64url_decode(entry["seed_b64"]))
        assert key.did == entry["did"] and key.public.to_jwk() == entry["jwk"]


# --- messages.json -----------------------------------------------------------------------

@cases("messages.json")
def test_message(case: dict[str, Any]) -> None:
    inputs, expected = case["input"], case["expected"]
    if not expected["valid"]:
        with pytest.raises(protocol.InvalidMessage) as caught:
            receive(inputs)
        error = caught.value
        assert error.urn == expected["problem"]
        if inputs["role"] == "vendor":
            assert error.status_hint == expected["http_status"]
            assert ("receipt" if error.authenticated else "problem document") == \
                expected["answer"]
            assert (error.receipt_status if error.authenticated else None) == \
                expected["receipt_status"]
        return
    if expected.get("duplicate"):
        with pytest.raises(protocol.Replayed) as replayed:
            receive(inputs)
        message = replayed.value.message
    else:
        message = receive(inputs)
    assert message.type == expected["type"]
    assert message.id == expected["id"]
    assert message.sender == expected["from"]
    assert message.to == expected["to"]
    assert message.thread == expected["thread"]
    assert message.body.to_wire() == expected["body"]


def test_messages_cover_every_problem_a_receiver_decides() -> None:
    found = {c["expected"].get("problem") for c in load("messages.json")["cases"]}
    for name, cls in protocol.PROBLEMS.items():
        if name in ("request-timeout", "unavailable", "unknown-relationship",
                    "relationship-refused"):
            continue  # the transport's and the relationship's: inbox.json and the checker
        assert protocol.problem_urn(name) in found, name


def test_messages_cover_every_core_type() -> None:
    valid = {c["expected"]["type"] for c in load("messages.json")["cases"]
             if c["expected"]["valid"]}
    assert valid == set(protocol.CORE_REGISTRY)


# --- jwcrypto agrees on every signature ---------------------------------------------------

def _jwcrypto_verifies(raw: bytes) -> bool:
    """Verify with jwcrypto, the algorithm pinned, the key taken from the kid's did:key."""
    data = json.loads(raw)
    header = json.loads(protocol.b64url_decode(data["protected"]))
    public = protocol.PublicKey.from_did(protocol.did_from_kid(header["kid"]))
    token = jws.JWS()
    token.allowed_algs = ["Ed25519", "EdDSA"]
    token.deserialize(raw.decode())
    try:
        token.verify(jwk.JWK(**public.to_jwk()))
    except jws.InvalidJWSSignature:
        return False
    return True


_SIGNATURE_REFUSED = ("signature-wrong", "signature-other-key", "signature-63-bytes",
                      "signature-empty", "signature-over-other-bytes")


def _signed_cases() -> list[tuple[str, bytes, bool]]:
    """(name, bytes, verifies) for every vector whose signature is meant to be
    checked: the messages that get past step 5, and those refused at it."""
    out = []
    for case in load("messages.json")["cases"]:
        inputs, expected = case["input"], case["expected"]
        raw = raw_of(inputs)
        if case["name"] in _SIGNATURE_REFUSED:
            out.append((case["name"], raw, False))
        elif (expected["valid"] or protocol.PROBLEMS[
                protocol.problem_name(expected["problem"])].authenticated
              or expected["problem"] == protocol.problem_urn("malformed")
              and case["name"].startswith(("envelope-", "payload-"))
              and not case["name"].startswith(("payload-not-utf8", "payload-bom"))):
            if len(raw) <= protocol.MAX_MESSAGE_BYTES and inputs["content_type"] == \
                    "application/jose+json":
                out.append((case["name"], raw, True))
    for case in load("receipts.json")["evidence_cases"]:
        out.append((f"evidence-{case['name']}", case["input"]["receipt"].encode(), True))
    for case in load("fetch.json")["cases"]:
        out.append((f"fetch-{case['name']}", case["input"]["receipt"].encode(), True))
        for carried in json.loads(protocol.b64url_decode(json.loads(
                case["input"]["receipt"])["payload"]))["body"].get("messages", []):
            out.append((f"fetch-{case['name']}-carried", json.dumps(carried).encode(), True))
    for step in load("inbox.json")["cases"][0]["steps"]:
        out.append((f"inbox-{step['description'][:30]}", step["message"].encode(), True))
    return out


SIGNED = _signed_cases()


@pytest.mark.parametrize(("name", "raw", "verifies"), SIGNED, ids=[s[0] for s in SIGNED])
def test_jwcrypto_agrees_on_the_signature(name: str, raw: bytes, verifies: bool) -> None:
    assert _jwcrypto_verifies(raw) is verifies


def test_the_signed_set_is_not_empty() -> None:
    assert sum(1 for _, _, ok in SIGNED if ok) > 150
    assert sum(1 for _, _, ok in SIGNED if not ok) == len(_SIGNATURE_REFUSED)


# --- base64url, did:key, JWK, I-JSON -------------------------------------------------------

@cases("base64url.json")
def test_base64url(case: dict[str, Any]) -> None:
    if case["expected"]["valid"]:
        assert protocol.b64url_decode(case["input"]).hex() == case["expected"]["bytes_hex"]
    else:
        with pytest.raises(protocol.MalformedMessage):
            protocol.b64url_decode(case["input"])


@cases("didkey.json")
def test_did_key(case: dict[str, Any]) -> None:
    expected = case["expected"]
    if expected["valid"]:
        key = protocol.PublicKey.from_did(case["input"])
        assert protocol.b64url_encode(key.raw) == expected["public_key"]
        assert key.kid == expected["kid"] and protocol.is_did_key(case["input"])
        assert protocol.did_from_kid(expected["kid"]) == case["input"]
    else:
        assert not protocol.is_did_key(case["input"])
        with pytest.raises(protocol.UnknownKey):
            protocol.PublicKey.from_did(case["input"])


@cases("didkey.json", "jwk_cases")
def test_jwk(case: dict[str, Any]) -> None:
    if case["expected"]["valid"]:
        key = protocol.PublicKey.from_jwk(case["input"])
        assert protocol.b64url_encode(key.raw) == case["expected"]["public_key"]
    else:
        with pytest.raises(protocol.UnknownKey):
            protocol.PublicKey.from_jwk(case["input"])


@cases("ijson.json")
def test_ijson(case: dict[str, Any]) -> None:
    data = raw_of(case, "input")
    if case["expected"]["valid"]:
        assert isinstance(protocol.loads(data), dict)
    else:
        with pytest.raises(protocol.MalformedMessage):
            protocol.loads(data)


# --- discovery ---------------------------------------------------------------------------

@cases("discovery.json")
def test_discovery(case: dict[str, Any]) -> None:
    inputs, expected = case["input"], case["expected"]
    raw = raw_of(inputs, "document")
    if not expected["usable"]:
        with pytest.raises(protocol.DiscoveryError):
            protocol.parse_discovery(raw, url=inputs["url"])
        return
    document = protocol.parse_discovery(raw, url=inputs["url"])
    assert document.id == expected["id"] and document.inbox == expected["inbox"]
    assert protocol.b64url_encode(document.key.raw) == expected["key"]
    assert document.types == expected["types"]


# --- what an agent makes of answers, pages and kept receipts --------------------------------

@cases("receipts.json")
def test_answer(case: dict[str, Any]) -> None:
    inputs, expected = case["input"], case["expected"]
    answer = HttpAnswer(inputs["http_status"], inputs["content_type"], raw_of(inputs, "answer"),
                        None)
    verdict = classify(answer, message_id=inputs["message_id"], recipient=inputs["recipient"],
                       vendor_key=protocol.PublicKey.from_jwk(inputs["vendor_key"]),
                       now=when(inputs["now"]))
    outcome = {"delivered": "delivered", "rejected": "rejected", "ended": "ended",
               "transient": "transient", "key-changed": "key-changed"}[verdict.kind]
    assert outcome == expected["outcome"], verdict.detail
    status = verdict.receipt.body.status if verdict.receipt is not None else None
    assert status == expected["receipt_status"]


@cases("receipts.json", "evidence_cases")
def test_evidence(case: dict[str, Any]) -> None:
    inputs = case["input"]
    check = lambda: protocol.verify_evidence(  # noqa: E731
        inputs["receipt"].encode(), inputs["message"].encode(),
        vendor_key=protocol.PublicKey.from_jwk(inputs["vendor_key"]))
    if case["expected"]["proves"]:
        assert check().thread == json.loads(protocol.b64url_decode(
            json.loads(inputs["message"])["payload"]))["id"]
    else:
        with pytest.raises(protocol.InvalidMessage):
            check()


@cases("fetch.json")
def test_fetch_page(case: dict[str, Any]) -> None:
    inputs, expected = case["input"], case["expected"]
    vendor = protocol.PublicKey.from_jwk(inputs["vendor_key"])
    now = when(inputs["now"])
    receipt = protocol.parse(inputs["receipt"].encode(), now=now,
                             keys=protocol.pinned_keys(vendor), recipient=inputs["recipient"])
    held = set(inputs["seen"])
    page = protocol.read_fetch_page(
        receipt, after=inputs["after"], vendor_key=vendor, recipient=inputs["recipient"],
        now=now, seen=lambda sender, id_: sender == vendor.did and id_ in held)
    assert [m.id for m, _ in page.messages] == expected["stored"]
    assert [id_ for id_, _ in page.dropped] == expected["dropped"]
    assert page.cursor == expected["next_after"]
    assert page.more is expected["fetch_again"]


# --- inbox.json: the built-in vendor, fresh, in order ---------------------------------------

@cases("inbox.json")
def test_inbox_scenario(case: dict[str, Any], tmp_path: Path) -> None:
    from vendor_adapter import Vendor
    from vendor_adapter._database import Database
    from vendor_adapter._mapping import DEFAULT

    keys = {e["jwk"]["x"]: e for e in load("keys.json")["keys"].values()}
    seed = keys[case["input"]["vendor_key"]["x"]]["seed_b64"]
    key = protocol.SigningKey.from_private_bytes(protocol.b64url_decode(seed))
    now = when(case["input"]["now"])
    vendor = Vendor(Database.acquire(tmp_path / "crm.db"), key, "vectors", sink=None,
                    mapping=DEFAULT, accept_relationship=None, clock=lambda: now,
                    registry=protocol.CORE_REGISTRY, types=tuple(case["input"]["types"]))
    try:
        for number, step in enumerate(case["steps"], 1):
            expected = step["expected"]
            where = f"step {number}: {step['description']}"
            response = vendor.handle_sync(step["message"].encode(), protocol.MEDIA_TYPE)
            assert response.status == expected["http_status"], where
            sent = protocol.parse(response.body, now=now,
                                  keys=protocol.pinned_keys(key.public), recipient=json.loads(
                                      protocol.b64url_decode(json.loads(step["message"])[
                                          "payload"]))["from"])
            assert sent.body.status == expected["receipt_status"], where
            assert (sent.body.problem.type if sent.body.problem else None) == \
                expected["problem"], where
            for name, value in expected.get("record_contains", {}).items():
                assert sent.body.record[name] == value, where
            if "messages" in expected:
                count = None if sent.body.messages is None else len(sent.body.messages)
                assert count == expected["messages"], where
            if expected.get("cursor"):
                assert sent.body.cursor is not None, where
    finally:
        vendor.close()
