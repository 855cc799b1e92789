"""Fixtures for the dashboard's tests: real processes and a real browser.

- ``vendor_servers``: a factory starting ``vrm-vendor serve --port 0`` as
  subprocesses (each with its own SQLite CRM); their URLs are read from the
  first line they print.
- ``dashboard``: ``vrm init`` then ``vrm ui --no-browser`` as subprocesses on a
  temporary VRM_HOME; the URL is the first line ``vrm ui`` prints. On teardown
  it is stopped with SIGINT and must exit 0.
- ``browser``: Debian's Chromium (/usr/bin/chromium) driven by Playwright; no
  browser is downloaded.
- ``screenshots``: the folder pages are written to (tests/output/ui, gitignored).
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
PASSPHRASE = "correct horse battery staple"
VENDOR_PASSPHRASE = "vendor passphrase for tests"
OUTPUT = Path(__file__).resolve().parents[1] / "output" / "ui"


def first_line(proc: subprocess.Popen[str], *, timeout: float = 30.0) -> str:
    """The first line a process prints on stdout, or fail with what it said on stderr."""
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    line = proc.stdout.readline() if ready else ""
    if not line:
        proc.kill()
        _, err = proc.communicate(timeout=10)
        raise AssertionError(f"no address printed; stderr: {err}")
    return line.strip()


def stop(proc: subprocess.Popen[str]) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


@dataclass
class VendorServer:
    name: str
    url: str
    db: Path
    proc: subprocess.Popen[str]

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run ``vrm-vendor ARGS --db DB`` (e.g. crm leads --json, offer …)."""
        return subprocess.run(
            [sys.executable, "-m", "vendor_adapter.cli", *args, "--db", str(self.db)],
            env=vendor_env(), capture_output=True, text=True, timeout=60, check=True)


def vendor_env() -> dict[str, str]:
    return {**os.environ, "VRM_VENDOR_PASSPHRASE": VENDOR_PASSPHRASE}


@pytest.fixture
def vendor_servers(tmp_path: Path) -> Iterator[Callable[..., list[VendorServer]]]:
    started: list[VendorServer] = []

    def start(*names: str) -> list[VendorServer]:
        procs = []
        for number, name in enumerate(names, start=len(started)):
            db = tmp_path / f"vendor-{number}.db"
            proc = subprocess.Popen(
                [sys.executable, "-m", "vendor_adapter.cli", "serve", "--db", str(db),
                 "--port", "0", "--name", name],
                env=vendor_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            procs.append((name, db, proc))
        servers = [VendorServer(name, first_line(proc), db, proc) for name, db, proc in procs]
        started.extend(servers)
        return servers

    yield start
    for server in started:
        stop(server.proc)


@dataclass
class Dashboard:
    url: str
    port: int
    home: Path
    proc: subprocess.Popen[str]

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def agent_env(home: Path) -> dict[str, str]:
    return {**os.environ, "VRM_HOME": str(home), "VRM_PASSPHRASE": PASSPHRASE}


@pytest.fixture
def dashboard(tmp_path: Path) -> Iterator[Dashboard]:
    home = tmp_path / "agent"
    env = agent_env(home)
    subprocess.run([sys.executable, "-m", "agent", "init", "--name", "Ann"], env=env,
                   check=True, capture_output=True, timeout=60)
    proc = subprocess.Popen([sys.executable, "-m", "agent", "ui", "--no-browser"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = first_line(proc)
    port = int(url.split("://127.0.0.1:", 1)[1].split("/", 1)[0])
    board = Dashboard(url, port, home, proc)
    yield board
    assert stop(proc) == 0, "vrm ui must stop cleanly on Ctrl-C"


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def screenshots() -> Path:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    return OUTPUT
