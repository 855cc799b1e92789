"""This machine's own ceilings, measured in the same run as a benchmark.

Results of the other benchmarks are read as ratios to these: a broadcast
cannot go faster than the bare loopback POST rate, nor verify receipts
faster than bare Ed25519.

    python -m benchmarks.limits          # prints one JSON line
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time

import aiohttp
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

__all__ = ["ed25519_rates", "bare_post_rate", "measure_limits"]

_BARE_SERVER = """
import sys
from aiohttp import web

async def inbox(request):
    await request.read()
    return web.Response(body=b"{}", content_type="application/json")

app = web.Application()
app.router.add_post("/inbox", inbox)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=lambda *a: print("ready", flush=True))
"""


def ed25519_rates(seconds: float = 1.0) -> tuple[float, float]:
    """(signs per second, verifies per second) on one core, 300-byte messages."""
    key = Ed25519PrivateKey.generate()
    public = key.public_key()
    data = os.urandom(300)
    signature = key.sign(data)

    def rate(operation) -> float:
        count, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds:
            for _ in range(500):
                operation()
            count += 500
        return count / elapsed

    return rate(lambda: key.sign(data)), rate(lambda: public.verify(signature, data))


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def _post_many(url: str, count: int, concurrency: int, body: bytes) -> float:
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        semaphore = asyncio.Semaphore(concurrency)

        async def post() -> None:
            async with semaphore:
                async with session.post(url, data=body) as response:
                    await response.read()

        await asyncio.gather(*(post() for _ in range(min(200, count))))  # warm up
        start = time.perf_counter()
        await asyncio.gather(*(post() for _ in range(count)))
        return count / (time.perf_counter() - start)


def bare_post_rate(count: int = 5000, concurrency: int = 100) -> float:
    """1 KB POSTs per second from this process to a trivial aiohttp server in another."""
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-c", _BARE_SERVER, str(port)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        server.stdout.readline()  # "ready"
        return asyncio.run(_post_many(f"http://127.0.0.1:{port}/inbox", count, concurrency,
                                      os.urandom(1024)))
    finally:
        server.terminate()
        server.wait(timeout=10)


def measure_limits(*, posts: int = 5000) -> dict[str, float]:
    sign, verify = ed25519_rates()
    return {
        "ed25519_sign_per_s": round(sign),
        "ed25519_verify_per_s": round(verify),
        "bare_post_per_s": round(bare_post_rate(posts)),
    }


if __name__ == "__main__":
    print(json.dumps(measure_limits()))
