"""``vrm-vendor``: serve a vendor's inbox, list its CRM records, make offers.

A thin layer over the library: each command opens the vendor, calls one
method and prints. Every mistake ends in one actionable sentence on stderr
and a non-zero exit status, never a traceback.

The vendor key is sealed in the database with a passphrase read from the
environment variable VRM_VENDOR_PASSPHRASE (never from the command line,
where other users could read it in the process list).

Every CRM field is a person's text: tables show it through
:func:`protocol.display_text` as ``rich.text.Text`` (never markup, controls
escaped, ``did:key:`` never an emoji), and ``--json`` through
:func:`protocol.display_json`. Exit status: 0 done, 1 a mistake said in one
sentence, 2 a mistake in the command line, 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from protocol import display_json, display_text
from vrm_cli import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_USAGE, guarded, io_error_sentence
from vrm_cli._args import ArgumentMistake, SentenceParser, and_list, explain

from ._errors import VendorAdapterError
from ._identity import PASSPHRASE_ENV
from ._mapping import DEFAULT, MAPPINGS
from ._vendor import Vendor

__all__ = ["main"]

#: Columns shown in the readable tables (--json shows every column; --columns
#: chooses others). Named as in the default mapping; another --mapping shows
#: the same fields under its own names.
_TABLE_COLUMNS = {
    "contacts": ("id", "given_name", "family_name", "email", "locality", "status", "updated"),
    "leads": ("id", "contact_id", "summary", "category", "budget_max", "budget_currency",
              "needed_by", "status"),
    "activities": ("id", "contact_id", "type", "message_id", "received"),
    "feedback": ("id", "contact_id", "score", "nps_class", "subject", "comment", "received"),
}
#: The mapping table of each kind of record (activities and feedback have none).
_MAPPED = {"contacts": "contact", "leads": "lead"}
#: Columns that hold a time (shown in local time, to the second) or a DID (shortened).
_TIMES = {"updated", "created", "ended", "received", "valid_until", "CreatedDate",
          "LastModifiedDate", "createdate", "lastmodifieddate"}
_DIDS = {"did", "VRM_DID__c", "vrm_did"}


class CliError(Exception):
    """A mistake the person can fix; the message says how."""


UsageError = ArgumentMistake  # a mistake in the command line itself (exit status 2)


def _port(text: str) -> int:
    if not (text.isascii() and text.isdigit() and 0 <= int(text) <= 65535):
        raise argparse.ArgumentTypeError(f"--port must be a number from 0 to 65535, not {text!r}")
    return int(text)


def _positive(option: str, kind: Callable[[str], float]) -> Callable[[str], Any]:
    noun = "a whole number" if kind is int else "a number of seconds"

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            value = 0
        if not 0 < value < float("inf"):
            raise argparse.ArgumentTypeError(f"{option} must be {noun} above 0, not {text!r}")
        return value

    return parse


def _parser() -> argparse.ArgumentParser:
    parser = SentenceParser(
        prog="vrm-vendor",
        description="Listen to people's VRM agents: a verified inbox, a built-in CRM, offers. "
                    f"The vendor key is sealed with the passphrase in ${PASSPHRASE_ENV}.")
    parser.add_argument("--version", action="version", version=f"vrm-vendor {_version()}",
                        help="print the version and exit")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="serve the discovery document and the inbox")
    serve.add_argument("--db", required=True,
                       help="the vendor database (created on first run)")
    serve.add_argument("--host", default="127.0.0.1",
                       help="the address to listen on (default: 127.0.0.1)")
    serve.add_argument("--port", type=_port, default=8080,
                       help="the port to listen on; 0 picks a free port (default: 8080)")
    serve.add_argument("--name", help="the vendor's name (default: the only vendor in --db)")
    serve.add_argument("--public-url", help="the base URL people's agents use, if behind a proxy")
    # The defaults are ServerLimits' (not imported here: aiohttp loads only to serve).
    serve.add_argument("--header-timeout", type=_positive("--header-timeout", float),
                       metavar="SECONDS",
                       help="answer 408 and close a connection whose request line and headers "
                            "take longer (default: 10)")
    serve.add_argument("--max-connections", type=_positive("--max-connections", int),
                       metavar="N", help="answer 503 to connections beyond this many "
                                         "(default: 1000, or fewer if the open-file limit is low)")

    crm = commands.add_parser("crm", help="list CRM records")
    kinds = ", ".join(sorted(_TABLE_COLUMNS))
    explain(crm.add_argument("kind", choices=sorted(_TABLE_COLUMNS), metavar="KIND",
                             help="one of: " + kinds),
            missing=f"name the records to list: {kinds}", noun="a kind of record")
    crm.add_argument("--db", required=True, help="the vendor database")
    crm.add_argument("--name", help="the vendor, if the database holds several")
    crm.add_argument("--json", action="store_true",
                     help="print a JSON array of every column (or of --columns)")
    explain(crm.add_argument("--mapping", choices=sorted(MAPPINGS), default="default",
                             help="field names for contacts and leads: "
                                  + ", ".join(sorted(MAPPINGS)) + " (default: default)"),
            noun="a mapping")
    crm.add_argument("--columns", metavar="A,B,C",
                     help="the columns to show, comma-separated, named as in --mapping "
                          "(default: a few that fit 80 columns; --json: all)")

    offer = commands.add_parser("offer", help="make an offer for a lead")
    explain(offer.add_argument("lead_id", metavar="LEAD_ID",
                               help="the lead's id, from `vrm-vendor crm leads`"),
            missing="name the lead to make the offer for; `vrm-vendor crm leads` lists them")
    offer.add_argument("--db", required=True, help="the vendor database")
    offer.add_argument("--name", help="the vendor, if the database holds several")
    offer.add_argument("--summary", required=True, help="what you offer, in a line")
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
    from .aiohttp import ServerLimits, serve, vrm_app

    chosen = {"header_timeout": args.header_timeout, "max_connections": args.max_connections}
    limits = ServerLimits(**{name: value for name, value in chosen.items() if value is not None})
    vendor = Vendor.open(args.db, name=args.name, passphrase=_passphrase())
    try:
        try:
            runner = await serve(vrm_app(vendor, public_base_url=args.public_url),
                                 host=args.host, port=args.port, limits=limits,
                                 access_log=None, handle_signals=False)
        except OSError as exc:
            raise CliError(f"cannot listen on {args.host}:{args.port}: "
                           f"{exc.strerror or exc}") from None
        try:
            port = runner.addresses[0][1] if runner.addresses else args.port
            host = f"[{args.host}]" if ":" in args.host else args.host
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, stop.set)
            print(args.public_url.rstrip("/") if args.public_url else f"http://{host}:{port}",
                  flush=True)
            print(f"vendor {display_text(repr(vendor.name))} ({vendor.did}) is listening; "
                  "stop with Ctrl-C", file=sys.stderr, flush=True)
            await stop.wait()
        finally:
            await runner.cleanup()
    finally:
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
    columns = _columns(args, rows)
    if args.json:
        if args.columns:
            rows = [{column: row.get(column) for column in columns} for row in rows]
        print(display_json(rows, indent=2))
        return
    _print_table(args.kind, rows, columns)


def _columns(args: argparse.Namespace, rows: list[dict[str, Any]]) -> list[str]:
    """The columns to show: --columns (checked), else the kind's few, under the
    names of the chosen mapping."""
    kind = args.kind
    table = (MAPPINGS[args.mapping].tables.get(_MAPPED[kind], {}) if kind in _MAPPED
             else {})
    if kind in _MAPPED:
        # Every column the mapping can produce, in its order, even with no rows yet.
        known = list(dict.fromkeys(table.values()))
    else:
        known = list(dict.fromkeys(c for row in rows for c in row)) or list(_TABLE_COLUMNS[kind])
    if args.columns:
        chosen = [c.strip() for c in args.columns.split(",") if c.strip()]
        unknown = [c for c in chosen if c not in known]
        if not chosen or unknown:
            what = f"{and_list(unknown)} {'is' if len(unknown) == 1 else 'are'} not" \
                if unknown else "name at least one"
            raise CliError(f"--columns: {what} a column of {kind} with --mapping "
                           f"{args.mapping}; the columns are {', '.join(known)}")
        return chosen
    if kind not in _MAPPED:
        return list(_TABLE_COLUMNS[kind])
    # The default few, each under the mapping's name for the same protocol field.
    by_default_name = {name: path for path, name in DEFAULT.tables[_MAPPED[kind]].items()}
    shown = [table.get(by_default_name.get(column, ""), "") for column in _TABLE_COLUMNS[kind]]
    return [column for column in shown if column]


def _print_table(kind: str, rows: list[dict[str, Any]], columns: Sequence[str]) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(title=Text(f"{kind} ({len(rows)})"), title_justify="left",
                  box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for column in columns:
        table.add_column(Text(column), overflow="ellipsis",
                         no_wrap=column in ("id", "contact_id", "score"))
    for row in rows:
        table.add_row(*(Text(_cell(column, row.get(column))) for column in columns))
    # emoji=False: "did:key:…" must never become "did🔑…"; the cells are Text, so
    # a person's "[/]" or "[link=…]" is shown as it is, never read as markup.
    class _Console(Console):
        def on_broken_pipe(self) -> None:  # rich's answer is exit status 1
            raise BrokenPipeError  # guarded() ends quietly

    _Console(emoji=False, highlight=False).print(table)


def _cell(column: str, value: Any) -> str:
    """A CRM value as text for one cell: times local, DIDs short, lists joined,
    and every character a terminal would act on escaped."""
    if value is None:
        return ""
    if column in _TIMES and isinstance(value, str):
        value = _local_time(value)
    elif column in _DIDS and isinstance(value, str) and len(value) > 24:
        value = f"{value[:12]}…{value[-6:]}"
    elif isinstance(value, list):
        value = ", ".join(map(str, value))
    elif isinstance(value, dict):
        value = json.dumps(value, ensure_ascii=False)
    return display_text(value)


def _local_time(text: str) -> str:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return text
    if moment.tzinfo is not None:
        moment = moment.astimezone()
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def _offer(args: argparse.Namespace) -> None:
    vendor = _open_existing(args)
    try:
        offer_id = vendor.make_offer_sync(args.lead_id, summary=args.summary, price=args.price,
                                          currency=args.currency, valid_until=args.valid_until)
    finally:
        vendor.close()
    print(offer_id)
    print(f"offer {offer_id} for lead {display_text(args.lead_id)} is queued; the person's "
          "agent collects it with messages.fetch", file=sys.stderr)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("vrm")
    except PackageNotFoundError:  # a source tree that was never installed
        return "unknown"


def main(argv: Sequence[str] | None = None) -> int:
    """The ``vrm-vendor`` entry point; returns the exit status. Ctrl-C is one line
    and 130, a closed stdout ends quietly, an I/O error is one sentence."""
    return guarded("vrm-vendor", lambda: _main(argv))


def _main(argv: Sequence[str] | None) -> int:
    try:
        args = _parser().parse_args(argv)
    except ArgumentMistake as exc:
        print(display_text(str(exc)), file=sys.stderr)
        return EXIT_USAGE
    try:
        if args.command == "serve":
            asyncio.run(_serve(args))
        elif args.command == "crm":
            _crm(args)
        else:
            _offer(args)
    except (CliError, VendorAdapterError) as exc:
        print(f"vrm-vendor: {display_text(str(exc))}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("vrm-vendor: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # e.g. `vrm-vendor crm contacts --json | head`
        raise  # guarded() ends quietly
    except OSError as exc:
        print(f"vrm-vendor: {display_text(io_error_sentence(exc))}", file=sys.stderr)
        return EXIT_ERROR
    return 0


if __name__ == "__main__":
    sys.exit(main())
