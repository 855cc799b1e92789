"""``vrm-vendor serve --forward-*`` and ``vrm-vendor forward``, as real processes:
the vendor is killed (SIGKILL) with events queued, and delivers them after a
restart."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from contextlib import closing
from pathlib import Path
from typing import Any

import protocol
from tests.protocol.jsonschema_subset import is_valid
from vendor_adapter import Vendor
from vendor_adapter.forward import Webhook

from ..conftest import PASSPHRASE, Person, verify_receipt
from .conftest import Receiver, new_secret, queue_rows


def env(secret: str | None = None, token: str | None = None) -> dict[str, str]:
    e = {**os.environ, "VRM_VENDOR_PASSPHRASE": PASSPHRASE}
    e.pop("VRM_VENDOR_WEBHOOK_SECRET", None)
    e.pop("VRM_VENDOR_SCIM_TOKEN", None)
    if secret is not None:
        e["VRM_VENDOR_WEBHOOK_SECRET"] = secret
    if token is not None:
        e["VRM_VENDOR_SCIM_TOKEN"] = token
    return e


def run(*args: str, environ: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vendor_adapter.cli", *args], env=environ,
                          capture_output=True, text=True, timeout=60)


def fails(result: subprocess.CompletedProcess[str], words: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], result.stderr


class Served:
    def __init__(self, db: str, environ: dict[str, str], *extra: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "vendor_adapter.cli", "serve", "--db", db, "--port", "0",
             "--name", "Bikes4U", *extra], env=environ, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip()
        assert self.url.startswith("http://127.0.0.1:"), self.proc.stderr.read()  # type: ignore[union-attr]
        with urllib.request.urlopen(self.url + "/.well-known/vrm", timeout=10) as resp:
            self.discovery: dict[str, Any] = json.load(resp)

    def send(self, person: Person, raw: bytes) -> None:
        request = urllib.request.Request(self.discovery["inbox"], data=raw, method="POST",
                                         headers={"Content-Type": protocol.MEDIA_TYPE})
        with urllib.request.urlopen(request, timeout=10) as resp:
            receipt = verify_receipt(resp.read(), self.discovery, person.did)
        assert receipt["body"]["status"] == "accepted"

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)


def wait(predicate: Any, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def message_id(raw: bytes) -> str:
    return json.loads(protocol.b64url_decode(json.loads(raw)["payload"], what="p"))["id"]


def test_a_killed_vendor_delivers_its_queue_after_restart(db_path: str,
                                                           receiver: Receiver) -> None:
    environ = env(secret=receiver.secret)
    receiver.kill()  # nobody listens: the events queue up and fail
    served = Served(db_path, environ, "--forward-webhook", receiver.url)
    sent: dict[str, list[str]] = {}
    try:
        for _ in range(3):
            person = Person(served.discovery["id"])
            raws = [person.request(given_name="Ann", email="ann@example.org")]
            raws += [person.message("contact.update", {"changes": {"family_name": f"F{n}"}})
                     for n in range(3)]
            raws.append(person.message("feedback", {"score": 9}))
            for raw in raws:
                served.send(person, raw)
            sent[person.did] = [message_id(raw) for raw in raws]
        wait(lambda: any(row[5] > 0 for row in queue_rows(db_path)), "a failed attempt")
    finally:
        served.kill()  # with 15 events queued

    assert len(queue_rows(db_path)) == 15
    status = run("forward", "status", "--db", db_path, "--json", environ=environ)
    assert status.returncode == 0, status.stderr
    (target,) = json.loads(status.stdout)
    schema = Path(__file__).resolve().parents[3] / "schemas/cli/vrm-vendor-forward-status.json"
    assert is_valid([target], json.loads(schema.read_text())), target
    assert target["target"] == receiver.url and target["kind"] == "webhook"
    assert target["queued"] == 15 and target["delivered"] == 0 and target["failing"] >= 1
    assert "ClientConnectorError" in target["last_error"] and target["next_attempt"]
    readable = run("forward", "status", "--db", db_path, environ=environ)
    assert "15 queued, 0 delivered" in readable.stdout and "last error" in readable.stdout

    receiver.start()  # on the same port
    retried = run("forward", "retry", "--db", db_path, receiver.url, environ=environ)
    assert retried.returncode == 0 and "due now" in retried.stderr, retried.stderr
    served = Served(db_path, environ, "--forward-webhook", receiver.url)
    try:
        wait(lambda: len(receiver.events()) == 15 and not queue_rows(db_path),
             "every event delivered")
    finally:
        served.kill()
    events = receiver.events()
    assert len({(e["type"], e["message_id"]) for e in events}) == 15
    for did, ids in sent.items():
        assert [e["message_id"] for e in events if e["did"] == did] == ids
    assert all(verified for _, verified in receiver.attempts())
    (target,) = json.loads(run("forward", "status", "--db", db_path, "--json",
                               environ=environ).stdout)
    assert target["delivered"] == 15 and target["queued"] == 0 and target["failing"] == 0


def test_forwarding_options_fail_in_one_sentence(db_path: str) -> None:
    fails(run("serve", "--db", db_path, "--port", "0", "--forward-scim",
              "http://127.0.0.1:9/scim", environ=env()), "VRM_VENDOR_SCIM_TOKEN")
    fails(run("serve", "--db", db_path, "--port", "0", "--forward-webhook",
              "http://127.0.0.1:9/hook", environ=env(secret="hunter2")), "whsec_")
    Vendor.open(db_path, name="Bikes4U", passphrase=PASSPHRASE).close()
    fails(run("forward", "retry", "--db", db_path, "https://nowhere.example/x",
              environ=env()), "no forwarding target")
    empty = run("forward", "status", "--db", db_path, environ=env())
    assert empty.returncode == 0 and "no forwarding targets" in empty.stderr


def test_status_shows_a_receivers_words_without_control_sequences(db_path: str) -> None:
    url = "http://127.0.0.1:9/hook"
    Vendor.open(db_path, name="Bikes4U", passphrase=PASSPHRASE,
                forward=[Webhook(url, secret=new_secret())]).close()
    with closing(sqlite3.connect(db_path)) as conn, conn:
        # What a hostile receiver's reason phrase could leave: clear the screen, a title.
        conn.execute("UPDATE vrm_forward_target SET last_error = ?, last_failure = 0",
                     ("HTTP 500 \x1b[2J\x1b]0;owned\x07\u202e",))
    shown = run("forward", "status", "--db", db_path, environ=env())
    assert shown.returncode == 0, shown.stderr
    assert f"{url} [webhook, enabled]: 0 queued, 0 delivered" in shown.stdout
    assert "HTTP 500" in shown.stdout
    assert not any(c in shown.stdout for c in ("\x1b", "\x07", "\u202e"))
