"""Language-neutral test vectors for VRM/1, built deterministically.

``build_vectors()`` returns ``{file name: JSON document}``; ``python -m protocol
vectors DIR`` writes them (the committed copy is ``vectors/`` at the repository
root, described by ``vectors/README.md``). Every key comes from a fixed seed and
every time from a fixed clock, and Ed25519 signatures are deterministic (RFC 8032
§5.1.6), so building twice gives the same bytes.

The expected outcomes are written here by hand, from PROTOCOL.md; they are not
computed by ``protocol.parse``. ``tests/vectors/`` checks the implementation
against them, so a disagreement between the two fails the suite.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta, timezone
from typing import Any

from ._b64 import b64url_encode
from ._didkey import did_from_public_bytes, kid_for_did
from ._errors import PROBLEMS
from ._keys import SigningKey

__all__ = ["build_vectors", "VECTOR_KEYS", "VECTORS_NOW", "VENDOR_TYPES"]

#: The fixed clock of every vector.
VECTORS_NOW = datetime(2026, 6, 1, 12, 0, 0, tzinfo=timezone.utc)
NOW_TEXT = "2026-06-01T12:00:00Z"
#: What a vendor's discovery document lists in the vectors: the built-in adapter's types.
VENDOR_TYPES = ["relationship.request", "contact.update", "intent", "intent.cancel",
                "preferences.update", "feedback", "relationship.end", "messages.fetch"]
AGENT_TYPES = ["offer", "receipt"]
GENERATOR = "python -m protocol vectors vectors"


def _seeded(label: str) -> SigningKey:
    return SigningKey.from_private_bytes(hashlib.sha256(f"VRM/1 test vectors: {label}".encode())
                                         .digest())


#: The fixed keys. ``agent`` is RFC 8037 §A.1's key (also PROTOCOL.md §10's).
VECTOR_KEYS: dict[str, SigningKey] = {
    "agent": SigningKey.from_private_bytes(bytes.fromhex(
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")),
    "vendor": _seeded("vendor"),
    "other": _seeded("other"),
}
AGENT, VENDOR, OTHER = VECTOR_KEYS["agent"], VECTOR_KEYS["vendor"], VECTOR_KEYS["other"]
P = 2**255 - 19


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def _t(moment: datetime) -> str:
    text = moment.isoformat()
    return (text[:26].rstrip("0") if moment.microsecond else text[:19]) + "Z"


def header(key: SigningKey = AGENT, **changes: Any) -> dict[str, Any]:
    value = {"alg": "Ed25519", "kid": key.kid, "typ": "vrm+json"}
    value.update(changes)
    return {k: v for k, v in value.items() if v is not None}


def jws(header_value: dict[str, Any] | bytes, payload: dict[str, Any] | bytes,
        key: SigningKey | None = AGENT, *, protected_b64: str | None = None,
        payload_b64: str | None = None, signature: bytes | None = None,
        signature_b64: str | None = None, extra: dict[str, Any] | None = None) -> bytes:
    """A flattened JWS with any header and payload, signed by ``key`` over the
    base64url text as it will be sent (which may be made non-canonical on purpose)."""
    header_bytes = header_value if isinstance(header_value, bytes) else _json(header_value)
    payload_bytes = payload if isinstance(payload, bytes) else _json(payload)
    protected = protected_b64 if protected_b64 is not None else b64url_encode(header_bytes)
    body = payload_b64 if payload_b64 is not None else b64url_encode(payload_bytes)
    if signature is None:
        signature = key.sign(f"{protected}.{body}".encode()) if key is not None else bytes(64)
    sig = signature_b64 if signature_b64 is not None else b64url_encode(signature)
    obj: dict[str, Any] = {"protected": protected, "payload": body, "signature": sig}
    if extra:
        obj.update(extra)
    return _json(obj)


def payload(type_: str, body: Any, *, id: str, sender: str | None = None,
            to: str | None = None, created: str = NOW_TEXT, **extra: Any) -> dict[str, Any]:
    value: dict[str, Any] = {"vrm": "1", "id": id, "type": type_,
                             "from": sender if sender is not None else AGENT.did,
                             "to": to if to is not None else VENDOR.did,
                             "created": created}
    value.update(extra)
    value["body"] = body
    return {k: v for k, v in value.items() if v is not _DROP}


_DROP = object()


def _message_field(raw: bytes) -> dict[str, str]:
    if raw.isascii():
        return {"message": raw.decode("ascii")}
    return {"message_b64": b64url_encode(raw)}


def invalid(problem: str, *, role: str = "vendor") -> dict[str, Any]:
    cls = PROBLEMS[problem]
    out: dict[str, Any] = {"valid": False, "problem": "urn:vrm:problem:" + problem}
    if role == "vendor":
        out["http_status"] = cls.status_hint
        out["answer"] = "receipt" if cls.authenticated else "problem document"
        out["receipt_status"] = cls.receipt_status if cls.authenticated else None
    return out


class _Cases:
    def __init__(self) -> None:
        self.cases: list[dict[str, Any]] = []
        self.names: set[str] = set()

    def add(self, name: str, section: str, description: str, raw: bytes,
            expected: dict[str, Any], *, now: str = NOW_TEXT, role: str = "vendor",
            recipient: str | None = None, keys: Any = None, accepts: list[str] | None = None,
            seen: list[dict[str, str]] | None = None, content_type: str | None = None) -> None:
        assert name not in self.names, name
        self.names.add(name)
        inputs: dict[str, Any] = {
            **_message_field(raw),
            "content_type": content_type if content_type is not None else
            "application/jose+json",
            "now": now,
            "role": role,
            "recipient": recipient or (VENDOR.did if role == "vendor" else AGENT.did),
            "keys": keys if keys is not None else (
                "did:key" if role == "vendor" else [VENDOR.public.to_jwk()]),
            "accepts": accepts if accepts is not None else (
                VENDOR_TYPES if role == "vendor" else AGENT_TYPES),
            "seen": seen or [],
        }
        self.cases.append({"name": name, "section": section, "description": description,
                           "input": inputs, "expected": expected})

    def ok(self, name: str, section: str, description: str, payload_value: dict[str, Any],
           *, key: SigningKey = AGENT, raw: bytes | None = None,
           expected_body: Any = None, **kw: Any) -> None:
        """A message that is accepted; ``payload_value`` is what it carries."""
        if raw is None:
            raw = jws(header(key), payload_value, key)
        role = kw.get("role", "vendor")
        expected: dict[str, Any] = {
            "valid": True, "type": payload_value["type"], "id": payload_value["id"],
            "from": payload_value["from"], "to": payload_value["to"],
            "thread": payload_value.get("thread"),
            "body": expected_body if expected_body is not None else payload_value["body"]}
        if role == "vendor":
            expected.update({"http_status": 200, "answer": "receipt",
                             "receipt_status": "accepted"})
        self.add(name, section, description, raw, expected, **kw)

    def bad(self, name: str, section: str, description: str, raw: bytes, problem: str,
            **kw: Any) -> None:
        self.add(name, section, description, raw, invalid(problem, role=kw.get("role", "vendor")),
                 **kw)


def _signed(type_: str, body: Any, name: str, *, key: SigningKey = AGENT, **extra: Any) -> bytes:
    return jws(header(key), payload(type_, body, id=name, sender=key.did, **extra), key)


# --- messages.json ---------------------------------------------------------------------

def _messages() -> list[dict[str, Any]]:  # noqa: C901 - one table
    c = _Cases()
    ok, bad = c.ok, c.bad
    update = {"changes": {"email": "ada@new.example"}}

    # Valid messages of every core type (§5), both directions.
    bodies = {
        "relationship.request": {"profile": {"given_name": "Ada", "email": "ada@example.org",
                                             "postal_address": {"locality": "Berlin",
                                                                "country": "DE"},
                                             "language": "en-GB"},
                                 "terms": ["myterms:nostalking"]},
        "contact.update": {"changes": {"email": "ada@new.example", "phone": None,
                                       "postal_address": {"locality": "Berlin"}}},
        "intent": {"summary": "A touring bike", "category": "bicycles", "quantity": 1,
                   "budget": {"max": "800.00", "currency": "EUR"}, "needed_by": "2027-06-01",
                   "location": {"locality": "Berlin", "postal_code": "10115", "country": "DE"},
                   "valid_until": "2027-05-01T00:00:00Z"},
        "preferences.update": {"channels": {"email": True, "sms": False}, "marketing": False},
        "feedback": {"score": 9, "comment": "Quick delivery", "subject": "order 1234"},
        "relationship.end": {"erase": True, "reason": "moving on"},
        "messages.fetch": {"after": None},
    }
    for type_, body in bodies.items():
        ok(f"valid-{type_}", "5", f"a valid {type_} (agent to vendor)",
           payload(type_, body, id=f"valid-{type_}"))
    ok("valid-intent.cancel", "5.5", "a valid intent.cancel, naming the intent in thread",
       payload("intent.cancel", {"reason": "bought one"}, id="valid-intent.cancel",
               thread="valid-intent"))
    ok("valid-messages.fetch-cursor", "5.10", "messages.fetch with a cursor",
       payload("messages.fetch", {"after": "42"}, id="valid-messages.fetch-cursor"))
    ok("valid-relationship.request-empty", "5.2", "relationship.request sharing nothing",
       payload("relationship.request", {}, id="valid-relationship.request-empty"))
    ok("valid-relationship.end-empty", "5.9", "relationship.end with an empty body (erase false)",
       payload("relationship.end", {}, id="valid-relationship.end-empty"))
    ok("valid-thread-on-unthreaded-type", "3",
       "a thread on a type that does not use it is allowed and means nothing",
       payload("feedback", {"score": 3}, id="valid-thread-on-unthreaded-type", thread="x"))
    ok("valid-null-optional", "3.2", "an optional member that is null means absent",
       payload("feedback", {"score": 3, "comment": None}, id="valid-null-optional",
               expires=None))
    ok("valid-emoji-length", "3.2", "lengths count code points: 200 emoji are 200 characters",
       payload("relationship.request", {"profile": {"given_name": "😀" * 200}},
               id="valid-emoji-length"))
    ok("valid-escaped-surrogate-pair", "3.5",
       "an escaped surrogate pair is one character",
       payload("feedback", {"score": 1, "comment": "😀"}, id="valid-escaped-surrogate-pair"),
       raw=jws(header(), b'{"vrm":"1","id":"valid-escaped-surrogate-pair","type":"feedback",'
               b'"from":"' + AGENT.did.encode() + b'","to":"' + VENDOR.did.encode()
               + b'","created":"2026-06-01T12:00:00Z","body":{"score":1,"comment":"\\ud83d\\ude00"}}'))
    ok("valid-negative-zero", "3.5", "-0 is the integer 0",
       payload("feedback", {"score": 0}, id="valid-negative-zero"),
       raw=jws(header(), b'{"vrm":"1","id":"valid-negative-zero","type":"feedback","from":"'
               + AGENT.did.encode() + b'","to":"' + VENDOR.did.encode()
               + b'","created":"2026-06-01T12:00:00Z","body":{"score":-0}}'))
    ok("valid-alg-EdDSA", "2.1", "alg EdDSA (RFC 8037) is accepted",
       payload("contact.update", update, id="valid-alg-EdDSA"),
       raw=jws(header(alg="EdDSA"), payload("contact.update", update, id="valid-alg-EdDSA")))
    for typ in ("application/vrm+json", "VRM+JSON"):
        name = f"valid-typ-{typ.replace('/', '-')}"
        ok(name, "2.1", f"typ {typ} is accepted (compared without ASCII case)",
           payload("contact.update", update, id=name),
           raw=jws(header(typ=typ), payload("contact.update", update, id=name)))
    ok("valid-header-member-order", "2.1", "header members in any order",
       payload("contact.update", update, id="valid-header-member-order"),
       raw=jws({"typ": "vrm+json", "kid": AGENT.kid, "alg": "Ed25519"},
               payload("contact.update", update, id="valid-header-member-order")))
    ok("valid-to-not-a-did", "3", "to need not be a DID: it is compared exactly",
       payload("contact.update", update, id="valid-to-not-a-did", to="shop.example"),
       recipient="shop.example")
    ok("valid-time-fraction-9", "3.3",
       "9 fractional digits are accepted; microseconds are kept (truncated)",
       payload("feedback", {"score": 5}, id="valid-time-fraction-9",
               created="2026-06-01T12:04:59.999999999Z"))

    # §3.1: value types at their edges, accepted.
    edges = {
        "amount-zero": ("intent", {"summary": "s", "budget": {"max": "0", "currency": "EUR"}}),
        "amount-half": ("intent", {"summary": "s", "budget": {"max": "0.5", "currency": "EUR"}}),
        "amount-largest": ("intent", {"summary": "s", "budget": {
            "max": "999999999999999.999999", "currency": "EUR"}}),
        "codes-shape-only": ("intent", {"summary": "s", "budget": {"max": "1", "currency": "ZZZ"},
                                        "location": {"country": "ZZ"}}),
        "quantity-largest": ("intent", {"summary": "s", "quantity": 1000000}),
        "language-subtags": ("relationship.request", {"profile": {"language": "zh-Hant-TW"}}),
        "language-private-use": ("relationship.request", {"profile": {"language": "x-klingon"}}),
        "language-grandfathered": ("relationship.request", {"profile": {"language": "i-klingon"}}),
        "email-254": ("relationship.request", {"profile": {
            "email": "a" * 64 + "@" + "b" * 185 + ".org"}}),
        "email-unicode": ("relationship.request", {"profile": {"email": "zoë@bücher.example"}}),
        "phone-15-digits": ("relationship.request", {"profile": {"phone": "+123456789012345"}}),
        "term-200": ("relationship.request", {"terms": ["myterms:" + "t" * 200]}),
        "terms-32": ("relationship.request", {"terms": [f"myterms:t{i}" for i in range(32)]}),
        "address-removed": ("contact.update", {"changes": {"postal_address": None}}),
        "fetch-after-empty": ("messages.fetch", {"after": ""}),
        "fetch-after-128": ("messages.fetch", {"after": "c" * 128}),
        "feedback-score-0": ("feedback", {"score": 0}),
        "feedback-score-10": ("feedback", {"score": 10}),
        "preferences-marketing-only": ("preferences.update", {"marketing": True}),
        "needed-by-leap-day": ("intent", {"summary": "s", "needed_by": "2028-02-29"}),
    }
    for label, (type_, body) in edges.items():
        ok(f"value-{label}", "3.1", f"{type_} with {label.replace('-', ' ')}: accepted",
           payload(type_, body, id=f"value-{label}"))
    for label, (type_, body) in {
        "email-255": ("relationship.request", {"profile": {
            "email": "a" * 65 + "@" + "b" * 185 + ".org"}}),
        "phone-16-digits": ("relationship.request", {"profile": {"phone": "+1234567890123456"}}),
        "term-201": ("relationship.request", {"terms": ["myterms:" + "t" * 201]}),
        "amount-16-digits": ("intent", {"summary": "s", "budget": {
            "max": "1000000000000000", "currency": "EUR"}}),
        "quantity-too-many": ("intent", {"summary": "s", "quantity": 1000001}),
        "needed-by-not-leap": ("intent", {"summary": "s", "needed_by": "2027-02-29"}),
        "language-too-long-subtag": ("relationship.request", {"profile": {
            "language": "en-abcdefghi"}}),
    }.items():
        bad(f"value-{label}", "3.1", f"{type_} with {label.replace('-', ' ')}: refused",
            _signed(type_, body, f"value-{label}"), "invalid-body")

    # Offers and receipts, as an agent receives them (carried, or an HTTP answer).
    offer = {"summary": "Trek 520", "price": {"amount": "749.00", "currency": "EUR"},
             "valid_until": "2027-05-01T00:00:00Z", "url": "https://shop.example/trek-520"}
    agent_side = {"role": "agent", "key": VENDOR}
    ok("valid-offer", "5.6", "an offer from the vendor to the agent",
       payload("offer", offer, id="valid-offer", sender=VENDOR.did, to=AGENT.did,
               thread="valid-intent", expires="2026-07-01T12:00:00Z"), **agent_side)
    ok("valid-receipt-accepted", "5.11", "an accepted receipt with a record",
       payload("receipt", {"status": "accepted", "record": {"contact": "c-17", "lead": 4}},
               id="valid-receipt-accepted", sender=VENDOR.did, to=AGENT.did,
               thread="valid-intent"), **agent_side)
    ok("valid-receipt-rejected", "5.11", "a rejected receipt carrying its problem",
       payload("receipt", {"status": "rejected", "problem": {
           "type": "urn:vrm:problem:invalid-body", "title": "bad", "detail": "score: too big"}},
               id="valid-receipt-rejected", sender=VENDOR.did, to=AGENT.did, thread="m1"),
       **agent_side)
    carried = json.loads(jws(header(VENDOR), payload(
        "offer", offer, id="carried-offer", sender=VENDOR.did, to=AGENT.did,
        thread="valid-intent"), VENDOR))
    ok("valid-receipt-fetch-page", "6.4", "a messages.fetch receipt carrying one offer",
       payload("receipt", {"status": "accepted", "messages": [carried], "cursor": "7"},
               id="valid-receipt-fetch-page", sender=VENDOR.did, to=AGENT.did,
               thread="valid-messages.fetch"), **agent_side)
    ok("valid-receipt-fetch-empty", "6.4",
       "an empty page: messages is an empty array, cursor still present",
       payload("receipt", {"status": "accepted", "messages": [], "cursor": "7"},
               id="valid-receipt-fetch-empty", sender=VENDOR.did, to=AGENT.did,
               thread="valid-messages.fetch"), **agent_side)

    # §2: size, shape and base64url.
    # JSON white space between the JWS members counts towards the size.
    small = jws(header(), payload("feedback", {"score": 5}, id="size"))
    oversized = small[:-1] + b" " * (65_537 - len(small)) + b"}"
    bad("too-large", "2", "a message of 65,537 bytes, one over the limit", oversized,
        "too-large")
    exact = small[:-1] + b" " * (65_536 - len(small)) + b"}"
    ok("size-65536", "2", "a message of exactly 65,536 bytes (JSON white space counts)",
       payload("feedback", {"score": 5}, id="size"), raw=exact)
    good = payload("contact.update", update, id="shape")
    for suffix in range(4):  # a payload whose base64url has unused bits (length mod 4 = 2)
        good = payload("contact.update", update, id="shape" + "x" * suffix)
        if len(b64url_encode(_json(good))) % 4 == 2:
            break
    protected = b64url_encode(_json(header()))
    body64 = b64url_encode(_json(good))
    sig = b64url_encode(AGENT.sign(f"{protected}.{body64}".encode()))
    bad("jws-unprotected-header", "2", "an unprotected header member is not allowed",
        jws(header(), good, extra={"header": {"kid": AGENT.kid}}), "malformed")
    bad("jws-missing-signature", "2", "the signature member is missing",
        _json({"protected": protected, "payload": body64}), "malformed")
    bad("jws-member-not-string", "2", "a JWS member that is not a string",
        _json({"protected": protected, "payload": body64, "signature": 5}), "malformed")
    bad("jws-compact-serialization", "2", "the compact serialization is not accepted",
        f"{protected}.{body64}.{sig}".encode(), "malformed")
    bad("jws-array", "3.5", "a top level that is not an object",
        _json([protected, body64, sig]), "malformed")
    bad("jws-duplicate-member", "3.5", "a duplicate member in the JWS object",
        f'{{"protected":"{protected}","payload":"{body64}","signature":"{sig}",'
        f'"signature":"{sig}"}}'.encode(), "malformed")
    bad("jws-bom", "3.5", "a byte-order mark before the JSON", b"\xef\xbb\xbf" + jws(
        header(), good), "malformed")
    bad("jws-not-utf8", "3.5", "bytes that are not UTF-8",
        jws(header(), good)[:-2] + b'\xff"}', "malformed")
    bad("jws-not-json", "3.5", "not JSON at all", b"hello", "malformed")
    bad("jws-empty", "3.5", "an empty body", b"", "malformed")
    bad("b64-protected-padded", "2", "padding in the protected header",
        jws(header(), good, protected_b64=protected + "="), "malformed")
    bad("b64-payload-padded", "2", "padding in the payload",
        jws(header(), good, payload_b64=_padded(body64)), "malformed")
    bad("b64-payload-standard-alphabet", "2", "+ and / are not base64url",
        jws(header(), good, payload_b64=body64[:-1] + "+"), "malformed")
    bad("b64-signature-padded", "2", "padding in the signature",
        jws(header(), good, signature_b64=sig + "=="), "malformed")
    bad("b64-payload-non-canonical", "2",
        "the unused low bits of the payload's last character are not zero",
        jws(header(), good, payload_b64=_non_canonical(body64)), "malformed")
    bad("b64-signature-non-canonical", "2",
        "the unused low bits of the signature's last character are not zero "
        "(64 bytes: length mod 4 is 2)", jws(header(), good, signature_b64=_non_canonical(sig)),
        "malformed")
    bad("b64-protected-non-canonical", "2",
        "the protected header's base64url is not canonical",
        jws(header(), good, protected_b64=_non_canonical(protected)), "malformed")
    bad("b64-length-mod-4-is-1", "2", "a payload whose length mod 4 is 1",
        jws(header(), good, payload_b64=body64 + "A" * ((1 - len(body64)) % 4)), "malformed")

    # §2.1: the protected header, in its order of checks.
    def hdr(name: str, description: str, value: dict[str, Any] | bytes, problem: str | None,
            *, key: SigningKey = AGENT) -> None:
        pl = payload("contact.update", update, id=name, sender=AGENT.did)
        raw = jws(value, pl, key)
        if problem is None:
            ok(name, "2.1", description, pl, raw=raw)
        else:
            bad(name, "2.1", description, raw, problem)

    for alg in ("none", "HS256", "RS256", "PS256", "ES256", "ed25519", "EDDSA", ""):
        hdr(f"header-alg-{alg or 'empty'}", f"alg {alg!r} is not accepted",
            header(alg=alg), "bad-signature")
    hdr("header-alg-missing", "no alg", header(alg=None), "bad-signature")
    hdr("header-alg-number", "alg that is not a string", header(alg=1), "bad-signature")
    for member in ("jwk", "jku", "x5u", "x5c", "x5t", "x5t#S256", "crit", "b64"):
        hdr(f"header-{member}", f"the header member {member} is refused",
            {**header(), member: AGENT.public.to_jwk() if member == "jwk" else (
                False if member == "b64" else ["x"] if member in ("crit", "x5c") else "x")},
            "bad-signature")
    hdr("header-jwk-before-alg", "a forbidden member is checked before alg",
        {**header(alg="none"), "jwk": AGENT.public.to_jwk()}, "bad-signature")
    hdr("header-alg-before-unknown-member", "alg is checked before unknown members",
        {**header(alg="HS256"), "cty": "json"}, "bad-signature")
    hdr("header-unknown-member", "a header member other than alg, kid, typ",
        {**header(), "cty": "json"}, "malformed")
    hdr("header-typ-missing", "typ is required", header(typ=None), "malformed")
    hdr("header-typ-JWT", "typ JWT is not a VRM message", header(typ="JWT"), "malformed")
    hdr("header-typ-number", "typ that is not a string", header(typ=1), "malformed")
    hdr("header-typ-before-kid", "typ is checked before kid",
        header(typ="JWT", kid=None), "malformed")
    hdr("header-kid-missing", "no kid", header(kid=None), "unknown-key")
    hdr("header-kid-number", "kid that is not a string", header(kid=7), "unknown-key")
    hdr("header-kid-bare-did", "kid without the fragment", header(kid=AGENT.did), "unknown-key")
    hdr("header-kid-other-fragment", "kid whose fragment is not the DID's own key",
        header(kid=AGENT.did + "#key-1"), "unknown-key")
    hdr("header-kid-did-web", "a kid that is not did:key",
        header(kid="did:web:shop.example#key-1"), "unknown-key")
    hdr("header-not-json", "the protected header is not JSON", b"alg=Ed25519", "malformed")
    hdr("header-duplicate-member", "a duplicate member in the protected header",
        b'{"alg":"Ed25519","alg":"none","kid":"' + AGENT.kid.encode()
        + b'","typ":"vrm+json"}', "malformed")
    hdr("header-array", "a protected header that is not an object",
        b'["Ed25519"]', "malformed")

    # §1, §2.2, §4 steps 4-5, 7: keys and signatures.
    pl = payload("contact.update", update, id="sig")
    bad("signature-wrong", "2.2", "the signature does not verify (one bit flipped)",
        jws(header(), pl, signature=_flip(AGENT.sign(
            f"{b64url_encode(_json(header()))}.{b64url_encode(_json(pl))}".encode()))),
        "bad-signature")
    bad("signature-other-key", "2.2", "signed by another key than the kid names",
        jws(header(), pl, OTHER), "bad-signature")
    bad("signature-63-bytes", "2.2", "a signature that is not 64 bytes",
        jws(header(), pl, signature=bytes(63)), "bad-signature")
    bad("signature-empty", "2.2", "an empty signature", jws(header(), pl, signature=b""),
        "bad-signature")
    reencoded = jws(header(), pl)
    obj = json.loads(reencoded)
    obj["payload"] = b64url_encode(json.dumps(pl).encode())  # same JSON, other bytes
    bad("signature-over-other-bytes", "2.2",
        "the signature covers the payload bytes received, not their meaning: the same JSON "
        "re-serialized with spaces does not verify",
        _json({**obj, "signature": json.loads(reencoded)["signature"]}), "bad-signature")
    for name, raw_key in WEAK_KEYS.items():
        weak_did = did_from_public_bytes(raw_key)
        forged_payload = payload("contact.update", update, id=f"weak-{name}", sender=weak_did)
        bad(f"key-{name}", "1",
            f"a did:key of a weak key ({WEAK_KEY_NOTES[name]}): refused, even with a "
            "signature R = A, S = 0 that the bare curve arithmetic accepts",
            jws(header(kid=kid_for_did(weak_did)), forged_payload,
                signature=raw_key + bytes(32)), "unknown-key")
    bad("key-not-ed25519-multicodec", "1", "a did:key of a secp256k1 key (multicodec 0xe7)",
        jws(header(kid=kid_for_did(SECP_DID)), payload("contact.update", update, id="k",
                                                          sender=SECP_DID), None),
        "unknown-key")
    bad("key-pinned-other", "4", "an agent accepts only the vendor key it pinned",
        jws(header(OTHER), payload("receipt", {"status": "accepted"}, id="key-pinned-other",
                                   sender=OTHER.did, to=AGENT.did, thread="m1"), OTHER),
        "unknown-key", role="agent")
    bad("from-not-kid", "1", "from is another DID than the kid's",
        jws(header(), payload("contact.update", update, id="from-not-kid", sender=OTHER.did)),
        "bad-signature")

    # §3: the envelope.
    def env(name: str, description: str, change: dict[str, Any], problem: str | None = None,
            section: str = "3", *, body: Any = None, type_: str = "feedback") -> None:
        pl = payload(type_, body if body is not None else {"score": 5}, id=name)
        for k, v in change.items():
            if v is _DROP:
                pl.pop(k, None)
            else:
                pl[k] = v
        if problem is None:
            ok(name, section, description, pl)
        else:
            bad(name, section, description, jws(header(), pl), problem)

    env("envelope-vrm-2", "vrm must be exactly \"1\"", {"vrm": "2"}, "malformed")
    env("envelope-vrm-number", "vrm is a string", {"vrm": 1}, "malformed")
    env("envelope-vrm-missing", "vrm is required", {"vrm": _DROP}, "malformed")
    env("envelope-id-missing", "id is required", {"id": _DROP}, "malformed")
    env("envelope-id-space", "an id holds no space", {"id": "a b"}, "malformed")
    env("envelope-id-129", "an id is at most 128 characters", {"id": "a" * 129}, "malformed")
    env("envelope-id-128", "an id of 128 characters", {"id": "i" * 128})
    env("envelope-id-non-ascii", "an id is printable ASCII", {"id": "ä"}, "malformed")
    env("envelope-type-empty", "an empty type is malformed, not unsupported", {"type": ""},
        "malformed", "3.1")
    env("envelope-type-101", "a type over 100 characters is malformed",
        {"type": "x" * 101}, "malformed", "3.1")
    env("envelope-type-number", "a type that is not a string is malformed", {"type": 5},
        "malformed", "3.1")
    env("envelope-from-missing", "from is required", {"from": _DROP}, "malformed")
    env("envelope-from-not-did", "from is a did:key", {"from": "ada"}, "malformed")
    env("envelope-sender-alias", "the member is from, not sender",
        {"from": _DROP, "sender": AGENT.did}, "malformed")
    env("envelope-to-missing", "to is required", {"to": _DROP}, "malformed")
    env("envelope-to-space", "to holds no space", {"to": "shop example"}, "malformed")
    env("envelope-to-257", "to is at most 256 characters", {"to": "v" * 257}, "malformed")
    env("envelope-created-missing", "created is required", {"created": _DROP}, "malformed")
    for text, why in (("2026-06-01T12:00:00+00:00", "an offset other than Z"),
                      ("2026-06-01t12:00:00z", "lower-case t and z"),
                      ("2026-06-01 12:00:00Z", "a space for T"),
                      ("2026-06-01T24:00:00Z", "24:00:00"),
                      ("2026-06-30T23:59:60Z", "a leap second"),
                      ("2026-02-30T12:00:00Z", "a day that does not exist"),
                      ("2026-06-01T12:00:00.Z", "a dot without digits"),
                      ("2026-06-01T12:00:00.1234567890Z", "10 fractional digits"),
                      ("2026-06-01T12:00Z", "no seconds")):
        env(f"envelope-created-{why.replace(' ', '-')}", f"created with {why}",
            {"created": text}, "malformed", "3.1")
    env("envelope-created-number", "created is a string", {"created": 1780315200},
        "malformed", "3.1")
    env("envelope-expires-equal-created", "expires must be after created",
        {"expires": NOW_TEXT}, "malformed")
    env("envelope-expires-31-days", "expires is at most created + 30 days",
        {"expires": "2026-07-01T12:00:00.000001Z"}, "malformed")
    env("envelope-expires-30-days", "expires at exactly created + 30 days",
        {"expires": "2026-07-01T12:00:00Z"})
    env("envelope-unknown-member", "an unknown envelope member", {"priority": "high"},
        "malformed", "3.2")
    env("envelope-body-missing", "body is required", {"body": _DROP}, "malformed")
    env("envelope-body-array", "a body that is not an object is malformed, not invalid-body",
        {"body": []}, "malformed")
    env("envelope-body-string", "a body that is not an object", {"body": "score 5"},
        "malformed")
    env("envelope-body-null", "body may not be null", {"body": None}, "malformed")
    env("envelope-thread-space", "thread has the form of an id", {"thread": "a b"}, "malformed")
    env("envelope-thread-number", "thread is a string", {"thread": 5}, "malformed")

    # §3.5 in the payload.
    raw_pl = _json(payload("feedback", {"score": 5}, id="ijson"))

    def pl_bytes(name: str, description: str, data: bytes, problem: str | None = None,
                 expected_body: Any = None) -> None:
        if problem is None:
            ok(name, "3.5", description, json.loads(data), raw=jws(header(), data),
               expected_body=expected_body)
        else:
            bad(name, "3.5", description, jws(header(), data), problem)

    pl_bytes("payload-duplicate-member", "a duplicate member in the body",
             raw_pl.replace(b'{"score":5}', b'{"score":5,"score":10}'), "malformed")
    pl_bytes("payload-duplicate-envelope-member", "a duplicate member in the envelope",
             raw_pl.replace(b'"vrm":"1"', b'"vrm":"1","vrm":"1"'), "malformed")
    pl_bytes("payload-NaN", "NaN is not JSON", raw_pl.replace(b'"score":5', b'"score":NaN'),
             "malformed")
    pl_bytes("payload-Infinity", "Infinity is not JSON",
             raw_pl.replace(b'"score":5', b'"score":Infinity'), "malformed")
    pl_bytes("payload-overflow", "a number that overflows a double",
             raw_pl.replace(b'"score":5', b'"score":1e400'), "malformed")
    pl_bytes("payload-int-2^53", "an integer beyond 2^53 - 1",
             raw_pl.replace(b'"score":5', b'"score":9007199254740992'), "malformed")
    pl_bytes("payload-int-minus-2^53", "an integer below -(2^53 - 1)",
             raw_pl.replace(b'"score":5', b'"score":-9007199254740992'), "malformed")
    pl_bytes("payload-int-2^53-1-in-range-for-json", "2^53 - 1 is valid I-JSON (and then the "
             "score is out of its range)",
             raw_pl.replace(b'"score":5', b'"score":9007199254740991'), "invalid-body")
    c.cases[-1]["section"] = "3.5"
    pl_bytes("payload-lone-surrogate", "an unpaired surrogate escape",
             raw_pl.replace(b'{"score":5}', b'{"score":5,"comment":"\\ud800"}'), "malformed")
    pl_bytes("payload-not-utf8", "a payload that is not UTF-8",
             raw_pl.replace(b'{"score":5}', b'{"score":5,"comment":"\xff"}'), "malformed")
    pl_bytes("payload-bom", "a byte-order mark before the payload", b"\xef\xbb\xbf" + raw_pl,
             "malformed")
    pl_bytes("payload-array", "a payload that is not an object", b"[" + raw_pl + b"]",
             "malformed")
    pl_bytes("payload-nesting-33", "33 levels of nesting, the top-level object being level 1",
             _nested_payload(33, "payload-nesting-33"), "malformed")
    pl_bytes("payload-nesting-32", "32 levels of nesting are I-JSON (then the unknown body "
             "member makes the body invalid)", _nested_payload(32, "payload-nesting-32"),
             "invalid-body")
    pl_bytes("payload-trailing-garbage", "text after the JSON value", raw_pl + b"x",
             "malformed")
    pl_bytes("payload-exponent-integer", "an exponent makes a number that is not an integer",
             raw_pl.replace(b'"score":5', b'"score":5e0'), "invalid-body")
    pl_bytes("payload-fraction-integer", "9.0 is not the integer 9",
             raw_pl.replace(b'"score":5', b'"score":9.0'), "invalid-body")
    pl_bytes("payload-white-space", "white space between tokens is fine",
             raw_pl.replace(b'"score":5', b'"score" :\t5 '), expected_body={"score": 5})

    # §4 steps 8-10: addressing and time.
    env("to-other-vendor", "to names someone else", {"to": OTHER.did}, "not-for-me", "4")
    env("to-case", "to is compared exactly, with case", {"to": VENDOR.did.upper()},
        "not-for-me", "4")
    now = VECTORS_NOW
    env("created-plus-5-minutes", "created exactly 5 minutes ahead is accepted",
        {"created": _t(now + timedelta(minutes=5))}, None, "4")
    env("created-plus-5-minutes-and-1-microsecond", "created more than 5 minutes ahead",
        {"created": _t(now + timedelta(minutes=5, microseconds=1))}, "not-yet-valid", "4")
    env("created-plus-1-day", "created a day ahead",
        {"created": _t(now + timedelta(days=1))}, "not-yet-valid", "4")
    env("expires-now", "now equal to expires is expired",
        {"created": _t(now - timedelta(hours=1)), "expires": NOW_TEXT}, "expired", "4")
    env("expires-in-1-microsecond", "valid until the last microsecond",
        {"created": _t(now - timedelta(hours=1)),
         "expires": _t(now + timedelta(microseconds=1))}, None, "4")
    env("expires-default-7-days", "without expires, validity ends at created + 7 days",
        {"created": _t(now - timedelta(days=7))}, "expired", "4")
    env("expires-default-7-days-less-1-second", "created 7 days less a second ago",
        {"created": _t(now - timedelta(days=7) + timedelta(seconds=1))}, None, "4")
    env("expires-truncated-fraction", "expires with 9 digits: the 7th to 9th are dropped, so "
        "this one is expired at now", {"created": _t(now - timedelta(hours=1)),
                                       "expires": "2026-06-01T12:00:00.000000999Z"},
        "expired", "3.3")
    env("not-for-me-before-time", "to is checked before created",
        {"to": OTHER.did, "created": _t(now + timedelta(days=1))}, "not-for-me", "4")
    env("not-yet-valid-before-type", "time is checked before the type",
        {"created": _t(now + timedelta(days=1)), "type": "offer"}, "not-yet-valid", "4")
    env("expired-before-body", "time is checked before the body",
        {"created": _t(now - timedelta(days=8))}, "expired", "4", body={"score": 99})
    env("from-before-to", "from is checked before to",
        {"from": OTHER.did, "to": OTHER.did}, "bad-signature", "4")

    # §4 step 11: types.
    env("type-offer-to-vendor", "a vendor takes no offer", {"type": "offer", "thread": "m"},
        "unsupported-type", "4", body={"summary": "x",
                                       "price": {"amount": "1", "currency": "EUR"}})
    env("type-receipt-to-vendor", "a vendor takes no receipt", {"type": "receipt",
                                                                "thread": "m"},
        "unsupported-type", "4", body={"status": "accepted"})
    env("type-unknown", "an unknown core-looking type", {"type": "contact.delete"},
        "unsupported-type", "9", body={})
    env("type-extension", "an extension type the vendor does not list",
        {"type": "x-org.example.loyalty.points"}, "unsupported-type", "9", body={"n": 1})
    env("type-case", "type is compared exactly", {"type": "Feedback"}, "unsupported-type",
        "9")
    env("type-not-listed", "a core type the vendor does not list", {}, "unsupported-type",
        "7")
    c.cases[-1]["input"]["accepts"] = [t for t in VENDOR_TYPES if t != "feedback"]
    env("type-before-body", "the type is checked before the body (an offer to a vendor "
        "with a body that would not fit)", {"type": "offer"}, "unsupported-type", "4",
        body={"x": 1})

    # §4 step 12 and §5: each type's body rules.
    def body_bad(type_: str, name: str, description: str, body: Any, section: str,
                 **extra: Any) -> None:
        role = "agent" if type_ in AGENT_TYPES else "vendor"
        key = VENDOR if role == "agent" else AGENT
        pl = payload(type_, body, id=f"body-{type_}-{name}", sender=key.did,
                     to=AGENT.did if role == "agent" else VENDOR.did, **extra)
        bad(f"body-{type_}-{name}", section, description, jws(header(key), pl, key),
            "invalid-body", role=role)

    body_bad("feedback", "unknown-member", "an unknown body member", {"score": 5, "tip": 1},
             "3.2")
    body_bad("feedback", "score-11", "score is 0-10", {"score": 11}, "5.8")
    body_bad("feedback", "score-negative", "score is 0-10", {"score": -1}, "5.8")
    body_bad("feedback", "score-string", "\"9\" is not the integer 9", {"score": "9"}, "3.2")
    body_bad("feedback", "score-boolean", "true is not 1", {"score": True}, "3.2")
    body_bad("feedback", "score-missing", "score is required", {}, "5.8")
    body_bad("feedback", "comment-4001", "comment is at most 4000 characters",
             {"score": 1, "comment": "c" * 4001}, "5.8")
    body_bad("feedback", "subject-201", "subject is at most 200 characters",
             {"score": 1, "subject": "s" * 201}, "5.8")
    body_bad("relationship.request", "given-name-201", "a name of 201 characters",
             {"profile": {"given_name": "😀" * 201}}, "3.2")
    body_bad("relationship.request", "given-name-empty", "a name of 0 characters",
             {"profile": {"given_name": ""}}, "5.1")
    body_bad("relationship.request", "email", "an email without a dot after @",
             {"profile": {"email": "ada@localhost"}}, "3.1")
    body_bad("relationship.request", "email-space", "an email with a space",
             {"profile": {"email": "a da@example.org"}}, "3.1")
    body_bad("relationship.request", "phone", "a phone that is not E.164",
             {"profile": {"phone": "030 1234"}}, "3.1")
    body_bad("relationship.request", "language", "a language tag of the wrong shape",
             {"profile": {"language": "english!"}}, "3.1")
    body_bad("relationship.request", "country", "a country in lower case",
             {"profile": {"postal_address": {"country": "de"}}}, "3.1")
    body_bad("relationship.request", "postal-code-21", "a postal code over 20 characters",
             {"profile": {"postal_address": {"postal_code": "1" * 21}}}, "5.1")
    body_bad("relationship.request", "profile-unknown-member",
             "an unknown profile member", {"profile": {"nick": "a"}},
             "5.2")
    body_bad("relationship.request", "terms-33", "at most 32 terms",
             {"terms": [f"myterms:t{i}" for i in range(33)]}, "5.2")
    body_bad("relationship.request", "term-shape", "a term id without a scheme",
             {"terms": ["nostalking"]}, "3.1")
    body_bad("contact.update", "changes-empty", "changes names at least one member",
             {"changes": {}}, "5.3")
    body_bad("contact.update", "changes-missing", "changes is required", {}, "5.3")
    body_bad("contact.update", "changes-null", "changes may not be null", {"changes": None},
             "3.2")
    body_bad("contact.update", "postal-address-empty", "a postal_address change names at "
             "least one member", {"changes": {"postal_address": {}}}, "5.3")
    body_bad("intent", "summary-empty", "summary is 1-500 characters", {"summary": ""}, "5.4")
    body_bad("intent", "summary-501", "summary is 1-500 characters", {"summary": "s" * 501},
             "5.4")
    body_bad("intent", "quantity-0", "quantity is 1-1000000", {"summary": "s", "quantity": 0},
             "5.4")
    body_bad("intent", "amount-number", "an amount is never a JSON number",
             {"summary": "s", "budget": {"max": 800, "currency": "EUR"}}, "3.2")
    for amount in ("01", "1.", "-1", "1.1234567", "1e3"):
        body_bad("intent", f"amount-{amount}", f"{amount!r} is not an amount",
                 {"summary": "s", "budget": {"max": amount, "currency": "EUR"}}, "3.1")
    body_bad("intent", "currency", "a currency in lower case",
             {"summary": "s", "budget": {"max": "1", "currency": "eur"}}, "3.1")
    body_bad("intent", "budget-currency-missing", "budget needs currency",
             {"summary": "s", "budget": {"max": "1"}}, "5.4")
    body_bad("intent", "needed-by-date", "a date that does not exist",
             {"summary": "s", "needed_by": "2027-02-30"}, "3.4")
    body_bad("intent", "needed-by-time", "needed_by is a date, not a timestamp",
             {"summary": "s", "needed_by": "2027-06-01T00:00:00Z"}, "3.4")
    body_bad("intent", "valid-until", "valid_until is a timestamp",
             {"summary": "s", "valid_until": "2027-05-01"}, "5.4")
    body_bad("intent.cancel", "thread-missing", "intent.cancel requires thread",
             {"reason": "bought one"}, "5.5")
    body_bad("preferences.update", "empty", "preferences.update needs channels or marketing",
             {}, "5.7")
    body_bad("preferences.update", "all-null", "null members count as absent",
             {"channels": None, "marketing": None}, "5.7")
    body_bad("preferences.update", "channel-string", "a channel is a boolean",
             {"channels": {"email": "yes"}}, "5.7")
    body_bad("preferences.update", "channel-unknown", "an unknown channel",
             {"channels": {"fax": True}}, "5.7")
    body_bad("relationship.end", "erase-string", "erase is a boolean", {"erase": "true"},
             "5.9")
    body_bad("relationship.end", "reason-201", "reason is at most 200 characters",
             {"reason": "r" * 201}, "5.9")
    body_bad("messages.fetch", "after-missing", "after is required (it may be null)", {},
             "5.10")
    body_bad("messages.fetch", "after-129", "after is at most 128 characters",
             {"after": "c" * 129}, "5.10")
    body_bad("messages.fetch", "after-number", "after is a string or null", {"after": 7},
             "5.10")
    body_bad("offer", "thread-missing", "an offer names its intent in thread",
             {"summary": "s", "price": {"amount": "1", "currency": "EUR"}}, "5.6")
    body_bad("offer", "url-upper-case-scheme", "a url's scheme is lower case http or https",
             {"summary": "s", "price": {"amount": "1", "currency": "EUR"},
              "url": "HTTPS://shop.example/"}, "3.1", thread="i")
    body_bad("offer", "url-javascript", "a url is http or https",
             {"summary": "s", "price": {"amount": "1", "currency": "EUR"},
              "url": "javascript:alert(1)"}, "3.1", thread="i")
    body_bad("offer", "price-missing", "price is required", {"summary": "s"}, "5.6", thread="i")
    body_bad("receipt", "rejected-without-problem", "a rejected receipt carries a problem",
             {"status": "rejected"}, "5.11", thread="m")
    body_bad("receipt", "unsupported-without-problem", "an unsupported receipt carries a "
             "problem", {"status": "unsupported"}, "5.11", thread="m")
    body_bad("receipt", "status-unknown", "an unknown status", {"status": "ok"}, "5.11",
             thread="m")
    body_bad("receipt", "thread-missing", "a receipt names the message it answers",
             {"status": "accepted"}, "5.11")
    body_bad("receipt", "problem-type-empty", "problem.type is a non-empty URN",
             {"status": "rejected", "problem": {"type": ""}}, "5.11", thread="m")
    body_bad("receipt", "problem-type-not-urn", "problem.type is a URN",
             {"status": "rejected", "problem": {"type": "invalid-body"}}, "5.11", thread="m")
    body_bad("receipt", "record-value-201", "a record value is at most 200 characters",
             {"status": "accepted", "record": {"contact": "c" * 201}}, "5.11", thread="m")
    body_bad("receipt", "record-nested", "record is flat",
             {"status": "accepted", "record": {"contact": {"id": 1}}}, "5.11", thread="m")
    body_bad("receipt", "messages-101", "at most 100 messages on a page",
             {"status": "accepted", "messages": [{"protected": "e30", "payload": "e30",
                                                  "signature": ""}] * 101, "cursor": "1"},
             "6.4", thread="m")
    body_bad("receipt", "messages-not-jws", "each carried message is a flattened JWS",
             {"status": "accepted", "messages": [{"protected": "e30"}], "cursor": "1"},
             "6.4", thread="m")
    body_bad("receipt", "cursor-129", "a cursor is at most 128 characters",
             {"status": "accepted", "messages": [], "cursor": "c" * 129}, "6.4", thread="m")

    # §4 step 13: replays.
    seen_pair = [{"from": AGENT.did, "id": "replayed"}]
    replay = payload("feedback", {"score": 5}, id="replayed")
    c.add("replay-duplicate", "4", "the pair (from, id) was received before: duplicate",
          jws(header(), replay), {"valid": True, "duplicate": True, "type": "feedback",
                                  "id": "replayed", "from": AGENT.did, "to": VENDOR.did,
                                  "thread": None, "body": {"score": 5}, "http_status": 200,
                                  "answer": "receipt", "receipt_status": "duplicate"},
          seen=seen_pair)
    ok("replay-other-sender", "4", "deduplication is by (from, id): the same id from another "
       "sender is new", payload("feedback", {"score": 5}, id="replayed", sender=OTHER.did),
       key=OTHER, seen=seen_pair)
    bad("replay-expired", "4", "an expired message is expired even when seen",
        jws(header(), payload("feedback", {"score": 5}, id="replayed",
                              created=_t(now - timedelta(days=8)))), "expired", seen=seen_pair)
    bad("replay-invalid-body", "4", "a seen id with an invalid body: the body decides "
        "(step 12 comes before step 13)",
        jws(header(), payload("feedback", {"score": 50}, id="replayed")), "invalid-body",
        seen=seen_pair)

    # §6.1: media types, and the order of 413 and 415.
    good_raw = jws(header(), payload("feedback", {"score": 5}, id="media"))
    for media, problem in (("text/plain", "unsupported-media-type"),
                           ("application/json", "unsupported-media-type"),
                           ("", "unsupported-media-type"),
                           ("application/jose", "unsupported-media-type"),
                           ("Application/JOSE+JSON", None),
                           ("application/jose+json; charset=utf-8", None)):
        name = f"media-{media.replace('/', '-').replace(' ', '').replace(';', '-') or 'none'}"
        if problem is None:
            ok(name, "6.1", f"Content-Type {media!r} is accepted (case-insensitive, "
               "parameters ignored)", payload("feedback", {"score": 5}, id="media"),
               raw=good_raw, content_type=media)
        else:
            bad(name, "6.1", f"Content-Type {media!r} is refused", good_raw, problem,
                content_type=media)
    bad("media-before-size", "6.1", "a wrong media type is found before the size: 415, "
        "not 413", oversized, "unsupported-media-type", content_type="text/plain")
    return c.cases


def _nested_payload(depth: int, id_: str) -> bytes:
    """A feedback payload nested ``depth`` levels deep, the top-level object being
    level 1 and the body level 2: the rest are arrays in an unknown body member, so
    that within the limit the message is ``invalid-body`` and beyond it ``malformed``."""
    arrays = depth - 2
    return (b'{"vrm":"1","id":"' + id_.encode() + b'","type":"feedback","from":"'
            + AGENT.did.encode() + b'","to":"' + VENDOR.did.encode()
            + b'","created":"2026-06-01T12:00:00Z","body":{"score":5,"x":'
            + b"[" * arrays + b"]" * arrays + b"}}")


def _padded(text: str) -> str:
    return text + "=" * (-len(text) % 4 or 4)


def _non_canonical(text: str) -> str:
    """The same bytes with nonzero unused bits in the last character."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    index = alphabet.index(text[-1])
    return text[:-1] + alphabet[index | 1]


