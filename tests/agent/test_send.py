"""Agent.send (any message type, extensions included) and Agent.receipt."""

from __future__ import annotations

from typing import Literal

import pytest

import protocol
from agent import Agent, UsageError
from vendor_adapter import SUPPORTED_TYPES, Vendor
from vendor_adapter.aiohttp import vrm_app


class PingBody(protocol.WireModel):
    note: str


REGISTRY = protocol.CORE_REGISTRY.extend()


@REGISTRY.register
class Ping(protocol.Message):
    type: Literal["x-org.example.ping"]
    body: PingBody


@pytest.fixture
async def vendors(tmp_path, aiohttp_server):
    knows = Vendor.open(tmp_path / "a.db", name="Knows", passphrase="p", registry=REGISTRY,
                        types=(*SUPPORTED_TYPES, Ping.message_type))
    plain = Vendor.open(tmp_path / "b.db", name="Plain", passphrase="p")
    urls = [str((await aiohttp_server(vrm_app(v))).make_url("")) for v in (knows, plain)]
    yield (knows, plain), urls
    knows.close()
    plain.close()


async def test_an_extension_type_goes_only_to_vendors_that_list_it(agent: Agent, vendors):
    (knows, plain), urls = vendors
    for url in urls:
        await agent.add_vendor(url)
    sent = await agent.send(Ping, PingBody(note="hello"))
    assert [r.vendor for r in sent.results] == ["Knows"]
    assert sent.results[0].status == "delivered"
    receipt = agent.receipt(sent.message_ids[0])
    assert receipt["status"] == "accepted" and receipt["vendor"] == "Knows"
    assert receipt["record"]["contact"] == knows.crm.contacts()[0]["id"]
    # The receipt is kept as the vendor's signed JWS, verifiable with its key.
    parsed = protocol.parse(receipt["jws"], now=protocol.parse_time(receipt["received"]),
                            keys=protocol.pinned_keys(knows.public_key),
                            recipient=agent.vendor("Knows")["pairwise_did"])
    assert parsed.thread == sent.message_ids[0]
    assert [a["type"] for a in knows.crm.activities()][-1] == "x-org.example.ping"
    assert "x-org.example.ping" not in [a["type"] for a in plain.crm.activities()]


async def test_send_to_a_vendor_that_does_not_list_the_type(agent: Agent, vendors):
    _, urls = vendors
    await agent.add_vendor(urls[1])
    with pytest.raises(UsageError, match="Plain does not accept x-org.example.ping"):
        await agent.send(Ping, PingBody(note="x"), to=["Plain"])
    assert agent.outbox()[-1]["type"] == "relationship.request"  # nothing queued


@pytest.mark.parametrize("model", [protocol.WireModel, protocol.Message, dict])
async def test_send_needs_a_message_model(agent: Agent, model):
    with pytest.raises(UsageError, match="protocol.Message subclass"):
        await agent.send(model, PingBody(note="x"))


async def test_an_answer_must_name_its_thread(agent: Agent):
    with pytest.raises(UsageError, match="thread"):
        await agent.send(protocol.IntentCancel, protocol.IntentCancelBody())


async def test_no_receipt_yet(agent: Agent):
    assert agent.receipt("no-such-message") is None
