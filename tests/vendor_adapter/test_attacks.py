"""Issue 6, item 1: attacks at the vendor inbox. Each asserts the HTTP status,
the problem URN, and that the CRM did not change.

Every attack runs against both bindings and both stores, in three pairs
(conftest.py): aiohttp behind ``GuardedAppRunner`` and the ASGI app behind a
real uvicorn server, each on SQLite, and aiohttp on PostgreSQL. Only the slow
request head and the half-close are aiohttp-only: it tests ``GuardedAppRunner``
(uvicorn has no head timeout of its own; README.md says what to put in front)."""

from __future__ import annotations

import base64
import gzip
import json
import sqlite3
from typing import Any

import pytest
from aiohttp import web
from jwcrypto import jwk, jws

import protocol
from vendor_adapter import CrmEvent, RecordRef, SqliteCrm, Vendor
from vendor_adapter.aiohttp import vrm_app

from .conftest import (
    JOSE,
    LIMITS,
    PASSPHRASE,
    GuardedTestServer,
    Inbox,
    JwcryptoPerson,
    Person,
    exchange,
    now,
    request_head,
    timedelta,
    verify_receipt,
)

URN = protocol.PROBLEM_PREFIX


@pytest.fixture
async def attacker(inbox: Inbox) -> Person:
    """Someone with a real relationship, so that refusals are not about that."""
    return await inbox.related(given_name="Mallory")


async def refused(inbox: Inbox, raw: bytes, status: int, problem: str, *,
                  headers: dict[str, str] | None = None) -> dict[str, Any]:
    before = inbox.snapshot()
    document = await inbox.problem(raw, status, URN + problem, headers=headers)
    assert inbox.snapshot() == before
    return document


async def rejected(inbox: Inbox, person: Person, raw: bytes, problem: str,
                   status: int = 422) -> dict[str, Any]:
    before = inbox.snapshot()
    receipt = await inbox.send(person, raw, status=status)
    assert receipt["status"] == "rejected"
    assert receipt["problem"]["type"] == URN + problem
    assert inbox.snapshot() == before
    return receipt


def flattened(header: dict[str, Any], payload: bytes, signature: bytes = b"") -> bytes:
    b64 = protocol.b64url_encode
    return json.dumps({"protected": b64(json.dumps(header).encode()), "payload": b64(payload),
                       "signature": b64(signature)}).encode()


# --- algorithms and keys --------------------------------------------------------------

async def test_alg_none(inbox: Inbox, attacker: Person) -> None:
    payload = json.dumps(attacker.envelope("feedback", {"score": 0})).encode()
    header = {"alg": "none", "kid": attacker.key.kid, "typ": "vrm+json"}
    await refused(inbox, flattened(header, payload), 401, "bad-signature")


@pytest.mark.parametrize("alg", ["HS256", "RS256"])
async def test_alg_hmac_and_rsa(inbox: Inbox, attacker: Person, alg: str) -> None:
    key = (jwk.JWK.generate(kty="oct", size=256) if alg == "HS256"
           else jwk.JWK.generate(kty="RSA", size=2048))
    payload = json.dumps(attacker.envelope("feedback", {"score": 0})).encode()
    token = jws.JWS(payload)
    token.add_signature(key, alg=alg, protected=json.dumps(
        {"alg": alg, "kid": attacker.key.kid, "typ": "vrm+json"}))
    await refused(inbox, token.serialize().encode(), 401, "bad-signature")


async def test_kid_that_is_not_a_did_key(inbox: Inbox) -> None:
    person = JwcryptoPerson(inbox.vendor.did)
    payload = json.dumps(person.envelope("relationship.request", {})).encode()
    raw = person.sign_payload(payload, header={"alg": "EdDSA", "typ": "vrm+json",
                                               "kid": "https://evil.example/key#1"})
    await refused(inbox, raw, 401, "unknown-key")


