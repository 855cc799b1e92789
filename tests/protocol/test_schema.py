"""python -m protocol schema DIR, and the committed schemas/ directory."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import protocol

ROOT = Path(__file__).resolve().parents[2]


def run_schema(directory: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "protocol", "schema", str(directory), *extra],
                          capture_output=True, text=True, cwd=ROOT)


def test_writes_one_schema_per_registered_type(tmp_path):
    result = run_schema(tmp_path)
    assert result.returncode == 0, result.stderr
    names = {p.name for p in tmp_path.iterdir()}
    assert names == {f"{t}.json" for t in protocol.CORE_REGISTRY} | {"jws.json", "discovery.json"}
    feedback = json.loads((tmp_path / "feedback.json").read_text())
    assert feedback["$id"] == "urn:vrm:schema:1:feedback"
    assert feedback["properties"]["type"]["const"] == "feedback"
    assert "from" in feedback["required"] and feedback["additionalProperties"] is False


def test_committed_schemas_are_up_to_date(tmp_path):
    run_schema(tmp_path)
    for path in tmp_path.iterdir():
        committed = ROOT / "schemas" / path.name
        assert committed.read_text() == path.read_text(), (
            f"schemas/{path.name} is stale: run python -m protocol schema schemas")


def test_extension_registries_are_included(tmp_path):
    result = run_schema(tmp_path, "--registry", "tests.protocol.test_registry:registry_for_schema")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "x-org.example.loyalty.points.json").exists()


def test_a_bad_registry_is_one_clear_error(tmp_path):
    result = run_schema(tmp_path, "--registry", "no.such.module:registry")
    assert result.returncode == 2
    assert result.stderr.startswith("error: cannot load the registry")
    assert "Traceback" not in result.stderr
