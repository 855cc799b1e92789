"""Issue 9, item 7 (the agent's part): a name that only looks local is not
loopback. Plain http goes without --allow-http only to a literal loopback
address or to ``localhost`` itself; ``shop.localhost`` is resolved through DNS
like any name. Through the real ``vrm vendor add``, against a real vendor on
127.0.0.1, so that nothing but the rule can refuse it."""

from __future__ import annotations

import pytest

from .conftest import FakeVendor
from .test_cli import vrm  # noqa: F401 - the fixture that runs the real `vrm`


@pytest.mark.parametrize("host", ["shop.localhost", "localhost.", "LOCALHOST.example",
                                  "127.0.0.1.nip.io"])
async def test_names_that_only_look_local_need_allow_http(vrm, serve, host: str  # noqa: F811
                                                         ) -> None:
    vendor, url = await serve(FakeVendor("Shop"))
    port = url.rsplit(":", 1)[1]
    await vrm("init")
    ran = await vrm("vendor", "add", f"http://{host}:{port}", ok=False)
    assert ran.status == 1 and "--allow-http" in ran.stderr, ran
    assert ran.stderr.count("\n") == 1
    assert vendor.hits == 0 and (await vrm("vendor", "list", "--json")).json() == []


def test_the_loopback_rule() -> None:
    from agent import UsageError
    from agent._vendors import check_transport

    for url in ("http://localhost:8080", "http://LocalHost/v", "http://127.0.0.1:1",
                "http://127.255.0.9", "http://[::1]:9"):
        check_transport(url)
    for url in ("http://shop.localhost:8080", "http://a.b.localhost", "http://localhost.",
                "http://localhost.localdomain", "http://[::ffff:127.0.0.1]",
                "http://0.0.0.0", "http://[::]"):
        with pytest.raises(UsageError, match="--allow-http"):
            check_transport(url)
        check_transport(url, allow_http=True)