# A did:key of a small-order point (here the identity, 01 00 .. 00) "verifies"
# the signature R = A, S = 0 on every message with the installed OpenSSL. The
# whole table of such keys is in tests/protocol/test_weak_keys.py; over HTTP,
# the identity and one key of order 8 stand for it.
WEAK_KEYS = {
    "identity": (1).to_bytes(32, "little"),
    "order 8": bytes.fromhex("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05"),
}


def forged_by(raw_key: bytes, payload: dict[str, Any]) -> bytes:
    did = protocol._didkey.did_from_public_bytes(raw_key)
    header = {"alg": "Ed25519", "kid": protocol.kid_for_did(did), "typ": "vrm+json"}
    return flattened(header, json.dumps(payload).encode(), signature=raw_key + bytes(32))


@pytest.mark.parametrize("raw_key", list(WEAK_KEYS.values()), ids=list(WEAK_KEYS))
async def test_a_small_order_key_forges_nothing(inbox: Inbox, raw_key: bytes) -> None:
    did = protocol._didkey.did_from_public_bytes(raw_key)
    person = Person(inbox.vendor.did)
    request = person.envelope("relationship.request", {"profile": {"email": "a@example.org"}})
    request["from"] = did
    await refused(inbox, forged_by(raw_key, request), 401, "unknown-key")
    update = person.envelope("contact.update", {"changes": {"email": "evil@example.org"}})
    update["from"] = did
    await refused(inbox, forged_by(raw_key, update), 401, "unknown-key")


async def test_kid_whose_did_differs_from_from(inbox: Inbox, attacker: Person) -> None:
    victim = await inbox.related(given_name="Victim")
    # Mallory signs with her own key a message that claims to come from the victim.
    payload = attacker.envelope("contact.update", {"changes": {"email": "evil@example.org"}})
    payload["from"] = victim.did
    await refused(inbox, attacker.sign_payload(payload), 401, "bad-signature")


async def test_tampered_payload(inbox: Inbox, attacker: Person) -> None:
    jws_obj = json.loads(attacker.message("feedback", {"score": 1}))
    payload = json.loads(protocol.b64url_decode(jws_obj["payload"], what="p"))
    payload["body"]["score"] = 10
    jws_obj["payload"] = protocol.b64url_encode(json.dumps(payload).encode())
    await refused(inbox, json.dumps(jws_obj).encode(), 401, "bad-signature")


async def test_a_signature_respelled_in_non_canonical_base64url(inbox: Inbox,
                                                                attacker: Person) -> None:
    # 64 bytes take 86 characters, the last carrying 4 unused bits. Setting one
    # of them decodes to the same signature, so a lax decoder would accept the
    # same message as different bytes (a second id for one signed message).
    jws_obj = json.loads(attacker.message("feedback", {"score": 1}))
    signature = jws_obj["signature"]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    jws_obj["signature"] = signature[:-1] + alphabet[alphabet.index(signature[-1]) + 1]
    assert (protocol.b64url_decode(signature, what="s")
            == base64.urlsafe_b64decode(jws_obj["signature"] + "=="))
    await refused(inbox, json.dumps(jws_obj).encode(), 400, "malformed")


async def test_a_payload_naming_its_sender_sender_instead_of_from(inbox: Inbox,
                                                                  attacker: Person) -> None:
    # "sender" is the Python name of the member; on the wire it is "from" only.
    payload = attacker.envelope("feedback", {"score": 1})
    payload["sender"] = payload.pop("from")
    await refused(inbox, attacker.sign_payload(payload), 400, "malformed")


async def test_signature_made_with_another_key(inbox: Inbox, attacker: Person) -> None:
    other = protocol.SigningKey.generate()
    jws_obj = json.loads(attacker.message("feedback", {"score": 1}))
    signing_input = f"{jws_obj['protected']}.{jws_obj['payload']}".encode()
    jws_obj["signature"] = protocol.b64url_encode(other.sign(signing_input))
    await refused(inbox, json.dumps(jws_obj).encode(), 401, "bad-signature")


# --- addressing and time ----------------------------------------------------------------

