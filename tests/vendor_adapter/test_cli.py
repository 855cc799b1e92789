"""The vrm-vendor command, run as real subprocesses."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import protocol
from vendor_adapter.aiohttp import ServerLimits

from .conftest import PASSPHRASE, Person, exchange, verify_receipt

ENV = {**os.environ, "VRM_VENDOR_PASSPHRASE": PASSPHRASE}


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vendor_adapter.cli", *args], env=env or ENV,
                          capture_output=True, text=True, timeout=60)


def fails(result: subprocess.CompletedProcess[str], words: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr and "usage:" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], result.stderr
    assert result.stdout == ""


class Server:
    def __init__(self, db: str, *extra: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "vendor_adapter.cli", "serve", "--db", db, "--port", "0",
             *extra], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip()
        assert self.url.startswith("http://127.0.0.1:"), self.proc.stderr.read()  # type: ignore[union-attr]
        with urllib.request.urlopen(self.url + "/.well-known/vrm", timeout=10) as resp:
            self.discovery: dict[str, Any] = json.load(resp)

    def post(self, raw: bytes) -> tuple[int, bytes]:
        request = urllib.request.Request(self.discovery["inbox"], data=raw, method="POST",
                                         headers={"Content-Type": protocol.MEDIA_TYPE})
        try:
            with urllib.request.urlopen(request, timeout=10) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def stop(self, signum: int = signal.SIGTERM) -> int:
        self.proc.send_signal(signum)
        return self.proc.wait(timeout=30)


@pytest.fixture
def served(store: str) -> Iterator[Server]:
    server = Server(store, "--name", "Bikes4U")
    yield server
    if server.proc.poll() is None:
        server.stop()


def test_serve_offer_and_list(served: Server, store: str) -> None:
    assert served.discovery["name"] == "Bikes4U"
    assert served.discovery["inbox"] == served.url + "/inbox"
    person = Person(served.discovery["id"])
    status, body = served.post(person.request(given_name="Ann", email="ann@example.org"))
    assert status == 200
    assert verify_receipt(body, served.discovery, person.did)["body"]["status"] == "accepted"
    intent = person.envelope("intent", {"summary": "touring bike", "category": "bikes"})
    assert served.post(person.sign_payload(intent))[0] == 200

    contacts = run("crm", "contacts", "--db", store, "--json")
    assert contacts.returncode == 0, contacts.stderr
    assert json.loads(contacts.stdout)[0]["given_name"] == "Ann"
    table = run("crm", "contacts", "--db", store)
    assert table.returncode == 0 and "Ann" in table.stdout
    leads = json.loads(run("crm", "leads", "--db", store, "--json").stdout)
    assert leads[0]["summary"] == "touring bike"
    sf = json.loads(run("crm", "contacts", "--db", store, "--json", "--mapping",
                        "salesforce").stdout)
    assert sf[0]["Email"] == "ann@example.org"
    assert len(json.loads(run("crm", "activities", "--db", store, "--json").stdout)) == 2
    assert json.loads(run("crm", "feedback", "--db", store, "--json").stdout) == []

    # an offer made from another process, while the server runs, reaches the agent
    offer = run("offer", str(leads[0]["id"]), "--db", store, "--summary", "Trek 520",
                "--price", "749.00", "--currency", "EUR",
                "--valid-until", "2030-01-01T00:00:00Z")
    assert offer.returncode == 0, offer.stderr
    offer_id = offer.stdout.strip()
    status, body = served.post(person.message("messages.fetch", {"after": None}))
    receipt = verify_receipt(body, served.discovery, person.did)["body"]
    payload = json.loads(protocol.b64url_decode(receipt["messages"][0]["payload"], what="p"))
    assert payload["id"] == offer_id and payload["thread"] == intent["id"]
    assert json.loads(run("crm", "leads", "--db", store, "--json").stdout)[0]["status"] == "offered"

    assert served.stop(signal.SIGTERM) == 0


def test_serve_stops_cleanly_on_sigint(db_path: str) -> None:
    server = Server(db_path)
    assert server.stop(signal.SIGINT) == 0
    assert "Traceback" not in server.proc.stderr.read()  # type: ignore[union-attr]


def test_mistakes_are_one_sentence(db_path: str, tmp_path: Any) -> None:
    no_pass = {k: v for k, v in ENV.items() if k != "VRM_VENDOR_PASSPHRASE"}
    fails(run("serve", "--db", db_path, env=no_pass), "VRM_VENDOR_PASSPHRASE")
    fails(run("crm", "contacts", "--db", str(tmp_path / "none.db")), "vrm-vendor serve")
    server = Server(db_path)
    try:
        port = server.url.rsplit(":", 1)[1]
        fails(run("serve", "--db", db_path, "--port", port), "cannot listen")
    finally:
        server.stop()
    fails(run("crm", "leads", "--db", db_path, env={**ENV, "VRM_VENDOR_PASSPHRASE": "nope"}),
          "passphrase is wrong")
    fails(run("offer", "7", "--db", db_path, "--summary", "x", "--price", "1.00"), "no lead 7")
    fails(run("offer", "abc", "--db", db_path, "--summary", "x", "--price", "1.00"),
          "not a lead id")
    fails(run("serve", "--db", str(tmp_path / "no" / "dir.db")), "does not exist")
    fails(run("crm", "leads", "--db", db_path, "--name", "Other"), "no vendor named")


@pytest.mark.parametrize("argv, words", [
    (["serve", "--port", "abc", "--db", "x.db"],
     "vrm-vendor serve: --port must be a number from 0 to 65535, not 'abc' "
     "(see vrm-vendor serve --help)"),
    (["serve", "--db", "x.db", "--port", "70000"], "--port must be a number from 0 to 65535"),
    (["serve"], "vrm-vendor serve: --db is required (see vrm-vendor serve --help)"),
    (["serve", "--db"], "--db needs a value"),
    (["serve", "--db", "x.db", "--header-timeout", "soon"],
     "--header-timeout must be a number of seconds above 0, not 'soon'"),
    (["serve", "--db", "x.db", "--max-connections", "0"],
     "--max-connections must be a whole number above 0, not '0'"),
    (["serve", "--db", "x.db", "--verbose"],
     "vrm-vendor serve: --verbose is not an option of vrm-vendor serve"),
    (["launch"], "vrm-vendor: 'launch' is not a command; use serve, crm, offer, offers, "
                 "offer withdraw, forward or migrate (see vrm-vendor --help)"),
    ([], "vrm-vendor: name a command: serve, crm, offer, offers, offer withdraw, forward "
         "or migrate (see vrm-vendor --help)"),
    (["crm", "--db", "x.db"], "vrm-vendor crm: name the records to list: "
                              "activities, contacts, feedback, leads"),
    (["crm", "people", "--db", "x.db"],
     "'people' is not a kind of record; use activities, contacts, feedback or leads"),
    (["crm", "leads", "--db", "x.db", "--mapping", "sap"],
     "'sap' is not a mapping; use default, hubspot or salesforce"),
    (["crm", "leads", "--db", "x.db", "open"], "vrm-vendor crm: it does not take 'open'"),
    (["offer", "--db", "x.db"], "name the lead to make the offer for"),
    (["offer", "1", "--db", "x.db"], "--summary and --price are required"),
])
def test_command_line_mistakes_are_one_sentence(argv: list[str], words: str,
                                                tmp_path: Any) -> None:
    result = subprocess.run([sys.executable, "-m", "vendor_adapter.cli", *argv], env=ENV,
                            capture_output=True, text=True, timeout=60, cwd=tmp_path)
    fails(result, words)
    assert result.returncode == 2  # a usage mistake, as argparse's own
    assert not (tmp_path / "x.db").exists()  # nothing was created


def test_help_still_prints_the_usage() -> None:
    for argv in (["--help"], ["serve", "--help"], ["crm", "-h"], ["offer", "--help"]):
        result = run(*argv)
        assert result.returncode == 0 and result.stdout.startswith("usage: vrm-vendor")
    serve_help = " ".join(run("serve", "--help").stdout.split())
    defaults = ServerLimits()  # the help states the library's defaults
    assert f"(default: {defaults.header_timeout:g})" in serve_help
    assert f"(default: {defaults.max_connections}," in serve_help


def connections(pid: int) -> int:
    """How many TCP connections the process holds open, from its own file
    descriptors (/proc/PID/fd) and the kernel's socket table: every socket of
    its that is not listening."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            link = os.readlink(fd)
        except OSError:  # closed while we looked
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    count = 0
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            count += fields[9] in inodes and fields[3] != "0A"  # 0A: LISTEN
    return count


