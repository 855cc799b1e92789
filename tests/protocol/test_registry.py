"""The message registry and extension types."""

from __future__ import annotations

from typing import Literal

import pytest

import protocol
from protocol import CORE_REGISTRY, Message, MessageRegistry, SigningKey, WireModel, parse, sign

from .helpers import NOW


class PointsQueryBody(WireModel):
    program: str


class PointsQuery(Message):
    type: Literal["x-org.example.loyalty.points"]
    body: PointsQueryBody


def test_core_registry_holds_every_core_type():
    assert set(CORE_REGISTRY) == {
        "relationship.request", "contact.update", "intent", "intent.cancel", "offer",
        "preferences.update", "feedback", "relationship.end", "messages.fetch", "receipt"}


def test_core_registry_is_frozen():
    with pytest.raises(TypeError):
        CORE_REGISTRY.register(PointsQuery)


def test_an_extension_type_parses_only_with_its_registry():
    agent, vendor = SigningKey.generate(), SigningKey.generate()
    message = PointsQuery(id="q1", sender=agent.did, to=vendor.did, created=NOW,
                          body=PointsQueryBody(program="gold"))
    raw = sign(message, agent)
    with pytest.raises(protocol.UnknownMessageType):
        parse(raw, now=NOW, keys=protocol.resolve_did_key, recipient=vendor.did)
    registry = CORE_REGISTRY.extend(PointsQuery)
    parsed = parse(raw, now=NOW, keys=protocol.resolve_did_key, recipient=vendor.did,
                   registry=registry)
    assert isinstance(parsed, PointsQuery) and parsed.body.program == "gold"
    assert "feedback" in registry  # the core types come along


def test_register_works_as_a_decorator():
    registry = CORE_REGISTRY.extend()

    @registry.register
    class Ping(Message):
        type: Literal["x-org.example.ping"]
        body: PointsQueryBody

    assert registry.lookup("x-org.example.ping") is Ping


@pytest.mark.parametrize("name", [
    "loyalty.points", "x-points", "x-Org.Example.points", "feedback2", "x-.a",
    "x-org.points",            # one domain label and a name: the domain needs two
    "x--.-", "x-org-.example.a", "x-org.-example.a", "x-org.exa_mple.a", "x-org..example.a",
    "x-org.example.", "x-" + "a" * 64 + ".example.a",  # a label is at most 63 characters
    "x-org.example." + "a." * 45 + "a",                # over 100 characters in all
])
def test_extension_names_must_be_namespaced(name):
    model = type("Bad", (Message,), {"__annotations__": {"type": Literal[name],
                                                          "body": PointsQueryBody}})
    with pytest.raises(ValueError, match="namespaced"):
        MessageRegistry(model)


@pytest.mark.parametrize("name", [
    "x-org.example.loyalty.points", "x-org.example.a", "x-com.example.my-type", "x-0.1.2",
    "x-" + "a" * 63 + ".example.a",
])
def test_namespaced_extension_names(name):
    model = type("Good", (Message,), {"__annotations__": {"type": Literal[name],
                                                           "body": PointsQueryBody}})
    assert MessageRegistry(model).lookup(name) is model


def test_a_name_cannot_be_registered_twice():
    class Again(Message):
        type: Literal["x-org.example.loyalty.points"]
        body: PointsQueryBody

    with pytest.raises(ValueError, match="already"):
        MessageRegistry(PointsQuery, Again)


@pytest.mark.parametrize("tag", [None, 5, ["feedback"], {"a": 1}, "Feedback"])
def test_lookup_of_untrusted_tags(tag):
    with pytest.raises(protocol.UnknownMessageType):
        CORE_REGISTRY.lookup(tag)


def test_only_narrows_a_registry_to_what_one_receiver_takes():
    registry = CORE_REGISTRY.extend(PointsQuery)
    narrow = registry.only(["feedback", "x-org.example.loyalty.points", "feedback"])
    assert list(narrow) == ["feedback", "x-org.example.loyalty.points"]
    assert narrow.lookup("x-org.example.loyalty.points") is PointsQuery
    with pytest.raises(protocol.UnknownMessageType):
        narrow.lookup("offer")
    with pytest.raises(TypeError, match="frozen"):
        narrow.register(PointsQuery)
    with pytest.raises(ValueError, match="not registered"):
        CORE_REGISTRY.only(["feedback", "x-org.example.loyalty.points"])


#: Used by test_schema to check that extension registries get schemas too.
registry_for_schema = CORE_REGISTRY.extend(PointsQuery)
