"""Issue 9, item 2: one vendor's answer never stops a run, never loses another
vendor's result.

The function that judges an answer (``agent._delivery.judge``: the status,
header values and body as they came) is total: a hypothesis property feeds it
anything. Then the whole path: a hostile inbox (a real aiohttp server on
loopback) beside two honest vendors (real vendor_adapter apps), through the
real ``vrm`` command as a subprocess."""

from __future__ import annotations

import json
import re
import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import protocol
from agent import Agent
from agent._delivery import MAX_DETAIL_CHARS, Exchange, judge
from agent._http import parse_retry_after

from .conftest import FakeVendor
from .test_cli import vrm  # noqa: F401 - the fixture that runs the real `vrm`

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)
VENDOR = protocol.SigningKey.generate()
ME = protocol.SigningKey.generate()
UNSAFE = re.compile(f"[{protocol.UNSAFE_CHARACTERS}]")
KINDS = {"delivered", "rejected", "ended", "transient", "key-changed"}


def _receipt(thread: str = "m1", status: str = "accepted", **extra: Any) -> bytes:
    message = protocol.Receipt(
        id=protocol.new_message_id(), sender=VENDOR.did, to=ME.did, created=NOW,
        thread=thread, body=protocol.ReceiptBody.model_validate({"status": status, **extra}))
    return protocol.sign(message, VENDOR)


DEEP = b"[" * 100_000
SURROGATE_PROBLEM = b'{"detail": "\\ud800"}'  # 22 bytes, a lone surrogate once decoded
HOSTILE_BODIES = [
    DEEP, b"{" * 5000, b'{"a":' * 3000, SURROGATE_PROBLEM, b'{"detail": "\\u001b[2J\\u202e"}',
    b'{"detail": 5, "title": [1], "type": {}}', b'{"detail": "' + b"x" * 100_000 + b'"}',
    b"\xff\xfe\x00", b"null", b"[]", b'"\\ud800"', b"1e999999", b"",
    _receipt(), _receipt("other"), _receipt(status="rejected",
                                            problem={"type": "urn:vrm:problem:invalid-body",
                                                     "detail": "\x1b]0;owned\x07"}),
]
HOSTILE_HEADERS = ["9" * 5000, "²", "٣", "\ud800", "\udcff", "-1", "1e9", "0x10", " 12 ",
                   "Sun, 06 Nov 1994 08:49:37 GMT", "Sun, 31 Feb 2094 08:49:37 GMT",
                   "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994",
                   "Sun, 06 Nov 99999 08:49:37 GMT", "application/problem+json; x=\ud800",
                   protocol.MEDIA_TYPE, protocol.MEDIA_TYPE.upper() + " ; charset=utf-8",
                   protocol.PROBLEM_MEDIA_TYPE, "\x00\x1b[2J", ""]
statuses = st.one_of(st.sampled_from([200, 201, 204, 301, 307, 400, 401, 404, 408, 410, 413,
                                      415, 422, 429, 500, 503, 599]),
                     st.integers(min_value=-(2**70), max_value=2**70))
header_values = st.one_of(st.sampled_from(HOSTILE_HEADERS), st.text(max_size=80),
                          st.text(alphabet=st.characters(), max_size=20))
headers = st.dictionaries(st.sampled_from(["Content-Type", "Retry-After", "X-Other"]),
                          header_values)
bodies = st.one_of(st.sampled_from(HOSTILE_BODIES), st.binary(max_size=300),
                   st.builds(lambda text: json.dumps({"detail": text}).encode(), st.text()))


def _check(verdict: Exchange) -> None:
    assert isinstance(verdict, Exchange) and verdict.kind in KINDS
    if verdict.detail is not None:
        verdict.detail.encode("utf-8")  # valid UTF-8: no lone surrogate
        assert len(verdict.detail) <= MAX_DETAIL_CHARS
        assert not UNSAFE.search(verdict.detail), verdict.detail
    if verdict.retry_after is not None:
        assert 0 <= verdict.retry_after <= 86400 * 30


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(status=statuses, header_values=headers, body=bodies)
@example(status=400, header_values={"Content-Type": protocol.PROBLEM_MEDIA_TYPE}, body=DEEP)
@example(status=400, header_values={"Content-Type": protocol.PROBLEM_MEDIA_TYPE},
         body=SURROGATE_PROBLEM)