def test_serve_cuts_off_clients_that_trickle_their_headers(db_path: str) -> None:
    # A slowloris: 100 connections, each sending one header line every 0.1 s
    # (the whole head would take 4 s), against a 0.5 s head deadline.
    server = Server(db_path, "--header-timeout", "0.5")
    try:
        host, port = server.url.removeprefix("http://").rsplit(":", 1)
        trickle = [b"X-Slow-%d: 1\r\n" % i for i in range(40)]
        held = []

        async def attack() -> list[Any]:
            async def look() -> None:
                await asyncio.sleep(0.3)
                held.append(connections(server.proc.pid))

            results = await asyncio.gather(look(), *(
                exchange(host, int(port), b"POST /inbox HTTP/1.1\r\nHost: v\r\n", trickle,
                         pause=0.1) for _ in range(100)))
            return results[1:]

        results = asyncio.run(attack())
        assert held[0] > 50  # the server did hold them, for a while
        # It cut every one off while it was still sending: a 408 problem
        # document, then the end of the connection.
        assert all(r.cut_off for r in results)
        assert {r.status for r in results} == {408}
        assert {r.problem()["type"] for r in results} == {protocol.PROBLEM_PREFIX
                                                          + "request-timeout"}
        # ... and holds none of them now.
        for _ in range(100):
            if connections(server.proc.pid) == 0:
                break
            time.sleep(0.05)
        assert connections(server.proc.pid) == 0
        person = Person(server.discovery["id"])
        assert server.post(person.request())[0] == 200  # and it serves on
    finally:
        assert server.stop() == 0


