"""The vendor inbox alone: verified-and-recorded messages per second per core.

    python -m benchmarks.inbox [--messages 5000] [--people 200] [--concurrency 64] [--skip-limits]

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
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
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


async def run(base: str, stats_url: str, args: argparse.Namespace) -> dict[str, object]:
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

        before = await _stats(session, stats_url)
        start = time.perf_counter()
        answers = await _post_all(session, inbox, updates, args.concurrency)
        wall = time.perf_counter() - start
        after = await _stats(session, stats_url)

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
    writer_cpu = after["writer_cpu_s"] - before["writer_cpu_s"]
    return {
        "messages": args.messages, "people": args.people, "concurrency": args.concurrency,
        "accepted": accepted,
        "wall_s": round(wall, 3),
        "messages_per_s": round(args.messages / wall),
        "vendor_cpu_ms_per_msg": round(1000 * vendor_cpu / args.messages, 3),
        "vendor_writer_cpu_ms_per_msg": round(1000 * writer_cpu / args.messages, 3),
        "per_core_messages_per_s": round(args.messages / vendor_cpu),
        "vendor_max_rss_mb": round(after["max_rss_kb"] / 1024, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.inbox")
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--people", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--skip-limits", action="store_true",
                        help="do not measure the bare Ed25519 verify rate")
    args = parser.parse_args(argv)
    verify = None if args.skip_limits else ed25519_rates()[1]  # before the vendor runs
    with tempfile.TemporaryDirectory(prefix="vrm-inbox-") as tmp:
        farms, [base], [stats] = start_farms(Path(tmp), vendors=1, processes=1, latency_ms=0)
        try:
            result = asyncio.run(run(base, stats, args))
        finally:
            stop_farms(farms)
    if verify is not None:
        result["ed25519_verify_per_s"] = round(verify)
        result["ratio_to_bare_verify"] = round(
            result["per_core_messages_per_s"] / verify, 2)  # type: ignore[operator]
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
