"""vrm demo, as a real subprocess: it must work on a fresh machine in seconds."""

from __future__ import annotations

import os
import re
import subprocess
import sys


def run_vrm(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VRM_")}
    env["COLUMNS"] = "200"
    return subprocess.run([sys.executable, "-m", "agent", *args], capture_output=True,
                          text=True, env=env, timeout=120)


def test_demo_tells_every_vendor_and_collects_offers():
    result = run_vrm("demo", "--vendors", "6")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Started 6 vendor adapters" in out
    assert "6 of 6 vendors answered with a signed receipt" in out
    assert "4 vendors made offers; vrm sync collected 4" in out
    assert out.count("accepted") >= 12  # address change and intent, for each vendor
    # The three CRM shapes, each holding the new address.
    for field in ('"locality": "Hamburg"', '"MailingCity": "Hamburg"', '"city": "Hamburg"'):
        assert field in out
    # Each vendor knows Ada by a different DID.
    dids = set(re.findall(r"did:key:z6Mk\w+", out))
    assert len(dids) >= 3
    assert re.search(r"Done in [0-9.]+ s; every server stopped", out)


def test_demo_refuses_a_bad_vendor_count():
    result = run_vrm("demo", "--vendors", "0")
    assert result.returncode != 0
    assert result.stderr.strip() == "vrm: --vendors must be between 1 and 500, not 0"
