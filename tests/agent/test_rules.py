"""The delivery rules as pure functions: classify() and backoff(), table-driven."""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta, timezone

import pytest

import protocol
from agent import Limits, backoff, classify
from agent._http import HttpAnswer, _retry_after

VENDOR = protocol.SigningKey.generate()
ME = protocol.SigningKey.generate()
NOW = datetime.now(timezone.utc)


def receipt(status: str, *, thread: str = "m1", problem: str | None = None,
            key: protocol.SigningKey = VENDOR, to: str | None = None) -> bytes:
    body: dict[str, object] = {"status": status}
    if problem:
        body["problem"] = {"type": protocol.problem_urn(problem), "detail": problem}
    message = protocol.Receipt(id=protocol.new_message_id(), sender=key.did, to=to or ME.did,
                               created=NOW, thread=thread,
                               body=protocol.ReceiptBody.model_validate(body))
    return protocol.sign(message, key)


def forged_with_pinned_kid() -> bytes:
    """A receipt whose header names the pinned key but that another key signed."""
    impostor = protocol.SigningKey.generate()
    genuine = json.loads(receipt("accepted"))
    signed = json.loads(receipt("accepted", key=impostor))
    return json.dumps({**genuine, "signature": signed["signature"]}).encode()


JOSE, PROBLEM = protocol.MEDIA_TYPE, protocol.PROBLEM_MEDIA_TYPE
problem_doc = json.dumps({"type": "urn:vrm:problem:too-large", "detail": "too big"}).encode()

CASES = [
    # (status, content type, body, expected kind)
    (200, JOSE, receipt("accepted"), "delivered"),
    (200, JOSE, receipt("duplicate"), "delivered"),
    (422, JOSE, receipt("rejected", problem="invalid-body"), "rejected"),
    (422, JOSE, receipt("unsupported", problem="unsupported-type"), "rejected"),
    (410, JOSE, receipt("rejected", problem="unknown-relationship"), "ended"),
    (422, JOSE, receipt("rejected", problem="unknown-relationship"), "ended"),
    (400, PROBLEM, problem_doc, "rejected"),
    (401, PROBLEM, problem_doc, "rejected"),
    (413, PROBLEM, problem_doc, "rejected"),
    (415, PROBLEM, problem_doc, "rejected"),
    (429, "text/plain", b"slow down", "transient"),
    (500, "text/plain", b"", "transient"),
    (503, "text/html", b"<html>", "transient"),
    (200, JOSE, b"{]", "transient"),                                     # garbage
    (200, "application/json", b"{}", "transient"),                       # not a receipt
    # validly signed by another DID: someone else answers at the inbox
    (200, JOSE, receipt("accepted", key=protocol.SigningKey.generate()), "key-changed"),
    (410, JOSE, receipt("rejected", problem="unknown-relationship",
                        key=protocol.SigningKey.generate()), "key-changed"),
    (200, JOSE, forged_with_pinned_kid(), "transient"),  # claims the pinned kid: unverified
    (200, JOSE, receipt("accepted", thread="another"), "transient"),     # not for this message
    (200, JOSE, receipt("accepted", to="did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"),
     "transient"),                                                        # for someone else
    (410, "text/plain", b"gone", "transient"),                           # unsigned: proves nothing
    (302, "text/html", b"", "transient"),
]


@pytest.mark.parametrize(("status", "content_type", "body", "kind"), CASES)
def test_classify(status: int, content_type: str, body: bytes, kind: str) -> None:
    answer = HttpAnswer(status, content_type, body, None)
    verdict = classify(answer, message_id="m1", recipient=ME.did, vendor_key=VENDOR.public,
                       now=NOW)
    assert verdict.kind == kind, verdict
    if kind == "delivered":
        assert verdict.raw_receipt == body
    if kind in ("rejected", "transient", "key-changed"):
        assert verdict.detail
    if kind == "key-changed":
        assert VENDOR.did in verdict.detail and verdict.receipt is None


def test_problem_detail_is_shown() -> None:
    verdict = classify(HttpAnswer(413, PROBLEM, problem_doc, None), message_id="m1",
                       recipient=ME.did, vendor_key=VENDOR.public, now=NOW)
    assert verdict.detail == "too big (urn:vrm:problem:too-large)"


def test_backoff_grows_is_capped_jittered_and_honours_retry_after() -> None:
    limits = Limits(retry_base=2.0, retry_cap=60.0)
    rng = random.Random(7)
    for attempts in range(1, 12):
        expected = min(60.0, 2.0 * 2 ** (attempts - 1))
        delay = backoff(attempts, limits, rng)
        assert expected * 0.5 <= delay <= expected
    assert backoff(1, limits, rng, retry_after=300) == 300
    assert backoff(1, limits, rng, retry_after=10**9) == 86400


def test_retry_after_forms() -> None:
    assert _retry_after("120", NOW) == 120
    assert _retry_after(None, NOW) is None
    assert _retry_after("soon", NOW) is None
    later = (NOW + timedelta(seconds=90)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert 85 <= (_retry_after(later, NOW) or 0) <= 90


def test_backoff_jitter_spreads_retries() -> None:
    limits = Limits(retry_base=2.0, retry_cap=3600.0)
    for attempts in (1, 4, 9):
        expected = 2.0 * 2 ** (attempts - 1)
        draws = [backoff(attempts, limits, random.Random(seed)) for seed in range(50)]
        assert all(expected * 0.5 <= d <= expected for d in draws)
        # spread over the range, not stuck at one end: agents must not retry in step
        assert len(set(draws)) == 50
        assert min(draws) < expected * 0.6 and max(draws) > expected * 0.9
    # the same seed, the same delays (the rng is the only source of randomness)
    assert ([backoff(3, limits, random.Random(1)) for _ in range(3)]
            == [backoff(3, limits, random.Random(1)) for _ in range(3)])
