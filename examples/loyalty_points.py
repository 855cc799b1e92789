"""A new message type, end to end: a loyalty-points query.

A developer adds ``x-org.example.loyalty.points`` without forking anything:

- protocol: a body model and a message model, registered in a MessageRegistry
  (``python -m protocol schema DIR --registry examples.loyalty_points:registry``
  writes its JSON Schema for implementers in other languages);
- vendor: the inbox accepts the type (the registry, and ``types`` in the
  discovery document), and a CRM sink answers it in the receipt's record;
- agent: sends it through the outbox like any other message, and reads the
  vendor's signed answer.

    python examples/loyalty_points.py
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import tempfile
from pathlib import Path
from typing import Annotated, Literal

from aiohttp import web
from pydantic import Field

from agent import Agent, AgentError
from protocol import CORE_REGISTRY, Message, WireModel
from vendor_adapter import SUPPORTED_TYPES, CrmEvent, RecordRef, SqliteCrm, Vendor
from vendor_adapter.aiohttp import vrm_app

# --- the protocol side: a body, a message, a registry ------------------------------


class PointsQueryBody(WireModel):
    program: Annotated[str, Field(min_length=1, max_length=50)]


registry = CORE_REGISTRY.extend()


@registry.register
class PointsQuery(Message):
    """Agent to vendor: how many points do I have? The answer is in the receipt."""

    type: Literal["x-org.example.loyalty.points"]
    body: PointsQueryBody


# --- the vendor side: a CRM sink that answers the query ---------------------------


class LoyaltyCrm(SqliteCrm):
    """The built-in CRM, plus points: ten for every message the customer sent."""

    POINTS_PER_MESSAGE = 10

    def apply(self, conn: sqlite3.Connection, event: CrmEvent) -> RecordRef:
        ref = super().apply(conn, event)  # the built-in records, this activity included
        if isinstance(event.message, PointsQuery):
            (count,) = conn.execute("SELECT COUNT(*) FROM activity WHERE vendor = ? AND did = ?",
                                    (event.vendor, event.sender)).fetchone()
            ref = {**ref, "program": event.message.body.program,
                   "points": count * self.POINTS_PER_MESSAGE}
        return ref


async def serve(vendor: Vendor) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(vrm_app(vendor), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


# --- both, end to end ---------------------------------------------------------------


async def main() -> int:
    with tempfile.TemporaryDirectory(prefix="vrm-loyalty-") as tmp:
        directory = Path(tmp)
        shop = Vendor.open(directory / "shop.db", name="Bikes4U", passphrase="shop secret",
                           sink=LoyaltyCrm(), registry=registry,
                           types=(*SUPPORTED_TYPES, PointsQuery.message_type))
        plain = Vendor.open(directory / "plain.db", name="Velo Berlin", passphrase="secret")
        runners = []
        try:
            for vendor in (shop, plain):
                runner, url = await serve(vendor)
                runners.append((runner, url))
            async with await Agent.init(directory / "agent", passphrase="agent secret") as agent:
                for _, url in runners:
                    await agent.add_vendor(url, share=["email"])
                await agent.intent("A touring bike", category="bicycles")

                sent = await agent.send(PointsQuery, PointsQueryBody(program="gold"))
                for message_id in sent.message_ids:  # only vendors that list the type
                    receipt = agent.receipt(message_id)
                    assert receipt is not None, "the vendor did not answer"
                    record = receipt["record"]
                    print(f"{receipt['vendor']}: {record['points']} points in the "
                          f"{record['program']} programme (signed receipt {receipt['receipt_id']})")
                try:
                    await agent.send(PointsQuery, PointsQueryBody(program="gold"),
                                     to=["Velo Berlin"])
                except AgentError as exc:
                    print(f"Velo Berlin: not asked, because {exc}")
        finally:
            for runner, _ in runners:
                await runner.cleanup()
            shop.close()
            plain.close()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
