"""Outside text is shown as text (issue 9, item 3): both CLIs, run as real
processes, with escape sequences, C1 and bidi controls, newlines and rich
markup in every field that comes from a vendor (`vrm`) or from a person
(`vrm-vendor crm`). The bytes written hold the text visibly escaped, and none
of the raw controls; on a pseudo-terminal, the only escape sequences are
rich's own colours and cursor moves.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import select
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

import protocol
from tests.agent.conftest import PASSPHRASE, FakeVendor, now

#: What a hostile peer writes: clear screen, window title, clipboard write, a
#: hidden hyperlink, a one-character CSI (C1), a right-to-left override, rich
#: markup (a closing tag that crashes rich, a link, hidden text), and a newline
#: that forges a line of our own.
HOSTILE = ("Shop\x1b[2J\x1b]0;owned\x07\x1b]52;c;ZXZpbA==\x07\x1b]8;;https://evil.example"
           "\x07here\x1b]8;;\x07\x9b31m\u202etxt.exe[/][link=https://evil.example]Bob[/link]"
           "[on white][white]hidden\nvrm: warning: forged")
assert len(HOSTILE) <= 200  # a discovery name and a name are at most 200 characters
#: A category is at most 100 characters.
CATEGORY = "bikes\x1b[2J\x1b]0;owned\x07\x9b31m\u202e[/][link=https://evil.example]x\nforged"
#: What must never be written, as UTF-8 bytes: ESC anywhere (off a terminal),
#: the C1 CSI, the bidi override, BEL.
RAW = [b"\x1b", "\x9b".encode(), "\u202e".encode(), b"\x07"]
#: How the hostile text must show: escaped, literally.
SHOWN = ["\\x1b[2J", "\\x1b]0;owned\\x07", "\\x9b31m", "\\u202etxt.exe", "[/]",
         "[link=https://evil.example]Bob[/link]", "[on white][white]hidden"]

ROOT = Path(__file__).resolve().parents[1]


def assert_shown_as_text(data: bytes, *, terminal: bool = False, whole: bool = True) -> None:
    """No raw control in ``data``; the hostile text shown escaped (``whole``:
    every piece of it, on one line)."""
    if terminal:  # rich's own sequences: colours (SGR), cursor show/hide, line erase
        data = re.sub(rb"\x1b\[[0-9;]*m|\x1b\[\?25[lh]|\x1b\[2K|\x1b\[1A|\r", b"", data)
    for raw in RAW:
        assert raw not in data, (raw, data)
    text = data.decode()
    assert not re.search(r"^vrm: warning: forged", text, re.M), text  # no forged line
    if whole:
        for shown in SHOWN:
            assert shown in text, (shown, text)
        # the newline, escaped (as \x0a, or as \n where a sentence quotes it with repr)
        assert re.search(r"\\(x0a|n)vrm: warning: forged", text), text


def run(*argv: str, env: dict[str, str]) -> subprocess.CompletedProcess[bytes]:
    """A CLI as a real process, bytes captured (off a terminal)."""
    result = subprocess.run([sys.executable, *argv], env=env, capture_output=True,
                            stdin=subprocess.DEVNULL, timeout=120)
    assert b"Traceback" not in result.stderr, result.stderr.decode()
    return result


def run_on_pty(*argv: str, env: dict[str, str], columns: int = 2000) -> tuple[int, bytes]:
    """A CLI as a real process on a pseudo-terminal (stdout and stderr both):
    its exit status and every byte it wrote to the terminal."""
    import fcntl
    import pty
    import struct
    import termios

    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    process = subprocess.Popen([sys.executable, *argv], env={**env, "TERM": "xterm-256color"},
                               stdin=follower, stdout=follower, stderr=follower,
                               close_fds=True)
    os.close(follower)
    chunks = []
    while True:
        ready, _, _ = select.select([leader], [], [], 120)
        assert ready, "the CLI wrote nothing for 120 s"
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the process closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    status = process.wait(timeout=60)
    data = b"".join(chunks)
    assert b"Traceback" not in data, data.decode(errors="replace")
    return status, data


class HostileVendor(FakeVendor):
    """A vendor whose every word is :data:`HOSTILE`: its name, its offers, the
    problems in its receipts, and (``mode = "problem"``) an unsigned problem
    document."""

    def receipt(self, to: str, thread: str, status: str, *, problem: str | None = None,
                **extra: Any) -> bytes:
        body: dict[str, Any] = {"status": status, **extra}
        if problem:
            body["problem"] = {"type": protocol.problem_urn(problem), "title": HOSTILE,
                               "detail": HOSTILE}
        message = protocol.Receipt(id=protocol.new_message_id(), sender=self.signer.did, to=to,
                                   created=now(), thread=thread,
                                   body=protocol.ReceiptBody.model_validate(body))
        return protocol.sign(message, self.signer)

    async def inbox(self, request: web.Request) -> web.StreamResponse:
        if self.mode == "problem":
            self.hits += 1
            return web.json_response({"type": "urn:vrm:problem:malformed", "title": HOSTILE,
                                      "detail": HOSTILE}, status=400,
                                     content_type=protocol.PROBLEM_MEDIA_TYPE)
        return await super().inbox(request)

    def hostile_offer(self, intent: protocol.Message, *, url: str | None = None) -> None:
        """An offer whose summary is hostile, or (with ``url``) whose url is: that
        one is built without the model's checks, as a hostile vendor would."""
        body = {"summary": HOSTILE, "price": {"amount": "749.00", "currency": "EUR"}}
        if url is not None:
            body = {"summary": "Bike", "price": body["price"], "url": url}
        payload = {"vrm": "1", "id": protocol.new_message_id(), "type": "offer",
                   "from": self.key.did, "to": intent.sender,
                   "created": protocol.format_time(now()), "thread": intent.id, "body": body}
        raw = protocol.sign_payload(json.dumps(payload).encode(), self.key)
        jws = protocol.FlattenedJWS.model_validate(protocol.loads(raw))
        self.outgoing.setdefault(intent.sender, []).append(jws)