def _flip(signature: bytes) -> bytes:
    return bytes([signature[0] ^ 1]) + signature[1:]


def _encode_y(y: int, sign: int = 0) -> bytes:
    return (y | ((1 << 255) if sign else 0)).to_bytes(32, "little")


_ORDER_8_A = bytes.fromhex("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05")
_ORDER_8_B = bytes.fromhex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a")
#: Every encoding of the 8 points of small order (both sign-bit forms), and
#: non-canonical encodings (y >= p): the keys PROTOCOL.md §1 refuses.
WEAK_KEYS: dict[str, bytes] = {
    "identity": _encode_y(1),
    "identity-sign": _encode_y(1, 1),
    "order-2": _encode_y(P - 1),
    "order-2-sign": _encode_y(P - 1, 1),
    "order-4": _encode_y(0),
    "order-4-sign": _encode_y(0, 1),
    "order-8-a": _ORDER_8_A,
    "order-8-a-sign": _encode_y(int.from_bytes(_ORDER_8_A, "little"), 1),
    "order-8-b": _ORDER_8_B,
    "order-8-b-sign": _encode_y(int.from_bytes(_ORDER_8_B, "little"), 1),
    "y-equals-p": _encode_y(P),
    "y-equals-p-plus-1": _encode_y(P + 1),
    "y-equals-p-plus-1-sign": _encode_y(P + 1, 1),
    "y-max": _encode_y(2**255 - 1),
    "y-equals-p-plus-18-sign": _encode_y(P + 18, 1),
}
WEAK_KEY_NOTES = {
    "identity": "the identity point, order 1",
    "identity-sign": "the identity with the sign bit set",
    "order-2": "y = p - 1, order 2",
    "order-2-sign": "y = p - 1 with the sign bit set",
    "order-4": "y = 0, order 4",
    "order-4-sign": "y = 0 with the sign bit set",
    "order-8-a": "a point of order 8",
    "order-8-a-sign": "a point of order 8, sign bit set",
    "order-8-b": "the other points of order 8",
    "order-8-b-sign": "the other points of order 8, sign bit set",
    "y-equals-p": "non-canonical: y = p, which is 0",
    "y-equals-p-plus-1": "non-canonical: y = p + 1, the identity",
    "y-equals-p-plus-1-sign": "non-canonical: y = p + 1, sign bit set",
    "y-max": "non-canonical: y = 2^255 - 1",
    "y-equals-p-plus-18-sign": "non-canonical: y = p + 18, sign bit set",
}
#: A did:key of a secp256k1 key (multicodec 0xe7 0x01): not an Ed25519 did:key.
SECP_DID = "did:key:zQ3shokFTS3brHcDQrn82RUDfCZESWL1ZdCEJwekUDPQiYBme"


