"""Tell every vendor you deal with that you moved, through the agent's Python API.

    VRM_HOME=~/vrm VRM_PASSPHRASE=... python examples/broadcast_move.py \\
        "Jungfernstieg 7" Hamburg 20354 DE

The change goes to every vendor you share your postal address with, all at
once; each answers with a signed receipt, verified and kept as proof.
"""

from __future__ import annotations

import asyncio
import sys

from agent import Agent, AgentError


async def move(street: str, locality: str, postal_code: str, country: str) -> int:
    async with await Agent.open() as agent:  # VRM_HOME and VRM_PASSPHRASE
        broadcast = await agent.set_profile({
            "postal_address.street_address": street,
            "postal_address.locality": locality,
            "postal_address.postal_code": postal_code,
            "postal_address.country": country,
        })
        for result in broadcast.results:
            receipt = result.receipt_status or "no receipt yet"
            print(f"{result.vendor}: {result.status} ({receipt})")
        pending = [r for r in broadcast.results if r.status == "pending"]
        if pending:
            print(f"{len(pending)} vendors will get it later: run `vrm deliver`.")
        return 0 if all(r.status in ("delivered", "pending") for r in broadcast.results) else 1


if __name__ == "__main__":
    if len(sys.argv) != 5:
        sys.exit(f"usage: {sys.argv[0]} STREET LOCALITY POSTAL_CODE COUNTRY")
    try:
        sys.exit(asyncio.run(move(*sys.argv[1:])))
    except AgentError as exc:
        sys.exit(f"error: {exc}")
