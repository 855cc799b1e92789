"""Where a message's CPU goes: each step of one contact.update, in this process.

    python -m benchmarks.stages [--rounds 3000]

No HTTP and no second process: each step runs alone, in a loop, and is
timed in CPU microseconds per message, beside bare Ed25519 sign and verify.
The broadcast benchmark gives the totals; this one says what they are made
of, so that an optimisation starts from a measurement. Prints one JSON line.

Steps, in the order a message lives them:

- ``agent_sign``: the agent builds the message model and signs it;
- ``vendor_verify``: the inbox parses and verifies it (protocol.parse);
- ``vendor_ledger``: the ledger records it in the CRM (in one transaction
  with many others, as the group-commit writer runs it);
- ``vendor_receipt``: the inbox builds and signs the receipt;
- ``agent_receipt``: the agent parses, verifies and judges the receipt.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import protocol
from agent._delivery import classify
from agent._http import HttpAnswer
from vendor_adapter import Outcome, Vendor
from vendor_adapter._store_sqlite import connect


def _now() -> datetime:
    return datetime.now(timezone.utc)


def cpu_us(operation: Callable[[], object], rounds: int) -> float:
    """CPU microseconds per call, after a warm-up."""
    for _ in range(min(200, rounds)):
        operation()
    start = time.process_time()
    for _ in range(rounds):
        operation()
    return (time.process_time() - start) / rounds * 1e6


def measure(rounds: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="vrm-stages-") as tmp:
        vendor = Vendor.open(str(Path(tmp) / "vendor.db"), name="Stages", passphrase="x")
        try:
            return _measure(vendor, rounds)
        finally:
            vendor.close()


def _measure(vendor: Vendor, rounds: int) -> dict[str, float]:
    person = protocol.SigningKey.generate()
    body = protocol.ContactUpdateBody(changes=protocol.ProfileChanges.model_validate(
        {"postal_address": {"locality": "Hamburg", "postal_code": "20354"}}))

    def make(key: protocol.SigningKey = person) -> bytes:
        return protocol.sign(protocol.ContactUpdate(
            id=protocol.new_message_id(), sender=key.did, to=vendor.did, created=_now(),
            body=body), key)

    raw = make()
    core = vendor.core
    verified = core.verify(raw, protocol.MEDIA_TYPE)
    accepted = Outcome("accepted", record={"contact": 1})
    receipt = HttpAnswer(200, protocol.MEDIA_TYPE, core.answer(verified, accepted).body, None)
    data = b"x" * len(raw)
    signature = person.sign(data)
    result = {
        "bare_sign_us": cpu_us(lambda: person.sign(data), rounds),
        "bare_verify_us": cpu_us(lambda: person.public.verify(signature, data), rounds),
        "agent_sign_us": cpu_us(make, rounds),
        "vendor_verify_us": cpu_us(lambda: core.verify(raw, protocol.MEDIA_TYPE), rounds),
        "vendor_receipt_us": cpu_us(lambda: core.answer(verified, accepted), rounds),
        "agent_receipt_us": cpu_us(lambda: classify(
            receipt, message_id=verified.message.id, recipient=person.did,
            vendor_key=vendor.public_key, now=_now()), rounds),
        "vendor_ledger_us": _ledger_us(vendor, make, min(rounds, 2000)),
        "message_bytes": len(raw),
    }
    return {name: round(value, 1) for name, value in result.items()}


def _ledger_us(vendor: Vendor, make: Callable[..., bytes], count: int) -> float:
    """The ledger's CPU per contact.update, from related people, in one transaction."""
    core, people = vendor.core, [protocol.SigningKey.generate() for _ in range(count)]
    conn = connect(vendor.db_path)  # a connection as the writer's (``_store.Tx``)
    try:
        requests = [core.verify(protocol.sign(protocol.RelationshipRequest(
            id=protocol.new_message_id(), sender=key.did, to=vendor.did, created=_now(),
            body=protocol.RelationshipRequestBody()), key), protocol.MEDIA_TYPE)
            for key in people]
        updates = [core.verify(make(key), protocol.MEDIA_TYPE) for key in people]
        conn.execute("BEGIN")
        for item in requests:
            vendor.ledger.process(conn, item)
        conn.execute("COMMIT")
        conn.execute("BEGIN")
        start = time.process_time()
        for item in updates:
            vendor.ledger.process(conn, item)
        spent = time.process_time() - start
        conn.execute("COMMIT")
    finally:
        conn.close()
    return spent / count * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.stages")
    parser.add_argument("--rounds", type=int, default=3000)
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.rounds)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