# --- base64url.json, didkey.json, ijson.json ----------------------------------------

def _base64url() -> list[dict[str, Any]]:
    cases = []

    def add(name: str, text: str, data: bytes | None, description: str) -> None:
        expected = ({"valid": True, "bytes_hex": data.hex()} if data is not None
                    else {"valid": False, "problem": "urn:vrm:problem:malformed"})
        cases.append({"name": name, "section": "2", "description": description,
                      "input": text, "expected": expected})

    add("empty", "", b"", "the empty string is zero bytes")
    add("one-byte", "AQ", b"\x01", "length mod 4 = 2")
    add("two-bytes", "AQI", b"\x01\x02", "length mod 4 = 3")
    add("three-bytes", "AQID", b"\x01\x02\x03", "length mod 4 = 0")
    add("url-alphabet", "-_8", b"\xfb\xff", "- and _ in place of + and /")
    add("padding-1", "AQI=", None, "padding is refused")
    add("padding-2", "AQ==", None, "padding is refused")
    add("standard-alphabet", "+/8", None, "+ and / are not base64url")
    add("space", "AQ I", None, "white space is refused")
    add("newline", "AQID\n", None, "a line break is refused")
    add("length-mod-4-is-1", "AQIDB", None, "a length that leaves one character over")
    for last in "BCDEFGHIJKLMNOP":
        add(f"non-canonical-2-{last}", "A" + last, None,
            f"one byte: the last character {last!r} has nonzero unused bits (only A, Q, g, w)")
    for last in "BFJNRVZdhlptx159-_":
        add(f"non-canonical-3-{last}", "AQ" + last, None,
            f"two bytes: the last character {last!r} has nonzero unused bits")
    for last in "AQgw":
        add(f"canonical-2-{last}", "A" + last, bytes(["AQgw".index(last)]),
            f"one byte, last character {last!r}")
    return cases


