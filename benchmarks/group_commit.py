"""Does group commit pay? The same load with batches and with one message per
transaction, on either store.

    python -m benchmarks.group_commit --db postgresql://user@host/db [--messages 1000]
    python -m benchmarks.group_commit --db /tmp/crm.db

In one process: a vendor, ``--people`` related people, then ``--messages``
pre-verified ``contact.update``s, 64 in flight, through ``Vendor.handle``
(verification, the writer, the receipt) with the writer's ``max_batch`` at
its default and then at 1 (a transaction per message). It prints one JSON
line: messages/s and process CPU per message for each, and the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import sys
import time
from datetime import datetime, timezone

import protocol
from vendor_adapter import Vendor
from vendor_adapter._writer import MAX_BATCH

#: The passphrase of the key store (as benchmarks.inbox's vendors: "x").
_SEALING = os.environ.get("VRM_VENDOR_PASSPHRASE", "x")


def _signed(key: protocol.SigningKey, to: str, type_: type[protocol.Message],
            body: protocol.WireModel) -> bytes:
    return protocol.sign(type_(id=protocol.new_message_id(), sender=key.did, to=to,
                               created=datetime.now(timezone.utc), body=body), key)


async def _one_run(db: str, max_batch: int, args: argparse.Namespace) -> dict[str, float]:
    with Vendor.open(db, name=f"gc-{secrets.token_hex(4)}", passphrase=_SEALING) as vendor:
        vendor._db.writer.max_batch = max_batch
        people = [protocol.SigningKey.generate() for _ in range(args.people)]
        for key in people:
            raw = _signed(key, vendor.did, protocol.RelationshipRequest,
                          protocol.RelationshipRequestBody())
            assert (await vendor.handle(raw, protocol.MEDIA_TYPE)).status == 200
        body = protocol.ContactUpdateBody(changes=protocol.ProfileChanges.model_validate(
            {"email": "someone@example.org"}))
        messages = [_signed(people[n % len(people)], vendor.did, protocol.ContactUpdate, body)
                    for n in range(args.messages)]
        semaphore = asyncio.Semaphore(64)

        async def send(raw: bytes) -> int:
            async with semaphore:
                return (await vendor.handle(raw, protocol.MEDIA_TYPE)).status

        cpu, wall = time.process_time(), time.perf_counter()
        statuses = await asyncio.gather(*(send(raw) for raw in messages))
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        if statuses != [200] * len(messages):
            raise SystemExit("a message was not accepted")
        return {"messages_per_s": round(len(messages) / wall),
                "cpu_ms_per_msg": round(1000 * cpu / len(messages), 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.group_commit")
    parser.add_argument("--db", required=True, help="a SQLite path or a postgresql:// URI")
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--people", type=int, default=100)
    args = parser.parse_args(argv)
    batched = asyncio.run(_one_run(args.db, MAX_BATCH, args))
    single = asyncio.run(_one_run(args.db, 1, args))
    print(json.dumps({"messages": args.messages, "batched": batched, "one_per_commit": single,
                      "speed_up": round(batched["messages_per_s"] / single["messages_per_s"], 2)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
