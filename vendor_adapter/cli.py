"""``vrm-vendor``: serve a vendor's inbox, list its CRM records, make offers.

A thin layer over the library: each command opens the vendor, calls one
method and prints. Every mistake ends in one actionable sentence on stderr
and a non-zero exit status, never a traceback.

The vendor key is sealed in the database with a passphrase read from the
environment variable VRM_VENDOR_PASSPHRASE (never from the command line,
where other users could read it in the process list).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

from ._errors import VendorAdapterError
from ._identity import PASSPHRASE_ENV
from ._mapping import MAPPINGS
from ._vendor import Vendor

__all__ = ["main"]

#: Columns shown in the readable tables (--json shows every column).
_TABLE_COLUMNS = {
    "contacts": ("id", "customer_id", "given_name", "family_name", "email", "locality",
                 "status", "feedback_class", "shared_fields", "updated"),
    "leads": ("id", "contact_id", "summary", "category", "budget_max", "budget_currency",
              "needed_by", "status"),
    "activities": ("id", "contact_id", "type", "message_id", "received"),
    "feedback": ("id", "contact_id", "score", "nps_class", "subject", "received"),
}


class CliError(Exception):
    """A mistake the person can fix; the message says how."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vrm-vendor",
        description="Listen to people's VRM agents: a verified inbox, a built-in CRM, offers. "
                    f"The vendor key is sealed with the passphrase in ${PASSPHRASE_ENV}.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="serve the discovery document and the inbox")
    serve.add_argument("--db", required=True, help="the vendor database (created on first run)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    serve.add_argument("--name", help="the vendor's name (default: the only vendor in --db)")
    serve.add_argument("--public-url", help="the base URL people's agents use, if behind a proxy")

    crm = commands.add_parser("crm", help="list CRM records")
    crm.add_argument("kind", choices=sorted(_TABLE_COLUMNS))
    crm.add_argument("--db", required=True)
    crm.add_argument("--name", help="the vendor, if the database holds several")
    crm.add_argument("--json", action="store_true", help="print a JSON array")
    crm.add_argument("--mapping", choices=sorted(MAPPINGS), default="default",
                     help="field names for contacts and leads (with --json)")

    offer = commands.add_parser("offer", help="make an offer for a lead")
    offer.add_argument("lead_id", metavar="LEAD_ID")
    offer.add_argument("--db", required=True)
    offer.add_argument("--name", help="the vendor, if the database holds several")
    offer.add_argument("--summary", required=True)
    offer.add_argument("--price", required=True, help="a decimal amount, like 199.00")
    offer.add_argument("--currency", default="EUR", help="ISO 4217 code, like EUR")
    offer.add_argument("--valid-until", help="RFC 3339 UTC time, like 2026-06-01T12:00:00Z")
    return parser


def _passphrase() -> str:
    passphrase = os.environ.get(PASSPHRASE_ENV)
    if not passphrase:
        raise CliError(f"set {PASSPHRASE_ENV} to the passphrase that seals the vendor key "
                       "(choose one on first run, and keep it)")
    return passphrase


def _open_existing(args: argparse.Namespace) -> Vendor:
    if not os.path.isfile(args.db):
        raise CliError(f"there is no vendor database at {args.db}; "
                       f"create it with `vrm-vendor serve --db {args.db}`")
    return Vendor.open(args.db, name=args.name, passphrase=_passphrase(), create=False)


# --- commands -----------------------------------------------------------------------

async def _serve(args: argparse.Namespace) -> None:
    from aiohttp import web

    from .aiohttp import vrm_app

    if not 0 <= args.port <= 65535:
        raise CliError(f"--port {args.port} is not a port number (0 to 65535)")
    vendor = Vendor.open(args.db, name=args.name, passphrase=_passphrase())
    runner = web.AppRunner(vrm_app(vendor, public_base_url=args.public_url),
                           access_log=None, handle_signals=False)
    try:
        await runner.setup()
        site = web.TCPSite(runner, args.host, args.port)
        try:
            await site.start()
        except OSError as exc:
            raise CliError(f"cannot listen on {args.host}:{args.port}: "
                           f"{exc.strerror or exc}") from None
        port = runner.addresses[0][1] if runner.addresses else args.port
        host = f"[{args.host}]" if ":" in args.host else args.host
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        print(args.public_url.rstrip("/") if args.public_url else f"http://{host}:{port}",
              flush=True)
        print(f"vendor {vendor.name!r} ({vendor.did}) is listening; stop with Ctrl-C",
              file=sys.stderr, flush=True)
        await stop.wait()
    finally:
        await runner.cleanup()
        vendor.close()


def _crm(args: argparse.Namespace) -> None:
    vendor = _open_existing(args)
    try:
        mapping = MAPPINGS[args.mapping]
        if args.kind == "contacts":
            rows = vendor.crm.contacts(mapping=mapping)
        elif args.kind == "leads":
            rows = vendor.crm.leads(mapping=mapping)
        elif args.kind == "activities":
            rows = vendor.crm.activities()
        else:
            rows = vendor.crm.feedback()
    finally:
        vendor.close()
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    _print_table(args.kind, rows, args.mapping == "default")


def _print_table(kind: str, rows: list[dict[str, Any]], default_columns: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    columns = (_TABLE_COLUMNS[kind] if default_columns
               else tuple(dict.fromkeys(c for row in rows for c in row)))
    table = Table(title=f"{kind} ({len(rows)})")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(_cell(row.get(column)) for column in columns))
    Console().print(table)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, dict)):
        return ", ".join(map(str, value)) if isinstance(value, list) else json.dumps(value)
    return str(value)


def _offer(args: argparse.Namespace) -> None:
    vendor = _open_existing(args)
    try:
        offer_id = vendor.make_offer_sync(args.lead_id, summary=args.summary, price=args.price,
                                          currency=args.currency, valid_until=args.valid_until)
    finally:
        vendor.close()
    print(offer_id)
    print(f"offer {offer_id} for lead {args.lead_id} is queued; the person's agent collects "
          "it with messages.fetch", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "serve":
            asyncio.run(_serve(args))
        elif args.command == "crm":
            _crm(args)
        else:
            _offer(args)
    except (CliError, VendorAdapterError) as exc:
        print(f"vrm-vendor: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. `vrm-vendor crm contacts --json | head`
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
