"""The dashboard's gate over real HTTP (agent.ui.security): only the browser
that opened the first URL gets in, and nothing changes without a POST from
the dashboard's own page carrying the CSRF token.

The dashboard runs in-process here (``start_dashboard``, bound to 127.0.0.1 on
a free port), with a real vendor_adapter vendor beside it.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from agent import Agent
from agent.ui import Gate, start_dashboard
from agent.ui.security import CSP
from vendor_adapter import Vendor
from vendor_adapter.aiohttp import vrm_app

HOSTILE = "<script>alert('owned')</script><img src=x onerror=alert(1)>\u202eevil"
PAGES = ("/", "/profile", "/intents", "/outbox", "/backup", "/vendors/1", "/vendors/1/end",
         "/static/app.js", "/static/style.css", "/backup/export.json",
         "/backup/vrm-backup.db")


@dataclass
class Board:
    agent: Agent
    gate: Gate
    session: aiohttp.ClientSession  # holds the cookie once signed in

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.gate.port}"


async def _vendor(tmp_path: Path, name: str) -> tuple[Vendor, web.AppRunner, str]:
    vendor = await asyncio.to_thread(Vendor.open, tmp_path / "vendor.db", name=name,
                                     passphrase="vendor passphrase")
    runner = web.AppRunner(vrm_app(vendor), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return vendor, runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


@pytest.fixture
async def board(tmp_path: Path) -> AsyncIterator[Board]:
    vendor, vendor_runner, vendor_url = await _vendor(tmp_path, HOSTILE)
    agent = await Agent.init(tmp_path / "agent", passphrase="pw", name="Ann", scrypt_n=2**10)
    await agent.set_profile({"email": "ann@example.org"})
    await agent.add_vendor(vendor_url, share=["email"])
    runner, gate = await start_dashboard(agent)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        try:
            yield Board(agent, gate, session)
        finally:
            await runner.cleanup()
            await agent.close()
            await vendor_runner.cleanup()
            vendor.close()


async def sign_in(board: Board) -> None:
    async with board.session.get(board.gate.url(), allow_redirects=False) as response:
        assert response.status == 303
        assert response.headers["Location"] == "/"
        cookie = response.headers["Set-Cookie"]
        assert f"vrm_ui_{board.gate.port}={board.gate.session}" in cookie
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie


async def post_profile(board: Board, email: str, **headers: str) -> int:
    """POST a profile change; ``csrf`` and ``Origin`` are right unless overridden."""
    data = {"email": email}
    csrf = headers.pop("csrf", board.gate.csrf)
    if csrf:
        data["csrf"] = csrf
    headers.setdefault("Origin", board.base)
    headers = {k: v for k, v in headers.items() if v}
    async with board.session.post(board.base + "/profile", data=data, headers=headers,
                                  allow_redirects=False) as response:
        return response.status


async def test_without_the_cookie_or_the_token_every_request_is_403(board: Board) -> None:
    for path in PAGES:
        async with board.session.get(board.base + path, allow_redirects=False) as response:
            assert response.status == 403, path
            assert board.gate.csrf not in await response.text()
            assert response.headers["Content-Security-Policy"] == CSP
    async with board.session.get(board.base + "/?token=wrong" + board.gate.token[5:],
                                 allow_redirects=False) as response:
        assert response.status == 403
        assert "Set-Cookie" not in response.headers
    # The token does not work as a cookie, nor the cookie as a token.
    async with board.session.get(board.base + "/", allow_redirects=False, headers={
            "Cookie": f"vrm_ui_{board.gate.port}={board.gate.token}"}) as response:
        assert response.status == 403
    async with board.session.get(f"{board.base}/?token={board.gate.session}",
                                 allow_redirects=False) as response:
        assert response.status == 403
    assert await post_profile(board, "eve@example.org") == 403
    assert board.agent.profile() == {"email": "ann@example.org"}


async def test_the_token_is_exchanged_for_a_cookie_and_leaves_the_address(board: Board) -> None:
    async with board.session.get(f"{board.base}/intents?token={board.gate.token}&x=1",
                                 allow_redirects=False) as response:
        assert response.status == 303
        assert response.headers["Location"] == "/intents?x=1"
    for path in PAGES:
        async with board.session.get(board.base + path, allow_redirects=False) as response:
            assert response.status == 200, path
            assert response.headers["Content-Security-Policy"] == CSP
            assert response.headers["X-Frame-Options"] == "DENY"
            assert response.headers["Cache-Control"] == "no-store"


async def test_a_wrong_host_is_refused_even_with_the_cookie(board: Board) -> None:
    await sign_in(board)
    port = board.gate.port
    for host in (f"evil.example:{port}", "evil.example", f"127.0.0.1:{port + 1}",
                 f"localhost:{port}.evil.example", "127.0.0.1", f"[::1]:{port}", ""):
        async with board.session.get(board.base + "/", headers={"Host": host},
                                     allow_redirects=False) as response:
            assert response.status == 403, host
        async with board.session.get(f"{board.base}/?token={board.gate.token}",
                                     headers={"Host": host},
                                     allow_redirects=False) as response:
            assert response.status == 403, host
            assert "Set-Cookie" not in response.headers
    for host in (f"127.0.0.1:{port}", f"localhost:{port}"):
        async with board.session.get(board.base + "/", headers={"Host": host}) as response:
            assert response.status == 200, host


async def test_a_cross_origin_post_or_one_without_the_csrf_token_changes_nothing(
        board: Board) -> None:
    await sign_in(board)
    refused = [
        await post_profile(board, "eve@example.org", Origin="http://evil.example"),
        await post_profile(board, "eve@example.org", Origin="null"),
        await post_profile(board, "eve@example.org", Origin=f"http://localhost:{board.gate.port + 1}"),
        await post_profile(board, "eve@example.org", csrf=""),
        await post_profile(board, "eve@example.org", csrf="x" * 43),
    ]
    assert refused == [403] * 5
    # Without an Origin header at all (aiohttp sends none unless asked).
    async with board.session.post(board.base + "/profile", allow_redirects=False,
                                  data={"email": "eve@example.org",
                                        "csrf": board.gate.csrf}) as response:
        assert response.status == 403
    # Ending a relationship is refused the same way, and so is a GET that tries.
    async with board.session.post(board.base + "/vendors/1/end", allow_redirects=False,
                                  headers={"Origin": "http://evil.example"},
                                  data={"confirm": "yes", "erase": "1",
                                        "csrf": board.gate.csrf}) as response:
        assert response.status == 403
    for method in ("PUT", "DELETE", "PATCH"):
        async with board.session.request(method, board.base + "/profile",
                                         headers={"Origin": board.base}) as response:
            assert response.status == 405
    await asyncio.sleep(0.2)
    assert board.agent.profile() == {"email": "ann@example.org"}
    assert board.agent.vendor(1)["status"] == "active"
    assert [r["type"] for r in board.agent.outbox()] == ["relationship.request"]
    # The same request from the dashboard's own page goes through.
    assert await post_profile(board, "ann@example.net") == 303
    for _ in range(100):
        if board.agent.profile() == {"email": "ann@example.net"}:
            break
        await asyncio.sleep(0.05)
    assert board.agent.profile() == {"email": "ann@example.net"}


async def test_ending_without_the_confirmation_step_asks_for_it(board: Board) -> None:
    await sign_in(board)
    async with board.session.post(board.base + "/vendors/1/end", allow_redirects=False,
                                  headers={"Origin": board.base},
                                  data={"erase": "1", "csrf": board.gate.csrf}) as response:
        assert response.status == 303
        assert response.headers["Location"] == "/vendors/1/end?erase=1"
    await asyncio.sleep(0.2)
    assert board.agent.vendor(1)["status"] == "active"


async def test_a_hostile_vendor_name_is_shown_as_text(board: Board) -> None:
    await sign_in(board)
    for path in ("/", "/vendors/1", "/vendors/1/end", "/outbox", "/profile"):
        async with board.session.get(board.base + path) as response:
            html = await response.text()
        assert "<script>alert" not in html and "<img src=x" not in html, path
        assert "\u202e" not in html, path
        if path != "/outbox":
            assert ("&lt;script&gt;alert(&#39;owned&#39;)&lt;/script&gt;&lt;img src=x "
                    "onerror=alert(1)&gt;\\u202eevil") in html, path
        # No inline script and nothing from another origin: only our own files.
        assert re.findall(r"<script[^>]*>", html) == ['<script src="/static/app.js" defer>']
        assert not re.search(r"""(src|href)=["']?(https?:)?//""", html), path


