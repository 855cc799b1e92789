"""Discovery documents, and the same-origin rule that stops SSRF."""

from __future__ import annotations

import json

import pytest

from protocol import DiscoveryError, SigningKey, origin, parse_discovery, same_origin


def document(key: SigningKey, **changes) -> bytes:
    doc = {"vrm": ["1"], "id": key.did, "name": "Bikes4U",
           "inbox": "https://shop.example/vrm/inbox", "keys": [key.public.to_jwk()],
           "types": ["relationship.request", "intent"]}
    doc.update(changes)
    return json.dumps(doc).encode()


URL = "https://shop.example/vrm/.well-known/vrm"


def test_a_good_document():
    key = SigningKey.generate()
    doc = parse_discovery(document(key, logo="https://shop.example/logo.png"), url=URL)
    assert doc.key == key.public and doc.id == key.did
    assert doc.accepts("intent") and not doc.accepts("feedback")


@pytest.mark.parametrize("inbox", [
    "https://evil.example/inbox",
    "http://shop.example/vrm/inbox",  # another scheme
    "https://shop.example:8443/vrm/inbox",  # another port
    "https://169.254.169.254/latest/meta-data",
    "https://user:pw@shop.example/inbox",
    "file:///etc/passwd",
    "/relative/inbox",
])
def test_inbox_on_another_origin_is_refused(inbox):
    with pytest.raises(DiscoveryError):
        parse_discovery(document(SigningKey.generate(), inbox=inbox), url=URL)


def test_default_ports_are_the_same_origin():
    assert same_origin("https://Shop.Example:443/a", "https://shop.example/b")
    assert same_origin("http://127.0.0.1:80/a", "http://127.0.0.1/b")
    assert not same_origin("http://127.0.0.1:8080/a", "http://127.0.0.1:8081/a")


@pytest.mark.parametrize("changes", [
    {"keys": []},
    {"keys": [SigningKey.generate().public.to_jwk()]},  # not the vendor's own key
    {"keys": [{"kty": "RSA", "kid": "x"}]},
    {"vrm": ["2"]},
    {"id": "did:web:shop.example"},
    {"name": 5},
])
def test_unusable_documents(changes):
    with pytest.raises(DiscoveryError):
        parse_discovery(document(SigningKey.generate(), **changes), url=URL)


def test_a_jwk_with_private_material_is_refused():
    key = SigningKey.generate()
    jwk = {**key.public.to_jwk(), "d": "c2VjcmV0"}
    with pytest.raises(DiscoveryError, match="private"):
        parse_discovery(document(key, keys=[jwk]), url=URL)


def test_private_material_in_any_other_key_is_refused():
    key, other = SigningKey.generate(), SigningKey.generate()
    leaked = {**other.public.to_jwk(), "kid": "backup", "d": "c2VjcmV0"}
    with pytest.raises(DiscoveryError, match="private"):
        parse_discovery(document(key, keys=[key.public.to_jwk(), leaked]), url=URL)


@pytest.mark.parametrize("raw", [b"<html>", b'{"vrm": ["1"], "vrm": ["1"]}', b"[]"])
def test_not_a_document(raw):
    with pytest.raises(DiscoveryError):
        parse_discovery(raw, url=URL)


@pytest.mark.parametrize("inbox", [
    "https://[::1/inbox",            # an unclosed IPv6 literal: urlsplit raises ValueError
    "https://[zz]/inbox",            # not an address at all
    "https://a]b/inbox",
    "https://shop.example:99999/inbox",
    "https://shop.example:-1/inbox",
])
def test_inbox_urls_that_urlsplit_cannot_read(inbox):
    with pytest.raises(DiscoveryError, match="URL"):
        parse_discovery(document(SigningKey.generate(), inbox=inbox), url=URL)


@pytest.mark.parametrize("url", ["https://[::1/.well-known/vrm", "ftp://shop.example/x", "",
                                 None, 7, b"https://shop.example/.well-known/vrm"])
def test_a_broken_document_url_is_a_discovery_error(url):
    with pytest.raises(DiscoveryError):
        parse_discovery(document(SigningKey.generate()), url=url)


@pytest.mark.parametrize("url", ["https://[::1/x", None, "https://[zz]/", "http://h:65536/"])
def test_origin_of_a_broken_url_is_a_discovery_error(url):
    with pytest.raises(DiscoveryError):
        origin(url)


@pytest.mark.parametrize("wrap", [bytearray, memoryview])
def test_parse_discovery_takes_bytes_like_objects(wrap):
    key = SigningKey.generate()
    assert parse_discovery(wrap(document(key)), url=URL).id == key.did


@pytest.mark.parametrize("raw", [None, 5, "{}", ["x"]])
def test_parse_discovery_refuses_what_is_not_bytes(raw):
    with pytest.raises(DiscoveryError, match="bytes"):
        parse_discovery(raw, url=URL)