async def test_message_addressed_to_another_vendor(inbox: Inbox, attacker: Person) -> None:
    other_vendor = protocol.SigningKey.generate().did
    raw = attacker.message("feedback", {"score": 0}, to=other_vendor)
    await rejected(inbox, attacker, raw, "not-for-me")


async def test_a_real_cross_vendor_replay(vendor: Vendor, store: str, served_app) -> None:
    # Two vendors in one database file, mounted side by side in one server: a
    # message vendor A really accepted, replayed verbatim to vendor B.
    other = Vendor.open(store, name="Other Shop", passphrase=PASSPHRASE)
    try:
        client = await served_app({"/a": vendor, "/b": other})
        shop_a, shop_b = [
            Inbox(client, v, await (await client.get(f"/{name}/.well-known/vrm")).json())
            for name, v in (("a", vendor), ("b", other))]
        person = shop_a.person()
        messages = [person.request(given_name="Ann"),
                    person.message("feedback", {"score": 9})]
        for raw in messages:
            assert (await shop_a.send(person, raw))["status"] == "accepted"
        before = shop_b.snapshot()  # the whole file: both vendors
        for raw in messages:
            resp = await client.post("/b/inbox", data=raw, headers=JOSE)
            assert resp.status == 422
            # B's own signed receipt, verified against B's discovery document
            receipt = verify_receipt(await resp.read(), shop_b.discovery, person.did)
            assert receipt["body"]["status"] == "rejected"
            assert receipt["body"]["problem"]["type"] == URN + "not-for-me"
        assert shop_b.snapshot() == before
        assert other.crm.contacts() == [] and len(vendor.crm.contacts()) == 1
    finally:
        other.close()


async def test_expired_message(inbox: Inbox, attacker: Person) -> None:
    raw = attacker.message("feedback", {"score": 0}, created=now() - timedelta(days=8))
    await rejected(inbox, attacker, raw, "expired")


async def test_message_created_far_in_the_future(inbox: Inbox, attacker: Person) -> None:
    raw = attacker.message("feedback", {"score": 0}, created=now() + timedelta(hours=2))
    await rejected(inbox, attacker, raw, "not-yet-valid")


async def test_replayed_id_is_a_duplicate_without_a_second_effect(inbox: Inbox,
                                                                  attacker: Person) -> None:
    raw = attacker.message("feedback", {"score": 4})
    first = await inbox.send(attacker, raw)
    before = inbox.snapshot()
    for _ in range(3):
        again = await inbox.send(attacker, raw)
        assert again["status"] == "duplicate" and again["record"] == first["record"]
    assert inbox.snapshot() == before
    # the same id with other content (a re-signed variant) is still the same message
    variant = attacker.message("feedback", {"score": 10},
                               id=json.loads(protocol.b64url_decode(
                                   json.loads(raw)["payload"], what="p"))["id"])
    assert (await inbox.send(attacker, variant))["status"] == "duplicate"
    assert inbox.snapshot() == before


@pytest.mark.parametrize("member, value", [
    ("jwk", {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}),
    ("jku", "https://evil.example/keys.json"),
    ("x5u", "https://evil.example/cert.pem"),
    ("x5c", ["MIIBszCCAVmgAwIBAgIJAKvE"]),
    ("x5t", "dGh1bWJwcmludA"),
    ("x5t#S256", "dGh1bWJwcmludA"),
    ("crit", ["b64"]),
    ("b64", False),
])
async def test_a_header_that_names_its_own_key_or_rules(inbox: Inbox, attacker: Person,
                                                        member: str, value: Any) -> None:
    # Signed properly, with the sender's real key: only the header member is wrong,
    # and it is one that would let the sender pick the key or change the rules
    # (RFC 8725 §3.1, RFC 7797).
    header = {"alg": "Ed25519", "kid": attacker.key.kid, "typ": "vrm+json", member: value}
    payload = json.dumps(attacker.envelope("feedback", {"score": 0})).encode()
    b64 = protocol.b64url_encode
    protected = b64(json.dumps(header).encode())
    signature = attacker.key.sign(f"{protected}.{b64(payload)}".encode())
    raw = json.dumps({"protected": protected, "payload": b64(payload),
                      "signature": b64(signature)}).encode()
    problem = await refused(inbox, raw, 401, "bad-signature")
    assert member in problem["detail"]