async def test_a_malformed_post_is_a_clear_answer_not_a_crash(board: Board) -> None:
    await sign_in(board)
    headers = {"Origin": board.base}
    async with board.session.post(board.base + "/profile", headers=headers,
                                  data=b"\xff" * 10, allow_redirects=False) as response:
        assert response.status == 403  # no CSRF token could be read
    async with board.session.post(board.base + "/profile", allow_redirects=False,
                                  headers={**headers, "Content-Type":
                                           "application/x-www-form-urlencoded"},
                                  data=b"csrf=" + board.gate.csrf.encode() + b"&email="
                                  + b"a" * 100_000) as response:
        assert response.status == 413
    token = b"csrf=" + board.gate.csrf.encode()
    for content_type, body in (
            ("application/x-www-form-urlencoded", token + b"&email=%ff%fe\xff"),
            ("application/x-www-form-urlencoded; charset=klingon", token),
            ("multipart/form-data; boundary=zz", b"--zz\r\nbroken"),
            ("multipart/form-data", b"no boundary at all")):
        async with board.session.post(board.base + "/profile", data=body,
                                      headers={**headers, "Content-Type": content_type},
                                      allow_redirects=False) as response:
            assert response.status == 400, content_type
            assert await response.text() == "400: the form could not be read\n"
    async with board.session.post(board.base + "/intents/../../etc/cancel", headers=headers,
                                  data={"csrf": board.gate.csrf},
                                  allow_redirects=False) as response:
        assert response.status == 404
    async with board.session.get(board.base + "/vendors/99999") as response:
        assert response.status == 404
    # A mistake in a form is a sentence on the action's page.
    async with board.session.post(board.base + "/profile", headers=headers,
                                  data={"csrf": board.gate.csrf,
                                        "email": "not an address"}) as response:
        assert response.status == 200
        url = str(response.url)
    for _ in range(100):
        async with board.session.get(url) as response:
            html = await response.text()
        if "It did not work." in html:
            break
        await asyncio.sleep(0.05)
    assert 'class="error"' in html and "email" in html
    assert board.agent.profile() == {"email": "ann@example.org"}
