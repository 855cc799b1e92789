"""The shared field types (protocol/_fields.py), checked through the bodies that use them."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

import protocol


def profile(**fields):
    return protocol.Profile.from_wire(fields)


@pytest.mark.parametrize("member", ["given_name", "family_name"])
def test_names_are_one_to_two_hundred_characters(member):
    assert getattr(profile(**{member: "A"}), member) == "A"
    assert getattr(profile(**{member: "A" * 200}), member) == "A" * 200
    for bad in ("", "A" * 201):
        with pytest.raises(ValidationError):
            profile(**{member: bad})


@pytest.mark.parametrize("email", ["ada@example.org", "a.b+c@mail.example.co.uk",
                                   "jürgen@bücher.example"])
def test_emails_of_the_right_shape(email):
    assert profile(email=email).email == email


@pytest.mark.parametrize("email", [
    "ada", "ada@example", "@example.org", "ada@@example.org", "ada @example.org",
    "ada\x00@example.org", "ada@exa\x07mple.org", "ada@example.org\x1f", "ada\x7f@example.org",
    "ada\x85@example.org", "ada@example.org\n", "a@b\u2028.org", "a" * 250 + "@b.co",
])
def test_emails_with_spaces_control_characters_or_no_domain_are_refused(email):
    with pytest.raises(ValidationError):
        profile(email=email)


@pytest.mark.parametrize("tag", ["de", "en-GB", "zh-Hant-TW", "de-CH-1996", "sgn-BE-FR",
                                 "x-klingon", "X-Private-a1", "i-klingon", "i-default",
                                 "en-GB-x-oed"])
def test_bcp47_tags(tag):
    assert profile(language=tag).language == tag


@pytest.mark.parametrize("tag", ["", "e", "x", "i", "x-", "i-", "english please", "en_GB",
                                 "en-", "-en", "de-123456789", "abcdefghi",
                                 "de-" + "-".join(["abc"] * 16)])
def test_not_bcp47_tags(tag):
    with pytest.raises(ValidationError):
        profile(language=tag)


@pytest.mark.parametrize("code, valid", [("DE", True), ("ZZ", True), ("de", False),
                                         ("DEU", False), ("D1", False)])
def test_countries_are_checked_for_shape_only(code, valid):
    # Whether a code is assigned is business logic: ZZ has the right shape.
    if valid:
        assert protocol.PostalAddress.from_wire({"country": code}).country == code
    else:
        with pytest.raises(ValidationError):
            protocol.PostalAddress.from_wire({"country": code})


@pytest.mark.parametrize("code, valid", [("EUR", True), ("ZZZ", True), ("eur", False),
                                         ("EURO", False), ("EU", False)])
def test_currencies_are_checked_for_shape_only(code, valid):
    if valid:
        assert protocol.Price.from_wire({"amount": "1.00", "currency": code}).currency == code
    else:
        with pytest.raises(ValidationError):
            protocol.Price.from_wire({"amount": "1.00", "currency": code})


def offer_body(url):
    return protocol.OfferBody.model_validate(
        {"summary": "Trek 520", "price": {"amount": "749.00", "currency": "EUR"}, "url": url})


@pytest.mark.parametrize("url", [
    "https://shop.example/trek-520", "http://127.0.0.1:8080/a?b=c&d=%20#top",
    "https://[::1]:8443/x;y=1,2/~me/(a)*+!$'@", "https://caf%C3%A9.example/",
])
def test_offer_urls_of_rfc3986_characters(url):
    assert offer_body(url).url == url


@pytest.mark.parametrize("url", [
    "https://shop.example/\x1b[2J", "https://shop.example/\x00", "https://shop.example/\u202etxt",
    "https://shop.example/\x9b31m", "https://shop.example/a b", "https://shop.example/\x7f",
    "https://café.example/", "https://shop.example/\u2028", "https://shop.example/\"x\"",
    "https://shop.example/<script>", "https://shop.example/a\\b", "https://shop.example/{x}",
])
def test_offer_urls_outside_rfc3986_are_refused(url):
    # ESC, NUL, C1, bidi and other characters RFC 3986 does not allow (§2) never
    # reach a terminal or a browser through an offer.
    with pytest.raises(ValidationError):
        offer_body(url)
    raw = {"summary": "x", "price": {"amount": "1.00", "currency": "EUR"}, "url": url}
    with pytest.raises(ValidationError):
        protocol.OfferBody.model_validate_json(json.dumps(raw))
