"""Every check of vrm-conformance can fail: a vendor broken in one way is caught by
the check for that way, and the same vendor unbroken passes every check.

Each broken vendor is the real one (``vendor_adapter.Vendor``, its core, its
ledger and its SQLite CRM) behind a thin aiohttp wrapper that breaks one
thing: it rewrites one kind of answer, or changes what the vendor is given.
The checker talks to it over real HTTP on 127.0.0.1.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

import protocol
from conformance import CHECKS, passed, run_checks
from vendor_adapter import Vendor
from vendor_adapter._core import Response

PASSPHRASE = "conformance tests"
OTHER = protocol.SigningKey.generate()


@dataclass
class Request:
    """What the wrapper saw of one inbox request."""

    body: bytes
    content_type: str | None
    header: dict[str, Any] | None
    payload: dict[str, Any] | None


def _peek(body: bytes) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The protected header and payload, read leniently (the wrapper is not a receiver)."""
    try:
        data = json.loads(body)
        header = json.loads(protocol.b64url_decode(data["protected"]))
    except Exception:  # noqa: BLE001 - anything unreadable is just "not readable"
        return None, None
    try:
        payload = json.loads(protocol.b64url_decode(data["payload"]))
    except Exception:  # noqa: BLE001
        payload = None
    return header, payload if isinstance(payload, dict) else None


class Broken:
    """The vendor, and the means to answer in its name (its own key, or another)."""

    def __init__(self, vendor: Vendor) -> None:
        self.vendor = vendor
        self.delivered: set[str] = set()
        self.rejected: set[bytes] = set()

    def receipt(self, req: Request, status: str, *, http: int = 200, problem: str | None = None,
                key: protocol.SigningKey | None = None, **body: Any) -> Response:
        key = key or self.vendor._key
        assert req.payload is not None
        fields: dict[str, Any] = {"status": status, **body}
        if problem:
            fields["problem"] = protocol.ProblemRef(type=protocol.problem_urn(problem))
        receipt = protocol.Receipt(
            id=protocol.new_message_id(), sender=key.did, to=req.payload["from"],
            created=self.vendor.clock(), thread=req.payload["id"],
            body=protocol.ReceiptBody(**fields))
        return Response(http, protocol.MEDIA_TYPE, protocol.sign(receipt, key))

    async def answer(self, req: Request) -> Response:
        return await self.vendor.handle(req.body, req.content_type)


def _kind(response: Response) -> tuple[str | None, str | None]:
    """(receipt status, problem URN) of a real answer, read without checks."""
    if response.content_type == protocol.PROBLEM_MEDIA_TYPE:
        return None, json.loads(response.body).get("type")
    _, payload = _peek(response.body)
    body = (payload or {}).get("body", {})
    return body.get("status"), (body.get("problem") or {}).get("type")


Rule = Callable[[Broken, Request], Awaitable[Response]]


def answer_instead(predicate: Callable[[Request, Response], bool],
                   replace: Callable[[Broken, Request, Response], Response]) -> Rule:
    async def rule(broken: Broken, req: Request) -> Response:
        response = await broken.answer(req)
        return replace(broken, req, response) if predicate(req, response) else response
    return rule


def on_problem(urn: str, replace: Callable[[Broken, Request, Response], Response]) -> Rule:
    return answer_instead(lambda req, resp: _kind(resp)[1] == protocol.problem_urn(urn),
                          replace)


def accepted(broken: Broken, req: Request, _: Response) -> Response:
    return broken.receipt(req, "accepted")


def of_type(message_type: str) -> Callable[[Request, Response], bool]:
    return lambda req, resp: (req.payload or {}).get("type") == message_type


class Trusting(protocol.PublicKey):
    """A key that takes any signature: a vendor that does not check them."""

    def verify(self, signature: bytes, data: bytes) -> bool:
        return True


async def trusting(broken: Broken, req: Request) -> Response:
    core = broken.vendor.core
    saved = core.keys
    core.keys = lambda kid: Trusting(protocol.resolve_did_key(kid).raw)
    try:
        return await broken.answer(req)
    finally:
        core.keys = saved


