"""The database file: what opening it may write."""

from __future__ import annotations

import os
import sqlite3
import subprocess

import pytest

from .conftest import PASSPHRASE

#: The installed console script, as a vendor runs it.
VRM_VENDOR = "/work/main/.venv/bin/vrm-vendor"
ENV = {**os.environ, "VRM_VENDOR_PASSPHRASE": PASSPHRASE}


def _snapshot(path: str) -> tuple[bytes, list[str], list[tuple], str]:
    """The file's bytes, the files beside it, its schema and its journal mode."""
    with open(path, "rb") as f:
        content = f.read()
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        schema = conn.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall()
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
    finally:
        conn.close()
    return content, sorted(os.listdir(os.path.dirname(path))), schema, mode


@pytest.mark.parametrize("command", [
    ["crm", "leads"],
    ["crm", "contacts", "--json"],
    ["offer", "1", "--summary", "A bike", "--price", "10.00"],
])
def test_the_cli_refuses_a_file_that_is_not_a_vendor_database(tmp_path, command) -> None:
    other = str(tmp_path / "other.sqlite")
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total TEXT)")
    conn.execute("INSERT INTO invoices (total) VALUES ('12.50')")
    conn.commit()
    conn.close()
    before = _snapshot(other)
    result = subprocess.run([VRM_VENDOR, *command, "--db", "other.sqlite"], env=ENV,
                            cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0] == ("vrm-vendor: other.sqlite is not a vendor database; "
                        "create one with `vrm-vendor serve --db other.sqlite`")
    assert result.stdout == ""
    assert _snapshot(other) == before
