"""``vrm demo``: one person, many vendors, one change told to all of them at once.

Everything runs in a temporary directory and on 127.0.0.1: that many vendor
adapters (each with its own key and its own SQLite CRM), and an agent for
"Ada". The demo moves Ada house, sends an intent, lets a few vendors answer
with offers, collects them, and shows the receipts, the offers and the CRM
records as the vendors now hold them. Every server it starts, it stops.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from vendor_adapter import DEFAULT, HUBSPOT, SALESFORCE, FieldMapping, Vendor
from vendor_adapter.aiohttp import vrm_app

from ._agent import Agent
from ._delivery import DeliveryResult
from ._errors import UsageError
from .cli import out, register

__all__ = ["run_demo", "SHOP_NAMES"]

SHOP_NAMES = (
    "Bikes4U", "Velo Berlin", "Kettenblatt", "Rad & Tat", "Pedal Power", "Cycle Hub",
    "Spoke & Chain", "Gears Galore", "Two Wheels", "Fahrradladen Mitte", "Bike Barn",
    "Saddle Up", "Tour de Shop", "Ride On", "Crank It", "Wheelhouse", "Freewheel",
    "City Cycles", "Trail Mix Bikes", "Rolling Stock",
)
#: A few vendors forward their records to other CRMs; the demo shows each shape.
MAPPINGS: tuple[tuple[str, FieldMapping], ...] = (
    ("built-in", DEFAULT), ("Salesforce-style", SALESFORCE), ("HubSpot-style", HUBSPOT))
OFFERS = (("Trek 520 touring bike", "749.00"), ("Surly Disc Trucker", "789.00"),
          ("Kona Sutra", "699.00"), ("Genesis Tour de Fer 20", "795.00"))


def shop_name(number: int) -> str:
    base = SHOP_NAMES[number % len(SHOP_NAMES)]
    return base if number < len(SHOP_NAMES) else f"{base} {number // len(SHOP_NAMES) + 1}"


@asynccontextmanager
async def running_vendors(directory: Path, count: int,
                          passphrase: str) -> AsyncIterator[list[tuple[Vendor, str, str]]]:
    """Start ``count`` vendors, each on its own port with its own database; stop them all
    on exit. Yields (vendor, base URL, mapping name) triples."""
    started: list[tuple[Vendor, str, str]] = []
    runners: list[web.AppRunner] = []

    def open_vendor(number: int) -> Vendor:
        return Vendor.open(directory / f"vendor-{number}.db", name=shop_name(number),
                           passphrase=passphrase, mapping=MAPPINGS[number % len(MAPPINGS)][1])

    # Creating a database waits on the disk (and derives a key): do them side by side.
    opened = await asyncio.gather(*(asyncio.to_thread(open_vendor, n) for n in range(count)),
                                  return_exceptions=True)
    try:
        failed = [v for v in opened if isinstance(v, BaseException)]
        if failed:
            raise failed[0]
        for number, vendor in enumerate(opened):
            mapping_name = MAPPINGS[number % len(MAPPINGS)][0]
            runner = web.AppRunner(vrm_app(vendor), access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            runners.append(runner)
            port = runner.addresses[0][1]
            started.append((vendor, f"http://127.0.0.1:{port}", mapping_name))
        yield started
    finally:
        for runner in runners:
            await runner.cleanup()
        for vendor in opened:
            if isinstance(vendor, Vendor):
                vendor.close()


class _Bar:
    """A rich progress bar fed by the agent's progress callbacks."""

    def __init__(self, console: Console, label: str) -> None:
        self.progress = Progress(TextColumn("  {task.description}"), BarColumn(),
                                 MofNCompleteColumn(), TimeElapsedColumn(), console=console,
                                 transient=False)
        self.label = label
        self.task: Any = None

    def __enter__(self) -> Callable[[int, int, Any], None]:
        self.progress.start()
        self.task = self.progress.add_task(self.label, total=None)

        def update(done: int, total: int, _: Any) -> None:
            self.progress.update(self.task, completed=done, total=total)

        return update

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()


def _count(results: list[DeliveryResult], status: str) -> int:
    return sum(1 for r in results if r.status == status)


async def run_demo(vendors: int = 20, *, console: Console | None = None,
                   then: Callable[[Agent], Awaitable[int]] | None = None) -> int:
    """Run the demo; returns the exit status (0 when every step worked).

    ``then``, if given, runs after the story with the demo's agent while its
    vendors still run (``vrm demo --ui`` serves the dashboard there), also
    when a step of the story failed, so that the person can look at it; the
    story's status is returned unless ``then`` returns a non-zero one."""
    console = console or Console()
    if not 1 <= vendors <= 500:
        raise UsageError(f"--vendors must be between 1 and 500, not {vendors}")
    started_at = time.perf_counter()
    passphrase = secrets.token_urlsafe(16)
    console.rule("[bold]VRM demo: one person, many vendors, in parallel")
    with tempfile.TemporaryDirectory(prefix="vrm-demo-") as tmp:
        directory = Path(tmp)
        clock = time.perf_counter()
        async with running_vendors(directory, vendors, passphrase) as shops:
            console.print(f"Started [bold]{len(shops)}[/] vendor adapters on 127.0.0.1, each "
                          f"with its own key and SQLite CRM "
                          f"[dim]({time.perf_counter() - clock:.1f} s)[/]")
            agent = await Agent.init(directory / "agent", passphrase=passphrase, name="Ada")
            try:
                status = await _story(agent, shops, console, started_at)
                if then is not None:  # also after a failed step: the person can look
                    status = await then(agent) or status
                return status
            finally:
                await agent.close()