def _didkey() -> dict[str, list[dict[str, Any]]]:
    dids = []

    def did_case(name: str, did: str, public: bytes | None, description: str,
                 section: str = "1") -> None:
        expected = ({"valid": True, "public_key": b64url_encode(public),
                     "kid": kid_for_did(did)} if public is not None
                    else {"valid": False, "problem": "urn:vrm:problem:unknown-key"})
        dids.append({"name": name, "section": section, "description": description,
                     "input": did, "expected": expected})

    for label, key in VECTOR_KEYS.items():
        did_case(f"key-{label}", key.did, key.public.raw, f"the vectors' {label} key")
    for name, raw in WEAK_KEYS.items():
        did_case(f"weak-{name}", did_from_public_bytes(raw), None,
                 f"a weak key ({WEAK_KEY_NOTES[name]}) is refused")
    did = AGENT.did
    did_case("not-z-multibase", "did:key:f" + AGENT.public.raw.hex(), None,
             "a multibase prefix other than z (base58btc)")
    did_case("secp256k1", SECP_DID, None, "a did:key of another key type (multicodec 0xe7)")
    did_case("base58-zero", did[:-1] + "0", None, "0 is not a base58btc character")
    did_case("base58-l", did[:-1] + "l", None, "l is not a base58btc character")
    did_case("too-short", did[:-1], None, "one character short: not 34 bytes")
    did_case("too-long", did + "1", None, "one character long")
    did_case("did-web", "did:web:shop.example", None, "not did:key")
    did_case("upper-case-method", "DID:KEY:" + did[8:], None, "the method is lower case")
    did_case("empty", "", None, "an empty string")
    did_case("prefix-only", "did:key:z6Mk", None, "no key")

    jwks = []

    def jwk_case(name: str, jwk: Any, public: bytes | None, description: str) -> None:
        expected = ({"valid": True, "public_key": b64url_encode(public)} if public is not None
                    else {"valid": False, "problem": "urn:vrm:problem:unknown-key"})
        jwks.append({"name": name, "section": "7", "description": description,
                     "input": jwk, "expected": expected})

    jwk = VENDOR.public.to_jwk()
    x = jwk["x"]
    jwk_case("vendor", jwk, VENDOR.public.raw, "the vendor's JWK (RFC 8037 §2) with its kid")
    jwk_case("no-kid", {k: v for k, v in jwk.items() if k != "kid"}, VENDOR.public.raw,
             "kid is optional in a JWK read on its own")
    jwk_case("extra-members", {**jwk, "use": "sig", "alg": "EdDSA", "key_ops": ["verify"]},
             VENDOR.public.raw, "other members are ignored")
    jwk_case("private", {**jwk, "d": b64url_encode(VENDOR.private_bytes())}, None,
             "a JWK holding the private key d is refused")
    jwk_case("kty-EC", {**jwk, "kty": "EC"}, None, "kty is OKP")
    jwk_case("crv-X25519", {**jwk, "crv": "X25519"}, None, "crv is Ed25519")
    jwk_case("x-31-bytes", {**jwk, "x": b64url_encode(VENDOR.public.raw[:31])}, None,
             "x is 32 bytes")
    jwk_case("x-padded", {**jwk, "x": x + "="}, None, "x is unpadded base64url")
    jwk_case("x-non-canonical", {**jwk, "x": _non_canonical(x)}, None,
             "x is canonical base64url")
    jwk_case("kid-other", {**jwk, "kid": AGENT.kid}, None, "a kid that is not this key's")
    for name in ("identity", "order-8-a", "y-equals-p"):
        jwk_case(f"weak-{name}", {"kty": "OKP", "crv": "Ed25519",
                                  "x": b64url_encode(WEAK_KEYS[name])}, None,
                 f"a weak key ({WEAK_KEY_NOTES[name]}) is refused")
    return {"did": dids, "jwk": jwks}


