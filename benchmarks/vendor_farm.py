"""Many vendor identities in one process: ``/v/<n>`` for each, on one port.

Each identity has its own key, discovery document and inbox; all share one
SQLite file, and so one group-commit writer. The broadcast benchmark and the
fault tests run farms as real processes:

    python -m benchmarks.vendor_farm --vendors 500 --db farm.db --port 8700 [--latency-ms 50]

It prints one JSON line when ready: {"ready": true, "urls": [...], "pid": ...}.
``GET /_stats`` answers with the process's own CPU seconds and peak RSS.
``VRM_VENDOR_PASSPHRASE`` seals the keys (default: "vendor-farm").
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import signal
import sys

from aiohttp import web

from vendor_adapter import Vendor
from vendor_adapter.aiohttp import vrm_app

__all__ = ["build_farm", "main"]


def build_farm(db: str, count: int, *, first: int = 0, latency: float = 0.0,
               passphrase: str) -> tuple[web.Application, list[Vendor]]:
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
        return web.json_response({"cpu_s": usage.ru_utime + usage.ru_stime,
                                  "max_rss_kb": usage.ru_maxrss})

    app.router.add_get("/_stats", stats)

    async def close_vendors(app: web.Application):  # type: ignore[no-untyped-def]
        yield
        for vendor in vendors:
            vendor.close()

    app.cleanup_ctx.append(close_vendors)
    return app, vendors


async def _serve(args: argparse.Namespace) -> None:
    passphrase = os.environ.get("VRM_VENDOR_PASSPHRASE", "vendor-farm")
    app, vendors = build_farm(args.db, args.vendors, first=args.first,
                              latency=args.latency_ms / 1000, passphrase=passphrase)
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
    args = parser.parse_args(argv)
    asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