async def _story(agent: Agent, shops: list[tuple[Vendor, str, str]], console: Console,
                 started_at: float) -> int:
    ok = True
    await agent.set_profile({
        "given_name": "Ada", "family_name": "Lovelace", "email": "ada@example.org",
        "postal_address.street_address": "Unter den Linden 1",
        "postal_address.locality": "Berlin", "postal_address.postal_code": "10117",
        "postal_address.country": "DE"})

    clock = time.perf_counter()
    share = ["given_name", "family_name", "email", "postal_address"]
    await asyncio.gather(*(agent.add_vendor(url, share=share) for _, url, _ in shops))
    console.print(f"Ada's agent added {len(shops)} vendors, one pairwise DID each, sharing "
                  f"name, email and postal address [dim]({time.perf_counter() - clock:.2f} s)[/]")

    console.print("\n[bold]1. Ada moves house.[/] One change, told to every vendor at once:")
    with _Bar(console, "contact.update") as progress:
        moved = await agent.set_profile({
            "postal_address.street_address": "Jungfernstieg 7",
            "postal_address.locality": "Hamburg", "postal_address.postal_code": "20354"},
            progress=progress)
    delivered = _count(moved.results, "delivered")
    ok &= delivered == len(shops)
    console.print(f"   {delivered} of {len(shops)} vendors answered with a signed receipt, "
                  "each verified against the vendor's pinned key")

    console.print("\n[bold]2. Ada wants a touring bike.[/] One intent, to every vendor:")
    needed_by = date.today() + timedelta(days=120)
    with _Bar(console, "intent") as progress:
        intent = await agent.intent("A touring bike with a steel frame", category="bicycles",
                                    budget=("800.00", "EUR"), needed_by=needed_by,
                                    progress=progress)
    ok &= _count(intent.results, "delivered") == len(shops)

    answering = shops[:min(len(OFFERS), len(shops))]
    for (vendor, _, _), (summary, price) in zip(answering, OFFERS):
        lead = next(lead for lead in vendor.crm.leads(mapping=DEFAULT)
                    if lead["status"] == "open")
        await vendor.make_offer(lead["id"], summary=summary, price=price, currency="EUR")
    await agent.sync()
    offers = agent.offers()
    ok &= len(offers) == len(answering)
    console.print(f"   {len(answering)} vendors made offers; [bold]vrm sync[/] collected "
                  f"{len(offers)}, each signed by its vendor")

    _receipts_table(agent, console)
    _offers_table(offers, console)
    _crm_records(shops, console)
    elapsed = time.perf_counter() - started_at
    console.rule(f"[bold]{'Done' if ok else 'Something went wrong'}[/] in {elapsed:.1f} s; "
                 "every server stopped")
    return 0 if ok else 1


def _receipts_table(agent: Agent, console: Console) -> None:
    rows: dict[str, dict[str, str]] = {}
    for entry in agent.outbox():
        if entry["type"] in ("contact.update", "intent"):
            cell = rows.setdefault(entry["vendor"], {})
            cell[entry["type"]] = entry["receipt_status"] or entry["status"]
            cell[entry["type"] + ".receipt"] = entry["receipt_id"] or ""
    table = Table(title="Receipts: what each vendor acknowledged", title_justify="left")
    table.add_column("vendor")
    table.add_column("address change")
    table.add_column("intent")
    table.add_column("receipt id (address change)", style="dim")
    for vendor, cell in rows.items():
        table.add_row(vendor, cell.get("contact.update", "-"), cell.get("intent", "-"),
                      cell.get("contact.update.receipt", ""))
    console.print()
    console.print(table)


def _offers_table(offers: list[dict[str, Any]], console: Console) -> None:
    table = Table(title="Offers, beside the intent they answer", title_justify="left")
    for column in ("vendor", "offer", "price", "for"):
        table.add_column(column)
    for offer in offers:
        table.add_row(offer["vendor"], offer["summary"] or "",
                      f"{offer['price']} {offer['currency']}", offer["intent_summary"] or "")
    console.print(table)


def _crm_records(shops: list[tuple[Vendor, str, str]], console: Console) -> None:
    console.print("\n[bold]CRM records, as three of the vendors now hold Ada's contact:[/]")
    for vendor, _, mapping_name in shops[:len(MAPPINGS)]:
        contact = vendor.crm.contacts()[0]
        shown = {k: v for k, v in contact.items() if v not in (None, "", [], {})}
        console.print(f"[bold]{vendor.name}[/] ({mapping_name} mapping):")
        console.print_json(json.dumps(shown, default=str))


# --- vrm demo -------------------------------------------------------------------

def _setup(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--vendors", type=int, default=20,
                        help="how many local vendors to start (default 20)")
    parser.add_argument("--ui", action="store_true",
                        help="then open the dashboard (vrm ui) on the demo's agent, with its "
                             "vendors still running, until Ctrl-C")
    parser.add_argument("--no-browser", action="store_true",
                        help="with --ui: print the dashboard's address, open no browser")


async def _run(args: argparse.Namespace) -> int:
    then = None
    if args.ui:
        from .ui import run_dashboard

        async def then(agent: Agent) -> int:
            out.rule("[bold]The dashboard")
            out.print("Ada's agent is at the address below, with every vendor still "
                      "running: try it, then stop with Ctrl-C.")
            return await run_dashboard(agent, open_browser=not args.no_browser)

    return await run_demo(args.vendors, console=out, then=then)


register("demo", help="start local vendors in a temporary directory and show vrm at work",
         setup=_setup, run=_run)