def _ijson() -> list[dict[str, Any]]:
    cases = []

    def add(name: str, data: bytes, valid: bool, description: str) -> None:
        field = {"input": data.decode("ascii")} if data.isascii() else {
            "input_b64": b64url_encode(data)}
        expected = {"valid": True} if valid else {"valid": False,
                                                  "problem": "urn:vrm:problem:malformed"}
        cases.append({"name": name, "section": "3.5", "description": description, **field,
                      "expected": expected})

    add("object", b'{"a":1}', True, "an object")
    add("empty-object", b"{}", True, "an empty object")
    add("top-level-array", b"[1]", False, "a top level that is not an object")
    add("top-level-string", b'"a"', False, "a top level that is not an object")
    add("top-level-number", b"1", False, "a top level that is not an object")
    add("duplicate", b'{"a":1,"a":1}', False, "duplicate members, even with equal values")
    add("duplicate-nested", b'{"a":{"b":1,"b":2}}', False, "duplicate members at depth")
    add("duplicate-escaped", b'{"a":1,"\\u0061":2}', False,
        "duplicate members after unescaping")
    add("same-name-different-objects", b'{"a":{"b":1},"c":{"b":2}}', True,
        "the same name in two objects is not a duplicate")
    add("nan", b'{"a":NaN}', False, "NaN")
    add("infinity", b'{"a":-Infinity}', False, "-Infinity")
    add("overflow", b'{"a":1e309}', False, "a number that overflows a double")
    add("exponent", b'{"a":1e2}', True, "a number with an exponent is I-JSON")
    add("negative-zero", b'{"a":-0}', True, "-0 is I-JSON")
    add("max-safe", b'{"a":9007199254740991}', True, "2^53 - 1")
    add("min-safe", b'{"a":-9007199254740991}', True, "-(2^53 - 1)")
    add("beyond-max-safe", b'{"a":9007199254740992}', False, "2^53")
    add("beyond-min-safe", b'{"a":-9007199254740992}', False, "-2^53")
    add("lone-high-surrogate", b'{"a":"\\ud800"}', False, "an unpaired high surrogate")
    add("lone-low-surrogate", b'{"a":"\\udc00"}', False, "an unpaired low surrogate")
    add("lone-surrogate-in-name", b'{"\\ud800":1}', False, "an unpaired surrogate in a name")
    add("surrogate-pair", b'{"a":"\\ud83d\\ude00"}', True, "an escaped pair is one character")
    add("not-utf8", b'{"a":"\xff"}', False, "bytes that are not UTF-8")
    add("overlong-utf8", b'{"a":"\xc0\xaf"}', False, "an overlong UTF-8 sequence")
    add("utf8-encoded-surrogate", b'{"a":"\xed\xa0\x80"}', False,
        "a surrogate encoded in UTF-8 (CESU-8)")
    add("bom", b'\xef\xbb\xbf{"a":1}', False, "a byte-order mark")
    add("utf16", '{"a":1}'.encode("utf-16-le"), False, "UTF-16")
    add("depth-32", b'{"a":' + b"[" * 31 + b"]" * 31 + b"}", True,
        "32 levels, the top-level object being level 1")
    add("depth-33", b'{"a":' + b"[" * 32 + b"]" * 32 + b"}", False, "33 levels")
    add("depth-33-objects", b'{"a":' * 33 + b"1" + b"}" * 33, False, "33 levels of objects")
    add("trailing-comma", b'{"a":1,}', False, "a trailing comma")
    add("single-quotes", b"{'a':1}", False, "single quotes")
    add("trailing-text", b'{"a":1} x', False, "text after the value")
    add("white-space", b' \t\r\n{"a" : 1}\n', True, "JSON white space around tokens")
    add("control-character", b'{"a":"\x01"}', False, "an unescaped control character")
    add("empty", b"", False, "no value")
    return cases