async def ignores_media_type(broken: Broken, req: Request) -> Response:
    return await broken.vendor.handle(req.body, protocol.MEDIA_TYPE)


async def last_member_wins(broken: Broken, req: Request) -> Response:
    response = await broken.answer(req)
    if _kind(response)[1] == protocol.problem_urn("malformed") and req.payload is not None:
        return broken.receipt(req, "accepted")
    return response


def strip(broken: Broken, req: Request, response: Response, *, keep: Callable[[str], bool],
          cursor: bool = True) -> Response:
    """The real fetch receipt, re-signed with some carried messages left out."""
    receipt = protocol.parse(response.body, now=broken.vendor.clock(),
                             keys=protocol.pinned_keys(broken.vendor.public_key),
                             recipient=req.payload["from"])
    kept = [m for m in receipt.body.messages or []
            if keep(json.loads(protocol.b64url_decode(m.payload))["id"])]
    extra = {"cursor": receipt.body.cursor} if cursor else {}
    return broken.receipt(req, receipt.body.status, messages=kept, **extra)


def forgets_fetched(broken: Broken, req: Request, response: Response) -> Response:
    """Deletes what was fetched once: a fetch from the start no longer carries it."""
    def keep(message_id: str) -> bool:
        new = message_id not in broken.delivered
        broken.delivered.add(message_id)
        return new
    return strip(broken, req, response, keep=keep)


def is_fetch(req: Request, resp: Response) -> bool:
    return of_type("messages.fetch")(req, resp) and resp.status == 200 and \
        _kind(resp)[0] == "accepted"


async def problem_without_status(broken: Broken, req: Request) -> Response:
    response = await broken.answer(req)
    if response.content_type == protocol.PROBLEM_MEDIA_TYPE:
        document = json.loads(response.body)
        del document["status"]
        return Response(response.status, response.content_type, json.dumps(document).encode())
    return response


async def remembers_rejections(broken: Broken, req: Request) -> Response:
    """Records rejected messages as seen: the same bytes again get duplicate."""
    response = await broken.answer(req)
    if _kind(response)[0] == "rejected" and response.status == 422:
        if req.body in broken.rejected:
            return broken.receipt(req, "duplicate")
        broken.rejected.add(req.body)
    return response


async def case_sensitive_media_type(broken: Broken, req: Request) -> Response:
    if req.content_type != protocol.MEDIA_TYPE:
        return Response(415, protocol.PROBLEM_MEDIA_TYPE, protocol.dumps(
            protocol.UnsupportedMediaType("exactly application/jose+json").to_problem()))
    return await broken.answer(req)


async def size_first(broken: Broken, req: Request) -> Response:
    if len(req.body) > protocol.MAX_MESSAGE_BYTES:
        return Response(413, protocol.PROBLEM_MEDIA_TYPE, protocol.dumps(
            protocol.MessageTooLarge("too large").to_problem()))
    return await broken.answer(req)


