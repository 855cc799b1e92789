"""The vrm command as a real subprocess: VRM_HOME and VRM_PASSPHRASE set, loopback
vendors served by this test's event loop."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

import protocol

from .conftest import PASSPHRASE, FakeVendor


@dataclass
class Ran:
    status: int
    stdout: str
    stderr: str

    def json(self):
        return json.loads(self.stdout)


@pytest.fixture
def vrm(home: Path):
    env = {**os.environ, "VRM_HOME": str(home), "VRM_PASSPHRASE": PASSPHRASE,
           "COLUMNS": "200"}
    env.pop("VRM_DEBUG", None)

    async def run(*args: str, passphrase: str | None = PASSPHRASE, ok: bool = True) -> Ran:
        environment = dict(env)
        if passphrase is None:
            environment.pop("VRM_PASSPHRASE")
        else:
            environment["VRM_PASSPHRASE"] = passphrase
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "agent.cli", *args, env=environment,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        stdout, stderr = await process.communicate()
        ran = Ran(process.returncode or 0, stdout.decode(), stderr.decode())
        assert "Traceback" not in ran.stderr, ran.stderr
        if ok:
            assert ran.status == 0, ran.stderr
        return ran

    return run


async def test_first_five_minutes(vrm, serve) -> None:
    await vrm("init", "--name", "Ann")
    bikes, bikes_url = await serve(FakeVendor("Bikes4U"))
    books, books_url = await serve(FakeVendor("Books [red]"))
    await vrm("profile", "set", "email=ann@example.org", "postal_address.locality=Leeds")
    added = (await vrm("vendor", "add", bikes_url, "--share", "email,postal_address",
                       "--json")).json()
    assert added["status"] == "active"
    ran = await vrm("vendor", "add", books_url)
    assert books.did in ran.stdout.replace("\n", "")  # no ":key:" emoji in the DID
    vendors = (await vrm("vendor", "list", "--json")).json()
    assert [v["name"] for v in vendors] == ["Bikes4U", "Books [red]"]
    listed = (await vrm("vendor", "list")).stdout
    assert "Bikes4U" in listed and "Books [red]" in listed  # vendor text is not markup

    ran = await vrm("profile", "set", "postal_address.locality=York")
    assert "Bikes4U" in ran.stdout and "delivered" in ran.stdout
    assert [u.body.changes.to_wire() for u in bikes.of_type(protocol.ContactUpdate)] == [
        {"postal_address": {"locality": "York"}}]
    assert books.of_type(protocol.ContactUpdate) == []  # Books may not see the address

    sent = (await vrm("intent", "Touring bike", "--category", "bicycles", "--budget", "800",
                      "EUR", "--needed-by", "2027-06-01", "--json")).json()
    assert {r["status"] for r in sent["results"]} == {"delivered"}
    [intent] = bikes.of_type(protocol.Intent)
    bikes.offer(intent, summary="Trek 520", amount="749.00")
    synced = (await vrm("sync", "--json")).json()
    assert {r["vendor"]: r["new_messages"] for r in synced} == {"Bikes4U": 1, "Books [red]": 0}
    offers = (await vrm("offers", "--json")).json()
    assert [(o["summary"], o["price"], o["intent_summary"]) for o in offers] == [
        ("Trek 520", "749.00", "Touring bike")]
    assert "Trek 520" in (await vrm("offers")).stdout

    outbox = (await vrm("outbox", "--json")).json()
    assert {row["status"] for row in outbox} == {"delivered"}
    assert "delivered" in (await vrm("outbox")).stdout
    assert (await vrm("deliver", "--json")).json() == []
    shared = (await vrm("shared", "--json")).json()
    assert {(r["vendor"], r["field"]) for r in shared} == {
        ("Bikes4U", "email"), ("Bikes4U", "postal_address.locality")}
    exported = (await vrm("export")).json()
    assert exported["profile"]["postal_address"] == {"locality": "York"}

    ended = (await vrm("vendor", "end", "Bikes4U", "--erase", "--json")).json()
    assert ended["delivery"]["status"] == "delivered" and ended["vendor"]["erased"]
    assert (await vrm("shared", "--json")).json() == []


async def test_pending_deliveries_then_vrm_deliver(vrm, serve) -> None:
    await vrm("init")
    vendor, url = await serve(FakeVendor("Flaky"))
    await vrm("vendor", "add", url, "--share", "email")
    vendor.mode = "500"
    ran = await vrm("profile", "set", "email=ann@example.org")
    assert "pending" in ran.stdout and "vrm deliver" in ran.stdout
    vendor.mode = "ok"
    results = (await vrm("deliver", "--wait", "30", "--json")).json()
    assert [r["status"] for r in results] == ["delivered"]
    assert len(vendor.of_type(protocol.ContactUpdate)) == 1


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("vendor", "list"), "run `vrm init` first"),
        (("outbox", "--json"), "run `vrm init` first"),
    ],
)
async def test_no_store_yet(vrm, args, expected) -> None:
    ran = await vrm(*args, ok=False)
    assert ran.status == 1 and expected in ran.stderr and ran.stdout == ""


async def test_errors_in_a_real_process(vrm) -> None:
    await vrm("init")
    ran = await vrm("profile", "set", "mail=x", ok=False)
    assert ran.status == 1 and ran.stderr.startswith("vrm: 'mail' is not a profile field")
    wrong = await vrm("vendor", "list", passphrase="nope", ok=False)
    assert wrong.status == 1 and "passphrase is wrong" in wrong.stderr
    missing = await vrm("vendor", "list", passphrase=None, ok=False)
    assert missing.status == 1 and "VRM_PASSPHRASE" in missing.stderr
    usage = await vrm("frobnicate", ok=False)
    assert usage.status == 2 and "invalid choice" in usage.stderr


@pytest.fixture
def initialised(home: Path, monkeypatch) -> Path:
    """A store for in-process CLI runs (cheaper than a process per error case)."""
    from agent import Agent

    async def init() -> None:
        agent = await Agent.init(home, passphrase=PASSPHRASE, scrypt_n=2**10)
        await agent.close()

    asyncio.run(init())
    monkeypatch.setenv("VRM_HOME", str(home))
    monkeypatch.setenv("VRM_PASSPHRASE", PASSPHRASE)
    return home


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("profile", "set", "mail=x"), "is not a profile field"),
        (("profile", "set", "email"), "name=value"),
        (("profile", "set", "phone=0123"), "phone"),
        (("profile", "set", "postal_address=Leeds"), "postal_address.locality"),
        (("vendor", "end", "nobody"), "vrm vendor list"),
        (("vendor", "add", "ftp://example.org"), "not an http(s) URL"),
        (("vendor", "add", "http://127.0.0.1:1", "--share", "password"), "cannot share"),
        (("vendor", "add", "http://127.0.0.1:1"), "cannot reach"),
        (("intent", "A bike"), "no vendor accepts intents"),
        (("intent", "A bike", "--needed-by", "soon"), "needed_by"),
        (("init",), "already exists"),
    ],
)
def test_mistakes_are_one_sentence(initialised: Path, capsys, args, expected) -> None:
    from agent.cli import main

    assert main(list(args)) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith("vrm: ") and expected in captured.err, captured.err
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err
    assert captured.out == ""


async def test_key_change_is_refused_on_the_command_line(vrm, serve) -> None:
    await vrm("init")
    vendor, url = await serve(FakeVendor("Bikes4U"))
    await vrm("vendor", "add", url)
    vendor.key = vendor.signer = protocol.SigningKey.generate()
    ran = await vrm("vendor", "add", url, ok=False)
    assert ran.status == 1 and "pinned" in ran.stderr and "impostor" in ran.stderr


def test_json_output_is_valid_everywhere(initialised: Path, capsys) -> None:
    from agent.cli import main

    for args in (("vendor", "list"), ("outbox",), ("offers",), ("shared",), ("sync",),
                 ("deliver",), ("profile", "show")):
        assert main([*args, "--json"]) == 0
        json.loads(capsys.readouterr().out)
    assert main(["export"]) == 0
    assert json.loads(capsys.readouterr().out)["format"] == "vrm-export/1"