# --- discovery.json ---------------------------------------------------------------------

def _discovery() -> list[dict[str, Any]]:
    cases = []
    url = "https://shop.example/.well-known/vrm"
    base = {"vrm": ["1"], "id": VENDOR.did, "name": "Bikes4U",
            "inbox": "https://shop.example/vrm/inbox", "keys": [VENDOR.public.to_jwk()],
            "types": VENDOR_TYPES}

    def add(name: str, description: str, doc: Any, usable: bool, *, at: str = url,
            raw: bytes | None = None) -> None:
        data = raw if raw is not None else _json(doc)
        field = {"document": data.decode("ascii")} if data.isascii() else {
            "document_b64": b64url_encode(data)}
        expected: dict[str, Any] = {"usable": usable}
        if usable:
            expected.update({"id": doc["id"], "inbox": doc["inbox"],
                             "key": b64url_encode(VENDOR.public.raw), "types": doc["types"]})
        cases.append({"name": name, "section": "7", "description": description,
                      "input": {**field, "url": at}, "expected": expected})

    def changed(**kw: Any) -> dict[str, Any]:
        doc = dict(base)
        for k, v in kw.items():
            if v is _DROP:
                doc.pop(k)
            else:
                doc[k] = v
        return doc

    add("valid", "a usable document", base, True)
    add("path-base", "a base URL with a path", changed(inbox="https://host.example/v/17/inbox"),
        True, at="https://host.example/v/17/.well-known/vrm")
    add("default-port", "a missing port is the scheme's default",
        changed(inbox="https://shop.example:443/vrm/inbox"), True)
    add("host-case", "hosts are compared without case",
        changed(inbox="https://SHOP.Example/vrm/inbox"), True)
    add("extra-members", "unknown members are ignored", changed(logo="https://shop.example/l"),
        True)
    add("extra-jwk-members", "other members of the vendor's JWK are ignored",
        changed(keys=[{**VENDOR.public.to_jwk(), "use": "sig", "alg": "EdDSA"}]), True)
    add("other-keys", "other entries of keys are not read",
        changed(keys=[{"kty": "EC", "crv": "P-256", "x": "a", "y": "b", "kid": "k"},
                      VENDOR.public.to_jwk()]), True)
    add("vrm-several", "vrm lists other versions besides 1", changed(vrm=["2", "1"]), True)
    add("no-fetch-type", "a document whose types lacks messages.fetch and relationship.end is "
        "usable (the vendor breaks §7; agents send only what is listed)",
        changed(types=["relationship.request"]), True)
    add("inbox-other-host", "an inbox on another host (SSRF)",
        changed(inbox="https://evil.example/inbox"), False)
    add("inbox-other-port", "an inbox on another port", changed(
        inbox="https://shop.example:8443/vrm/inbox"), False)
    add("inbox-other-scheme", "an inbox on http for an https document",
        changed(inbox="http://shop.example/vrm/inbox"), False)
    add("inbox-credentials", "an inbox URL with credentials",
        changed(inbox="https://user:pw@shop.example/vrm/inbox"), False)
    add("inbox-relative", "a relative inbox", changed(inbox="/vrm/inbox"), False)
    add("inbox-upper-case-scheme", "a url has a lower-case scheme",
        changed(inbox="HTTPS://shop.example/vrm/inbox"), False)
    add("inbox-bad-ipv6", "a host that cannot be read",
        changed(inbox="https://[::1/inbox"), False)
    add("inbox-bad-port", "a port that cannot be read",
        changed(inbox="https://shop.example:99999/inbox"), False)
    add("vrm-without-1", "vrm must contain \"1\"", changed(vrm=["2"]), False)
    add("vrm-empty", "vrm has 1-10 entries", changed(vrm=[]), False)
    add("vrm-string", "vrm is an array", changed(vrm="1"), False)
    add("id-missing", "id is required", changed(id=_DROP), False)
    add("id-weak", "an id that is a weak key", changed(id=did_from_public_bytes(
        WEAK_KEYS["identity"])), False)
    add("name-null", "no member may be null", changed(name=None), False)
    add("name-201", "name is at most 200 characters", changed(name="n" * 201), False)
    add("types-missing", "types is required", changed(types=_DROP), False)
    add("keys-empty", "keys has 1-10 entries", changed(keys=[]), False)
    add("key-missing", "no entry has the kid of id", changed(keys=[OTHER.public.to_jwk()]),
        False)
    add("key-other-x", "the entry with id's kid holds another key",
        changed(keys=[{**OTHER.public.to_jwk(), "kid": VENDOR.kid}]), False)
    add("key-private", "the vendor's key with its private part",
        changed(keys=[{**VENDOR.public.to_jwk(),
                       "d": b64url_encode(VENDOR.private_bytes())}]), False)
    add("other-key-private", "a d in any entry makes the document unusable",
        changed(keys=[VENDOR.public.to_jwk(),
                      {**OTHER.public.to_jwk(), "d": b64url_encode(OTHER.private_bytes())}]),
        False)
    add("duplicate-member", "a document with a duplicate member", base, False,
        raw=_json(base)[:-1] + b',"id":"' + OTHER.did.encode() + b'"}')
    add("not-json", "not JSON", base, False, raw=b"<html></html>")
    add("array", "a top level that is not an object", base, False, raw=b"[]")
    return cases