# --- hostile JSON -----------------------------------------------------------------------

async def test_duplicate_keys_in_the_jws(inbox: Inbox, attacker: Person) -> None:
    raw = attacker.message("feedback", {"score": 1})
    doubled = raw[:-1] + b',"signature":"AAAA"}'
    await refused(inbox, doubled, 400, "malformed")


async def test_duplicate_keys_in_the_signed_payload(inbox: Inbox, attacker: Person) -> None:
    text = json.dumps(attacker.envelope("feedback", {"score": 1}))
    text = text.replace('"score": 1', '"score": 1, "score": 10')
    await refused(inbox, attacker.sign_payload(text.encode()), 400, "malformed")


async def test_nan(inbox: Inbox, attacker: Person) -> None:
    text = json.dumps(attacker.envelope("feedback", {"score": 1})).replace('1}', 'NaN}')
    await refused(inbox, attacker.sign_payload(text.encode()), 400, "malformed")


async def test_integer_2_to_the_60(inbox: Inbox, attacker: Person) -> None:
    raw = attacker.message("feedback", {"score": 2**60})
    await refused(inbox, raw, 400, "malformed")


async def test_ten_thousand_deep_nesting(inbox: Inbox, attacker: Person) -> None:
    deep = b"[" * 10_000 + b"]" * 10_000
    await refused(inbox, b'{"protected":' + deep + b"}", 400, "malformed")
    text = json.dumps(attacker.envelope("feedback", {"score": 1})).encode()
    payload = text.replace(b'"score": 1', b'"x": ' + b"[" * 10_000 + b"]" * 10_000)
    await refused(inbox, attacker.sign_payload(payload), 400, "malformed")


async def test_a_lone_surrogate_in_the_signed_payload(inbox: Inbox, attacker: Person) -> None:
    # "\\ud800" is valid JSON text for a string that no UTF-8 can carry (RFC 7493 §2.1):
    # two parsers could read the signed message two ways.
    text = json.dumps(attacker.envelope("feedback", {"score": 1, "comment": "PLACEHOLDER"}))
    payload = text.replace("PLACEHOLDER", "\\ud800").encode()
    await refused(inbox, attacker.sign_payload(payload), 400, "malformed")


async def test_not_json_at_all(inbox: Inbox) -> None:
    await refused(inbox, b"\xff\xfe not json", 400, "malformed")
    await refused(inbox, b"", 400, "malformed")


# --- transport ----------------------------------------------------------------------------

async def test_wrong_content_type(inbox: Inbox, attacker: Person) -> None:
    raw = attacker.message("feedback", {"score": 1})
    for ctype in ("application/json", "text/plain", "application/jose"):
        await refused(inbox, raw, 415, "unsupported-media-type", headers={"Content-Type": ctype})
    # parameters such as charset are ignored (RFC 9110 §8.3.1)
    code, _, _ = await inbox.post(raw, {"Content-Type": "Application/JOSE+JSON; charset=utf-8"})
    assert code == 200


async def test_a_body_over_64_kib_is_refused(inbox: Inbox, attacker: Person) -> None:
    raw = attacker.message("feedback", {"score": 1, "comment": "x" * 70_000})
    before = inbox.snapshot()
    # Sent in pieces, as the network would: the answer comes on the head, and
    # the client stops sending. (A client that has pushed its whole body may see
    # uvicorn reset the connection instead: it closes without draining. README.md)
    result = await exchange_with(inbox, request_head(len(raw)),
                                 [raw[i:i + 8192] for i in range(0, len(raw), 8192)])
    assert result.status == 413
    assert result.problem()["type"] == URN + "too-large"
    assert inbox.snapshot() == before