#: One way of breaking the vendor per check, named by the check that must catch it.
BREAKAGES: dict[str, Rule | dict[str, Any]] = {
    "discovery": {"inbox": "http://elsewhere.example/inbox"},
    "discovery.types": {"types": ["relationship.request", "contact.update"]},
    "relationship.request": answer_instead(
        of_type("relationship.request"),
        lambda b, req, resp: b.receipt(req, "accepted", key=OTHER)),
    "replay": answer_instead(lambda req, resp: _kind(resp)[0] == "duplicate", accepted),
    "type.contact.update": answer_instead(
        of_type("contact.update"),
        lambda b, req, resp: b.receipt(req, "rejected", http=422, problem="invalid-body")),
    "type.preferences.update": answer_instead(
        of_type("preferences.update"), lambda b, req, resp: Response(503, "text/plain", b"")),
    "type.feedback": answer_instead(
        of_type("feedback"), lambda b, req, resp: b.receipt(req, "accepted", http=202)),
    "type.intent": answer_instead(  # an unsigned "receipt"
        of_type("intent"),
        lambda b, req, resp: Response(200, protocol.MEDIA_TYPE, b'{"status":"accepted"}')),
    "type.intent.cancel": on_problem("invalid-body", accepted),
    "not-for-me": on_problem("not-for-me", accepted),
    "not-yet-valid": on_problem("not-yet-valid", accepted),
    "expired": on_problem("expired", accepted),
    "unsupported-type": on_problem(
        "unsupported-type",
        lambda b, req, resp: b.receipt(req, "rejected", http=422, problem="invalid-body")),
    "invalid-body": answer_instead(
        lambda req, resp: _kind(resp)[1] == protocol.problem_urn("invalid-body")
        and of_type("relationship.request")(req, resp), accepted),
    "bad-signature": trusting,
    "another-key": trusting,
    "alg-none": answer_instead(lambda req, resp: (req.header or {}).get("alg") == "none",
                               accepted),
    "alg-HS256": answer_instead(lambda req, resp: (req.header or {}).get("alg") == "HS256",
                                accepted),
    "too-large": answer_instead(
        lambda req, resp: resp.status == 413,
        lambda b, req, resp: Response(400, protocol.PROBLEM_MEDIA_TYPE, protocol.dumps(
            protocol.MalformedMessage("too big").to_problem()))),
    "media-type": ignores_media_type,
    "malformed-json": answer_instead(
        lambda req, resp: req.payload is None and resp.status == 400,
        lambda b, req, resp: Response(503, protocol.PROBLEM_MEDIA_TYPE, protocol.dumps(
            protocol.Unavailable("oops").to_problem()))),
    "duplicate-members": last_member_wins,
    "fetch": answer_instead(is_fetch, lambda b, req, resp: strip(
        b, req, resp, keep=lambda _: True, cursor=False)),
    "fetch.replay": answer_instead(
        lambda req, resp: of_type("messages.fetch")(req, resp) and _kind(resp)[0] == "duplicate",
        lambda b, req, resp: b.receipt(req, "accepted", messages=[], cursor="0")),
    "fetch.unknown-cursor": answer_instead(
        lambda req, resp: of_type("messages.fetch")(req, resp) and resp.status == 422,
        lambda b, req, resp: b.receipt(req, "accepted", messages=[], cursor="0")),
    "offer": answer_instead(is_fetch, lambda b, req, resp: strip(
        b, req, resp, keep=lambda _: False)),
    "fetch.paging": answer_instead(is_fetch, forgets_fetched),
    "relationship.end": answer_instead(
        of_type("relationship.end"),
        lambda b, req, resp: b.receipt(req, "rejected", http=422, problem="invalid-body")),
    "gone": answer_instead(
        lambda req, resp: resp.status == 410,
        lambda b, req, resp: b.receipt(req, "rejected", http=422,
                                       problem="unknown-relationship")),
    "gone.duplicate": answer_instead(
        lambda req, resp: of_type("relationship.end")(req, resp)
        and _kind(resp)[0] == "duplicate",
        lambda b, req, resp: b.receipt(req, "rejected", http=410,
                                       problem="unknown-relationship")),
    "problem-documents": problem_without_status,
    "rejections-not-remembered": remembers_rejections,
    "unknown-relationship": answer_instead(
        lambda req, resp: resp.status == 422
        and _kind(resp)[1] == protocol.problem_urn("unknown-relationship"), accepted),
    "media-type-case": case_sensitive_media_type,
    "media-type-before-size": size_first,
    "erase-after-end": answer_instead(
        lambda req, resp: of_type("relationship.end")(req, resp)
        and (req.payload or {}).get("body", {}).get("erase") is True,
        lambda b, req, resp: b.receipt(req, "rejected", http=410,
                                       problem="unknown-relationship")),
}


