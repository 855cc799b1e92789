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
    assert (await vrm("deliver", "--json")).json() == {"results": [], "pending": 0,
                                                       "next_attempt": None}
    shared = (await vrm("shared", "--json")).json()
    assert {(r["vendor"], r["field"]) for r in shared} == {
        ("Bikes4U", "email"), ("Bikes4U", "postal_address.locality")}
    exported = (await vrm("export")).json()
    assert exported["profile"]["postal_address"] == {"locality": "York"}

    ended = (await vrm("vendor", "end", "Bikes4U", "--erase", "--yes", "--json")).json()
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
    results = (await vrm("deliver", "--wait", "30", "--json")).json()["results"]
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
    assert usage.status == 2 and usage.stderr.startswith("vrm: 'frobnicate' is not a command")


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
        (("intent", "A bike", "--needed-by", "soon"), "the needed-by date must be a date like"),
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
    assert ran.status == 3 and "pinned" in ran.stderr and "impostor" in ran.stderr
    assert f"vrm vendor add {url}" in ran.stderr  # what to do, if the person trusts it
    listed = await vrm("vendor", "list")
    assert "key-changed" in listed.stdout and "starts a new relationship" in listed.stdout


def test_json_output_is_valid_everywhere(initialised: Path, capsys) -> None:
    from agent.cli import main

    for args in (("vendor", "list"), ("outbox",), ("offers",), ("shared",), ("sync",),
                 ("deliver",), ("profile", "show")):
        assert main([*args, "--json"]) == 0
        json.loads(capsys.readouterr().out)
    assert main(["export"]) == 0
    assert json.loads(capsys.readouterr().out)["format"] == "vrm-export/1"


# --- vendors, ends, key changes and broadcasts on the command line ---------------

async def test_to_is_repeatable_and_names_each_vendor_once(vrm, shops) -> None:
    await vrm("init")
    shop0, shop1 = await shops(2)
    for shop in (shop0, shop1):
        await vrm("vendor", "add", shop.url)
    both = (await vrm("intent", "Touring bike", "--to", "Shop0", "--to", "Shop1",
                      "--json")).json()
    assert sorted(r["vendor"] for r in both["results"]) == ["Shop0", "Shop1"]
    # the same vendor by name, number and URL: one intent, one lead
    once = (await vrm("intent", "Lamp", "--to", "Shop0", "--to", "1", "--to", shop0.url,
                      "--json")).json()
    assert [r["vendor"] for r in once["results"]] == ["Shop0"]
    # --to before the summary takes one vendor, and leaves the summary alone
    helmet = (await vrm("intent", "--to", "Shop1", "Helmet", "--json")).json()
    assert helmet["summary"] == "Helmet" and [r["vendor"] for r in helmet["results"]] == ["Shop1"]
    assert sorted(lead["summary"] for lead in shop0.crm.leads()) == ["Lamp", "Touring bike"]
    assert sorted(lead["summary"] for lead in shop1.crm.leads()) == ["Helmet", "Touring bike"]


async def test_end_then_erase_while_the_vendor_is_down(vrm, shops) -> None:
    await vrm("init")
    [shop] = await shops(1)
    await vrm("profile", "set", "email=ann@example.org")
    await vrm("vendor", "add", shop.url, "--share", "email")
    await shop.down()
    ended = await vrm("vendor", "end", "Shop0")
    assert "pending" in ended.stdout and "nothing to send" not in ended.stdout
    erase = await vrm("vendor", "end", "Shop0", "--erase", "--yes")
    assert "pending" in erase.stdout and "nothing to send" not in erase.stdout
    await shop.up()
    results = (await vrm("deliver", "--wait", "10", "--json")).json()["results"]
    assert [(r["type"], r["status"]) for r in results] == [("relationship.end", "delivered")]
    [contact] = shop.crm.contacts()
    assert contact["erased"] and contact["email"] is None
    listed = (await vrm("vendor", "list")).stdout
    assert "ended (erased)" in listed
    # and the vendor can be added again: a new relationship
    again = await vrm("vendor", "add", shop.url)
    assert "Added vendor 2: Shop0 (active)" in again.stdout
    assert "vendor 1 is kept as history" in again.stdout


async def test_re_adding_a_vendor_with_another_share(vrm, shops) -> None:
    await vrm("init")
    [shop] = await shops(1)
    await vrm("profile", "set", "email=ann@example.org", "phone=+441234567")
    await vrm("vendor", "add", shop.url, "--share", "email")
    same = await vrm("vendor", "add", shop.url, "--share", "email")
    assert "nothing to send" in same.stdout
    more = await vrm("vendor", "add", shop.url, "--share", "email,phone")
    assert "may now see email, phone" in more.stdout and "signed receipt" in more.stdout
    [contact] = shop.crm.contacts()
    assert (contact["email"], contact["phone"]) == ("ann@example.org", "+441234567")


