"""SCIM 2.0 delivery: each contact is a User (RFC 7643 §4.1) at the vendor's
identity or customer system.

=======================  ==========================================================
event                    request
=======================  ==========================================================
``contact.created``      ``POST /Users`` (the returned ``id`` is kept); on 409
                         (the user exists: an earlier attempt whose answer was
                         lost) the user is found by ``userName`` and replaced (PUT)
``contact.updated``      ``PATCH /Users/{id}`` (RFC 7644 §3.5.2): ``replace`` a
                         value, ``remove`` a field set to null, ``add`` the address
                         when the user had none
``relationship.ended``   ``PATCH`` ``replace active: false``
``contact.erased``       ``DELETE /Users/{id}`` (404 counts as done)
=======================  ==========================================================

The User: ``userName`` = the pairwise DID (unique: the key both sides share),
``externalId`` = the vendor's customer id, ``name.givenName``/``familyName``,
``emails`` and ``phoneNumbers`` (one value each, primary), ``addresses`` (one,
``type: home``: streetAddress, locality, region, postalCode, country),
``preferredLanguage``, ``active``. A change to part of the address reads the
user first (GET) and replaces the whole address: SCIM's filtered paths
(``addresses[type eq "home"].locality``) fail with ``noTarget`` when the user
has no address yet. Events about one contact are sent one at a time, in
order, so that read and write never race. Other event types are not sent.

An update, end or erasure for a user the target never had (a target added
after the contact was created, and not found by ``userName``) has nothing to
change there and counts as delivered.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import aiohttp

from .._mapping import FieldMapping
from ._events import Event
from ._queue import Due
from ._target import MAX_ERROR, SVIX_SCHEDULE, Attempt, ForwardError, Target, \
    attempt_from_status, check_url

__all__ = ["Scim", "USER_SCHEMA", "PATCH_SCHEMA", "scim_user"]

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
MEDIA_TYPE = "application/scim+json"
#: The most of a SCIM answer read (a User, or a search for one userName).
MAX_ANSWER = 1 << 20

#: Protocol path -> SCIM attribute path, for the single-valued ones.
_SIMPLE = {"given_name": "name.givenName", "family_name": "name.familyName",
           "language": "preferredLanguage"}
#: Protocol path -> (multi-valued attribute), one primary value each.
_MULTI = {"email": "emails", "phone": "phoneNumbers"}
#: postal_address member -> SCIM address sub-attribute.
_ADDRESS = {"postal_address.street_address": "streetAddress",
            "postal_address.locality": "locality", "postal_address.region": "region",
            "postal_address.postal_code": "postalCode", "postal_address.country": "country"}

_json: Callable[[Any], str] = json.JSONEncoder(separators=(",", ":"),
                                               ensure_ascii=False).encode


def scim_user(did: str, customer_id: str | None, contact: dict[str, Any]) -> dict[str, Any]:
    """The SCIM User for a contact (``contact``: flat protocol paths)."""
    user: dict[str, Any] = {"schemas": [USER_SCHEMA], "userName": did, "active": True}
    if customer_id is not None:
        user["externalId"] = customer_id
    name = {attr.split(".")[1]: contact[path] for path, attr in _SIMPLE.items()
            if attr.startswith("name.") and contact.get(path) is not None}
    if name:
        user["name"] = name
    for path, attr in _MULTI.items():
        if contact.get(path) is not None:
            user[attr] = [{"value": contact[path], "primary": True}]
    address = {attr: contact[path] for path, attr in _ADDRESS.items()
               if contact.get(path) is not None}
    if address:
        user["addresses"] = [{"type": "home", **address}]
    if contact.get("language") is not None:
        user["preferredLanguage"] = contact["language"]
    return user


def _operations(changes: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """PATCH operations for the changes other than the address, and the address
    changes (SCIM sub-attribute -> value or None) to merge with the user's own."""
    ops: list[dict[str, Any]] = []
    for path, attr in _SIMPLE.items():
        if path in changes:
            value = changes[path]
            ops.append({"op": "remove", "path": attr} if value is None
                       else {"op": "replace", "path": attr, "value": value})
    for path, attr in _MULTI.items():
        if path in changes:
            value = changes[path]
            ops.append({"op": "remove", "path": attr} if value is None else
                       {"op": "replace", "path": attr,
                        "value": [{"value": value, "primary": True}]})
    address = {attr: changes[path] for path, attr in _ADDRESS.items() if path in changes}
    return ops, address


