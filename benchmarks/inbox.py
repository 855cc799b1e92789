"""The vendor inbox alone: verified-and-recorded messages per second per core.

    python -m benchmarks.inbox [--messages 5000] [--people 200] [--concurrency 64] [--skip-limits]
    python -m benchmarks.inbox --db postgresql://user@host/db [--workers 1,2] [...]

One vendor (a ``benchmarks.vendor_farm`` process, as ``vrm-vendor serve`` would
run it) receives ``--messages`` contact.update messages from ``--people``
related people, posted by this process over one aiohttp session. The messages
are signed before the clock starts, so the load generator spends its time on
HTTP only. Every answer must be a receipt ``accepted``, checked after the run.

The figure issue 3 asks for is ``per_core_messages_per_s``: messages divided by
the vendor process's own CPU seconds (event loop and group-commit writer
thread together), so it does not depend on how fast the load generator is.
Beside it, the bare Ed25519 verify rate measured in the same run: one verify
per message is the floor under everything else the inbox does.

With ``--db postgresql://...`` the same load goes, in one run, to SQLite and
then to ``vrm-vendor serve --db <dsn> --workers N`` for each N of
``--workers`` (a new vendor each time). CPU is read from /proc (Linux): the
serve process and its workers, and the PostgreSQL server's processes (the
postmaster's children: the backends serving the workers, the WAL writer and
the rest), so ``postgres_cpu_ms_per_msg`` is what the database costs per
message. ``scaling`` is messages/s with the most workers over messages/s with
the fewest. ``messages_per_commit`` is messages over PostgreSQL's own count of
commits in the run (``pg_stat_database.xact_commit``, reads included): how
many messages one group commit carries.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from pathlib import Path

import aiohttp

import protocol
from benchmarks.broadcast import start_farms, stop_farms
from benchmarks.limits import ed25519_rates

_JOSE = {"Content-Type": protocol.MEDIA_TYPE}


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _message(model: type[protocol.Message], key: protocol.SigningKey, to: str,
             body: protocol.WireModel) -> bytes:
    return protocol.sign(model(id=protocol.new_message_id(), sender=key.did, to=to,
                               created=_now(), body=body), key)


async def _post_all(session: aiohttp.ClientSession, inbox: str, messages: list[bytes],
                    concurrency: int) -> list[tuple[int, bytes]]:
    semaphore = asyncio.Semaphore(concurrency)

    async def post(raw: bytes) -> tuple[int, bytes]:
        async with semaphore:
            async with session.post(inbox, data=raw, headers=_JOSE) as response:
                return response.status, await response.read()

    return await asyncio.gather(*(post(raw) for raw in messages))


async def _stats(session: aiohttp.ClientSession, url: str) -> dict[str, float]:
    async with session.get(url) as response:
        return await response.json()


Sampler = Callable[[aiohttp.ClientSession], Awaitable[dict[str, float]]]


def farm_sampler(stats_url: str) -> Sampler:
    """The vendor farm's own account of its CPU (GET /_stats)."""
    async def sample(session: aiohttp.ClientSession) -> dict[str, float]:
        return await _stats(session, stats_url)
    return sample


async def run(base: str, stats_url: str | Sampler, args: argparse.Namespace
              ) -> dict[str, object]:
    sample = farm_sampler(stats_url) if isinstance(stats_url, str) else stats_url
    connector = aiohttp.TCPConnector(limit=args.concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        async with session.get(base + protocol.WELL_KNOWN_PATH) as response:
            document = protocol.parse_discovery(await response.read(),
                                                url=base + protocol.WELL_KNOWN_PATH)
        vendor, inbox = document.id, document.inbox
        people = [protocol.SigningKey.generate() for _ in range(args.people)]
        requests = [_message(protocol.RelationshipRequest, key, vendor,
                             protocol.RelationshipRequestBody()) for key in people]
        answers = await _post_all(session, inbox, requests, args.concurrency)
        if any(status != 200 for status, _ in answers):
            raise SystemExit("the vendor refused a relationship.request")
        body = protocol.ContactUpdateBody(
            changes=protocol.ProfileChanges.model_validate({"postal_address": {
                "locality": "Hamburg", "postal_code": "20354", "country": "DE"}}))
        updates = [_message(protocol.ContactUpdate, people[n % len(people)], vendor, body)
                   for n in range(args.messages)]

        before = await sample(session)
        start = time.perf_counter()
        answers = await _post_all(session, inbox, updates, args.concurrency)
        wall = time.perf_counter() - start
        after = await sample(session)

    accepted = 0
    key = document.key
    for (status, raw), person in zip(answers, (people[n % len(people)]
                                               for n in range(args.messages))):
        receipt = protocol.parse(raw, now=_now(), keys=protocol.pinned_keys(key),
                                 recipient=person.did)
        if status == 200 and receipt.body.status == "accepted":
            accepted += 1
    if accepted != args.messages:
        raise SystemExit(f"only {accepted} of {args.messages} messages were accepted")
    vendor_cpu = after["cpu_s"] - before["cpu_s"]
    result: dict[str, object] = {
        "messages": args.messages, "people": args.people, "concurrency": args.concurrency,
        "accepted": accepted,
        "wall_s": round(wall, 3),
        "messages_per_s": round(args.messages / wall),
        "vendor_cpu_ms_per_msg": round(1000 * vendor_cpu / args.messages, 3),
        "per_core_messages_per_s": round(args.messages / vendor_cpu),
    }
    if "writer_cpu_s" in after:
        writer_cpu = after["writer_cpu_s"] - before["writer_cpu_s"]
        result["vendor_writer_cpu_ms_per_msg"] = round(1000 * writer_cpu / args.messages, 3)
    if "max_rss_kb" in after:
        result["vendor_max_rss_mb"] = round(after["max_rss_kb"] / 1024, 1)
    if "postgres_cpu_s" in after:
        pg_cpu = after["postgres_cpu_s"] - before["postgres_cpu_s"]
        commits = after["commits"] - before["commits"]
        result["postgres_cpu_ms_per_msg"] = round(1000 * pg_cpu / args.messages, 3)
        result["total_cpu_ms_per_msg"] = round(1000 * (pg_cpu + vendor_cpu) / args.messages, 3)
        result["messages_per_commit"] = round(args.messages / max(1, commits), 1)
    return result


# --- PostgreSQL: vrm-vendor serve --workers N, CPU from /proc -----------------------------

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _proc_stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds) of a process, from /proc/<pid>/stat."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / _TICK


