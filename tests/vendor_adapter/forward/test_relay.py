"""The relay's rules, against a scripted receiver (in this process) that still
verifies every delivery with ``standardwebhooks``: Retry-After, 410 Gone, the
schedule running out, order per contact, retry, and erasure."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from standardwebhooks.webhooks import Webhook as Verifier

from vendor_adapter.forward import ForwardError, Webhook
from vendor_adapter.forward._target import retry_after

from .conftest import new_secret, queue_rows, wait_for


@dataclass
class Scripted:
    """Answers each delivery with ``answer(payload) -> (status, headers)``."""

    url: str
    secret: str
    answer: Callable[[dict[str, Any]], tuple[int, dict[str, str]]]
    seen: list[tuple[str, dict[str, Any], int]] = field(default_factory=list)

    def accepted(self) -> list[dict[str, Any]]:
        return [p for _, p, status in self.seen if 200 <= status < 300]


@pytest.fixture
async def scripted(aiohttp_server: Any) -> Scripted:
    secret = new_secret()
    verifier = Verifier(secret)
    holder: dict[str, Scripted] = {}

    async def hook(request: web.Request) -> web.Response:
        body = await request.read()
        payload = verifier.verify(body, {k.lower(): v for k, v in request.headers.items()})
        me = holder["me"]
        status, headers = me.answer(payload)
        me.seen.append((request.headers["webhook-id"], payload, status))
        return web.Response(status=status, headers=headers)

    app = web.Application()
    app.router.add_post("/hook", hook)
    server = await aiohttp_server(app)
    holder["me"] = Scripted(str(server.make_url("/hook")), secret, lambda p: (204, {}))
    return holder["me"]


def queue(db: str) -> list[dict[str, Any]]:
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute("SELECT * FROM vrm_forward_queue ORDER BY seq")]


async def test_retry_after_on_429_is_honoured(forwarding_inbox: Any, scripted: Scripted) -> None:
    answers = iter([(429, {"Retry-After": "3"})])
    scripted.answer = lambda p: next(answers, (204, {}))
    inbox = await forwarding_inbox([Webhook(scripted.url, secret=scripted.secret,
                                            schedule=(0.05, 0.05))])
    await inbox.related(given_name="Ann")
    await wait_for(lambda: len(scripted.seen) == 1, what="the first attempt")
    await wait_for(lambda: bool(queue(inbox.vendor.db_path))
                   and queue(inbox.vendor.db_path)[0]["attempts"] == 1, what="the failure")
    (row,) = queue(inbox.vendor.db_path)
    (status,) = inbox.vendor.forwarding.status()
    # Due no sooner than Retry-After (3 s), not the schedule's 0.05 s.
    assert row["next_attempt"] - status.last_failure >= 3000
    assert "429" in row["last_error"]
    await wait_for(lambda: len(scripted.accepted()) == 1, what="the retry", timeout=20)
    assert scripted.seen[0][0] == scripted.seen[1][0]  # the same webhook-id


async def test_410_disables_the_target_until_retry(forwarding_inbox: Any,
                                                    scripted: Scripted) -> None:
    scripted.answer = lambda p: (410, {})
    target = Webhook(scripted.url, secret=scripted.secret, schedule=(0.05,))
    inbox = await forwarding_inbox([target])
    person = await inbox.related(given_name="Ann")
    await wait_for(lambda: inbox.vendor.forwarding.status()[0].disabled is not None,
                   what="the target disabled")
    await inbox.send(person, person.message("contact.update", {"changes": {"given_name": "A"}}))
    other = await inbox.related(given_name="Bo")
    await inbox.send(other, other.message("feedback", {"score": 3}))
    (status,) = inbox.vendor.forwarding.status()
    assert status.queued == 4 and status.delivered == 0 and "410" in status.disabled
    assert len(scripted.seen) == 1  # nothing more was sent to it

    scripted.answer = lambda p: (204, {})
    assert inbox.vendor.forwarding.retry(target.url) == 1
    await wait_for(lambda: len(scripted.accepted()) == 4, what="delivery after retry")
    (status,) = inbox.vendor.forwarding.status()
    assert status.disabled is None and status.delivered == 4
    assert [p["type"] for p in scripted.accepted() if p["data"]["did"] == person.did] == [
        "contact.created", "contact.updated"]
    with pytest.raises(ForwardError, match="no forwarding target"):
        inbox.vendor.forwarding.retry("https://elsewhere.example/hook")


async def test_a_failed_event_holds_back_only_its_own_contact(forwarding_inbox: Any,
                                                              scripted: Scripted) -> None:
    broken: set[str] = set()
    scripted.answer = lambda p: (500, {}) if p["data"]["did"] in broken else (204, {})
    inbox = await forwarding_inbox([Webhook(scripted.url, secret=scripted.secret,
                                            schedule=(0.05, 0.05))])
    ann, bo = inbox.person(), inbox.person()
    broken.add(ann.did)
    await inbox.send(ann, ann.request(given_name="Ann"))
    await inbox.send(ann, ann.message("contact.update", {"changes": {"given_name": "A"}}))
    await inbox.send(bo, bo.request(given_name="Bo"))
    await inbox.send(bo, bo.message("contact.update", {"changes": {"given_name": "B"}}))
    await wait_for(lambda: inbox.vendor.forwarding.status()[0].failed == 1,
                   what="the schedule to run out")
    await wait_for(lambda: len(scripted.accepted()) == 2, what="Bo's events")
    (status,) = inbox.vendor.forwarding.status()
    assert status.failed == 1 and status.queued == 1 and status.delivered == 2
    # Ann's created event was tried 3 times (at once, then the two retries); her
    # update never, since it waits behind it.
    attempts = [(i, p["type"]) for i, p, _ in scripted.seen if p["data"]["did"] == ann.did]
    assert [t for _, t in attempts] == ["contact.created"] * 3
    assert len({i for i, _ in attempts}) == 1
    rows = queue(inbox.vendor.db_path)
    assert [(r["type"], r["failed"] is not None) for r in rows] == [
        ("contact.created", True), ("contact.updated", False)]

    broken.clear()
    assert inbox.vendor.forwarding.retry() == 1
    await wait_for(lambda: len(scripted.accepted()) == 4, what="Ann's events after retry")
    assert [p["type"] for p in scripted.accepted() if p["data"]["did"] == ann.did] == [
        "contact.created", "contact.updated"]


async def test_an_erasure_drops_the_persons_queued_events(forwarding_inbox: Any,
                                                          scripted: Scripted) -> None:
    scripted.answer = lambda p: (503, {})
    inbox = await forwarding_inbox([Webhook(scripted.url, secret=scripted.secret,
                                            schedule=(60.0,))])
    person = await inbox.related(given_name="Ann", email="ann@example.org")
    await inbox.send(person, person.message("feedback", {"score": 2, "comment": "slow"}))
    other = await inbox.related(given_name="Bo")
    await wait_for(lambda: len(scripted.seen) == 2, what="the first attempts")
    await inbox.send(person, person.message("relationship.end", {"erase": True}))
    rows = queue(inbox.vendor.db_path)
    assert [(r["did"], r["type"]) for r in rows] == [
        (other.did, "contact.created"), (person.did, "contact.erased")]
    erased = json.loads(rows[1]["body"])
    assert set(erased["data"]) == {"did", "message_id", "erased"}
    assert "ann" not in rows[1]["body"].lower()


def test_retry_after_forms() -> None:
    assert retry_after("7") == 7.0
    assert retry_after("999999999999999") == 36000.0  # bounded
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past
    assert retry_after("soon") is None and retry_after(None) is None
    assert retry_after("-5") is None


@pytest.mark.parametrize("url, secret, words", [
    ("https://shop.example/hook", "hunter2", "whsec_"),
    ("https://shop.example/hook", "whsec_!!!", "base64"),
    ("https://shop.example/hook", "whsec_c2hvcnQ=", "24 to 64"),
    ("ftp://shop.example/hook", None, "http"),
    ("https://user:pw@shop.example/hook", None, "credentials"),
    ("https://shop.example/\x1b[2J", None, "http"),
    ("/relative", None, "absolute"),
])
def test_a_misconfigured_webhook_is_one_clear_error(url: str, secret: str | None,
                                                    words: str) -> None:
    with pytest.raises(ForwardError, match=words):
        Webhook(url, secret=secret or new_secret())


class Exploding(Webhook):
    """A webhook target whose rendering fails for feedback (a bug, say)."""

    def render(self, event: Any, mapping: Any) -> str:
        if event.type == "feedback.received":
            raise RuntimeError("cannot render")
        return super().render(event, mapping)


async def test_the_queue_and_the_crm_commit_together_or_not_at_all(
        forwarding_inbox: Any, scripted: Scripted) -> None:
    inbox = await forwarding_inbox([Exploding(scripted.url, secret=scripted.secret)])
    person = await inbox.related(given_name="Ann")
    replay = person.message("contact.update", {"changes": {"given_name": "A"}})
    await inbox.send(person, replay)
    assert (await inbox.send(person, replay))["status"] == "duplicate"  # no second event
    # The event cannot be queued: the CRM change is rolled back with it, and the
    # agent is told to send it again later.
    code, _, _ = await inbox.post(person.message("feedback", {"score": 9}))
    assert code == 503
    assert inbox.vendor.crm.feedback() == []
    await wait_for(lambda: not queue_rows(inbox.vendor.db_path), what="an empty queue")
    assert [p["type"] for p in scripted.accepted()] == ["contact.created", "contact.updated"]


async def test_a_waiting_queue_does_not_keep_the_relay_busy(forwarding_inbox: Any,
                                                            scripted: Scripted) -> None:
    """Rows behind a failing head, and a head in its retry wait, are not due: the
    relay sleeps (one look at the queue per poll) instead of spinning on them."""
    import asyncio

    scripted.answer = lambda p: (500, {})
    inbox = await forwarding_inbox([Webhook(scripted.url, secret=scripted.secret,
                                            schedule=(60.0,))])
    person = await inbox.related(given_name="Ann")
    await inbox.send(person, person.message("contact.update", {"changes": {"given_name": "A"}}))
    await wait_for(lambda: inbox.vendor.forwarding.status()[0].failing == 1,
                   what="the head's failure")
    writer = inbox.vendor._db.writer
    before = writer.stats.jobs
    await asyncio.sleep(2.0)
    # About two looks (poll_interval is 1 s); a spinning relay makes thousands.
    assert writer.stats.jobs - before <= 10
    assert len(scripted.seen) == 1


async def test_a_target_that_hangs_does_not_starve_the_others(
        forwarding_inbox: Any, scripted: Scripted, aiohttp_server: Any) -> None:
    import asyncio

    hanging: list[str] = []
    release = asyncio.Event()

    async def hang(request: web.Request) -> web.Response:
        hanging.append(request.headers["webhook-id"])
        await release.wait()  # an offline host, as far as the relay can tell
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", hang)
    slow = await aiohttp_server(app)
    inbox = await forwarding_inbox([
        Webhook(str(slow.make_url("/hook")), secret=new_secret()),
        Webhook(scripted.url, secret=scripted.secret)])
    assert inbox.vendor.forwarding.per_target == 8
    people = [await inbox.related(given_name=f"P{n}") for n in range(20)]
    await wait_for(lambda: len(scripted.accepted()) == 20, what="the other target's events")
    assert {p["data"]["did"] for p in scripted.accepted()} == {p.did for p in people}
    assert len(hanging) == 8  # the hanging target holds its share, no more
    release.set()