@pytest.fixture
def vrm_env(tmp_path: Path) -> dict[str, str]:
    env = {**os.environ, "VRM_HOME": str(tmp_path / "home"), "VRM_PASSPHRASE": PASSPHRASE,
           "COLUMNS": "2000"}
    env.pop("VRM_DEBUG", None)
    return env


async def vrm(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[bytes]:
    return await asyncio.to_thread(run, "-m", "agent.cli", *args, env=env)


async def test_vrm_shows_a_vendors_text_as_text(vrm_env, aiohttp_server) -> None:
    async def serve(vendor: FakeVendor) -> str:
        server = await aiohttp_server(vendor.app())
        return str(server.make_url("")).rstrip("/")

    hostile = HostileVendor(HOSTILE)
    url = await serve(hostile)
    assert (await vrm(vrm_env, "init")).returncode == 0
    await vrm(vrm_env, "profile", "set", "email=ann@example.org")

    added = await vrm(vrm_env, "vendor", "add", url, "--share", "email")
    assert added.returncode == 0
    assert_shown_as_text(added.stdout)  # "Added vendor 1: <name> (active)."

    listed = await vrm(vrm_env, "vendor", "list")
    assert_shown_as_text(listed.stdout)
    as_json = await vrm(vrm_env, "vendor", "list", "--json")
    for raw in RAW:  # --json: the exact value, as \u escapes
        assert raw not in as_json.stdout
    assert json.loads(as_json.stdout)[0]["name"] == HOSTILE

    # A receipt's problem (title and detail), in the broadcast table.
    hostile.mode = "invalid"
    told = await vrm(vrm_env, "profile", "set", "email=ann@example.net")
    assert b"rejected" in told.stdout
    assert_shown_as_text(told.stdout)
    # An unsigned problem document.
    hostile.mode = "problem"
    told = await vrm(vrm_env, "profile", "set", "email=ann@example.com")
    assert_shown_as_text(told.stdout)
    outbox = await vrm(vrm_env, "outbox")
    assert_shown_as_text(outbox.stdout)
    outbox_json = await vrm(vrm_env, "outbox", "--json")
    assert not any(raw in outbox_json.stdout for raw in RAW)
    # A problem's detail is neutralised once, when stored (agent._delivery.answer_text):
    # the store, and so --json, holds the escaped text.
    assert any(row["last_error"] and "\\x1b[2J" in row["last_error"]
               for row in json.loads(outbox_json.stdout))

    # Offers: a hostile summary is shown as text; a url outside RFC 3986 never
    # gets in (the protocol refuses it) and is not echoed raw either.
    hostile.mode = "ok"
    assert (await vrm(vrm_env, "intent", "Touring bike")).returncode == 0
    [intent] = hostile.of_type(protocol.Intent)
    hostile.hostile_offer(intent)
    hostile.hostile_offer(intent, url="https://shop.example/\x1b]8;;https://evil\x07\u202e")
    synced = await vrm(vrm_env, "sync")
    assert_shown_as_text(synced.stdout)
    offers = await vrm(vrm_env, "offers")
    assert_shown_as_text(offers.stdout)
    offers_json = json.loads((await vrm(vrm_env, "offers", "--json")).stdout)
    assert [offer["summary"] for offer in offers_json] == [HOSTILE]  # the url's was refused
    shared = await vrm(vrm_env, "shared")
    assert_shown_as_text(shared.stdout)
    # The commands added later print through the same helpers: the hostile name
    # (vendor show), its receipts' problems, the offers beside the intents.
    for command in (("intents",), ("vendor", "show", "1"), ("offers", "--vendor", "1")):
        shown = await vrm(vrm_env, *command)
        assert shown.returncode == 0, shown.stderr
        assert_shown_as_text(shown.stdout, whole=False)
        assert "\\x1b[2J" in shown.stdout.decode() or command == ("intents",)

    # stderr: a refusal that quotes what was typed, and a key change that names
    # the vendor, are one line each, escaped.
    unknown = await vrm(vrm_env, "vendor", "end", HOSTILE + "x")
    assert unknown.returncode == 1 and unknown.stderr.count(b"\n") == 1
    assert_shown_as_text(unknown.stderr)
    hostile.key = hostile.signer = protocol.SigningKey.generate()
    changed = await vrm(vrm_env, "vendor", "add", url)
    assert changed.returncode == 3
    assert_shown_as_text(changed.stderr, whole=False)
    assert "\\x1b[2J" in changed.stderr.decode()

    # The same on a real terminal: only rich's own sequences.
    status, data = await asyncio.to_thread(run_on_pty, "-m", "agent.cli", "vendor", "list",
                                           env=vrm_env)
    assert status == 0
    assert_shown_as_text(data, terminal=True)
    status, data = await asyncio.to_thread(run_on_pty, "-m", "agent.cli", "offers",
                                           env=vrm_env)
    assert status == 0
    assert_shown_as_text(data, terminal=True)


async def test_an_inbox_url_in_a_refusal_is_shown_as_text(vrm_env, aiohttp_server) -> None:
    vendor = FakeVendor("Elsewhere")
    vendor.inbox_override = "https://evil.example/\x1b[2J\u202einbox"
    server = await aiohttp_server(vendor.app())
    assert (await vrm(vrm_env, "init")).returncode == 0
    refused = await vrm(vrm_env, "vendor", "add", str(server.make_url("")).rstrip("/"))
    assert refused.returncode == 1 and refused.stderr.count(b"\n") == 1, refused.stderr
    assert refused.stdout == b""
    assert_shown_as_text(refused.stderr, whole=False)


def test_a_relative_vrm_home_is_shown_absolute(vrm_env, tmp_path: Path) -> None:
    env = {**vrm_env, "VRM_HOME": "relative-home"}
    result = subprocess.run([sys.executable, "-m", "agent.cli", "init"], env=env,
                            capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr
    assert f"Created your store in {tmp_path / 'relative-home'}." in result.stdout


# --- vrm-vendor crm: every field a person sent ----------------------------------------

@pytest.fixture
def hostile_crm(tmp_path: Path) -> str:
    """A vendor database whose contact, lead and feedback hold the hostile text in
    every field a person fills in, received through the vendor's real inbox."""
    from tests.vendor_adapter.conftest import Person
    from vendor_adapter import Vendor

    path = str(tmp_path / "crm.db")
    vendor = Vendor.open(path, name="Bikes4U", passphrase=PASSPHRASE)
    try:
        person = Person(vendor.did)
        profile = {"given_name": HOSTILE, "family_name": HOSTILE, "email": "ann@example.org",
                   "postal_address": {"street_address": HOSTILE, "locality": HOSTILE,
                                      "region": HOSTILE, "postal_code": "LS1"}}
        for raw in (person.request(**profile),
                    person.message("intent", {"summary": HOSTILE, "category": CATEGORY}),
                    person.message("feedback", {"score": 3, "subject": HOSTILE,
                                                "comment": HOSTILE})):
            response = vendor.handle_sync(raw, protocol.MEDIA_TYPE)
            assert response.status == 200, response
    finally:
        vendor.close()
    return path


@pytest.mark.parametrize("kind", ["contacts", "leads", "feedback"])
def test_vrm_vendor_crm_shows_a_persons_text_as_text(hostile_crm: str, kind: str) -> None:
    env = {**os.environ, "VRM_VENDOR_PASSPHRASE": PASSPHRASE, "COLUMNS": "2000"}
    table = run("-m", "vendor_adapter.cli", "crm", kind, "--db", hostile_crm, env=env)
    assert table.returncode == 0, table.stderr.decode()
    assert_shown_as_text(table.stdout)
    mapped = run("-m", "vendor_adapter.cli", "crm", kind, "--db", hostile_crm,
                 "--mapping", "salesforce", env=env)
    assert mapped.returncode == 0
    assert_shown_as_text(mapped.stdout)
    as_json = run("-m", "vendor_adapter.cli", "crm", kind, "--db", hostile_crm, "--json",
                  env=env)
    assert not any(raw in as_json.stdout for raw in RAW)
    assert HOSTILE in [value for row in json.loads(as_json.stdout) for value in row.values()]
    status, data = run_on_pty("-m", "vendor_adapter.cli", "crm", kind, "--db", hostile_crm,
                              env=env)
    assert status == 0
    assert_shown_as_text(data, terminal=True)
