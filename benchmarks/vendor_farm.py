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

Two options make the CRM misbehave, for the fault tests (tests/faults):

``--write-delay-ms MS``
    The CRM sink sleeps MS per message inside the batch's open transaction (a
    slow CRM). Requests queue up meanwhile, so batches grow.
``--stall-after N``
    Once N messages of one batch are applied, the writer stops there for good,
    with the transaction open, and the farm prints a second line:
    {"stalled": {"batch": [ids applied in the open batch], "committed_batches": n}}.
    No batch stalls before one has committed, so some work is durable by then.
    A stalled farm never exits on SIGTERM: kill it (SIGKILL), which is the point.
    The page cache is cut to a few pages in this mode, so the open batch's pages
    already reach the WAL before its COMMIT: the kill leaves uncommitted frames
    there for the next open to discard (https://sqlite.org/wal.html#recovery,
    https://sqlite.org/pragma.html#pragma_cache_spill), not an untouched file.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import resource
import signal
import sqlite3
import sys
import threading
import time

from aiohttp import web

from vendor_adapter import CrmEvent, RecordRef, SqliteCrm, Vendor
from vendor_adapter.aiohttp import ServerLimits, serve, vrm_app

__all__ = ["build_farm", "main", "SlowCrm"]

#: Pages of page cache in --stall-after mode: SQLite's floor, so that a batch of
#: a few messages already spills its dirty pages to the WAL.
_SPILLING_CACHE_PAGES = 10


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


class SlowCrm(SqliteCrm):
    """The built-in CRM, slowed down, and optionally stopped dead mid-batch.

    ``apply`` runs in the writer thread inside the batch's open transaction
    (see vendor_adapter/_sink.py), so its sleep holds that transaction open. The
    batch boundaries are seen through the connection's trace callback: the
    writer issues BEGIN and COMMIT (or ROLLBACK) around each batch.
    """

    def __init__(self, *, delay: float = 0.0, stall_after: int | None = None) -> None:
        super().__init__()
        self.delay = delay
        self.stall_after = stall_after
        self._traced: sqlite3.Connection | None = None
        self._open_batch: list[str] = []  # message ids applied since BEGIN
        self._committed_batches = 0

    def apply(self, conn: sqlite3.Connection, event: CrmEvent) -> RecordRef:
        if self._traced is not conn:
            self._traced = conn
            conn.set_trace_callback(self._trace)
            if self.stall_after is not None:
                conn.execute(f"PRAGMA cache_size = {_SPILLING_CACHE_PAGES}")
        if (self.stall_after is not None and self._committed_batches
                and len(self._open_batch) >= self.stall_after):
            self._stall()
        if self.delay:
            time.sleep(self.delay)
        ref = super().apply(conn, event)
        self._open_batch.append(event.message.id)
        return ref

    def _trace(self, statement: str) -> None:
        statement = statement.strip().upper()
        if statement.startswith("BEGIN") or statement == "ROLLBACK":
            self._open_batch = []
        elif statement == "COMMIT":
            self._committed_batches += 1
            self._open_batch = []

    def _stall(self) -> None:
        print(json.dumps({"stalled": {"batch": self._open_batch,
                                      "committed_batches": self._committed_batches}}),
              flush=True)
        threading.Event().wait()  # until the process is killed


def build_farm(db: str, count: int, *, first: int = 0, latency: float = 0.0,
               passphrase: str, profile: str | None = None, write_delay: float = 0.0,
               stall_after: int | None = None) -> tuple[web.Application, list[Vendor]]:
    app = web.Application()
    vendors = []
    # One sink for the whole farm: the identities share one writer, and so one
    # sequence of batches.
    sink = (SlowCrm(delay=write_delay, stall_after=stall_after)
            if write_delay or stall_after is not None else None)
    for number in range(first, first + count):
        vendor = Vendor.open(db, name=f"vendor-{number}", passphrase=passphrase, sink=sink)
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
                              profile=args.profile, write_delay=args.write_delay_ms / 1000,
                              stall_after=args.stall_after)
    # Served as `vrm-vendor serve` serves (the guard's head deadline and connection
    # cap), so that benchmarks measure what is deployed. A backlog and a cap large
    # enough for a thousand agents' connections at once.
    runner = await serve(app, host=args.host, port=args.port, backlog=4096,
                         limits=ServerLimits(max_connections=4096), access_log=None)
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
    parser.add_argument("--write-delay-ms", type=float, default=0.0,
                        help="the CRM sleeps this long per message, inside the open batch")
    parser.add_argument("--stall-after", type=int, metavar="N",
                        help="stop the writer for good once N messages of a batch are "
                             "applied (after a first batch committed); for crash tests")
    args = parser.parse_args(argv)
    if args.stall_after is not None and args.stall_after < 1:
        parser.error("--stall-after takes a number of messages, 1 or more")
    asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