def wrapper(broken: Broken, breakage: Rule | dict[str, Any] | None) -> web.Application:
    """The vendor's discovery document and inbox, with ``breakage`` applied."""
    async def discovery(request: web.Request) -> web.Response:
        inbox = str(request.url.origin().join(request.app.router["inbox"].url_for()))
        document = broken.vendor.discovery(inbox).to_wire()
        if isinstance(breakage, dict):
            document.update(breakage)
        return web.json_response(document)

    async def inbox(request: web.Request) -> web.Response:
        body = await request.read()
        header, payload = _peek(body)
        req = Request(body, request.headers.get("Content-Type"), header, payload)
        if callable(breakage):
            response = await breakage(broken, req)
        else:
            response = await broken.answer(req)
        return web.Response(status=response.status, body=response.body,
                            headers={"Content-Type": response.content_type})

    app = web.Application(client_max_size=1024 * 1024)
    app.router.add_get(protocol.WELL_KNOWN_PATH, discovery)
    app.router.add_post("/inbox", inbox, name="inbox")
    return app


@pytest.fixture
def vendor(tmp_path: Path):
    opened = Vendor.open(tmp_path / "crm.db", name="Conformance", passphrase=PASSPHRASE)
    yield opened
    opened.close()


async def check_vendor(aiohttp_server, vendor: Vendor,
                       breakage: Rule | dict[str, Any] | None) -> dict[str, Any]:
    broken = Broken(vendor)
    server = await aiohttp_server(wrapper(broken, breakage))

    async def offer_hook(*, lead: Any, **_: Any) -> None:
        await vendor.make_offer(lead, summary="A conformance offer", price="1.00")

    results = await run_checks(str(server.make_url("/")), offer_hook=offer_hook)
    return {r.check.name: r for r in results}


def test_every_check_has_a_breakage() -> None:
    assert sorted(BREAKAGES) == sorted(c.name for c in CHECKS)


async def test_the_unbroken_wrapper_passes_every_check(aiohttp_server, vendor) -> None:
    results = await check_vendor(aiohttp_server, vendor, None)
    assert {name: r.status for name, r in results.items()} == {c.name: "pass" for c in CHECKS}
    assert passed(list(results.values()))


@pytest.mark.parametrize("name", list(BREAKAGES))
async def test_a_broken_vendor_is_caught(aiohttp_server, vendor, name: str) -> None:
    results = await check_vendor(aiohttp_server, vendor, BREAKAGES[name])
    result = results[name]
    assert result.status == "fail", (name, result.status, result.reason)
    assert result.reason  # it says why
    assert not passed(list(results.values()))


async def test_hostile_text_from_the_vendor_is_shown_escaped(aiohttp_server, vendor) -> None:
    from conformance.cli import _line

    def hostile(broken: Broken, req: Request, response: Response) -> Response:
        document = {"type": "urn:vrm:problem:\x1b]0;owned\x07", "status": 401,
                    "detail": "\x1b[2J\u202eevil"}
        return Response(401, protocol.PROBLEM_MEDIA_TYPE, json.dumps(document).encode())

    results = await check_vendor(aiohttp_server, vendor, answer_instead(
        lambda req, resp: resp.status == 401, hostile))
    result = results["alg-none"]
    assert result.status == "fail"
    shown = _line(result)
    assert "\x1b" not in shown and "\u202e" not in shown and "\x07" not in shown
    assert "\\x1b" in shown


async def test_answers_too_large_or_too_deep_end_one_check(aiohttp_server, vendor) -> None:
    """Hostile answers are bounded outcomes: a failed check, never a crashed run."""
    def deep(broken: Broken, req: Request, response: Response) -> Response:
        return Response(401, protocol.PROBLEM_MEDIA_TYPE, b"[" * 100_000 + b"]" * 100_000)

    def huge(broken: Broken, req: Request, response: Response) -> Response:
        return Response(413, protocol.PROBLEM_MEDIA_TYPE, b" " * 1_000_000)

    results = await check_vendor(aiohttp_server, vendor, answer_instead(
        lambda req, resp: resp.status in (401, 413),
        lambda b, req, resp: deep(b, req, resp) if resp.status == 401 else huge(b, req, resp)))
    assert results["alg-none"].status == "fail"
    assert "not a JSON object" in results["alg-none"].reason
    assert results["too-large"].status == "fail"
    assert "over" in results["too-large"].reason
    assert results["relationship.end"].status == "pass"  # the run went on