@pytest.mark.parametrize("coding", ["gzip", "deflate", "br", "x-unknown"])
async def test_a_body_with_a_content_coding_is_refused(inbox: Inbox, attacker: Person,
                                                       coding: str) -> None:
    # A message is verified over the bytes as signed; a server that unpacked
    # gzip would also unpack a small body into gigabytes. Both bindings refuse
    # any coding on the head, before reading (aiohttp once decompressed it).
    raw = attacker.message("feedback", {"score": 5})
    body = gzip.compress(raw) if coding == "gzip" else raw
    await refused(inbox, body, 415, "unsupported-media-type",
                  headers={**JOSE, "Content-Encoding": coding})
    # "identity" is no coding at all
    code, _, _ = await inbox.post(raw, {**JOSE, "Content-Encoding": "identity"})
    assert code == 200


def exchange_with(inbox: Inbox, head: bytes, chunks: list[bytes], **options: Any) -> Any:
    server = inbox.client.server
    return exchange(server.host, server.port, head, chunks, **options)


async def test_a_content_type_that_is_not_utf_8(inbox: Inbox, attacker: Person) -> None:
    # aiohttp reads the undecodable byte as a lone surrogate; the problem detail
    # quotes the media type, and must still serialize (it once gave a 500).
    raw = attacker.message("feedback", {"score": 5})
    before = inbox.snapshot()
    result = await exchange_with(inbox, request_head(len(raw), "application/\xff"), [raw])
    assert result.status == 415, result.answer[:200]
    assert result.problem()["type"] == URN + "unsupported-media-type"
    assert inbox.snapshot() == before


@pytest.mark.parametrize("host", [b"a:99999", b"exa mple", b"", b"\xff\xfe", b"a@b@c",
                                  b"user@vendor.test", b"evil.example/x", b"a?b", b"a#b",
                                  b"vendor.test:", b"vendor.test:0", b"[::1", b"[nope]",
                                  b"..", b"-a", b"a\\b"])
async def test_a_discovery_request_with_a_bad_host(inbox: Inbox, host: bytes) -> None:
    # Issue 9, item 7. The inbox URL in the document is built from Host, which
    # must be host[:port]; anything else (userinfo as in "a@b@c", which once
    # gave http://c/inbox, a path, a query) is the client's mistake: 400, never
    # a document pointing elsewhere, never a 500.
    result = await exchange_with(inbox, b"GET /.well-known/vrm HTTP/1.1\r\nHost: " + host
                                 + b"\r\nConnection: close\r\n\r\n", [])
    assert result.status == 400, result.answer[:200]
    assert result.problem()["type"] == URN + "malformed"


@pytest.mark.parametrize("host", ["vendor.test", "Vendor.Test:8080", "127.0.0.1:9",
                                  "[::1]:8080", "shop_1.internal"])
async def test_the_discovery_inbox_is_built_from_a_valid_host(inbox: Inbox, host: str) -> None:
    result = await exchange_with(inbox, f"GET /.well-known/vrm HTTP/1.1\r\nHost: {host}"
                                 "\r\nConnection: close\r\n\r\n".encode(), [])
    assert result.status == 200, result.answer[:200]
    assert json.loads(result.body)["inbox"] == f"http://{host.lower()}/inbox"
    # Cacheable, but only for requests with the same Host (RFC 9110 §12.5.5).
    assert b"\r\nvary: host\r\n" in result.answer.lower()


async def test_public_base_url_wins_over_any_host(served_app: Any, vendor: Vendor) -> None:
    client = await served_app(vendor, public_base_url="https://shop.example/vrm/")
    for host in ("vendor.test", "a@b@c"):
        resp = await client.get("/.well-known/vrm", headers={"Host": host})
        assert resp.status == 200
        assert (await resp.json())["inbox"] == "https://shop.example/vrm/inbox"
        assert resp.headers["Vary"] == "Host"