class Scim(Target):
    """Keep a SCIM 2.0 service provider's Users in step with the contacts.

    ``base_url``: the service's base (``https://idp.example/scim/v2``; ``/Users``
    is appended). ``token``: the OAuth bearer token (RFC 6750) it expects.
    Raises ForwardError for a URL that is not absolute http(s) or carries
    credentials, or an empty token.
    """

    kind = "scim"

    def __init__(self, base_url: str, *, token: str,
                 schedule: tuple[float, ...] = SVIX_SCHEDULE) -> None:
        self.name = self.base_url = check_url(base_url, what="SCIM base URL")
        if not isinstance(token, str) or not token or any(c.isspace() for c in token):
            raise ForwardError("the SCIM bearer token must be a non-empty string without spaces")
        self._token = token
        self.schedule = tuple(schedule)
        self._users = self.base_url.rstrip("/") + "/Users"

    # --- sans-IO: what is queued ----------------------------------------------------

    def render(self, event: Event, mapping: FieldMapping) -> str | None:
        data = event.data
        if event.type == "contact.created":
            return _json({"op": "create",
                          "user": scim_user(event.did, data.get("customer_id"),
                                            data["contact"])})
        if event.type == "contact.updated":
            ops, address = _operations(data["contact"])
            return _json({"op": "patch", "operations": ops, "address": address})
        if event.type == "relationship.ended":
            return _json({"op": "patch", "operations": [
                {"op": "replace", "path": "active", "value": False}], "address": {}})
        if event.type == "contact.erased":
            return _json({"op": "delete"})
        return None

    # --- I/O: the relay sends it ----------------------------------------------------

    async def deliver(self, session: aiohttp.ClientSession, row: Due) -> Attempt:
        try:
            return await self._deliver(session, row, json.loads(row.body))
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError, RecursionError) as exc:
            return Attempt(False, error=(f"{type(exc).__name__}: {exc}")[:MAX_ERROR])

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}", "Accept": MEDIA_TYPE,
                "Content-Type": MEDIA_TYPE}

    async def _request(self, session: aiohttp.ClientSession, method: str, url: str,
                       body: Any = None) -> tuple[int, Any, Any]:
        data = _json(body).encode() if body is not None else None
        async with session.request(method, url, data=data, headers=self._headers(),
                                   allow_redirects=False) as resp:
            payload = None
            if resp.status in (200, 201) and method != "DELETE":
                raw = await resp.content.read(MAX_ANSWER + 1)
                if len(raw) > MAX_ANSWER:
                    raise ValueError(f"the SCIM answer is over {MAX_ANSWER} bytes")
                payload = json.loads(raw) if raw else None
            return resp.status, resp, payload

    async def _find(self, session: aiohttp.ClientSession, did: str) -> str | None:
        """The id of the User whose userName is ``did`` (RFC 7644 §3.4.2.2 filter)."""
        flt = 'userName eq "' + did.replace("\\", "\\\\").replace('"', '\\"') + '"'
        status, resp, payload = await self._request(
            session, "GET", f"{self._users}?filter={quote(flt)}")
        if status != 200 or not isinstance(payload, dict):
            raise ValueError(f"the search by userName answered HTTP {status}")
        found = payload.get("Resources")
        for user in found if isinstance(found, list) else []:
            if isinstance(user, dict) and user.get("userName") == did and _is_id(user.get("id")):
                return user["id"]
        return None

    async def _deliver(self, session: aiohttp.ClientSession, row: Due,
                       job: dict[str, Any]) -> Attempt:
        op = job["op"]
        if op == "create":
            status, resp, payload = await self._request(session, "POST", self._users,
                                                        job["user"])
            if status == 201:
                if isinstance(payload, dict) and _is_id(payload.get("id")):
                    return Attempt(True, resource_id=payload["id"])
                return Attempt(False, error="HTTP 201 without a usable SCIM id")
            if status != 409:
                return attempt_from_status(status, resp.headers, resp.reason or "")
            # Created by an earlier attempt whose answer was lost: adopt it, restate it.
            found = await self._find(session, row.did)
            if found is None:
                return Attempt(False, error="HTTP 409 for a userName that no search finds")
            return await self._put(session, found, job["user"])
        resource_id = row.resource_id or await self._find(session, row.did)
        if resource_id is None:
            return Attempt(True, forget_resource=True)  # the target never had this user
        url = f"{self._users}/{quote(resource_id, safe='')}"
        if op == "delete":
            status, resp, _ = await self._request(session, "DELETE", url)
            if status in (200, 204, 404):
                return Attempt(True, forget_resource=True)
            return attempt_from_status(status, resp.headers, resp.reason or "")
        operations = list(job["operations"])
        if job["address"]:
            status, resp, user = await self._request(session, "GET", url)
            if status == 404:
                return Attempt(True, forget_resource=True)
            if status != 200 or not isinstance(user, dict):
                return attempt_from_status(status, resp.headers, resp.reason or "")
            operations.append(_address_operation(user, job["address"]))
        if not operations:
            return Attempt(True, resource_id=resource_id)
        status, resp, _ = await self._request(
            session, "PATCH", url, {"schemas": [PATCH_SCHEMA], "Operations": operations})
        if status in (200, 204):
            return Attempt(True, resource_id=resource_id)
        if status == 404:
            return Attempt(True, forget_resource=True)  # deleted there: nothing to change
        return attempt_from_status(status, resp.headers, resp.reason or "")

    async def _put(self, session: aiohttp.ClientSession, resource_id: str,
                   user: dict[str, Any]) -> Attempt:
        status, resp, _ = await self._request(
            session, "PUT", f"{self._users}/{quote(resource_id, safe='')}", user)
        if status == 200:
            return Attempt(True, resource_id=resource_id)
        return attempt_from_status(status, resp.headers, resp.reason or "")


def _is_id(value: Any) -> bool:
    """A SCIM id we keep: a non-empty string of at most 1000 characters."""
    return isinstance(value, str) and 0 < len(value) <= 1000


def _address_operation(user: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """The whole home address after ``changes`` (None removes a member): ``add``
    when the user had no address, ``replace`` it, or ``remove`` it once empty."""
    stated = user.get("addresses")
    addresses = [a for a in stated if isinstance(a, dict)] if isinstance(stated, list) else []
    current = next((a for a in addresses if a.get("type") == "home"),
                   addresses[0] if addresses else None)
    merged = {k: v for k, v in (current or {}).items()
              if k in _ADDRESS.values() and isinstance(v, str)}
    for attr, value in changes.items():
        if value is None:
            merged.pop(attr, None)
        else:
            merged[attr] = value
    if not merged:
        return {"op": "remove", "path": "addresses"}
    value = [{"type": "home", **merged}]
    return {"op": "add" if current is None else "replace", "path": "addresses", "value": value}