async def test_a_key_change_on_a_broadcast_is_loud(vrm, shops) -> None:
    await vrm("init")
    [shop] = await shops(1)
    await vrm("vendor", "add", shop.url, "--share", "email")
    shop.resign_with = protocol.SigningKey.generate()
    ran = await vrm("profile", "set", "email=ann@example.org", ok=False)
    assert ran.status == 3
    assert "failed" in ran.stdout
    assert "pinned" in ran.stderr and f"vrm vendor add {shop.url}" in ran.stderr
    listed = await vrm("vendor", "list")
    assert "key-changed" in listed.stdout and "vrm vendor end 1" in listed.stdout
    posts = shop.posts
    later = await vrm("profile", "set", "email=ann@example.net")
    assert "got nothing" in later.stderr and shop.posts == posts
    ended = await vrm("vendor", "end", "Shop0")
    assert "here only" in ended.stdout and shop.posts == posts
    assert '"status": "ended"' in (await vrm("vendor", "list", "--json")).stdout


async def test_deliver_says_what_is_pending_and_when(vrm, shops) -> None:
    await vrm("init")
    [shop] = await shops(1)
    await vrm("vendor", "add", shop.url, "--share", "email")
    shop.fail_first, shop.fail_status, shop.retry_after = 5, 503, "600"
    ran = await vrm("profile", "set", "email=ann@example.org")
    assert "pending" in ran.stdout
    nothing_due = await vrm("deliver")
    assert "Nothing is due now; 1 message is pending, the next attempt is at" in (
        nothing_due.stdout.replace("\n", " "))


async def test_a_profile_set_that_changes_nothing(vrm, shops) -> None:
    await vrm("init")
    [shop] = await shops(1)
    await vrm("profile", "set", "email=ann@example.org")
    await vrm("vendor", "add", shop.url, "--share", "email")
    posts = shop.posts
    ran = await vrm("profile", "set", "email=ann@example.org")
    assert "Nothing changed" in ran.stdout and shop.posts == posts


def test_vrm_home_that_is_a_file(tmp_path: Path, monkeypatch, capsys) -> None:
    from agent.cli import main

    not_a_directory = tmp_path / "notes.txt"
    not_a_directory.write_text("mine")
    monkeypatch.setenv("VRM_HOME", str(not_a_directory))
    monkeypatch.setenv("VRM_PASSPHRASE", PASSPHRASE)
    for args in (["init"], ["vendor", "list"], ["outbox"]):
        assert main(args) == 1
        error = capsys.readouterr().err
        assert error.startswith("vrm: ") and error.count("\n") == 1, error
        assert "is a file, not a directory" in error and "vrm init" not in error
    assert not_a_directory.read_text() == "mine"


def test_vrm_home_that_cannot_be_written(tmp_path: Path, monkeypatch, capsys) -> None:
    from agent import _store
    from agent.cli import main

    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    if os.geteuid() == 0:  # root writes anyway: make os.open answer as it would others
        real_open = os.open

        def refuse(path, flags, *args):
            if str(path).startswith(str(locked)):
                raise PermissionError(13, "Permission denied", str(path))
            return real_open(path, flags, *args)

        monkeypatch.setattr(_store.os, "open", refuse)
    monkeypatch.setenv("VRM_HOME", str(locked))
    monkeypatch.setenv("VRM_PASSPHRASE", PASSPHRASE)
    try:
        assert main(["init"]) == 1
    finally:
        locked.chmod(0o700)
    error = capsys.readouterr().err
    assert error == (f"vrm: cannot create the store in {locked}: permission denied; set "
                     f"VRM_HOME to a directory of yours that you can write to\n")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("intent", "A bike", "--budget", "cheap", "EUR"),
         "the budget must be an amount like 250 or 249.99, not 'cheap'"),
        (("intent", "A bike", "--budget", "250", "euro"),
         "the budget's currency must be a three-letter currency code like EUR"),
        (("intent", "   "), "say what you want in the summary"),
        (("intent", "A bike", "--needed-by", "2001-01-01"), "2001-01-01 is in the past"),
        (("profile", "set", "email=ann"), "email must be an address like ann@example.org"),
        (("profile", "set", "phone=0123"), "phone must be an international number"),
        (("profile", "set", "postal_address.country=Germany"),
         "must be a two-letter country code"),
        (("vendor", "add", "https://shop.example/vrm?x=1"), "has a ? or # part"),
        (("vendor", "add", "https://shop.example/#top"), "has a ? or # part"),
        (("vendor", "add", "http://shop.example"), "--allow-http"),
    ],
)
def test_refused_values_are_explained(initialised: Path, capsys, args, expected) -> None:
    from agent.cli import main

    assert main(list(args)) == 1
    error = capsys.readouterr().err
    assert error.startswith("vrm: ") and expected in error, error
    assert error.count("\n") == 1 and "pattern" not in error and "^" not in error


async def test_export_to_an_existing_file_makes_it_private(vrm, tmp_path: Path) -> None:
    import stat

    await vrm("init")
    target = tmp_path / "my-vrm.json"
    target.write_text("old")
    target.chmod(0o644)
    await vrm("export", "-o", str(target))
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert json.loads(target.read_text())["format"] == "vrm-export/1"