# --- readable tables and documented JSON (issue 11 §4) -----------------------------------

def _crm_schema(kind: str) -> dict[str, Any]:
    root = Path(__file__).resolve().parents[2]
    return json.loads((root / "schemas" / "cli" / f"vrm-vendor-crm-{kind}.json").read_text())


def test_crm_json_matches_its_schema_and_tables_are_readable(served: Server,
                                                             store: str) -> None:
    from tests.protocol.jsonschema_subset import is_valid
    from vendor_adapter import HUBSPOT, SALESFORCE

    person = Person(served.discovery["id"])
    assert served.post(person.request(given_name="Ann", family_name="Lee",
                                      email="ann@example.org",
                                      postal_address={"locality": "Leeds"}))[0] == 200
    for type_, body in (("intent", {"summary": "touring bike", "category": "bikes",
                                    "budget": {"max": "800", "currency": "EUR"}}),
                        ("feedback", {"score": 9, "subject": "service",
                                      "comment": "quick and kind"})):
        assert served.post(person.message(type_, body))[0] == 200
    for kind in ("contacts", "leads", "activities", "feedback"):
        rows = json.loads(run("crm", kind, "--db", store, "--json").stdout)
        assert rows and is_valid(rows, _crm_schema(kind)), (kind, rows)
    for mapping in (SALESFORCE, HUBSPOT):
        for kind, table in (("contacts", "contact"), ("leads", "lead")):
            rows = json.loads(run("crm", kind, "--db", store, "--json", "--mapping",
                                  mapping.name).stdout)
            assert set(rows[0]) == set(mapping.tables[table].values())

    narrow = {**ENV, "COLUMNS": "80"}
    # The feedback table shows the comment; a DID never becomes an emoji.
    feedback = run("crm", "feedback", "--db", store, env=narrow)
    assert "quick and kind" in feedback.stdout and "promoter" in feedback.stdout
    # A mapping gives a readable table: the few default columns, under its names.
    sf = run("crm", "contacts", "--db", store, "--mapping", "salesforce", env=narrow)
    assert sf.returncode == 0
    header = sf.stdout.splitlines()[1].split()
    assert header[:3] == ["FirstName", "LastName", "Email"] and "MailingCity" in header
    assert "Leeds" in sf.stdout and "Ann" in sf.stdout
    # --columns chooses them, by the mapping's names; --json too.
    chosen = run("crm", "contacts", "--db", store, "--mapping", "hubspot", "--columns",
                 "vrm_did,email", env=narrow)
    assert chosen.stdout.splitlines()[1].split() == ["vrm_did", "email"]
    assert "🔑" not in chosen.stdout and "did:key:z6Mk…" in chosen.stdout
    assert json.loads(run("crm", "contacts", "--db", store, "--json", "--columns",
                          "did,email").stdout) == [{"did": person.did,
                                                    "email": "ann@example.org"}]
    fails(run("crm", "contacts", "--db", store, "--mapping", "salesforce", "--columns",
              "FirstName,given_name"),
          "--columns: given_name is not a column of contacts with --mapping salesforce; "
          "the columns are AccountNumber__c, FirstName")
    for kind in ("contacts", "leads", "activities", "feedback"):
        for mapping in ("default", "salesforce", "hubspot"):
            table = run("crm", kind, "--db", store, "--mapping", mapping, env=narrow)
            assert table.returncode == 0
            assert max(map(len, table.stdout.splitlines())) <= 80, table.stdout
    # vrm-vendor --version
    assert run("--version").stdout.startswith("vrm-vendor ")