class FailingCrm(SqliteCrm):
    """The built-in CRM, on a disk that fails once ``failing`` is set: it writes
    its records, then SQLite gives up, as with a full disk."""

    failing = False

    def apply(self, conn: sqlite3.Connection, event: CrmEvent) -> RecordRef:
        record = super().apply(conn, event)
        if self.failing:
            raise sqlite3.OperationalError("database or disk is full")
        return record


async def test_a_database_failure_is_a_503_and_records_nothing(store: str,
                                                               served_app) -> None:
    sink = FailingCrm()
    vendor = Vendor.open(store, name="Fragile", passphrase=PASSPHRASE, sink=sink)
    try:
        client = await served_app(vendor)
        inbox = Inbox(client, vendor, await (await client.get("/.well-known/vrm")).json(),
                      store)
        person = await inbox.related(given_name="Ann")
        raw = person.message("feedback", {"score": 9})
        sink.failing = True
        before = inbox.snapshot()
        resp = await client.post("/inbox", data=raw, headers=JOSE)
        assert resp.status == 503
        assert int(resp.headers["Retry-After"]) > 0
        assert resp.headers["Content-Type"].startswith("application/problem+json")
        problem = await resp.json()
        assert problem["type"] == URN + "unavailable" and problem["status"] == 503
        assert "disk" not in problem["detail"]  # our failure, not told to the sender
        assert inbox.snapshot() == before  # the half-written records were rolled back
        # The sender's retry, once the disk is fine again, has its one effect.
        sink.failing = False
        assert (await inbox.send(person, raw))["status"] == "accepted"
        assert len(vendor.crm.feedback()) == 1
    finally:
        vendor.close()


async def test_anything_unforeseen_is_a_503_never_a_500(inbox: Inbox, monkeypatch) -> None:
    def broken(inbox_url: str) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(inbox.vendor, "discovery", broken)
    resp = await inbox.client.get("/.well-known/vrm")
    assert resp.status == 503
    assert resp.headers["Retry-After"] == "30"
    assert (await resp.json())["type"] == URN + "unavailable"


async def test_a_10_mb_body_is_refused_before_it_is_read(inbox: Inbox) -> None:
    before = inbox.snapshot()
    result = await exchange_with(inbox, request_head(10 * 1024 * 1024), [b"{" * 1024] * 10)
    assert result.status == 413
    assert result.problem()["type"] == URN + "too-large"
    assert inbox.snapshot() == before


async def test_a_10_mb_chunked_body_is_refused_while_streaming(inbox: Inbox) -> None:
    before = inbox.snapshot()
    chunk = b"%x\r\n%s\r\n" % (64 * 1024, b"a" * 64 * 1024)
    result = await exchange_with(inbox, request_head(None), [chunk] * 160)
    assert result.status == 413
    assert result.problem()["type"] == URN + "too-large"
    assert result.cut_off  # refused while the client was still sending, not after 10 MB
    assert inbox.snapshot() == before


async def test_an_expect_header_that_is_not_text(inbox: Inbox, attacker: Person) -> None:
    # aiohttp's own Expect handler quoted the value in its 417 and, for bytes that
    # are not UTF-8, failed with a 500 (found by the HTTP fuzz test).
    raw = attacker.message("feedback", {"score": 5})
    before = inbox.snapshot()
    for value in (b"\x80", b"200-ok"):
        head = request_head(len(raw)).replace(
            b"\r\n\r\n", b"\r\nConnection: close\r\nExpect: " + value + b"\r\n\r\n")
        result = await exchange_with(inbox, head, [raw])
        assert result.status == 417, result.answer[:200]
    assert inbox.snapshot() == before


