"""A webhook receiver, run as its own process by the tests: it verifies every
delivery with the ``standardwebhooks`` library (not ours) and keeps what it
accepted in a SQLite file, deduplicating by ``webhook-id`` with a constraint.

    python receiver.py --db received.db --secret whsec_... [--port N]

It prints its URL on the first line of stdout once it listens. Every request
is logged in ``attempt`` (also the ones it refuses); ``event`` holds one row per
accepted id, in the order of arrival.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3

from aiohttp import web
from standardwebhooks.webhooks import Webhook, WebhookVerificationError


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", required=True)
    parser.add_argument("--secret", required=True)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    conn = sqlite3.connect(args.db, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("CREATE TABLE IF NOT EXISTS event (n INTEGER PRIMARY KEY, id TEXT UNIQUE, "
                 "type TEXT, did TEXT, message_id TEXT, payload TEXT)")
    conn.execute("CREATE TABLE IF NOT EXISTS attempt (n INTEGER PRIMARY KEY, id TEXT, "
                 "verified INTEGER)")
    verifier = Webhook(args.secret)

    async def hook(request: web.Request) -> web.Response:
        body = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            payload = verifier.verify(body, headers)
        except WebhookVerificationError:
            conn.execute("INSERT INTO attempt (id, verified) VALUES (?, 0)",
                         (headers.get("webhook-id"),))
            return web.Response(status=400, text="bad signature")
        conn.execute("INSERT INTO attempt (id, verified) VALUES (?, 1)", (headers["webhook-id"],))
        data = payload["data"]
        # The dedupe is the constraint: a redelivery (same id) changes nothing.
        conn.execute("INSERT INTO event (id, type, did, message_id, payload) VALUES "
                     "(?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
                     (headers["webhook-id"], payload["type"], data.get("did"),
                      data.get("message_id"), json.dumps(payload)))
        return web.Response(status=204)

    async def run() -> None:
        app = web.Application()
        app.router.add_post("/hook", hook)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", args.port, reuse_address=True)
        await site.start()
        port = runner.addresses[0][1]
        print(f"http://127.0.0.1:{port}/hook", flush=True)
        await asyncio.Event().wait()

    asyncio.run(run())


if __name__ == "__main__":
    main()
