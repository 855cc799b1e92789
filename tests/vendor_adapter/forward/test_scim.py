"""SCIM forwarding against scim2-server (PyPI) as a real process: every field of
the User is read back with GET and filters after create, update, removal of a
field, end and erasure."""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from typing import Any

import pytest

from vendor_adapter.forward import Scim

from .conftest import QUICK, queue_rows, wait_for
from .scim_server import ScimServer

USER = "urn:ietf:params:scim:schemas:core:2.0:User"


@pytest.fixture
def scim() -> Iterator[ScimServer]:
    server = ScimServer(secrets.token_urlsafe(16))
    yield server
    server.stop()


def resource_ids(db: str) -> dict[str, str]:
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        return dict(conn.execute("SELECT did, resource_id FROM vrm_forward_resource"))


async def settled(inbox: Any) -> None:
    await wait_for(lambda: not queue_rows(inbox.vendor.db_path), what="an empty queue")


def only_user(scim: ScimServer, did: str) -> dict[str, Any]:
    (user,) = scim.users_named(did)
    status, same = scim.request("GET", f"/Users/{user['id']}")
    assert status == 200 and same["userName"] == did
    return same


async def test_a_contact_lives_and_dies_as_a_scim_user(forwarding_inbox: Any,
                                                       scim: ScimServer) -> None:
    inbox = await forwarding_inbox([Scim(scim.base_url, token=scim.token, schedule=QUICK)])
    person = await inbox.related(
        given_name="Ann", family_name="Lee", email="ann@example.org", phone="+33612345678",
        postal_address={"street_address": "1 Rue de Rivoli", "locality": "Paris",
                        "region": "IDF", "postal_code": "75001", "country": "FR"},
        language="fr")
    await settled(inbox)
    user = only_user(scim, person.did)
    assert user["id"] == resource_ids(inbox.vendor.db_path)[person.did]
    assert user["schemas"] == [USER]
    assert user["externalId"] == inbox.vendor.crm.contacts()[0]["customer_id"] == "C000001"
    assert user["name"] == {"givenName": "Ann", "familyName": "Lee"}
    assert [(e["value"], e.get("primary")) for e in user["emails"]] == [("ann@example.org", True)]
    assert [p["value"] for p in user["phoneNumbers"]] == ["+33612345678"]
    (address,) = user["addresses"]
    assert {k: address.get(k) for k in ("streetAddress", "locality", "region", "postalCode",
                                        "country")} == {
        "streetAddress": "1 Rue de Rivoli", "locality": "Paris", "region": "IDF",
        "postalCode": "75001", "country": "FR"}
    assert user["preferredLanguage"] == "fr" and user["active"] is True

    # An update: replace some fields, part of the address, and remove the phone.
    await inbox.send(person, person.message("contact.update", {"changes": {
        "given_name": "Anne", "email": "anne@example.org", "phone": None,
        "postal_address": {"locality": "Lyon", "postal_code": None}}}))
    await settled(inbox)
    user = only_user(scim, person.did)
    assert user["name"] == {"givenName": "Anne", "familyName": "Lee"}
    assert [e["value"] for e in user["emails"]] == ["anne@example.org"]
    assert "phoneNumbers" not in user
    (address,) = user["addresses"]
    assert address.get("locality") == "Lyon" and "postalCode" not in address
    assert address.get("streetAddress") == "1 Rue de Rivoli" and address.get("country") == "FR"
    # The filter finds it by its new values too.
    assert scim.request("GET", '/Users?filter=name.givenName%20eq%20%22Anne%22')[1][
        "totalResults"] == 1

    # Removing fields: the whole address, the family name, the language.
    await inbox.send(person, person.message("contact.update", {"changes": {
        "postal_address": None, "family_name": None, "language": None}}))
    await settled(inbox)
    user = only_user(scim, person.did)
    assert "addresses" not in user and "preferredLanguage" not in user
    assert user["name"] == {"givenName": "Anne"}

    # The end: active false, the rest kept.
    await inbox.send(person, person.message("relationship.end", {}))
    await settled(inbox)
    user = only_user(scim, person.did)
    assert user["active"] is False and user["name"] == {"givenName": "Anne"}
    resource = user["id"]

    # The erasure: the User is deleted, and its id forgotten.
    await inbox.send(person, person.message("relationship.end", {"erase": True}))
    await settled(inbox)
    assert scim.users_named(person.did) == []
    assert scim.request("GET", f"/Users/{resource}")[0] == 404
    assert person.did not in resource_ids(inbox.vendor.db_path)
    (status,) = inbox.vendor.forwarding.status()
    assert status.delivered == 5 and status.last_error is None


