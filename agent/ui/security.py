"""The dashboard's gate: only the person who started ``vrm ui`` gets in.

Every request passes :func:`gate_middleware`, in this order:

1. **Host** must be ``127.0.0.1:PORT`` or ``localhost:PORT``, else 403. A web
   page elsewhere that points its own name at 127.0.0.1 (DNS rebinding) sends
   its own name as Host, so it never reaches the agent.
2. **Method**: GET, HEAD and POST only, else 405. GET never changes anything.
3. **Who**: the session cookie, else 403. The first URL carries a random
   ``token`` (new each run, like Jupyter's); a GET with it sets the cookie
   (``HttpOnly``, ``SameSite=Strict``, named after the port, since cookies do
   not tell ports apart) and redirects (303) to the same page without the
   token, so it leaves the address bar and the history.
4. **POST** also needs an ``Origin`` equal to the page's own origin and the
   run's CSRF token (form field ``csrf`` or header ``X-CSRF-Token``), else 403
   and nothing changes. ``SameSite=Strict`` already keeps the cookie off
   cross-site requests; these two checks do not rely on it.

Every answer, a refusal included, carries :data:`SECURITY_HEADERS`: a
Content-Security-Policy that allows scripts, styles and images from the
dashboard itself only (no inline script, no third-party origin), no framing,
``nosniff``, and ``no-store``. Tokens are compared in constant time.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import urlencode

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_request import FileField
from multidict import MultiDict, MultiDictProxy

__all__ = ["Gate", "gate_middleware", "read_form", "SECURITY_HEADERS", "CSP", "CSRF_FIELD",
           "CSRF_HEADER", "TOKEN_PARAM"]

#: The query parameter of the first URL.
TOKEN_PARAM = "token"
#: The form field, and the header for scripts, that carry the CSRF token.
CSRF_FIELD = "csrf"
CSRF_HEADER = "X-CSRF-Token"

#: Everything from the dashboard itself, nothing inline, nothing from elsewhere.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # same-origin, not no-referrer: with no-referrer, browsers send "Origin: null"
    # on form posts, and the Origin check needs the real one.
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Cache-Control": "no-store",
}
_METHODS = frozenset({"GET", "HEAD", "POST"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Gate:
    """The run's secrets, and the port once bound (0 until then: nothing passes)."""

    token: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    session: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    port: int = 0

    @property
    def cookie(self) -> str:
        return f"vrm_ui_{self.port}"

    @property
    def hosts(self) -> frozenset[str]:
        return frozenset({f"127.0.0.1:{self.port}", f"localhost:{self.port}"})

    def url(self, path: str = "/") -> str:
        """The first URL, printed by ``vrm ui``: it lets one browser in."""
        return f"http://127.0.0.1:{self.port}{path}?{urlencode({TOKEN_PARAM: self.token})}"

    def signed_in(self, request: web.Request) -> bool:
        return _same(request.cookies.get(self.cookie), self.session)


async def read_form(request: web.Request) -> MultiDictProxy[str | bytes | FileField]:
    """The posted form (empty unless the body is a form), read once and cached by
    aiohttp. A body that cannot be read as one (bad encoding, a broken multipart
    boundary, an unknown charset) is 400, never a crash; one too large is 413."""
    try:
        return await request.post()
    except (ValueError, LookupError, HttpProcessingError):
        raise web.HTTPBadRequest(text="400: the form could not be read\n") from None


def _same(given: str | None, expected: str) -> bool:
    return given is not None and secrets.compare_digest(given.encode(), expected.encode())


def _refuse(status: int, text: str) -> web.Response:
    return web.Response(status=status, text=f"{status}: {text}\n", content_type="text/plain")


async def _check(gate: Gate, request: web.Request, handler: Handler) -> web.StreamResponse:
    host = request.headers.get("Host", "")
    if gate.port == 0 or host not in gate.hosts:
        return _refuse(403, "this dashboard answers only at 127.0.0.1 or localhost, "
                            "on its own port")
    if request.method not in _METHODS:
        return _refuse(405, "only GET and POST are used here")
    token = request.query.get(TOKEN_PARAM)
    if not gate.signed_in(request):
        if request.method != "GET" or not _same(token, gate.token):
            return _refuse(403, "open the address that `vrm ui` printed (it holds this "
                                "run's token)")
    if token is not None:
        # Drop the token from the address; set the cookie that replaces it.
        query = MultiDict(request.query)
        query.popall(TOKEN_PARAM, None)
        location = request.rel_url.raw_path + (f"?{urlencode(list(query.items()))}"
                                               if query else "")
        response = web.Response(status=303, headers={"Location": location})
        response.set_cookie(gate.cookie, gate.session, httponly=True, samesite="Strict",
                            path="/")
        return response
    if request.method == "POST":
        if request.headers.get("Origin") != f"http://{host}":
            return _refuse(403, "a change must come from this dashboard's own pages "
                                "(the Origin header is missing or another site's)")
        given = request.headers.get(CSRF_HEADER)
        if given is None:
            value = (await read_form(request)).get(CSRF_FIELD)
            given = value if isinstance(value, str) else None
        if not _same(given, gate.csrf):
            return _refuse(403, "the form's CSRF token is missing or stale; reload the page "
                                "and try again")
    return await handler(request)


def gate_middleware(gate: Gate) -> Callable[[web.Request, Handler],
                                            Awaitable[web.StreamResponse]]:
    """An aiohttp middleware enforcing the rules in this module's docstring."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            response = await _check(gate, request, handler)
        except web.HTTPException as exc:
            exc.headers.update(SECURITY_HEADERS)
            raise
        response.headers.update(SECURITY_HEADERS)
        return response

    return middleware
