"""Fixtures for the agent tests: an agent on a temporary VRM_HOME, real
vendor_adapter apps that misbehave on demand (``shops``), and small hand-written
vendors (built on protocol/) for what a real vendor never does (``FakeVendor``)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

import protocol
from agent import Agent, Limits

PASSPHRASE = "correct horse battery staple"
#: Fast limits for tests: short timeouts, retries that fall due in milliseconds, and
#: claims on outbox rows that a "crashed" agent leaves behind lapse within a second.
FAST = Limits(timeout=1.0, connect_timeout=1.0, retry_base=0.02, retry_cap=0.2,
              claim_lease=1.0)


def now() -> datetime:
    return datetime.now(timezone.utc)


class FakeVendor:
    """A minimal VRM vendor. ``mode`` picks how its inbox answers:

    ok, 500, 429, garbage, hang, drop, wrongkey, gone, refuse, invalid, bad-request
    ``fail_first`` answers 500 to the first n messages, then behaves.
    ``effects`` holds each message applied (once per id), like a CRM would.
    """

    def __init__(self, name: str = "Shop", *, types: tuple[str, ...] | None = None) -> None:
        self.name = name
        self.key = protocol.SigningKey.generate()
        self.signer = self.key
        self.types = list(types if types is not None else
                          [t.message_type for t in protocol.CORE_MESSAGE_TYPES])
        self.mode = "ok"
        self.fail_first = 0
        self.retry_after = "1"
        self.inbox_override: str | None = None
        self.hits = 0
        self.seen: dict[str, bytes] = {}
        self.effects: list[protocol.Message] = []
        self.relationships: set[str] = set()
        self.outgoing: dict[str, list[protocol.FlattenedJWS]] = {}

    @property
    def did(self) -> str:
        return self.key.did

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/.well-known/vrm", self.discovery)
        app.router.add_post("/inbox", self.inbox)
        return app

    async def discovery(self, request: web.Request) -> web.Response:
        inbox = self.inbox_override or f"{request.url.origin()}/inbox"
        document = {"vrm": ["1"], "id": self.key.did, "name": self.name, "inbox": inbox,
                    "keys": [self.key.public.to_jwk()], "types": self.types}
        return web.json_response(document)

    def receipt(self, to: str, thread: str, status: str, *, problem: str | None = None,
                **extra: Any) -> bytes:
        body: dict[str, Any] = {"status": status, **extra}
        if problem:
            body["problem"] = {"type": protocol.problem_urn(problem), "detail": problem}
        message = protocol.Receipt(id=protocol.new_message_id(), sender=self.signer.did, to=to,
                                   created=now(), thread=thread,
                                   body=protocol.ReceiptBody.model_validate(body))
        return protocol.sign(message, self.signer)

    def jose(self, raw: bytes, status: int = 200) -> web.Response:
        return web.Response(body=raw, status=status, content_type=protocol.MEDIA_TYPE)

    async def inbox(self, request: web.Request) -> web.StreamResponse:
        self.hits += 1
        raw = await request.read()
        if self.fail_first > 0:
            self.fail_first -= 1
            return web.Response(status=500)
        mode = self.mode
        if mode == "500":
            return web.Response(status=503)
        if mode == "429":
            return web.Response(status=429, headers={"Retry-After": self.retry_after})
        if mode == "bad-request":
            return web.json_response({"type": "urn:vrm:problem:malformed", "title": "Malformed",
                                      "detail": "the payload is not JSON"}, status=400,
                                     content_type=protocol.PROBLEM_MEDIA_TYPE)
        if mode == "garbage":
            return web.Response(body=b"{]not json", content_type=protocol.MEDIA_TYPE)
        if mode == "hang":
            await asyncio.sleep(3600)
        if mode == "drop":
            assert request.transport is not None
            request.transport.close()
            return web.Response(status=200)
        if request.content_type != protocol.MEDIA_TYPE:
            return web.json_response({"type": "urn:vrm:problem:unsupported-media-type",
                                      "detail": "wrong type"}, status=415,
                                     content_type=protocol.PROBLEM_MEDIA_TYPE)
        try:
            message = protocol.parse(raw, now=now(), keys=protocol.resolve_did_key,
                                     recipient=self.key.did)
        except protocol.InvalidMessage as exc:
            return web.json_response(exc.to_problem(), status=exc.status_hint,
                                     content_type=protocol.PROBLEM_MEDIA_TYPE)
        if mode == "gone":
            return self.jose(self.receipt(message.sender, message.id, "rejected",
                                          problem="unknown-relationship"), 410)
        if mode == "invalid":
            return self.jose(self.receipt(message.sender, message.id, "rejected",
                                          problem="invalid-body"), 422)
        if mode == "refuse":
            return self.jose(self.receipt(message.sender, message.id, "rejected",
                                          problem="relationship-refused"), 422)
        if mode == "wrongkey":
            self.signer = protocol.SigningKey.generate()
        else:
            self.signer = self.key
        if isinstance(message, protocol.MessagesFetch):
            queued = self.outgoing.get(message.sender, [])
            start = int(message.body.after or 0)
            page = queued[start:start + 2]
            return self.jose(self.receipt(message.sender, message.id, "accepted",
                                          messages=page, cursor=str(start + len(page))))
        if message.id in self.seen:
            return self.jose(self.receipt(message.sender, message.id, "duplicate"))
        if (not isinstance(message, protocol.RelationshipRequest)
                and message.sender not in self.relationships):
            return self.jose(self.receipt(message.sender, message.id, "rejected",
                                          problem="unknown-relationship"), 410)
        self.seen[message.id] = raw
        self.effects.append(message)
        if isinstance(message, protocol.RelationshipRequest):
            self.relationships.add(message.sender)
        if isinstance(message, protocol.RelationshipEnd):
            self.relationships.discard(message.sender)
        return self.jose(self.receipt(message.sender, message.id, "accepted"))

    def offer(self, intent: protocol.Message, summary: str = "Trek 520",
              amount: str = "749.00") -> protocol.Offer:
        offer = protocol.Offer(
            id=protocol.new_message_id(), sender=self.key.did, to=intent.sender,
            created=now(), thread=intent.id,
            body=protocol.OfferBody(summary=summary,
                                    price=protocol.Price(amount=amount, currency="EUR")))
        jws = protocol.FlattenedJWS.model_validate(
            protocol.loads(protocol.sign(offer, self.key)))
        self.outgoing.setdefault(intent.sender, []).append(jws)
        return offer

    def of_type(self, kind: type[protocol.Message]) -> list[Any]:
        return [m for m in self.effects if isinstance(m, kind)]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
async def agent(home: Path):
    agent = await Agent.init(home, passphrase=PASSPHRASE, name="Ann", scrypt_n=2**10,
                             limits=FAST)
    yield agent
    await agent.close()


@pytest.fixture
def serve(aiohttp_server) -> Callable[..., Any]:
    """``vendor, url = await serve(FakeVendor("A"))``: run a fake vendor on loopback."""

    async def start(vendor: FakeVendor) -> tuple[FakeVendor, str]:
        server = await aiohttp_server(vendor.app())
        return vendor, str(server.make_url("")).rstrip("/")

    return start


# --- real vendor_adapter apps that misbehave on demand ------------------------

class Shop:
    """A real ``vrm_app(Vendor)`` on loopback, with its real SQLite CRM, behind a
    middleware that misbehaves on demand for the inbox's POSTs:

    - ``fail_first``: answer the first n with ``fail_status`` (500, 429, 503...),
      with ``retry_after`` as Retry-After; the vendor never sees them
    - ``delay_after``: seconds to wait AFTER the vendor applied the message (the
      agent times out, although the CRM was written)
    - ``garbage``: replace the vendor's answer with garbage (after applying it)
    - ``resign_with``: re-sign the vendor's receipt with another key (its own
      did:key, a valid signature: someone else answering at the inbox)
    - ``tamper``: spoil the receipt's signature (it still names the pinned key)
    - ``redirect_to``: answer 307 to that URL instead
    - ``pieces``: write every answer (discovery too) in three pieces, 0.2 s apart
    - ``before``: ``await before(request)`` before the vendor sees the message
    ``down()`` and ``up()`` stop and restart the server on the same port.
    """

    def __init__(self, vendor: Any, server_factory: Callable[..., Any], prefix: str) -> None:
        self.vendor = vendor
        self._factory = server_factory
        self._prefix = prefix
        self.server: Any = None
        self.port: int | None = None
        self.url = ""
        self.fail_first = 0
        self.fail_status = 500
        self.retry_after: str | None = None
        self.delay_after = 0.0
        self.garbage = False
        self.resign_with: protocol.SigningKey | None = None
        self.tamper = False
        self.redirect_to: str | None = None
        self.pieces = False
        self.before: Callable[[], Any] | None = None
        self.posts = 0

    @property
    def name(self) -> str:
        return self.vendor.name

    @property
    def crm(self) -> Any:
        return self.vendor.crm

    def copies(self) -> dict[str, int]:
        """How many CRM activities each message id made: every value must be 1."""
        counts: dict[str, int] = {}
        for activity in self.vendor.crm.activities():
            counts[activity["message_id"]] = counts.get(activity["message_id"], 0) + 1
        return counts

    def _app(self) -> web.Application:
        from vendor_adapter.aiohttp import vrm_app

        app = vrm_app(self.vendor)
        app.middlewares.insert(0, self._misbehave)
        if not self._prefix:
            return app
        outer = web.Application()
        outer.add_subapp(self._prefix, app)
        return outer

    async def up(self) -> Shop:
        self.server = await self._factory(self._app(), port=self.port)
        self.port = self.server.port
        self.url = str(self.server.make_url(self._prefix)).rstrip("/")
        return self

    async def down(self) -> None:
        await self.server.close()

    @web.middleware
    async def _misbehave(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.method != "POST":
            response = await handler(request)
            return await self._in_pieces(request, response) if self.pieces else response
        self.posts += 1
        if self.redirect_to:
            return web.Response(status=307, headers={"Location": self.redirect_to})
        if self.fail_first > 0:
            self.fail_first -= 1
            headers = {"Retry-After": self.retry_after} if self.retry_after else {}
            return web.Response(status=self.fail_status, headers=headers)
        if self.before is not None:
            await self.before(request)
        response = await handler(request)  # the real vendor applies the message
        if self.delay_after:
            await asyncio.sleep(self.delay_after)
        if self.garbage:
            return web.Response(body=b"{]not a receipt", content_type=protocol.MEDIA_TYPE)
        if self.resign_with is not None or self.tamper:
            response = self._spoil(response)
        return await self._in_pieces(request, response) if self.pieces else response

    def _spoil(self, response: web.Response) -> web.Response:
        jws = json.loads(response.body)
        if self.tamper:
            signature = jws["signature"]
            jws["signature"] = ("A" if signature[0] != "A" else "B") + signature[1:]
        else:
            assert self.resign_with is not None
            payload = json.loads(protocol.b64url_decode(jws["payload"]))
            payload["from"] = self.resign_with.did
            jws = json.loads(protocol.sign_payload(json.dumps(payload).encode(),
                                                   self.resign_with))
        return web.Response(body=json.dumps(jws).encode(), status=response.status,
                            content_type=protocol.MEDIA_TYPE)

    @staticmethod
    async def _in_pieces(request: web.Request, response: web.StreamResponse
                         ) -> web.StreamResponse:
        assert isinstance(response, web.Response) and response.body is not None
        body = bytes(response.body)  # type: ignore[arg-type]
        streamed = web.StreamResponse(status=response.status)
        streamed.content_type = response.content_type
        await streamed.prepare(request)  # no Content-Length: chunked, like a proxy would
        third = max(1, len(body) // 3)
        for start in range(0, len(body), third):
            await streamed.write(body[start:start + third])
            await asyncio.sleep(0.2)
        await streamed.write_eof()
        return streamed


@pytest.fixture
def shops(tmp_path: Path, aiohttp_server):
    """``[a, b] = await shops(2)``: real vendors (Shop0, Shop1...) on loopback."""
    from vendor_adapter import Vendor

    opened: list[Any] = []

    async def start(n: int, *, prefix: str = "", first: int = 0) -> list[Shop]:
        started = []
        for i in range(first, first + n):
            vendor = Vendor.open(tmp_path / f"crm{i}.db", name=f"Shop{i}", passphrase="secret")
            opened.append(vendor)
            started.append(await Shop(vendor, aiohttp_server, prefix).up())
        return started

    yield start
    for vendor in opened:
        vendor.close()
