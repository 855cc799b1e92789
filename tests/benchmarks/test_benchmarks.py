"""The benchmarks still run and still check their own results (small sizes, as
real processes). Their timings are never asserted: they go in BENCHMARKS.md."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.postgres import postgres  # noqa: F401 (the session's PostgreSQL server)

ROOT = Path(__file__).resolve().parents[2]


def run_benchmark(*args: str) -> dict:
    done = subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_broadcast_delivers_to_every_vendor_in_parallel_and_in_series() -> None:
    result = run_benchmark("benchmarks.broadcast", "--vendors", "30", "--skip-limits")
    assert result["vendors"] == 30
    assert result["delivered"] == 30 and result["serial_delivered"] == 30
    assert result["attempts"] == 30 and result["errors"] == []
    for name in ("wall_s", "serial_wall_s", "agent_cpu_ms_per_msg", "vendor_cpu_ms_per_msg"):
        assert result[name] > 0


def test_inbox_benchmark_counts_only_accepted_messages() -> None:
    result = run_benchmark("benchmarks.inbox", "--messages", "60", "--people", "6",
                           "--skip-limits")
    assert result["messages"] == result["accepted"] == 60
    assert result["per_core_messages_per_s"] > 0


def test_inbox_benchmark_on_postgresql_beside_sqlite(postgres) -> None:  # noqa: F811
    with postgres.database() as dsn:
        result = run_benchmark("benchmarks.inbox", "--messages", "40", "--people", "4",
                               "--skip-limits", "--db", dsn, "--workers", "1,2")
    assert result["sqlite"]["accepted"] == 40
    assert [run["workers"] for run in result["postgresql"]] == [1, 2]
    for run in result["postgresql"]:
        assert run["accepted"] == 40
        assert run["vendor_cpu_ms_per_msg"] > 0 and run["postgres_cpu_ms_per_msg"] > 0
        assert run["messages_per_commit"] > 0
    assert result["scaling"] > 0


def test_group_commit_benchmark_compares_batches_with_one_commit_each(postgres) -> None:  # noqa: F811
    with postgres.database() as dsn:
        result = run_benchmark("benchmarks.group_commit", "--db", dsn, "--messages", "30",
                               "--people", "3")
    assert result["messages"] == 30
    for run in (result["batched"], result["one_per_commit"]):
        assert run["messages_per_s"] > 0 and run["cpu_ms_per_msg"] > 0


def test_stages_measures_every_step_of_a_message() -> None:
    result = run_benchmark("benchmarks.stages", "--rounds", "50")
    steps = ("agent_sign_us", "vendor_verify_us", "vendor_ledger_us", "vendor_receipt_us",
             "agent_receipt_us")
    assert all(result[step] > 0 for step in steps)
    assert result["message_bytes"] > 0
