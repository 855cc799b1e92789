"""``scim2-server`` (PyPI, the SCIM 2.0 reference server we test against) as a
real process on a free port, and a small blocking SCIM client to read back."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any


def _listening_port(pid: int) -> int | None:
    """The TCP port process ``pid`` listens on (Linux /proc): the server is told
    ``--port 0`` (a free port), and prints the port it was given, not the one it got."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            link = os.readlink(fd)
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # LISTEN
                return int(fields[1].rsplit(":", 1)[1], 16)
    return None


class ScimServer:
    def __init__(self, token: str) -> None:
        self.token = token
        exe = shutil.which("scim2-server", path=str(Path(sys.executable).parent))
        assert exe, "scim2-server is in the test extra"
        self.proc = subprocess.Popen(
            [exe, "--hostname", "127.0.0.1", "--port", "0", f"--bearer-token={token}"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.startswith("Serving SCIM"), self.proc.stderr.read()  # type: ignore[union-attr]
        deadline = time.monotonic() + 20
        port = None
        while port is None and time.monotonic() < deadline:
            port = _listening_port(self.proc.pid)
        assert port, "scim2-server does not listen"
        self.base_url = f"http://127.0.0.1:{port}/v2"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            self.base_url + path, data=data, method=method,
            headers={"Authorization": f"Bearer {self.token}",
                     "Content-Type": "application/scim+json"})
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                text = resp.read()
                return resp.status, json.loads(text) if text else None
        except urllib.error.HTTPError as exc:
            text = exc.read()
            return exc.code, json.loads(text) if text else None

    def users_named(self, did: str) -> list[dict[str, Any]]:
        """GET /Users?filter=userName eq "did" (RFC 7644 §3.4.2.2)."""
        flt = urllib.parse.quote(f'userName eq "{did}"')
        status, body = self.request("GET", f"/Users?filter={flt}")
        assert status == 200, body
        return body.get("Resources") or []
