"""Issue 6, item 1: attacks at the vendor inbox. Each asserts the HTTP status,
the problem URN, and that the CRM did not change."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from jwcrypto import jwk, jws

import protocol

from .conftest import Inbox, JwcryptoPerson, Person, now, timedelta

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
    await refused(inbox, raw, 413, "too-large")


async def raw_request(inbox: Inbox, head: bytes, chunks: list[bytes], *,
                      pause: float = 0.001, shut: bool = False) -> bytes:
    """Speak HTTP/1.1 by hand, reading while writing; return what the server sent
    before it closed. The server may close (even reset) the connection once it
    has refused a body, so writing stops at the first sign of an answer."""
    host, port = inbox.client.server.host, inbox.client.server.port
    reader, writer = await asyncio.open_connection(host, port)
    received = bytearray()

    async def read() -> None:
        try:
            while data := await reader.read(65536):
                received.extend(data)
        except ConnectionError:
            pass

    reading = asyncio.create_task(read())
    try:
        writer.write(head)
        for chunk in chunks:
            if received or reading.done():
                break  # the server already answered
            writer.write(chunk)
            await writer.drain()
            await asyncio.sleep(pause)
        if shut:
            writer.write_eof()
    except ConnectionError:
        pass
    try:
        await asyncio.wait_for(reading, 30)
    finally:
        writer.close()
    return bytes(received)


def head(length: int | None, ctype: str = "application/jose+json") -> bytes:
    framing = (f"Content-Length: {length}" if length is not None
               else "Transfer-Encoding: chunked")
    # Header bytes are latin-1 (RFC 9110 §5.5), so "\xff" in ctype is the byte 0xff.
    return (f"POST /inbox HTTP/1.1\r\nHost: vendor.test\r\nContent-Type: {ctype}\r\n"
            f"{framing}\r\n\r\n").encode("latin-1")


async def test_a_content_type_that_is_not_utf_8(inbox: Inbox, attacker: Person) -> None:
    # aiohttp reads the undecodable byte as a lone surrogate; the problem detail
    # quotes the media type, and must still serialize (it once gave a 500).
    raw = attacker.message("feedback", {"score": 5})
    before = inbox.snapshot()
    answer = await raw_request(inbox, head(len(raw), "application/\xff"), [raw])
    status, _, body = answer.partition(b"\r\n\r\n")
    assert status.startswith(b"HTTP/1.1 415"), answer[:200]
    assert json.loads(body)["type"] == URN + "unsupported-media-type"
    assert inbox.snapshot() == before


@pytest.mark.parametrize("host", [b"a:99999", b"exa mple", b"", b"\xff\xfe"])
async def test_a_discovery_request_with_a_bad_host(inbox: Inbox, host: bytes) -> None:
    # The inbox URL in the document is built from Host; a Host that makes no URL
    # is the client's mistake (400), never a 500.
    answer = await raw_request(inbox, b"GET /.well-known/vrm HTTP/1.1\r\nHost: " + host
                               + b"\r\nConnection: close\r\n\r\n", [])
    status, _, body = answer.partition(b"\r\n\r\n")
    assert status.startswith(b"HTTP/1.1 400"), answer[:200]
    assert json.loads(body)["type"] == URN + "malformed"


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
    answer = await raw_request(inbox, head(10 * 1024 * 1024), [b"{" * 1024])
    assert answer.startswith(b"HTTP/1.1 413")
    assert (URN + "too-large").encode() in answer
    assert inbox.snapshot() == before


async def test_a_10_mb_chunked_body_is_refused_while_streaming(inbox: Inbox) -> None:
    before = inbox.snapshot()
    chunk = b"%x\r\n%s\r\n" % (64 * 1024, b"a" * 64 * 1024)
    answer = await raw_request(inbox, head(None), [chunk] * 160)
    assert answer.startswith(b"HTTP/1.1 413")
    assert inbox.snapshot() == before


async def test_a_body_cut_off_half_way(inbox: Inbox, attacker: Person) -> None:
    raw = attacker.message("feedback", {"score": 5})
    half = raw[: len(raw) // 2]
    # the client says the body is shorter than the message: malformed
    await refused(inbox, half, 400, "malformed")
    # the client promises the whole message, sends half and hangs up
    before = inbox.snapshot()
    await raw_request(inbox, head(len(raw)), [half], shut=True)
    assert inbox.snapshot() == before
    # the inbox still works, and the message was never counted as seen
    assert (await inbox.send(attacker, raw))["status"] == "accepted"


async def test_a_slow_client_times_out(inbox: Inbox, attacker: Person) -> None:
    raw = attacker.message("feedback", {"score": 5})
    before = inbox.snapshot()
    # one byte every 0.2 s: the whole body would take minutes; the limit is 1 s here
    answer = await raw_request(inbox, head(len(raw)), [bytes([b]) for b in raw[:40]],
                               pause=0.2)
    assert answer.startswith(b"HTTP/1.1 408")
    assert (URN + "request-timeout").encode() in answer
    assert b"Connection: close" in answer  # the server let go of the connection
    assert inbox.snapshot() == before