def _tree_cpu(root: int) -> float:
    """CPU seconds of ``root`` and its children (not grandchildren)."""
    total = 0.0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _proc_stat(int(entry))
            if stat is not None and (int(entry) == root or stat[0] == root):
                total += stat[1]
    return total


def postgres_sampler(dsn: str, serve_pid: int) -> Sampler:
    import psycopg

    with psycopg.connect(dsn) as conn:  # its backend's parent is the postmaster
        stat = _proc_stat(conn.execute("SELECT pg_backend_pid()").fetchone()[0])
    if stat is None:
        raise SystemExit("the PostgreSQL server must run on this machine to measure its CPU")
    postmaster = stat[0]

    async def sample(session: aiohttp.ClientSession) -> dict[str, float]:
        with psycopg.connect(dsn, autocommit=True) as conn:
            commits = conn.execute("SELECT xact_commit FROM pg_stat_database "
                                   "WHERE datname = current_database()").fetchone()[0]
            conn.execute("SELECT pg_stat_clear_snapshot()")
        return {"cpu_s": _tree_cpu(serve_pid), "postgres_cpu_s": _tree_cpu(postmaster),
                "commits": float(commits)}

    return sample


def _serve(db: str, workers: int, name: str) -> tuple[subprocess.Popen[str], str]:
    serve = subprocess.Popen(
        [sys.executable, "-m", "vendor_adapter.cli", "serve", "--db", db, "--port", "0",
         # A fresh vendor for each run, beside the earlier runs' (--new-vendor).
         "--name", name, "--new-vendor", "--workers", str(workers),
         "--max-connections", "4000"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env={**os.environ, "VRM_VENDOR_PASSPHRASE": "x"})
    assert serve.stdout is not None
    base = serve.stdout.readline().strip()
    if not base:
        raise SystemExit("vrm-vendor serve did not start")
    deadline = time.monotonic() + 60
    import urllib.request
    while True:  # the workers listen shortly after the URL is printed
        try:
            urllib.request.urlopen(base + protocol.WELL_KNOWN_PATH, timeout=5).close()
            return serve, base
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit("vrm-vendor serve did not answer") from None
            time.sleep(0.05)


def run_postgres(dsn: str, workers: int, args: argparse.Namespace) -> dict[str, object]:
    serve, base = _serve(dsn, workers, f"bench-{secrets.token_hex(4)}")
    try:
        result = asyncio.run(run(base, postgres_sampler(dsn, serve.pid), args))
    finally:
        serve.terminate()
        serve.wait(timeout=60)
    return {"workers": workers, **result}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.inbox")
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--people", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--skip-limits", action="store_true",
                        help="do not measure the bare Ed25519 verify rate")
    parser.add_argument("--db", help="a postgresql:// URI: measure PostgreSQL beside SQLite")
    parser.add_argument("--workers", default="1,2",
                        help="with --db: the worker counts to measure (default: 1,2)")
    args = parser.parse_args(argv)
    verify = None if args.skip_limits else ed25519_rates()[1]  # before the vendor runs
    with tempfile.TemporaryDirectory(prefix="vrm-inbox-") as tmp:
        farms, [base], [stats] = start_farms(Path(tmp), vendors=1, processes=1, latency_ms=0)
        try:
            result = asyncio.run(run(base, stats, args))
        finally:
            stop_farms(farms)
    if args.db:
        counts = [int(n) for n in args.workers.split(",")]
        runs = [run_postgres(args.db, n, args) for n in counts]
        result = {"sqlite": result, "postgresql": runs}
        if len(runs) > 1:
            result["scaling"] = round(
                runs[-1]["messages_per_s"] / runs[0]["messages_per_s"], 2)  # type: ignore[operator]
    if verify is not None:
        result["ed25519_verify_per_s"] = round(verify)
        if "per_core_messages_per_s" in result:
            result["ratio_to_bare_verify"] = round(
                result["per_core_messages_per_s"] / verify, 2)  # type: ignore[operator]
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