async def test_an_address_added_later_and_a_user_that_exists_already(
        forwarding_inbox: Any, scim: ScimServer) -> None:
    inbox = await forwarding_inbox([Scim(scim.base_url, token=scim.token, schedule=QUICK)])
    person = inbox.person()
    # A POST whose answer was lost: the user exists before contact.created arrives.
    status, _ = scim.request("POST", "/Users", {"schemas": [USER], "userName": person.did,
                                                "displayName": "stale"})
    assert status == 201
    await inbox.send(person, person.request(given_name="Bo"))
    await settled(inbox)
    user = only_user(scim, person.did)
    assert user["name"] == {"givenName": "Bo"} and user["externalId"] == "C000001"
    assert "displayName" not in user  # replaced with what the person shares
    assert user["id"] == resource_ids(inbox.vendor.db_path)[person.did]

    await inbox.send(person, person.message("contact.update", {"changes": {
        "postal_address": {"locality": "Oslo", "country": "NO"}}}))
    await settled(inbox)
    (address,) = only_user(scim, person.did)["addresses"]
    assert address.get("locality") == "Oslo" and address.get("country") == "NO"
    # A repeated relationship.request restates the whole profile: what it leaves
    # out is removed there too.
    await inbox.send(person, person.request(given_name="Bo", email="bo@example.org"))
    await settled(inbox)
    user = only_user(scim, person.did)
    assert "addresses" not in user and user["name"] == {"givenName": "Bo"}
    assert [e["value"] for e in user["emails"]] == ["bo@example.org"]
    assert user["active"] is True


async def test_a_wrong_token_keeps_the_events_queued_and_says_why(
        forwarding_inbox: Any, scim: ScimServer) -> None:
    inbox = await forwarding_inbox([Scim(scim.base_url, token="wrong", schedule=(60.0,))])
    person = await inbox.related(given_name="Cy")
    await wait_for(lambda: any(r[5] for r in queue_rows(inbox.vendor.db_path)),
                   what="a failed attempt")
    await inbox.send(person, person.message("contact.update", {"changes": {"given_name": "C"}}))
    (status,) = inbox.vendor.forwarding.status()
    assert status.queued == 2 and status.failing == 1 and status.delivered == 0
    assert status.last_error is not None and "401" in status.last_error
    assert scim.users_named(person.did) == []



async def test_a_hostile_scim_server_gets_failed_attempts_not_a_dead_relay(
        forwarding_inbox: Any, aiohttp_server: Any) -> None:
    from aiohttp import web

    answers = iter([
        web.Response(status=201, body=b"not json"),
        web.Response(status=201, body=b'{"id": 5}'),
        web.Response(status=201, body=b"[1, 2]"),
        web.Response(status=201, body=b'{"id": "' + b"x" * 2000 + b'"}'),
        web.Response(status=201, body=b"[" * 100_000),
        web.Response(status=302, headers={"Location": "http://169.254.169.254/"}),
    ])
    seen: list[str] = []

    async def users(request: web.Request) -> web.StreamResponse:
        seen.append(request.headers.get("Authorization", ""))
        return next(answers, None) or web.json_response({"id": "u-1"}, status=201)

    app = web.Application()
    app.router.add_post("/v2/Users", users)
    server = await aiohttp_server(app)
    inbox = await forwarding_inbox([Scim(str(server.make_url("/v2")), token="t0k",
                                         schedule=(0.05,) * 7)])
    person = await inbox.related(given_name="Ann")
    await settled(inbox)
    assert len(seen) == 7 and set(seen) == {"Bearer t0k"}
    assert resource_ids(inbox.vendor.db_path) == {person.did: "u-1"}
    (status,) = inbox.vendor.forwarding.status()
    assert status.delivered == 1 and "302" in (status.last_error or "")