@example(status=200, header_values={"Content-Type": protocol.MEDIA_TYPE,
                                    "Retry-After": "9" * 5000}, body=_receipt())
def test_judging_any_answer_never_raises_and_always_gives_a_result(
        status: int, header_values: dict[str, str], body: bytes) -> None:
    _check(judge(status, header_values, body, message_id="m1", recipient=ME.did,
                 vendor_key=VENDOR.public, now=NOW))


@pytest.mark.parametrize("status, header_values, body, kind, detail", [
    # the issue's cases, one by one
    (400, {"Content-Type": protocol.PROBLEM_MEDIA_TYPE}, DEEP, "rejected", "HTTP 400"),
    (400, {"Content-Type": protocol.PROBLEM_MEDIA_TYPE}, SURROGATE_PROBLEM, "rejected",
     "\\ud800"),
    (400, {"Content-Type": protocol.PROBLEM_MEDIA_TYPE},
     b'{"detail": "\\u001b[2Jgone\\u202e"}', "rejected", "\\x1b[2Jgone\\u202e"),
    (200, {"Content-Type": protocol.MEDIA_TYPE, "Retry-After": "9" * 5000}, _receipt(),
     "delivered", None),
    (200, {"Content-Type": protocol.MEDIA_TYPE, "Retry-After": "²"}, _receipt(),
     "delivered", None),
    (200, {"Content-Type": protocol.MEDIA_TYPE + "; charset=utf-8"}, DEEP, "transient", None),
    (503, {"Retry-After": "\ud800"}, b"", "transient", "HTTP 503"),
])
def test_the_issue_s_answers(status: int, header_values: dict[str, str], body: bytes,
                             kind: str, detail: str | None) -> None:
    verdict = judge(status, header_values, body, message_id="m1", recipient=ME.did,
                    vendor_key=VENDOR.public, now=NOW)
    _check(verdict)
    assert verdict.kind == kind, verdict
    if detail is not None:
        assert verdict.detail == detail


@pytest.mark.parametrize("value, seconds", [
    ("120", 120.0), (" 7\t", 7.0), ("0", 0.0), ("9999999999", 86400 * 30.0),
    ("99999999999", None),  # more than ten digits: not a delay anyone means
    ("9" * 5000, None), ("²", None), ("٣", None), ("３", None), ("-5", None), ("1.5", None),
    ("+5", None), ("\ud800", None), ("", None), (None, None), ("soon", None),
    # the three HTTP-date forms (RFC 9110 §5.6.7), 90 s after NOW
    ("Mon, 30 Nov 2026 12:01:30 GMT", 90.0), ("Monday, 30-Nov-26 12:01:30 GMT", 90.0),
    ("Mon Nov 30 12:01:30 2026", 90.0),
    ("Mon, 30 Nov 2026 12:01:30 +0000", None),  # RFC 5322, not an HTTP-date
    ("Mon, 31 Feb 2026 12:01:30 GMT", None), ("Mon, 30 Nov 2026 25:01:30 GMT", None),
    ("Sun, 06 Nov 1994 08:49:37 GMT", 0.0),  # in the past: no wait
])
def test_retry_after_is_digits_or_an_http_date(value: str | None, seconds: float | None
                                               ) -> None:
    assert parse_retry_after(value, NOW) == seconds


# --- the whole path: a hostile inbox beside two honest vendors -------------------

