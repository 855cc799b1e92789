"""One contact.update to N vendors, in parallel and then one at a time.

    python -m benchmarks.broadcast [--vendors 1000] [--latency-ms 0] [--processes 2]

Vendors run as ``benchmarks.vendor_farm`` processes (each identity with its own
key and discovery document; the identities of one process share a database).
The agent runs in this process through its Python API. Prints one JSON line:
the broadcast's wall time until the last verified receipt, its rate, the
serial time and speed-up, CPU per message on each side, peak RSS, and this
machine's own limits measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from agent import Agent, Limits
from benchmarks.limits import _free_port, measure_limits

PASSPHRASE = "benchmark"


def start_farms(directory: Path, vendors: int, processes: int, latency_ms: float,
                profile: Path | None = None) -> tuple[list[subprocess.Popen], list[str], list[str]]:
    farms, urls, stats = [], [], []
    per = -(-vendors // processes)
    for index in range(processes):
        count = min(per, vendors - index * per)
        if count <= 0:
            break
        port = _free_port()
        profiler = ["--profile", str(profile / f"farm{index}.prof")] if profile else []
        farm = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.vendor_farm", *profiler, "--vendors", str(count),
             "--first", str(index * per), "--db", str(directory / f"farm{index}.db"),
             "--port", str(port), "--latency-ms", str(latency_ms)],
            stdout=subprocess.PIPE, text=True, env={**os.environ, "VRM_VENDOR_PASSPHRASE": "x"})
        farms.append(farm)
        stats.append(f"http://127.0.0.1:{port}/_stats")
    for farm in farms:
        assert farm.stdout is not None
        line = farm.stdout.readline()
        if not line:
            raise SystemExit("a vendor farm did not start")
        urls.extend(json.loads(line)["urls"])
    return farms, urls, stats


def stop_farms(farms: list[subprocess.Popen]) -> None:
    for farm in farms:
        farm.terminate()
    for farm in farms:
        farm.wait(timeout=30)


async def farm_stats(stats: list[str], profile: str | None = None) -> list[dict[str, float]]:
    """Each farm's CPU and RSS; with ``profile`` ("start" or "stop"), also start or
    stop its profiler (after reading the stats on start, before reading them on stop)."""
    async with aiohttp.ClientSession() as session:
        answers = []
        for url in stats:
            if profile == "stop":
                async with session.post(url.replace("/_stats", "/_profile/stop")):
                    pass
            async with session.get(url) as response:
                answers.append(await response.json())
            if profile == "start":
                async with session.post(url.replace("/_stats", "/_profile/start")):
                    pass
        return answers


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def add_all(agent: Agent, urls: list[str]) -> None:
    semaphore = asyncio.Semaphore(50)

    async def add(url: str) -> None:
        async with semaphore:
            await agent.add_vendor(url, share=["email", "postal_address"])

    await asyncio.gather(*(add(url) for url in urls))


async def timed_broadcast(agent: Agent, stats: list[str], locality: str,
                          profile: bool = False) -> dict[str, float]:
    before_vendors = await farm_stats(stats, "start" if profile else None)
    cpu, start = own_cpu(), time.perf_counter()
    broadcast = await agent.set_profile({"postal_address.locality": locality})
    wall = time.perf_counter() - start
    agent_cpu = own_cpu() - cpu
    after_vendors = await farm_stats(stats, "stop" if profile else None)
    sent = set(broadcast.message_ids)
    rows = [row for row in agent.outbox() if row["message_id"] in sent]
    delivered = sum(1 for row in rows if row["status"] == "delivered")
    attempts = sum(row["attempts"] for row in rows)
    errors = sorted({row["last_error"] for row in rows if row["last_error"]})[:3]
    vendor_cpu = sum(a["cpu_s"] - b["cpu_s"] for a, b in zip(after_vendors, before_vendors))
    writer_cpu = sum(a["writer_cpu_s"] - b["writer_cpu_s"]
                     for a, b in zip(after_vendors, before_vendors))
    return {"messages": len(broadcast.message_ids), "delivered": delivered, "wall_s": wall,
            "attempts": attempts, "errors": errors,
            "agent_cpu_s": agent_cpu, "vendor_cpu_s": vendor_cpu, "writer_cpu_s": writer_cpu,
            "vendor_max_rss_kb": max(a["max_rss_kb"] for a in after_vendors)}


async def run(args: argparse.Namespace, directory: Path, urls: list[str],
              stats: list[str]) -> dict[str, object]:
    home = directory / "agent"
    agent = await Agent.init(home, passphrase=PASSPHRASE, name="Benchmark")
    await agent.set_profile({"email": "ada@example.org", "postal_address.locality": "Berlin"})
    await add_all(agent, urls)
    profiler = cProfile.Profile() if args.profile else None
    if profiler:
        profiler.enable()
    parallel = await timed_broadcast(agent, stats, "Hamburg", profile=bool(args.profile))
    if profiler:
        profiler.disable()
        profiler.dump_stats(str(args.profile / "agent.prof"))
    await agent.close()

    serial = None
    if not args.skip_serial:
        one_at_a_time = Limits(max_connections=1, max_connections_per_host=1)
        agent = await Agent.open(home, passphrase=PASSPHRASE, limits=one_at_a_time)
        serial = await timed_broadcast(agent, stats, "Munich")
        await agent.close()

    n = parallel["messages"]
    result: dict[str, object] = {
        "vendors": len(urls),
        "latency_ms": args.latency_ms,
        "delivered": parallel["delivered"],
        "attempts": parallel["attempts"],
        "errors": parallel["errors"],
        "wall_s": round(parallel["wall_s"], 3),
        "messages_per_s": round(n / parallel["wall_s"]),
        "agent_cpu_ms_per_msg": round(1000 * parallel["agent_cpu_s"] / n, 3),
        "vendor_cpu_ms_per_msg": round(1000 * parallel["vendor_cpu_s"] / n, 3),
        # The part of vendor_cpu spent in the database writer threads (group commit).
        "vendor_writer_cpu_ms_per_msg": round(1000 * parallel["writer_cpu_s"] / n, 3),
        "agent_max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "vendor_max_rss_mb": round(parallel["vendor_max_rss_kb"] / 1024, 1),
    }
    if serial is not None:
        result.update({"serial_wall_s": round(serial["wall_s"], 3),
                       "serial_delivered": serial["delivered"],
                       "speedup": round(serial["wall_s"] / parallel["wall_s"], 1)})
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.broadcast")
    parser.add_argument("--vendors", type=int, default=1000)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--processes", type=int, default=2, help="vendor server processes")
    parser.add_argument("--skip-serial", action="store_true")
    parser.add_argument("--skip-limits", action="store_true")
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="write cProfile data for the agent and each vendor process to DIR "
                             "and print the top functions by own time to stderr")
    args = parser.parse_args(argv)
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    limits = {} if args.skip_limits else measure_limits()  # before the farms compete for CPU
    with tempfile.TemporaryDirectory(prefix="vrm-bench-") as tmp:
        directory = Path(tmp)
        farms, urls, stats = start_farms(directory, args.vendors, args.processes,
                                         args.latency_ms, args.profile)
        try:
            result = asyncio.run(run(args, directory, urls, stats))
        finally:
            stop_farms(farms)
    if args.profile:
        for path in sorted(args.profile.glob("*.prof")):
            print(f"\n=== {path.name}", file=sys.stderr)
            pstats.Stats(str(path), stream=sys.stderr).sort_stats("tottime").print_stats(15)
    result["limits"] = limits
    if limits:
        result["ratio_to_bare_post"] = round(result["messages_per_s"] / limits["bare_post_per_s"], 2)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