# --- receipts.json and fetch.json: what an agent makes of an answer ---------------------

def _sent(id_: str, type_: str = "feedback", body: Any = None) -> bytes:
    return jws(header(), payload(type_, body if body is not None else {"score": 5}, id=id_))


def _receipt(thread: str, body: dict[str, Any], *, id_: str, key: SigningKey = VENDOR,
             to: str | None = None, created: str = NOW_TEXT, **extra: Any) -> bytes:
    return jws(header(key), payload("receipt", body, id=id_, sender=key.did,
                                    to=to if to is not None else AGENT.did, created=created,
                                    thread=thread, **extra), key)


def _receipts() -> list[dict[str, Any]]:
    cases = []
    message = _sent("sent-1")

    def add(name: str, section: str, description: str, status: int, answer: bytes,
            outcome: str, *, content_type: str = "application/jose+json",
            receipt_status: str | None = None, now: str = NOW_TEXT) -> None:
        field = {"answer": answer.decode("ascii")} if answer.isascii() else {
            "answer_b64": b64url_encode(answer)}
        cases.append({"name": name, "section": section, "description": description,
                      "input": {"message": message.decode("ascii"), "message_id": "sent-1",
                                "http_status": status, "content_type": content_type, **field,
                                "vendor_key": VENDOR.public.to_jwk(), "recipient": AGENT.did,
                                "now": now},
                      "expected": {"outcome": outcome, "receipt_status": receipt_status}})

    accepted = _receipt("sent-1", {"status": "accepted", "record": {"contact": 1}}, id_="r1")
    rejected = _receipt("sent-1", {"status": "rejected", "problem": {
        "type": "urn:vrm:problem:invalid-body"}}, id_="r2")
    ended = _receipt("sent-1", {"status": "rejected", "problem": {
        "type": "urn:vrm:problem:unknown-relationship"}}, id_="r3")
    add("accepted-200", "6.1", "200 with an accepted receipt", 200, accepted, "delivered",
        receipt_status="accepted")
    add("duplicate-200", "6.1", "200 with a duplicate receipt", 200,
        _receipt("sent-1", {"status": "duplicate"}, id_="r4"), "delivered",
        receipt_status="duplicate")
    add("rejected-422", "6.1", "422 with a rejected receipt: final", 422, rejected, "rejected",
        receipt_status="rejected")
    add("unsupported-422", "6.1", "422 with an unsupported receipt: final", 422,
        _receipt("sent-1", {"status": "unsupported", "problem": {
            "type": "urn:vrm:problem:unsupported-type"}}, id_="r5"), "rejected",
        receipt_status="unsupported")
    add("ended-410", "6.1", "410 with unknown-relationship: the relationship ended", 410,
        ended, "ended", receipt_status="rejected")
    add("status-disagrees-200-rejected", "6.1", "the signed receipt decides when the HTTP "
        "status disagrees: 200 with a rejected receipt is a rejection", 200, rejected,
        "rejected", receipt_status="rejected")
    add("status-disagrees-422-accepted", "6.1", "422 with an accepted receipt is a delivery",
        422, accepted, "delivered", receipt_status="accepted")
    add("receipt-other-thread", "6.1", "a receipt for another message is not a receipt",
        200, _receipt("sent-2", {"status": "accepted"}, id_="r6"), "transient")
    add("receipt-other-to", "6.1", "a receipt addressed to someone else", 200,
        _receipt("sent-1", {"status": "accepted"}, id_="r7", to=OTHER.did), "transient")
    add("receipt-bad-signature", "6.1", "a receipt whose signature does not verify", 200,
        accepted.replace(accepted[-10:-2], b"AAAAAAAA"), "transient")
    add("receipt-other-key", "6.1", "a valid receipt signed by another key than the pinned "
        "one, addressed to the sender: someone else answers at the inbox", 200,
        _receipt("sent-1", {"status": "accepted"}, id_="r8", key=OTHER), "key-changed")
    add("receipt-expired", "6.1", "an expired receipt is not a receipt", 200,
        _receipt("sent-1", {"status": "accepted"}, id_="r9",
                 created="2026-05-01T12:00:00Z"), "transient")
    add("not-a-receipt", "6.1", "a signed message of another type", 200,
        jws(header(VENDOR), payload("offer", {"summary": "s", "price": {
            "amount": "1", "currency": "EUR"}}, id="o1", sender=VENDOR.did, to=AGENT.did,
            thread="sent-1"), VENDOR), "transient")
    add("200-json", "6.1", "200 with a body that is not a receipt", 200, b'{"ok":true}',
        "transient", content_type="application/json")
    add("problem-400", "6.1", "400 with a problem document: final", 400,
        _json({"type": "urn:vrm:problem:malformed", "title": "bad", "status": 400}), "rejected",
        content_type="application/problem+json")
    add("problem-401", "6.1", "401: final", 401, _json(
        {"type": "urn:vrm:problem:bad-signature", "status": 401}), "rejected",
        content_type="application/problem+json")
    add("problem-413", "6.1", "413: final", 413, b"", "rejected")
    add("problem-415", "6.1", "415: final", 415, b"", "rejected")
    add("redirect-307", "6.1", "a redirect is not followed: it proves nothing", 307, b"",
        "transient")
    add("503", "6.2", "503 is transient", 503, b"", "transient")
    add("429", "6.2", "429 is transient", 429, b"", "transient")
    add("408", "6.2", "408 is transient", 408, b"", "transient")
    add("other-4xx", "6.1", "another 4xx is final", 404, b"", "rejected")
    return cases