class HostileVendor(FakeVendor):
    """A FakeVendor whose inbox, once ``answer`` is set, answers every POST with
    that status, those headers and that body. ``receipt_headers`` keeps the
    honest signed receipt and adds the headers to it."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.answer: tuple[int, dict[str, str], bytes] | None = None
        self.receipt_headers: dict[str, str] = {}

    async def inbox(self, request: web.Request) -> web.StreamResponse:
        if self.answer is not None:
            self.hits += 1
            await request.read()
            status, headers, body = self.answer
            return web.Response(status=status, headers=headers, body=body)
        response = await super().inbox(request)
        response.headers.update(self.receipt_headers)
        return response


PROBLEM = {"Content-Type": protocol.PROBLEM_MEDIA_TYPE}


def _outbox(home: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """(vendor, email sent) -> the outbox row with its receipt, read from the store."""
    with sqlite3.connect(home / "vrm.db") as conn:
        conn.row_factory = sqlite3.Row
        rows = conn.execute(
            "SELECT v.name, o.id, o.type, o.status, o.attempts, o.last_error, o.jws, "
            "r.status AS receipt FROM outbox o JOIN vendors v ON v.id = o.vendor_id "
            "LEFT JOIN receipts r ON r.message_id = o.id ORDER BY o.rowid").fetchall()
    found = {}
    for row in rows:
        payload = json.loads(protocol.b64url_decode(json.loads(row["jws"])["payload"]))
        email = (payload.get("body", {}).get("changes") or {}).get("email", "")
        found[(row["name"], row["type"], email)] = dict(row)
    return found


async def test_a_hostile_inbox_beside_two_honest_vendors(vrm, serve, shops, home: Path  # noqa: F811
                                                         ) -> None:
    await vrm("init")
    hostile, hostile_url = await serve(HostileVendor("Hostile"))
    honest = await shops(2)
    for url in (hostile_url, honest[0].url, honest[1].url):
        added = await vrm("vendor", "add", url, "--share", "email")
        assert "(active)" in added.stdout, added

    def emails(shop: Any) -> str | None:
        [contact] = shop.crm.contacts()
        return contact["email"]

    # 1. '[' * 100,000 as a problem document: RecursionError on the old code, for every
    # command, and the honest vendors' receipts of the same run were lost.
    hostile.answer = (400, PROBLEM, DEEP)
    ran = await vrm("profile", "set", "email=one@example.org", ok=False)
    assert "unexpected error" not in ran.stderr and ran.status in (0, 3), ran
    assert all(emails(shop) == "one@example.org" for shop in honest)
    rows = _outbox(home)
    for shop in honest:
        row = rows[(shop.name, "contact.update", "one@example.org")]
        assert (row["status"], row["receipt"], row["attempts"]) == ("delivered", "accepted", 1)
    row = rows[("Hostile", "contact.update", "one@example.org")]
    assert (row["status"], row["attempts"], row["last_error"]) == ("rejected", 1, "HTTP 400")

    # 2. A lone surrogate in the problem's detail: on the old code the write of the
    # error text failed and took the whole batch with it.
    hostile.answer = (400, PROBLEM, SURROGATE_PROBLEM)
    ran = await vrm("profile", "set", "email=two@example.org", ok=False)
    assert "unexpected error" not in ran.stderr and "\\ud800" in ran.stdout, ran
    rows = _outbox(home)
    for shop in honest:
        assert emails(shop) == "two@example.org"
        row = rows[(shop.name, "contact.update", "two@example.org")]
        assert (row["status"], row["receipt"]) == ("delivered", "accepted")
    row = rows[("Hostile", "contact.update", "two@example.org")]
    assert (row["status"], row["last_error"]) == ("rejected", "\\ud800")

    # 3. A valid receipt with a Retry-After of 5,000 nines, then '²': delivered, not a
    # transport failure for ever.
    hostile.answer = None
    for n, value in enumerate(("9" * 5000, "²")):
        hostile.receipt_headers = {"Retry-After": value}
        email = f"three{n}@example.org"
        ran = await vrm("profile", "set", f"email={email}", "--json")
        results = {r["vendor"]: r for r in ran.json()["results"]}
        assert {r["status"] for r in results.values()} == {"delivered"}, results
        assert results["Hostile"]["receipt_status"] == "accepted"
        assert _outbox(home)[("Hostile", "contact.update", email)]["receipt"] == "accepted"

    # 4. `vrm deliver` with a message due to the hostile vendor: its own result, no crash.
    hostile.receipt_headers = {}
    hostile.answer = (503, {"Retry-After": "٣"}, DEEP)
    ran = await vrm("profile", "set", "email=four@example.org", "--json")
    by_vendor = {r["vendor"]: r for r in ran.json()["results"]}
    assert by_vendor["Hostile"]["status"] == "pending"
    assert by_vendor["Shop0"]["status"] == by_vendor["Shop1"]["status"] == "delivered"
    hostile.answer = (400, PROBLEM, DEEP)
    ran = await vrm("deliver", "--wait", "10", "--json", ok=False)
    assert ran.status in (0, 3), ran
    [result] = ran.json()["results"]  # deliver --json: {"results", "pending", "next_attempt"}
    assert (result["vendor"], result["status"], result["detail"]) == ("Hostile", "rejected",
                                                                      "HTTP 400")

    # 5. `vrm intent` and `vrm sync` go on for the honest vendors too.
    ran = await vrm("intent", "Touring bike", "--json", ok=False)
    assert ran.status in (0, 3) and "unexpected error" not in ran.stderr, ran
    by_vendor = {r["vendor"]: r["status"] for r in ran.json()["results"]}
    assert by_vendor == {"Hostile": "rejected", "Shop0": "delivered", "Shop1": "delivered"}
    ran = await vrm("sync", "--json", ok=False)
    assert ran.status in (0, 3) and "unexpected error" not in ran.stderr, ran
    synced = {r["vendor"]: r for r in ran.json()}
    assert synced["Hostile"]["status"] == "failed" and synced["Shop0"]["status"] != "failed"

    # 6. The person can still end the relationship with the hostile vendor, and with an
    # honest one in the same store.
    ended = await vrm("vendor", "end", "Hostile", "--json", ok=False)
    assert ended.status in (0, 3) and "unexpected error" not in ended.stderr, ended
    assert ended.json()["delivery"]["status"] == "rejected"
    ended = await vrm("vendor", "end", "Shop0", "--json")
    assert ended.json()["delivery"]["status"] == "delivered"
    listed = {v["name"]: v["status"] for v in (await vrm("vendor", "list", "--json")).json()}
    assert listed["Shop0"] == "ended" and listed["Shop1"] == "active"


async def test_one_result_the_store_refuses_does_not_lose_the_batch(agent: Agent, shops,
                                                                    home: Path) -> None:
    """A row the store will not take (here a real SQLite trigger refuses the update
    of one vendor's message) costs that row only: the other vendors' results and
    receipts of the same batch are committed."""
    a, b, c = await shops(3)
    for shop in (a, b, c):
        await agent.add_vendor(shop.url, share=["email"])
    b_id = agent.vendor(b.name)["id"]
    with sqlite3.connect(home / "vrm.db") as conn:
        conn.execute(
            "CREATE TRIGGER refuse_b BEFORE UPDATE OF status ON outbox "
            f"WHEN NEW.vendor_id = {b_id} AND NEW.status != 'pending' "
            "BEGIN SELECT RAISE(ABORT, 'refused by a test trigger'); END")
    broadcast = await agent.set_profile({"email": "ann@example.org"})
    assert {r.vendor: r.status for r in broadcast.results} == {
        a.name: "delivered", b.name: "delivered", c.name: "delivered"}
    by_vendor = {row["vendor"]: row for row in agent.outbox()
                 if row["type"] == "contact.update"}
    assert by_vendor[a.name]["status"] == by_vendor[c.name]["status"] == "delivered"
    assert by_vendor[a.name]["receipt_status"] == by_vendor[c.name]["receipt_status"] == (
        "accepted")
    # b's answer could not be stored as delivered: kept pending, asked for again
    assert by_vendor[b.name]["status"] == "pending" and by_vendor[b.name]["attempts"] == 1
    assert "could not be stored" in by_vendor[b.name]["last_error"]
    with sqlite3.connect(home / "vrm.db") as conn:
        conn.execute("DROP TRIGGER refuse_b")
    [again] = await agent.deliver()
    assert (again.vendor, again.status, again.receipt_status) == (b.name, "delivered",
                                                                  "duplicate")
    assert len(b.copies()) == 2  # the request and the update, each applied once


def test_retry_after_far_in_the_future_is_bounded() -> None:
    later = (NOW + timedelta(days=400)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert parse_retry_after(later, NOW) == 86400 * 30