async def test_expect_100_continue_learns_a_refusal_before_sending_the_body(
        inbox: Inbox, attacker: Person) -> None:
    continued = b"\r\nExpect: 100-continue\r\n\r\n"
    before = inbox.snapshot()
    # Refused on the head: no "100 Continue", so the client never sends 10 MB.
    result = await exchange_with(inbox, request_head(10 * 1024 * 1024).replace(
        b"\r\n\r\n", continued), [])
    assert result.status == 413 and b"100 Continue" not in result.answer
    assert result.problem()["type"] == URN + "too-large"
    result = await exchange_with(inbox, request_head(100, "text/plain").replace(
        b"\r\n\r\n", continued), [])
    assert result.status == 415 and b"100 Continue" not in result.answer
    assert inbox.snapshot() == before
    # Otherwise the client is told to go on, and its message is taken.
    raw = attacker.message("feedback", {"score": 5})
    result = await exchange_with(inbox, request_head(len(raw)).replace(
        b"\r\n\r\n", b"\r\nConnection: close" + continued), [b"", raw], pause=0.1,
        stop_at_answer=False)
    assert result.answer.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 ")
    payload = verify_receipt(result.answer.split(b"\r\n\r\n", 2)[2], inbox.discovery,
                             attacker.did)
    assert payload["body"]["status"] == "accepted"


async def test_a_body_cut_off_half_way(inbox: Inbox, attacker: Person) -> None:
    raw = attacker.message("feedback", {"score": 5})
    half = raw[: len(raw) // 2]
    # the client says the body is shorter than the message: malformed
    await refused(inbox, half, 400, "malformed")
    # the inbox still works, and the message was never counted as seen
    assert (await inbox.send(attacker, raw))["status"] == "accepted"


async def test_a_body_cut_off_by_a_half_close(aiohttp_inbox: Inbox) -> None:
    # aiohttp-only: answering a client that half-closed is GuardedAppRunner's
    # doing; uvicorn closes such a connection without an answer.
    inbox = aiohttp_inbox
    attacker = await inbox.related(given_name="Mallory")
    raw = attacker.message("feedback", {"score": 5})
    half = raw[: len(raw) // 2]
    # the client promises the whole message, sends half, and ends its side of the
    # connection (a half-close: it can still read the answer)
    before = inbox.snapshot()
    result = await exchange_with(inbox, request_head(len(raw)), [half], shut=True)
    assert result.status == 400, result.answer[:200]
    assert result.problem()["type"] == URN + "malformed"
    assert b"\r\nconnection: close\r\n" in result.answer.lower()
    assert inbox.snapshot() == before
    # the inbox still works, and the message was never counted as seen
    assert (await inbox.send(attacker, raw))["status"] == "accepted"


async def test_a_slow_client_times_out(inbox: Inbox, attacker: Person, binding: str) -> None:
    raw = attacker.message("feedback", {"score": 5})
    before = inbox.snapshot()
    open_before = inbox.stats.open if binding == "aiohttp" else 0
    # one byte every 0.2 s: the whole body would take minutes; the limit is 1 s here
    result = await exchange_with(inbox, request_head(len(raw)), [bytes([b]) for b in raw[:40]],
                                 pause=0.2)
    assert result.status == 408
    assert result.problem()["type"] == URN + "request-timeout"
    assert b"\r\nconnection: close\r\n" in result.answer.lower()
    # The server let go: the client saw the connection end (EOF) while it was
    # still sending.
    assert result.cut_off
    assert inbox.snapshot() == before
    if binding == "aiohttp":  # and the guard no longer counts it
        assert inbox.stats.open == open_before


async def test_a_slow_client_times_out_on_its_headers_too(aiohttp_inbox: Inbox) -> None:
    # aiohttp-only: GuardedAppRunner's head timeout (uvicorn has none; README.md).
    inbox = aiohttp_inbox
    open_before = inbox.stats.open
    result = await exchange_with(inbox, b"POST /inbox HTTP/1.1\r\nHost: vendor.test\r\n",
                                 [b"X-Slow-%d: 1\r\n" % i for i in range(40)], pause=0.2)
    assert result.status == 408
    assert result.problem()["type"] == URN + "request-timeout"
    assert result.cut_off
    assert inbox.stats.open == open_before
    assert inbox.stats.head_timeouts == 1