def _evidence() -> list[dict[str, Any]]:
    cases = []
    message = _sent("kept-1")
    good = _receipt("kept-1", {"status": "accepted"}, id_="e1")

    def add(name: str, description: str, receipt: bytes, proves: bool, *,
            msg: bytes = message, key: SigningKey = VENDOR) -> None:
        cases.append({"name": name, "section": "5.11", "description": description,
                      "input": {"message": msg.decode("ascii"), "receipt": receipt.decode(
                          "ascii"), "vendor_key": key.public.to_jwk(),
                          "now": "2030-01-01T00:00:00Z"},
                      "expected": {"proves": proves}})

    add("kept-after-expiry", "a kept receipt proves its message years later: expires is "
        "ignored", good, True)
    add("other-thread", "a receipt naming another message proves nothing about this one",
        _receipt("kept-2", {"status": "accepted"}, id_="e2"), False)
    add("other-to", "a receipt to someone else", _receipt("kept-1", {"status": "accepted"},
                                                          id_="e3", to=OTHER.did), False)
    add("other-key", "a receipt signed by another key than the vendor's",
        _receipt("kept-1", {"status": "accepted"}, id_="e4", key=OTHER), False)
    add("rejected", "a rejected receipt shows the message was refused, not accepted",
        _receipt("kept-1", {"status": "rejected", "problem": {
            "type": "urn:vrm:problem:invalid-body"}}, id_="e5"), False)
    add("message-to-other", "the message was addressed to another vendor",
        _receipt("kept-3", {"status": "accepted"}, id_="e6"), False,
        msg=jws(header(), payload("feedback", {"score": 5}, id="kept-3", to=OTHER.did)))
    add("message-forged", "the message's own signature does not verify", good, False,
        msg=message.replace(message[-10:-2], b"AAAAAAAA"))
    return cases


def _fetch_pages() -> list[dict[str, Any]]:
    cases = []

    def carried(id_: str, *, key: SigningKey = VENDOR, to: str | None = None,
                expires: str = "2026-07-01T11:00:00Z") -> dict[str, Any]:
        return json.loads(jws(header(key), payload(
            "offer", {"summary": f"offer {id_}", "price": {"amount": "10.00", "currency": "EUR"}},
            id=id_, sender=key.did, to=to if to is not None else AGENT.did, thread="intent-1",
            created="2026-06-01T11:00:00Z", expires=expires), key))

    def add(name: str, description: str, after: str | None, body: dict[str, Any],
            stored: list[str], dropped: list[str], next_after: str | None, again: bool,
            *, seen: list[str] | None = None) -> None:
        receipt = _receipt("fetch-1", body, id_=f"page-{name}")
        cases.append({"name": name, "section": "6.4", "description": description,
                      "input": {"after": after, "receipt": receipt.decode("ascii"),
                                "vendor_key": VENDOR.public.to_jwk(), "recipient": AGENT.did,
                                "now": NOW_TEXT, "seen": seen or []},
                      "expected": {"stored": stored, "dropped": dropped,
                                   "next_after": next_after, "fetch_again": again}})

    add("first-page", "the first page, from the start", None,
        {"status": "accepted", "messages": [carried("o1"), carried("o2")], "cursor": "2"},
        ["o1", "o2"], [], "2", True)
    add("empty-page", "an empty page ends the loop; its cursor is kept", "2",
        {"status": "accepted", "messages": [], "cursor": "2"}, [], [], "2", False)
    add("no-cursor", "a page without a cursor ends the loop", None,
        {"status": "accepted", "messages": [carried("o1")]}, ["o1"], [], None, False)
    add("cursor-unchanged", "a cursor that does not move ends the loop (a vendor that "
        "would loop forever)", "2",
        {"status": "accepted", "messages": [carried("o3")], "cursor": "2"}, ["o3"], [], "2",
        False)
    add("already-held", "a message already held, by (from, id), is not stored twice", None,
        {"status": "accepted", "messages": [carried("o1"), carried("o4")], "cursor": "4"},
        ["o4"], [], "4", True, seen=["o1"])
    add("bad-carried", "carried messages that fail verification are dropped, the rest kept: "
        "another key (not a key change), another recipient, expired",
        None, {"status": "accepted", "messages": [
            carried("x-other-key", key=OTHER), carried("x-other-to", to=OTHER.did),
            carried("x-expired", expires="2026-06-01T11:30:00Z"), carried("o5")],
               "cursor": "9"}, ["o5"], ["x-other-key", "x-other-to", "x-expired"], "9", True)
    add("duplicate-fetch", "a duplicate receipt (a fetch re-sent with the same id) carries "
        "nothing; fetch again with a new message", "2", {"status": "duplicate"}, [], [], "2",
        False)
    return cases


# --- inbox.json: a vendor's relationship rules, step by step ----------------------------

def _inbox() -> list[dict[str, Any]]:
    steps: list[dict[str, Any]] = []

    def step(description: str, section: str, raw: bytes, status: int, receipt_status: str,
             problem: str | None = None, record: dict[str, Any] | None = None,
             **extra: Any) -> None:
        expected: dict[str, Any] = {"http_status": status, "receipt_status": receipt_status,
                                    "problem": problem and "urn:vrm:problem:" + problem}
        if record:
            expected["record_contains"] = record
        expected.update(extra)
        steps.append({"description": description, "section": section,
                      "message": raw.decode("ascii"), "expected": expected})

    early = _sent("fb-1")
    step("any type before relationship.request: unknown-relationship", "4", early, 422,
         "rejected", "unknown-relationship")
    step("relationship.request opens the relationship", "4",
         _signed("relationship.request", {"profile": {"email": "ada@example.org"}}, "rr-1"),
         200, "accepted")
    step("the refused message, sent again: rejections are not remembered, it is judged "
         "afresh", "4", early, 200, "accepted")
    step("the same message again: duplicate", "4", early, 200, "duplicate")
    bad_body = _sent("fb-2", body={"score": 50})
    step("an invalid body", "4", bad_body, 422, "rejected", "invalid-body")
    step("the invalid message again: rejected again, not duplicate", "4", bad_body, 422,
         "rejected", "invalid-body")
    step("intent.cancel whose thread names no intent of this sender", "5.5",
         _signed("intent.cancel", {}, "ic-0", thread="no-such-intent"), 422, "rejected",
         "invalid-body")
    step("an intent", "5.4", _signed("intent", {"summary": "A touring bike"}, "in-1"), 200,
         "accepted")
    step("intent.cancel names it by (from, thread)", "5.5",
         _signed("intent.cancel", {"reason": "bought one"}, "ic-1", thread="in-1"), 200,
         "accepted")
    fetch = _signed("messages.fetch", {"after": None}, "mf-1")
    step("messages.fetch with nothing held: an empty page, with messages and cursor", "5.10",
         fetch, 200, "accepted", messages=0, cursor=True)
    step("the same messages.fetch again: duplicate, carrying no messages", "5.10", fetch, 200,
         "duplicate", messages=None)
    step("messages.fetch with a cursor the vendor never gave", "5.10",
         _signed("messages.fetch", {"after": "not a cursor"}, "mf-2"), 422, "rejected",
         "invalid-body")
    step("relationship.request again: a re-statement, accepted", "4",
         _signed("relationship.request", {"profile": {"given_name": "Ada"}}, "rr-2"), 200,
         "accepted")
    end = _signed("relationship.end", {"reason": "moving on"}, "end-1")
    step("relationship.end", "5.9", end, 200, "accepted", record={"erased": False})
    step("a new message after the end: 410", "4", _sent("fb-3"), 410, "rejected",
         "unknown-relationship")
    step("a message accepted before the end, sent again: duplicate", "4", early, 200,
         "duplicate")
    step("the end itself, sent again: duplicate", "4", end, 200, "duplicate")
    step("messages.fetch after the end: 410", "6.4",
         _signed("messages.fetch", {"after": None}, "mf-3"), 410, "rejected",
         "unknown-relationship")
    step("relationship.request after the end: 410 (a new relationship needs a new DID)", "4",
         _signed("relationship.request", {}, "rr-3"), 410, "rejected", "unknown-relationship")
    step("relationship.end with erase after an end without it: accepted once", "4",
         _signed("relationship.end", {"erase": True}, "end-2"), 200, "accepted",
         record={"erased": True})
    step("another relationship.end with erase: 410", "4",
         _signed("relationship.end", {"erase": True}, "end-3"), 410, "rejected",
         "unknown-relationship")
    step("a new DID opens a new relationship", "4",
         _signed("relationship.request", {}, "rr-4", key=OTHER), 200, "accepted")
    return [{"name": "relationship-lifecycle", "section": "4", "description":
             "one inbox, fresh at the start, receiving these messages in order",
             "input": {"vendor_key": VENDOR.public.to_jwk(), "now": NOW_TEXT,
                       "types": VENDOR_TYPES},
             "steps": steps}]


def _keys() -> dict[str, Any]:
    return {name: {"seed_b64": b64url_encode(key.private_bytes()), "did": key.did,
                   "kid": key.kid, "jwk": key.public.to_jwk()}
            for name, key in VECTOR_KEYS.items()}


def build_vectors() -> dict[str, dict[str, Any]]:
    """Every vector file: ``{file name: JSON-ready document}``."""
    def doc(description: str, cases: Any) -> dict[str, Any]:
        return {"description": description, "protocol": "VRM/1",
                "generated_by": GENERATOR, "cases": cases}

    didkey = _didkey()
    return {
        "keys.json": {"description": "The fixed keys every vector is signed with. TEST KEYS "
                      "ONLY: their private seeds are public.", "protocol": "VRM/1",
                      "generated_by": GENERATOR, "now": NOW_TEXT, "keys": _keys()},
        "messages.json": doc("Receiving one message: PROTOCOL.md §2-§5 and §6.1 media types. "
                             "Run each case through the receiver's checks (section 4) with "
                             "the inputs given; compare the outcome.", _messages()),
        "base64url.json": doc("Strict, canonical base64url decoding (PROTOCOL.md §2).",
                              _base64url()),
        "didkey.json": {**doc("Decoding did:key DIDs (§1) and the vendor's JWK (§7).",
                              didkey["did"]), "jwk_cases": didkey["jwk"]},
        "ijson.json": doc("Strict I-JSON parsing (PROTOCOL.md §3.5).", _ijson()),
        "discovery.json": doc("Checking a vendor's discovery document before use "
                              "(PROTOCOL.md §7).", _discovery()),
        "receipts.json": {**doc("What an agent makes of the answer to a message it sent "
                                "(PROTOCOL.md §6.1).", _receipts()),
                          "evidence_cases": _evidence()},
        "fetch.json": doc("An agent reading messages.fetch pages (PROTOCOL.md §6.4).",
                          _fetch_pages()),
        "inbox.json": doc("A vendor's relationship rules and replays, in order "
                          "(PROTOCOL.md §4, §5).", _inbox()),
    }
