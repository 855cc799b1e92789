"""Adding vendors: discovery checks (same-origin inbox), key pinning, refusals."""

from __future__ import annotations

import json

import pytest

import protocol
from agent import (
    Agent,
    DiscoveryRefused,
    UnknownVendor,
    UsageError,
    VendorError,
    VendorKeyChanged,
    VendorUnreachable,
)

from .conftest import FakeVendor


async def test_add_vendor_pins_key_and_sends_shared_fields(agent: Agent, serve) -> None:
    await agent.set_profile({"email": "ann@example.org", "phone": "+441234567",
                             "postal_address.locality": "Leeds"})
    vendor, url = await serve(FakeVendor("Bikes4U"))
    added = await agent.add_vendor(url + "/", share=["email", "postal_address"])
    assert added["status"] == "active" and added["delivery"]["status"] == "delivered"
    assert added["vendor_did"] == vendor.did
    assert added["pairwise_did"] != agent.did
    [request] = vendor.of_type(protocol.RelationshipRequest)
    assert request.sender == added["pairwise_did"]
    assert request.body.profile.to_wire() == {"email": "ann@example.org",
                                              "postal_address": {"locality": "Leeds"}}
    # every vendor gets its own pairwise DID
    other, other_url = await serve(FakeVendor("Other"))
    second = await agent.add_vendor(other_url)
    assert second["pairwise_did"] != added["pairwise_did"]
    assert other.of_type(protocol.RelationshipRequest)[0].body.profile is None
    assert [v["name"] for v in agent.vendors()] == ["Bikes4U", "Other"]
    assert agent.vendor("bikes4u")["id"] == added["id"]
    assert agent.vendor(str(added["id"]))["name"] == "Bikes4U"


async def test_inbox_on_another_origin_is_refused(agent: Agent, serve) -> None:
    vendor, url = await serve(FakeVendor("Evil"))
    vendor.inbox_override = "http://169.254.169.254/latest/meta-data"
    with pytest.raises(DiscoveryRefused, match="same origin"):
        await agent.add_vendor(url)
    assert agent.vendors() == []
    assert vendor.hits == 0


async def test_a_changed_vendor_key_is_refused_loudly(agent: Agent, serve) -> None:
    vendor, url = await serve(FakeVendor("Bikes4U"))
    await agent.add_vendor(url)
    pinned = agent.vendor("Bikes4U")["vendor_did"]
    vendor.key = vendor.signer = protocol.SigningKey.generate()
    with pytest.raises(VendorKeyChanged, match="pinned"):
        await agent.add_vendor(url)
    with pytest.raises(VendorKeyChanged):
        await agent.check_vendor("Bikes4U")
    assert agent.vendor("Bikes4U")["vendor_did"] == pinned
    # the vendor is held: it gets nothing more until the person decides
    assert agent.vendor("Bikes4U")["status"] == "key-changed"
    hits = vendor.hits
    with pytest.raises(UsageError, match="no vendor accepts intents"):
        await agent.intent("Touring bike")
    with pytest.raises(UsageError, match="key other than the pinned one"):
        await agent.intent("Touring bike", to=["Bikes4U"])
    assert vendor.hits == hits


async def test_adding_a_known_vendor_again_rechecks_it(agent: Agent, serve) -> None:
    vendor, url = await serve(FakeVendor("Bikes4U"))
    first = await agent.add_vendor(url)
    again = await agent.add_vendor(url)
    assert again["id"] == first["id"] and again["delivery"] is None
    assert len(vendor.of_type(protocol.RelationshipRequest)) == 1


async def test_a_refused_relationship_is_an_error(agent: Agent, serve) -> None:
    vendor, url = await serve(FakeVendor("Picky"))
    vendor.mode = "refuse"
    with pytest.raises(VendorError, match="declined"):
        await agent.add_vendor(url)
    assert agent.vendor("Picky")["status"] == "refused"


async def test_unreachable_vendor(agent: Agent, unused_tcp_port: int) -> None:
    with pytest.raises(VendorUnreachable, match="cannot reach"):
        await agent.add_vendor(f"http://127.0.0.1:{unused_tcp_port}")


async def test_a_vendor_that_is_down_after_discovery_stays_pending(agent: Agent, serve) -> None:
    vendor, url = await serve(FakeVendor("Flaky"))
    vendor.mode = "500"
    added = await agent.add_vendor(url)
    assert added["status"] == "pending" and added["delivery"]["status"] == "pending"
    vendor.mode = "ok"
    await agent.deliver(patience=5)
    assert agent.vendor("Flaky")["status"] == "active"


async def test_bad_input(agent: Agent, serve) -> None:
    with pytest.raises(UsageError, match="not an http"):
        await agent.add_vendor("ftp://example.org")
    vendor, url = await serve(FakeVendor("Shop"))
    with pytest.raises(UsageError, match="cannot share"):
        await agent.add_vendor(url, share=["email", "password"])
    with pytest.raises(UnknownVendor, match="vrm vendor list"):
        agent.vendor("nobody")


async def test_discovery_document_is_stored(agent: Agent, serve) -> None:
    vendor, url = await serve(FakeVendor("Shop", types=("relationship.request",)))
    await agent.add_vendor(url)
    row = agent.store.one("SELECT discovery, vendor_jwk FROM vendors")
    assert json.loads(row["discovery"])["id"] == vendor.did
    assert json.loads(row["vendor_jwk"]) == vendor.key.public.to_jwk()
    with pytest.raises(UsageError, match="no vendor accepts intents"):
        await agent.intent("A bike")
    with pytest.raises(UsageError, match="does not accept intents"):
        await agent.intent("A bike", to=["Shop"])


async def test_the_pasted_discovery_url_is_the_vendor(agent: Agent, serve) -> None:
    vendor, url = await serve(FakeVendor("Shop"))
    added = await agent.add_vendor(url + "/.well-known/vrm/")
    assert added["url"] == url and added["status"] == "active"
    assert len(vendor.of_type(protocol.RelationshipRequest)) == 1


@pytest.mark.parametrize("suffix", ["?ref=mail", "/?x", "#top", "/vrm?a=1#b"])
async def test_a_url_with_a_query_or_fragment_is_refused(agent: Agent, serve, suffix) -> None:
    vendor, url = await serve(FakeVendor("Shop"))
    with pytest.raises(UsageError, match=r"has a \? or # part"):
        await agent.add_vendor(url + suffix)
    assert vendor.hits == 0 and agent.vendors() == []


def test_plain_http_only_to_loopback_unless_allowed() -> None:
    from agent._vendors import check_transport

    for url in ("http://127.0.0.1:8080", "http://localhost:1/v", "http://[::1]:9",
                "http://127.5.5.5", "https://shop.example"):
        check_transport(url)
    for url in ("http://shop.example", "http://10.0.0.7:8080", "http://[2001:db8::1]"):
        with pytest.raises(UsageError, match="--allow-http"):
            check_transport(url)
        check_transport(url, allow_http=True)


async def test_add_vendor_refuses_plain_http_before_any_request(agent: Agent) -> None:
    with pytest.raises(UsageError, match="signed but not encrypted"):
        await agent.add_vendor("http://shop.example")
    assert agent.vendors() == []
