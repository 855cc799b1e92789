"""The checks: a table of small, named, ordered tests of one vendor endpoint.

Each :class:`Check` names the PROTOCOL.md section it tests and runs against a
:class:`Context`. It passes by returning, fails with :class:`CheckFailed` and
is skipped with :class:`NotRun`, each with the reason. A check that needs
another one (``needs``) is not run when that one did not pass. The order
matters: ``relationship.end`` and what follows it come last, because after
them the checker's relationship is over.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

import protocol

from ._context import Answer, CheckFailed, Context, NotRun, OfferHook, json_of, show

__all__ = ["Check", "Result", "CHECKS", "run_checks", "passed", "CheckFailed", "NotRun"]

#: What every vendor must list in its discovery ``types`` (PROTOCOL.md §7).
REQUIRED_TYPES = ("relationship.request", "relationship.end", "messages.fetch")
#: A type no vendor lists: the unsupported-type probe.
PROBE_TYPE = "x-org.example.conformance.probe"
#: Pages read at most while looking for the offer (PROTOCOL.md §6.4).
MAX_PAGES = protocol.MAX_FETCH_PAGES


@dataclass(frozen=True)
class Check:
    name: str
    section: str
    summary: str
    run: Callable[[Context], Awaitable[None]]
    #: Checks that must have passed first.
    needs: tuple[str, ...] = ()
    #: Whether the endpoint passes only if this check passed. Optional checks
    #: (a type the vendor may leave out, the offer checks without a hook) may be
    #: "not run"; when run, they must pass too.
    required: bool = True


@dataclass(frozen=True)
class Result:
    check: Check
    status: str  # pass | fail | not run
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"name": self.check.name, "section": self.check.section,
                "summary": self.check.summary, "required": self.check.required,
                "status": self.status, "reason": self.reason}


CHECKS: list[Check] = []


def check(name: str, section: str, summary: str, *, needs: tuple[str, ...] = ("discovery",),
          required: bool = True) -> Callable[[Callable[[Context], Awaitable[None]]],
                                             Callable[[Context], Awaitable[None]]]:
    def register(run: Callable[[Context], Awaitable[None]]) -> Callable[[Context],
                                                                        Awaitable[None]]:
        CHECKS.append(Check(name, section, summary, run, needs, required))
        return run
    return register


def _listed(ctx: Context, message_type: str) -> None:
    assert ctx.document is not None
    if message_type not in ctx.document.types:
        raise NotRun(f"the vendor does not list {message_type}")


async def _send(ctx: Context, model: type[protocol.Message], body: Any, **kw: Any) -> tuple[
        protocol.Message, bytes, Answer]:
    message, raw = ctx.message(model, body, **kw)
    return message, raw, await ctx.post(raw)


async def _accepted(ctx: Context, model: type[protocol.Message], body: Any,
                    **kw: Any) -> tuple[protocol.Message, bytes, protocol.Receipt]:
    message, raw, answer = await _send(ctx, model, body, **kw)
    return message, raw, ctx.receipt(answer, message.id, http_status=200, status="accepted")


# --- discovery (§7) ------------------------------------------------------------------------

@check("discovery", "7", "the discovery document is served and usable", needs=())
async def _discovery(ctx: Context) -> None:
    answer = await ctx.get(ctx.discovery_url)
    if 300 <= answer.status < 400:
        raise CheckFailed(f"{ctx.discovery_url} redirects (HTTP {answer.status}); agents do "
                          "not follow redirects (PROTOCOL.md §6.1)")
    if answer.status != 200:
        raise CheckFailed(f"GET {show(ctx.discovery_url)} answered {answer.describe()}")
    if answer.content_type != "application/json":
        raise CheckFailed(f"the document is served as {show(answer.content_type, 60)}, not "
                          "application/json")
    try:
        ctx.document = protocol.parse_discovery(answer.body, url=ctx.discovery_url)
    except protocol.ProtocolError as exc:
        raise CheckFailed(f"the document is unusable: {show(exc, 300)}") from None
    ctx.vendor_key = ctx.document.key


@check("discovery.types", "7", "types lists relationship.request, relationship.end and "
       "messages.fetch")
async def _discovery_types(ctx: Context) -> None:
    assert ctx.document is not None
    missing = [t for t in REQUIRED_TYPES if t not in ctx.document.types]
    if missing:
        raise CheckFailed(f"types does not list {', '.join(missing)}")


# --- opening the relationship (§4, §5.2) ------------------------------------------------------

@check("relationship.request", "5.2", "relationship.request is accepted with a receipt that "
       "verifies with the published key and names the message")
async def _request(ctx: Context) -> None:
    body = protocol.RelationshipRequestBody(profile=protocol.Profile(
        given_name="Conformance", email="conformance@example.org"))
    message, raw, _ = await _accepted(ctx, protocol.RelationshipRequest, body)
    ctx.state["request"] = raw


@check("replay", "4", "the same message sent again is answered duplicate, not applied twice",
       needs=("relationship.request",))
async def _replay(ctx: Context) -> None:
    raw = ctx.state["request"]
    message_id = json.loads(protocol.b64url_decode(json.loads(raw)["payload"]))["id"]
    ctx.receipt(await ctx.post(raw), message_id, http_status=200, status="duplicate")


# --- every core type the vendor lists (§5) -----------------------------------------------------

def _type_check(message_type: str, section: str, model: type[protocol.Message],
                body: Callable[[], Any]) -> None:
    async def run(ctx: Context) -> None:
        _listed(ctx, message_type)
        await _accepted(ctx, model, body())

    check(f"type.{message_type}", section, f"{message_type} is accepted with a receipt",
          needs=("relationship.request",), required=False)(run)


_type_check("contact.update", "5.3", protocol.ContactUpdate,
            lambda: protocol.ContactUpdateBody(changes=protocol.ProfileChanges(
                email="conformance@new.example", phone=None)))
_type_check("preferences.update", "5.7", protocol.PreferencesUpdate,
            lambda: protocol.PreferencesUpdateBody(marketing=False))
_type_check("feedback", "5.8", protocol.Feedback,
            lambda: protocol.FeedbackBody(score=9, comment="conformance check"))


@check("type.intent", "5.4", "intent is accepted with a receipt",
       needs=("relationship.request",), required=False)
async def _intent(ctx: Context) -> None:
    _listed(ctx, "intent")
    await _accepted(ctx, protocol.Intent, protocol.IntentBody(
        summary="Conformance check: a touring bike", quantity=1,
        budget=protocol.Budget(max="800.00", currency="EUR")))


@check("type.intent.cancel", "5.5", "intent.cancel of an intent of this sender is accepted; "
       "of an intent it never sent, invalid-body", needs=("relationship.request",),
       required=False)
async def _intent_cancel(ctx: Context) -> None:
    _listed(ctx, "intent.cancel")
    _listed(ctx, "intent")
    intent, _, _ = await _accepted(ctx, protocol.Intent, protocol.IntentBody(
        summary="Conformance check: to be cancelled"))
    await _accepted(ctx, protocol.IntentCancel, protocol.IntentCancelBody(reason="test"),
                    thread=intent.id)
    message, _, answer = await _send(ctx, protocol.IntentCancel, protocol.IntentCancelBody(),
                                     thread=protocol.new_message_id())
    ctx.receipt(answer, message.id, http_status=422, status="rejected", problem="invalid-body")


# --- refusals after the signature (§4 steps 8-12) --------------------------------------------------

@check("not-for-me", "4", "a message addressed to someone else: 422 not-for-me")
async def _not_for_me(ctx: Context) -> None:
    other = protocol.SigningKey.generate().did
    message, _, answer = await _send(ctx, protocol.RelationshipRequest,
                                     protocol.RelationshipRequestBody(), to=other)
    ctx.receipt(answer, message.id, http_status=422, status="rejected", problem="not-for-me")


@check("not-yet-valid", "4", "created an hour ahead: 422 not-yet-valid")
async def _future(ctx: Context) -> None:
    message, _, answer = await _send(ctx, protocol.RelationshipRequest,
                                     protocol.RelationshipRequestBody(),
                                     created=ctx.later(hours=1))
    ctx.receipt(answer, message.id, http_status=422, status="rejected",
                problem="not-yet-valid")


@check("expired", "4", "a message past its expires: 422 expired")
async def _expired(ctx: Context) -> None:
    message, _, answer = await _send(ctx, protocol.RelationshipRequest,
                                     protocol.RelationshipRequestBody(),
                                     created=ctx.later(days=-8))
    ctx.receipt(answer, message.id, http_status=422, status="rejected", problem="expired")


@check("unsupported-type", "4", "a type the vendor does not list: 422 unsupported "
       "(unsupported-type)")
async def _unsupported(ctx: Context) -> None:
    assert ctx.document is not None
    probes = [PROBE_TYPE] + [t for t in ("offer", "receipt") if t not in ctx.document.types]
    for message_type in probes:
        payload = ctx.payload(message_type, {}, thread="conformance")
        raw = ctx.raw_message(payload)
        ctx.receipt(await ctx.post(raw), payload["id"], http_status=422,
                    status="unsupported", problem="unsupported-type")


@check("invalid-body", "4", "a body that does not fit its type: 422 invalid-body")
async def _invalid_body(ctx: Context) -> None:
    payload = ctx.payload("relationship.request", {"profile": {"nickname": "x"}})
    ctx.receipt(await ctx.post(ctx.raw_message(payload)), payload["id"], http_status=422,
                status="rejected", problem="invalid-body")


@check("rejections-not-remembered", "4", "a rejected message sent again is judged afresh: "
       "rejected again, not duplicate")
async def _not_remembered(ctx: Context) -> None:
    payload = ctx.payload("relationship.request", {"terms": ["not a term"]})
    raw = ctx.raw_message(payload)
    for _ in range(2):
        ctx.receipt(await ctx.post(raw), payload["id"], http_status=422, status="rejected",
                    problem="invalid-body")


@check("unknown-relationship", "4", "a message from a DID with no relationship: 422 "
       "unknown-relationship")
async def _unknown_relationship(ctx: Context) -> None:
    stranger = protocol.SigningKey.generate()
    message, _, answer = await _send(ctx, protocol.MessagesFetch,
                                     protocol.MessagesFetchBody(after=None), key=stranger)
    ctx.receipt(answer, message.id, http_status=422, status="rejected",
                problem="unknown-relationship", to=stranger.did)


@check("media-type-case", "6.1", "Content-Type Application/JOSE+JSON; charset=utf-8 is "
       "accepted (case-insensitive, parameters ignored)", needs=("relationship.request",))
async def _media_case(ctx: Context) -> None:
    message, raw = ctx.message(protocol.RelationshipRequest, protocol.RelationshipRequestBody(
        profile=protocol.Profile(given_name="Conformance", email="conformance@example.org")))
    answer = await ctx.post(raw, content_type="Application/JOSE+JSON; charset=utf-8")
    ctx.receipt(answer, message.id, http_status=200, status="accepted")


# --- refusals before the signature (§2, §3.5, §6.1) ---------------------------------------------

def _good_payload(ctx: Context) -> dict[str, Any]:
    return ctx.payload("relationship.request", {})


@check("bad-signature", "2.2", "a signature that does not verify: 401 bad-signature")
async def _bad_signature(ctx: Context) -> None:
    raw = ctx.raw_message(_good_payload(ctx))
    data = json.loads(raw)
    signature = bytearray(protocol.b64url_decode(data["signature"]))
    signature[0] ^= 1
    data["signature"] = protocol.b64url_encode(bytes(signature))
    ctx.problem(await ctx.post(json.dumps(data).encode()), http_status=401,
                problem="bad-signature")


@check("another-key", "2.2", "signed by another key than the kid names: 401 bad-signature")
async def _another_key(ctx: Context) -> None:
    raw = ctx.raw_message(_good_payload(ctx), key=protocol.SigningKey.generate())
    ctx.problem(await ctx.post(raw), http_status=401, problem="bad-signature")


@check("alg-none", "2.1", "alg none: 401 bad-signature")
async def _alg_none(ctx: Context) -> None:
    raw = ctx.raw_message(_good_payload(ctx), header={"alg": "none", "kid": ctx.key.kid,
                                                      "typ": "vrm+json"}, signature=b"")
    ctx.problem(await ctx.post(raw), http_status=401, problem="bad-signature")


@check("alg-HS256", "2.1", "alg HS256: 401 bad-signature")
async def _alg_hs256(ctx: Context) -> None:
    header = {"alg": "HS256", "kid": ctx.key.kid, "typ": "vrm+json"}
    payload = _good_payload(ctx)
    protected = protocol.b64url_encode(json.dumps(header).encode())
    encoded = protocol.b64url_encode(json.dumps(payload).encode())
    # The classic confusion: the HMAC key is the public key's bytes.
    mac = hmac.new(ctx.key.public.raw, f"{protected}.{encoded}".encode(), hashlib.sha256)
    raw = ctx.raw_message(payload, header=header, signature=mac.digest())
    ctx.problem(await ctx.post(raw), http_status=401, problem="bad-signature")


@check("too-large", "2", "a message of 65,537 bytes: 413 too-large")
async def _too_large(ctx: Context) -> None:
    raw = ctx.raw_message(_good_payload(ctx))
    body = raw[:-1] + b" " * (protocol.MAX_MESSAGE_BYTES + 1 - len(raw)) + b"}"
    ctx.problem(await ctx.post(body), http_status=413, problem="too-large")


@check("media-type", "6.1", "Content-Type text/plain: 415 unsupported-media-type")
async def _media_type(ctx: Context) -> None:
    raw = ctx.raw_message(_good_payload(ctx))
    ctx.problem(await ctx.post(raw, content_type="text/plain"), http_status=415,
                problem="unsupported-media-type")


@check("media-type-before-size", "6.1", "a body both too large and of the wrong media type: "
       "415, not 413")
async def _media_before_size(ctx: Context) -> None:
    raw = ctx.raw_message(_good_payload(ctx))
    body = raw[:-1] + b" " * (protocol.MAX_MESSAGE_BYTES + 1 - len(raw)) + b"}"
    ctx.problem(await ctx.post(body, content_type="text/plain"), http_status=415,
                problem="unsupported-media-type")


@check("malformed-json", "3.5", "a body that is not JSON: 400 malformed")
async def _malformed(ctx: Context) -> None:
    ctx.problem(await ctx.post(b'{"protected":"e30","payload":'), http_status=400,
                problem="malformed")


@check("duplicate-members", "3.5", "a signed payload with duplicate members: 400 malformed")
async def _duplicate(ctx: Context) -> None:
    payload = ctx.payload("relationship.request", {"terms": []})
    data = json.dumps(payload, separators=(",", ":")).encode().replace(
        b'"terms":[]', b'"terms":[],"terms":["myterms:nostalking"]')
    ctx.problem(await ctx.post(ctx.raw_message(data)), http_status=400, problem="malformed")


# --- messages.fetch (§5.10, §6.4) ------------------------------------------------------------

async def _fetch(ctx: Context, after: str | None) -> tuple[protocol.Receipt, bytes, str]:
    message, raw, answer = await _send(ctx, protocol.MessagesFetch,
                                       protocol.MessagesFetchBody(after=after))
    receipt = ctx.receipt(answer, message.id, http_status=200, status="accepted")
    if receipt.body.messages is None:
        raise CheckFailed("the fetch receipt has no messages array")
    if receipt.body.cursor is None:
        raise CheckFailed("the fetch receipt has no cursor")
    return receipt, raw, message.id


def _page(ctx: Context, receipt: protocol.Receipt, after: str | None) -> protocol.FetchPage:
    page = protocol.read_fetch_page(receipt, after=after, vendor_key=ctx.vendor,
                                    recipient=ctx.key.did, now=ctx.now())
    if page.dropped:
        _, problem = page.dropped[0]
        raise CheckFailed(f"a carried message does not verify: {show(problem, 200)}")
    return page


@check("fetch", "6.4", "messages.fetch from the start: an accepted receipt with messages "
       "(an array) and a cursor, each carried message valid", needs=("relationship.request",))
async def _fetch_start(ctx: Context) -> None:
    _listed(ctx, "messages.fetch")
    receipt, raw, message_id = await _fetch(ctx, None)
    _page(ctx, receipt, None)
    ctx.state["fetch"] = (raw, message_id)


@check("fetch.replay", "6.4", "the same messages.fetch again: duplicate, carrying no "
       "messages", needs=("fetch",))
async def _fetch_replay(ctx: Context) -> None:
    raw, message_id = ctx.state["fetch"]
    receipt = ctx.receipt(await ctx.post(raw), message_id, http_status=200, status="duplicate")
    if receipt.body.messages:
        raise CheckFailed("a duplicate fetch carried messages")


@check("fetch.unknown-cursor", "5.10", "a cursor the vendor never gave: 422 invalid-body",
       needs=("fetch",))
async def _fetch_unknown(ctx: Context) -> None:
    message, _, answer = await _send(ctx, protocol.MessagesFetch, protocol.MessagesFetchBody(
        after="~conformance: not a cursor~"))
    ctx.receipt(answer, message.id, http_status=422, status="rejected", problem="invalid-body")


@check("offer", "5.6", "an offer asked for with --offer-hook arrives through messages.fetch, "
       "signed by the vendor, answering the intent", needs=("fetch",), required=False)
async def _offer(ctx: Context) -> None:
    _listed(ctx, "intent")
    if not ctx.offer_hook:
        raise NotRun("no --offer-hook was given, so no offer can be asked for")
    intent, _, receipt = await _accepted(ctx, protocol.Intent, protocol.IntentBody(
        summary="Conformance check: please offer something"))
    await ctx.run_offer_hook(thread=intent.id, record=receipt.body.record)
    after: str | None = None
    for _ in range(MAX_PAGES):
        receipt, _, _ = await _fetch(ctx, after)
        page = _page(ctx, receipt, after)
        for message, _ in page.messages:
            if isinstance(message, protocol.Offer) and message.thread == intent.id:
                ctx.state["offer"] = (message.id, after, page.cursor)
                return
        after = page.cursor
        if not page.more:
            break
    raise CheckFailed("no offer answering the intent arrived after the hook ran")


@check("fetch.paging", "6.4", "cursors page: after the offer's cursor it does not come "
       "again, the last page is empty and keeps its cursor, and from the start it is still "
       "pending", needs=("offer",), required=False)
async def _paging(ctx: Context) -> None:
    offer_id, _, cursor = ctx.state["offer"]
    seen_after = False
    after = cursor
    for _ in range(MAX_PAGES):
        receipt, _, _ = await _fetch(ctx, after)
        page = _page(ctx, receipt, after)
        if any(m.id == offer_id for m, _ in page.messages):
            seen_after = True
        if not page.messages:
            if page.cursor != after:
                raise CheckFailed("an empty page moved the cursor")
            break
        if page.cursor == after:
            raise CheckFailed("a page with messages did not move the cursor")
        after = page.cursor
    else:
        raise CheckFailed(f"no empty page within {MAX_PAGES} pages")
    if seen_after:
        raise CheckFailed("the offer came again after its own cursor")
    receipt, _, _ = await _fetch(ctx, None)
    found = False
    after = None
    for _ in range(MAX_PAGES):
        page = _page(ctx, receipt, after)
        if any(m.id == offer_id for m, _ in page.messages):
            found = True
            break
        if not page.more:
            break
        after = page.cursor
        receipt, _, _ = await _fetch(ctx, after)
    if not found:
        raise CheckFailed("a fetch from the start (after: null) no longer carries the offer, "
                          "though it has not expired")


# --- the end (§4, §5.9) --------------------------------------------------------------------------

@check("relationship.end", "5.9", "relationship.end is accepted", needs=("relationship.request",))
async def _end(ctx: Context) -> None:
    message, raw, _ = await _accepted(ctx, protocol.RelationshipEnd,
                                      protocol.RelationshipEndBody(reason="conformance check"))
    ctx.state["end"] = (raw, message.id)


@check("gone", "4", "after relationship.end a new message gets 410 unknown-relationship",
       needs=("relationship.end",))
async def _gone(ctx: Context) -> None:
    message, _, answer = await _send(ctx, protocol.RelationshipRequest,
                                     protocol.RelationshipRequestBody())
    ctx.receipt(answer, message.id, http_status=410, status="rejected",
                problem="unknown-relationship")
    if "messages.fetch" in (ctx.document.types if ctx.document else []):
        message, _, answer = await _send(ctx, protocol.MessagesFetch,
                                         protocol.MessagesFetchBody(after=None))
        ctx.receipt(answer, message.id, http_status=410, status="rejected",
                    problem="unknown-relationship")


@check("gone.duplicate", "4", "the end sent again after it: duplicate, not 410",
       needs=("relationship.end",))
async def _end_again(ctx: Context) -> None:
    raw, message_id = ctx.state["end"]
    ctx.receipt(await ctx.post(raw), message_id, http_status=200, status="duplicate")


@check("erase-after-end", "5.9", "after an end without erasure, one relationship.end with "
       "erase: true is accepted (record erased: true); a later one gets 410",
       needs=("relationship.end",))
async def _erase_after_end(ctx: Context) -> None:
    _, _, receipt = await _accepted(ctx, protocol.RelationshipEnd,
                                    protocol.RelationshipEndBody(erase=True))
    if (receipt.body.record or {}).get("erased") is not True:
        raise CheckFailed("the erasure's receipt does not say record.erased: true")
    message, _, answer = await _send(ctx, protocol.RelationshipEnd,
                                     protocol.RelationshipEndBody(erase=True))
    ctx.receipt(answer, message.id, http_status=410, status="rejected",
                problem="unknown-relationship")


# --- problem documents (§6.3) ---------------------------------------------------------------------

@check("problem-documents", "6.3", "every problem document is application/problem+json, an "
       "object with a urn:vrm:problem type and a status equal to the HTTP status", needs=())
async def _problems(ctx: Context) -> None:
    if not ctx.problems:
        raise NotRun("no problem document was received")
    for name, answer in ctx.problems:
        where = f"the answer to {name}"
        if answer.content_type != protocol.PROBLEM_MEDIA_TYPE:
            raise CheckFailed(f"{where} is {show(answer.content_type, 60)}, not "
                              f"{protocol.PROBLEM_MEDIA_TYPE}")
        document = json_of(answer.body)
        if not isinstance(document, dict):
            raise CheckFailed(f"{where} is not a JSON object")
        if protocol.problem_name(document.get("type")) not in protocol.PROBLEMS:
            raise CheckFailed(f"{where} has type {show(document.get('type'), 80)}, not a "
                              "urn:vrm:problem URN")
        status = document.get("status")
        if type(status) is not int or status != answer.status:
            raise CheckFailed(f"{where} has status {show(status, 20)}, not {answer.status}")
        for member in ("title", "detail"):
            if member in document and not isinstance(document[member], str):
                raise CheckFailed(f"{where} has a {member} that is not a string")


# --- running ----------------------------------------------------------------------------------

async def run_checks(url: str, *, offer_hook: str | OfferHook | None = None,
                     session: aiohttp.ClientSession | None = None,
                     checks: list[Check] | None = None, timeout: float = 30.0,
                     hook_timeout: float = 60.0) -> list[Result]:
    """Run ``checks`` (default: all of :data:`CHECKS`, in order) against the vendor at
    ``url`` (its base URL, or its discovery document's URL). Returns one
    :class:`Result` per check. Never raises for anything the vendor does."""
    owned = session is None
    if session is None:
        session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout))
    ctx = Context(url, session, offer_hook=offer_hook, hook_timeout=hook_timeout)
    results: dict[str, Result] = {}
    try:
        for item in checks if checks is not None else CHECKS:
            missing = [n for n in item.needs if n in results and results[n].status != "pass"]
            if missing:
                results[item.name] = Result(item, "not run", f"needs {missing[0]}, which did "
                                            f"not pass")
                continue
            ctx.current = item.name
            try:
                await item.run(ctx)
            except CheckFailed as exc:
                results[item.name] = Result(item, "fail", str(exc))
            except NotRun as exc:
                results[item.name] = Result(item, "not run", str(exc))
            except (protocol.ProtocolError, ValueError) as exc:
                results[item.name] = Result(item, "fail", show(exc, 300))
            except Exception as exc:  # noqa: BLE001 - one check never stops the run
                results[item.name] = Result(item, "fail", f"the check could not finish: "
                                            f"{type(exc).__name__}: {show(exc, 300)}")
            else:
                results[item.name] = Result(item, "pass")
    finally:
        if owned:
            await session.close()
    return list(results.values())


def passed(results: list[Result]) -> bool:
    """True when no check failed and every required check passed."""
    return all(r.status != "fail" and (r.status == "pass" or not r.check.required)
               for r in results)

