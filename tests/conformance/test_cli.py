"""vrm-conformance as a person runs it: a real `vrm-vendor serve` process, the
checker as another process, and an offer hook that runs `vrm-vendor offer`."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

PASSPHRASE = "conformance cli"
ENV = {**os.environ, "VRM_VENDOR_PASSPHRASE": PASSPHRASE}


@pytest.fixture(scope="module")
def vendor_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """One vendor for the module: each run of the checker is a new agent (a fresh
    key), so runs do not see each other."""
    db = tmp_path_factory.mktemp("vendor") / "crm.db"
    process = subprocess.Popen(
        [sys.executable, "-m", "vendor_adapter.cli", "serve", "--db", str(db), "--port", "0",
         "--name", "Bikes4U"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=ENV)
    try:
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), process.stderr.read()
        yield url, db
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)


def conformance(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "conformance", *args], capture_output=True,
                          text=True, env=ENV, timeout=300)


def offer_hook(db: Path) -> str:
    command = [sys.executable, "-m", "vendor_adapter.cli", "offer", "LEAD", "--db", str(db),
               "--summary", "A conformance offer", "--price", "1.00"]
    return shlex.join(command).replace("LEAD", '"$VRM_CONFORMANCE_LEAD"')


def test_the_built_in_vendor_passes_every_check(vendor_url: tuple[str, Path]) -> None:
    url, db = vendor_url
    done = conformance(url, "--json", "--offer-hook", offer_hook(db))
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["passed"] is True
    statuses = {c["name"]: c["status"] for c in report["checks"]}
    assert set(statuses.values()) == {"pass"}, statuses
    assert {"offer", "fetch.paging", "gone", "problem-documents"} <= set(statuses)
    assert all(c["section"] for c in report["checks"])


def test_without_a_hook_the_offer_checks_are_not_run_and_say_why(
        vendor_url: tuple[str, Path]) -> None:
    url, _ = vendor_url
    done = conformance(url)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    offer = next(i for i, line in enumerate(lines) if " offer " in line)
    assert lines[offer].startswith("NOT RUN") and "§5.6" in lines[offer]
    assert "--offer-hook" in lines[offer + 1]
    paging = next(line for line in lines if " fetch.paging " in line)
    assert paging.startswith("NOT RUN")
    assert next(line for line in lines if " gone " in line).startswith("PASS")
    assert "0 failed" in done.stdout


def test_a_failing_hook_fails_the_offer_check(vendor_url: tuple[str, Path]) -> None:
    url, _ = vendor_url
    done = conformance(url, "--json", "--offer-hook", "echo 'no such lead\x1b[2J' >&2; exit 3")
    assert done.returncode == 1
    offer = next(c for c in json.loads(done.stdout)["checks"] if c["name"] == "offer")
    assert offer["status"] == "fail"
    assert "status 3" in offer["reason"] and "\x1b" not in offer["reason"]


def test_nothing_listening_fails_discovery_and_skips_the_rest(tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    done = conformance(f"http://127.0.0.1:{port}", "--json")
    assert done.returncode == 1
    checks = {c["name"]: c for c in json.loads(done.stdout)["checks"]}
    assert checks["discovery"]["status"] == "fail"
    assert checks["relationship.request"]["status"] == "not run"
    assert "discovery" in checks["relationship.request"]["reason"]


def test_a_url_that_is_not_http_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    from conformance.cli import main

    assert main(["ftp://shop.example/\x1b[2J"]) == 2
    err = capsys.readouterr().err
    assert "not an http(s) URL" in err and "\x1b" not in err
