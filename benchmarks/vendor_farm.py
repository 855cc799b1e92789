"""Many vendor identities in one process: ``/v/<n>`` for each, on one port.

Each identity has its own key, discovery document and inbox; all share one
SQLite file, and so one group-commit writer. The broadcast benchmark and the
fault tests run farms as real processes:

    python -m benchmarks.vendor_farm --vendors 500 --db farm.db --port 8700 [--latency-ms 50]

It prints one JSON line when ready: {"ready": true, "urls": [...], "pid": ...}.
``GET /_stats`` answers with the process's own CPU seconds and peak RSS, and the
CPU seconds of the database writer thread (which cProfile does not see).
``POST /_profile/start`` and ``/_profile/stop`` run cProfile on the event loop's
thread for a window (the broadcast alone, not the start-up) and write it to the
``--profile`` file.
``VRM_VENDOR_PASSPHRASE`` seals the keys (default: "vendor-farm").
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import resource
import signal
import sys

from aiohttp import web

from vendor_adapter import Vendor
from vendor_adapter.aiohttp import vrm_app

__all__ = ["build_farm", "main"]


def _thread_cpu(native_id: int | None) -> float:
    """CPU seconds (user + system) of one thread of this process, from /proc."""
    if native_id is None:
        return 0.0
    try:
        with open(f"/proc/self/task/{native_id}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def build_farm(db: str, count: int, *, first: int = 0, latency: float = 0.0,
               passphrase: str, profile: str | None = None
               ) -> tuple[web.Application, list[Vendor]]:
    app = web.Application()
    vendors = []
    for number in range(first, first + count):
        vendor = Vendor.open(db, name=f"vendor-{number}", passphrase=passphrase)
        vendors.append(vendor)
        app.add_subapp(f"/v/{number}", vrm_app(vendor))

    if latency > 0:
        @web.middleware
        async def delay(request: web.Request, handler):  # type: ignore[no-untyped-def]
            # A vendor's own processing time, simulated.
            await asyncio.sleep(latency)
            return await handler(request)

        app.middlewares.append(delay)

    async def stats(request: web.Request) -> web.Response:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        writer = vendors[0]._db.writer if vendors else None
        return web.json_response({
            "cpu_s": usage.ru_utime + usage.ru_stime, "max_rss_kb": usage.ru_maxrss,
            "writer_cpu_s": _thread_cpu(writer._thread.native_id) if writer else 0.0})

    app.router.add_get("/_stats", stats)

    profiler = cProfile.Profile() if profile else None

    async def profile_window(request: web.Request) -> web.Response:
        if profiler is not None:
            if request.match_info["action"] == "start":
                profiler.enable()
            else:
                profiler.disable()
                profiler.dump_stats(profile)
        return web.json_response({"profiling": profiler is not None})

    app.router.add_post("/_profile/{action:start|stop}", profile_window)

    async def close_vendors(app: web.Application):  # type: ignore[no-untyped-def]
        yield
        for vendor in vendors:
            vendor.close()

    app.cleanup_ctx.append(close_vendors)
    return app, vendors


async def _serve(args: argparse.Namespace) -> None:
    passphrase = os.environ.get("VRM_VENDOR_PASSPHRASE", "vendor-farm")
    app, vendors = build_farm(args.db, args.vendors, first=args.first,
                              latency=args.latency_ms / 1000, passphrase=passphrase,
                              profile=args.profile)
    # A backlog large enough for a thousand agents' connections at once.
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, args.host, args.port, backlog=4096)
    await site.start()
    base = f"http://{args.host}:{args.port}"
    print(json.dumps({"ready": True, "pid": os.getpid(),
                      "urls": [f"{base}/v/{n}" for n in range(args.first,
                                                              args.first + args.vendors)]}),
          flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.vendor_farm")
    parser.add_argument("--vendors", type=int, default=100)
    parser.add_argument("--first", type=int, default=0, help="number of the first vendor")
    parser.add_argument("--db", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--profile", metavar="FILE",
                        help="where POST /_profile/stop writes the cProfile data")
    args = parser.parse_args(argv)
    asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
