"""The vrm-vendor command, run as real subprocesses."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

import protocol

from .conftest import PASSPHRASE, Person, verify_receipt

ENV = {**os.environ, "VRM_VENDOR_PASSPHRASE": PASSPHRASE}


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vendor_adapter.cli", *args], env=env or ENV,
                          capture_output=True, text=True, timeout=60)


def fails(result: subprocess.CompletedProcess[str], words: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], result.stderr


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
def served(db_path: str) -> Iterator[Server]:
    server = Server(db_path, "--name", "Bikes4U")
    yield server
    if server.proc.poll() is None:
        server.stop()


def test_serve_offer_and_list(served: Server, db_path: str) -> None:
    assert served.discovery["name"] == "Bikes4U"
    assert served.discovery["inbox"] == served.url + "/inbox"
    person = Person(served.discovery["id"])
    status, body = served.post(person.request(given_name="Ann", email="ann@example.org"))
    assert status == 200
    assert verify_receipt(body, served.discovery, person.did)["body"]["status"] == "accepted"
    intent = person.envelope("intent", {"summary": "touring bike", "category": "bikes"})
    assert served.post(person.sign_payload(intent))[0] == 200

    contacts = run("crm", "contacts", "--db", db_path, "--json")
    assert contacts.returncode == 0, contacts.stderr
    assert json.loads(contacts.stdout)[0]["given_name"] == "Ann"
    table = run("crm", "contacts", "--db", db_path)
    assert table.returncode == 0 and "Ann" in table.stdout
    leads = json.loads(run("crm", "leads", "--db", db_path, "--json").stdout)
    assert leads[0]["summary"] == "touring bike"
    sf = json.loads(run("crm", "contacts", "--db", db_path, "--json", "--mapping",
                        "salesforce").stdout)
    assert sf[0]["Email"] == "ann@example.org"
    assert len(json.loads(run("crm", "activities", "--db", db_path, "--json").stdout)) == 2
    assert json.loads(run("crm", "feedback", "--db", db_path, "--json").stdout) == []

    # an offer made from another process, while the server runs, reaches the agent
    offer = run("offer", str(leads[0]["id"]), "--db", db_path, "--summary", "Trek 520",
                "--price", "749.00", "--currency", "EUR",
                "--valid-until", "2030-01-01T00:00:00Z")
    assert offer.returncode == 0, offer.stderr
    offer_id = offer.stdout.strip()
    status, body = served.post(person.message("messages.fetch", {"after": None}))
    receipt = verify_receipt(body, served.discovery, person.did)["body"]
    payload = json.loads(protocol.b64url_decode(receipt["messages"][0]["payload"], what="p"))
    assert payload["id"] == offer_id and payload["thread"] == intent["id"]
    assert json.loads(run("crm", "leads", "--db", db_path, "--json").stdout)[0]["status"] == "offered"

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
