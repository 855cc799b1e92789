"""``vrm-vendor``: serve a vendor's inbox, list its CRM records, make offers.

A thin layer over the library: each command opens the vendor, calls one
method and prints. Every mistake ends in one actionable sentence on stderr
and a non-zero exit status, never a traceback.

The vendor key is sealed in the database with a passphrase read from the
environment variable VRM_VENDOR_PASSPHRASE (never from the command line,
where other users could read it in the process list).

``--db`` is a SQLite file or a PostgreSQL URI (``postgresql://user@host/db``;
its password from the URI, PGPASSWORD or ~/.pgpass, and never printed).
``serve --workers N`` runs N inbox processes on one port (PostgreSQL only);
``migrate`` copies a vendor from one database to another, key included.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shlex
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from ._errors import VendorAdapterError
from ._identity import PASSPHRASE_ENV
from ._mapping import MAPPINGS
from ._store import is_dsn
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


class UsageError(CliError):
    """A mistake in the command line itself (exit status 2, as argparse's)."""


# --- the command line ------------------------------------------------------------------

class _Parser(argparse.ArgumentParser):
    """argparse, except that a mistake is one sentence saying what to do, not a
    usage dump (``--help`` still prints the usage)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {_sentence(message)} (see {self.prog} --help)")

    def parse_args(self, args: Sequence[str] | None = None,  # type: ignore[override]
                   namespace: argparse.Namespace | None = None) -> argparse.Namespace:
        parsed, extra = self.parse_known_args(args, namespace)
        if extra:
            # Said by the command concerned, not by vrm-vendor as argparse would.
            command = getattr(parsed, "command", None)
            prog = f"{self.prog} {command}" if command else self.prog
            what = (f"{extra[0]} is not an option of {prog}" if extra[0].startswith("-")
                    else f"it does not take {shlex.join(extra)!r}; leave it out")
            raise UsageError(f"{prog}: {what} (see {prog} --help)")
        return parsed


#: What to say when a required argument is missing, by its name in argparse's message.
_MISSING = {
    "COMMAND": "name a command: serve, crm, offer or migrate",
    "KIND": "name the records to list: " + ", ".join(sorted(_TABLE_COLUMNS)),
    "LEAD_ID": "name the lead to make the offer for; `vrm-vendor crm leads` lists them",
}
#: What a choice is, in "'x' is not ...", by its name in argparse's message.
_CHOICE = {"COMMAND": "a command", "KIND": "a kind of record", "--mapping": "a mapping"}


def _sentence(message: str) -> str:
    """argparse's terse error message, as a sentence a person can act on."""
    if match := re.fullmatch(r"the following arguments are required: (.+)", message):
        names = match[1].split(", ")
        if names[0] in _MISSING:
            return _MISSING[names[0]]
        return f"{_and(names)} {'is' if len(names) == 1 else 'are'} required"
    if match := re.fullmatch(r"argument (\S+): invalid choice: (.+?) \(choose from (.+)\)",
                             message):
        what = _CHOICE.get(match[1], f"a valid {match[1]}")
        choices = [choice.strip("'\"") for choice in match[3].split(", ")]
        return f"{match[2]} is not {what}; use {_and(choices, 'or')}"
    if match := re.fullmatch(r"argument (\S+): expected one argument", message):
        return f"{match[1]} needs a value"
    if match := re.fullmatch(r"argument (\S+): (.+)", message):
        return match[2]  # our own type checks say the whole thing
    return message


def _and(words: list[str], conjunction: str = "and") -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} {conjunction} {words[-1]}"


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
    parser = _Parser(
        prog="vrm-vendor",
        description="Listen to people's VRM agents: a verified inbox, a built-in CRM, offers. "
                    f"The vendor key is sealed with the passphrase in ${PASSPHRASE_ENV}.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="serve the discovery document and the inbox")
    serve.add_argument("--db", required=True,
                       help="the vendor database: a SQLite file (created on first run) or a "
                            "postgresql:// URI (the schema is created on first run)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=_port, default=8080, help="0 picks a free port")
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
    serve.add_argument("--workers", type=_positive("--workers", int), default=1, metavar="N",
                       help="inbox processes sharing the port (above 1 needs a PostgreSQL "
                            "--db; default: 1)")
    # A worker started by `serve --workers N`: the socket it inherited.
    serve.add_argument("--listen-fd", type=int, help=argparse.SUPPRESS)

    crm = commands.add_parser("crm", help="list CRM records")
    crm.add_argument("kind", choices=sorted(_TABLE_COLUMNS), metavar="KIND",
                     help="one of: " + ", ".join(sorted(_TABLE_COLUMNS)))
    crm.add_argument("--db", required=True, help="a SQLite file or a postgresql:// URI")
    crm.add_argument("--name", help="the vendor, if the database holds several")
    crm.add_argument("--json", action="store_true", help="print a JSON array")
    crm.add_argument("--mapping", choices=sorted(MAPPINGS), default="default",
                     help="field names for contacts and leads (with --json)")

    offer = commands.add_parser("offer", help="make an offer for a lead")
    offer.add_argument("lead_id", metavar="LEAD_ID")
    offer.add_argument("--db", required=True, help="a SQLite file or a postgresql:// URI")
    offer.add_argument("--name", help="the vendor, if the database holds several")
    offer.add_argument("--summary", required=True)
    offer.add_argument("--price", required=True, help="a decimal amount, like 199.00")
    offer.add_argument("--currency", default="EUR", help="ISO 4217 code, like EUR")
    offer.add_argument("--valid-until", help="RFC 3339 UTC time, like 2026-06-01T12:00:00Z")

    migrate = commands.add_parser(
        "migrate", help="copy a vendor (key, DID, ledger, CRM, queued offers) to another "
                        "database, e.g. from SQLite to PostgreSQL")
    migrate.add_argument("--from", dest="source", required=True, metavar="DB",
                         help="the database the vendor is in (a SQLite file or a URI)")
    migrate.add_argument("--to", dest="target", required=True, metavar="DB",
                         help="the database to copy it to (postgresql://...)")
    migrate.add_argument("--name", help="the vendor, if --from holds several")
    return parser


def _passphrase() -> str:
    passphrase = os.environ.get(PASSPHRASE_ENV)
    if not passphrase:
        raise CliError(f"set {PASSPHRASE_ENV} to the passphrase that seals the vendor key "
                       "(choose one on first run, and keep it)")
    return passphrase


def _open_existing(args: argparse.Namespace) -> Vendor:
    if not is_dsn(args.db) and not os.path.isfile(args.db):
        raise CliError(f"there is no vendor database at {args.db}; "
                       f"create it with `vrm-vendor serve --db {args.db}`")
    return Vendor.open(args.db, name=args.name, passphrase=_passphrase(), create=False)


# --- commands -----------------------------------------------------------------------

def _serve_workers(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """``serve --workers N``: create the vendor once, bind, start the workers."""
    from ._workers import bind, supervise

    if not is_dsn(args.db):
        raise CliError("--workers above 1 needs a PostgreSQL database in --db "
                       "(postgresql://...): a SQLite file has one writer process")
    with Vendor.open(args.db, name=args.name, passphrase=_passphrase()) as vendor:
        name, did = vendor.name, vendor.did
    try:
        sock = bind(args.host, args.port)
    except OSError as exc:
        raise CliError(f"cannot listen on {args.host}:{args.port}: "
                       f"{exc.strerror or exc}") from None
    port = sock.getsockname()[1]
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(args.public_url.rstrip("/") if args.public_url else f"http://{host}:{port}",
          flush=True)
    print(f"vendor {name!r} ({did}) is listening with {args.workers} workers; "
          "stop with Ctrl-C", file=sys.stderr, flush=True)
    # Each worker gets this command line (--name pins the vendor just opened).
    worker_argv = [*argv, "--name", name] if args.name is None else list(argv)
    return supervise(sock, worker_argv, args.workers)


async def _serve(args: argparse.Namespace) -> None:
    from .aiohttp import GuardedAppRunner, ServerLimits, serve, vrm_app

    chosen = {"header_timeout": args.header_timeout, "max_connections": args.max_connections}
    limits = ServerLimits(**{name: value for name, value in chosen.items() if value is not None})
    vendor = Vendor.open(args.db, name=args.name, passphrase=_passphrase())
    try:
        app = vrm_app(vendor, public_base_url=args.public_url)
        if args.listen_fd is not None:  # a worker of `serve --workers N`
            from aiohttp import web

            from ._workers import inherited
            runner = GuardedAppRunner(app, limits=limits, access_log=None,
                                      handle_signals=False)
            await runner.setup()
            await web.SockSite(runner, inherited(args.listen_fd)).start()
        else:
            try:
                runner = await serve(app, host=args.host, port=args.port, limits=limits,
                                     access_log=None, handle_signals=False)
            except OSError as exc:
                raise CliError(f"cannot listen on {args.host}:{args.port}: "
                               f"{exc.strerror or exc}") from None
        try:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, stop.set)
            if args.listen_fd is None:
                port = runner.addresses[0][1] if runner.addresses else args.port
                host = f"[{args.host}]" if ":" in args.host else args.host
                print(args.public_url.rstrip("/") if args.public_url
                      else f"http://{host}:{port}", flush=True)
                print(f"vendor {vendor.name!r} ({vendor.did}) is listening; stop with Ctrl-C",
                      file=sys.stderr, flush=True)
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


def _migrate(args: argparse.Namespace) -> None:
    from ._migrate import copy_vendor

    if os.path.realpath(args.source) == os.path.realpath(args.target) or \
            args.source == args.target:
        raise CliError("--from and --to name the same database")
    if not is_dsn(args.source) and not os.path.isfile(args.source):
        raise CliError(f"there is no vendor database at {args.source}")
    copied = copy_vendor(args.source, args.target, name=args.name, passphrase=_passphrase())
    print(copied.did)
    counts = ", ".join(f"{n} {table}" for table, n in copied.rows.items())
    print(f"vendor {copied.name!r} ({copied.did}) is copied to {copied.target} ({counts}); "
          f"serve it from there with `vrm-vendor serve --db ...`", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = _parser().parse_args(argv)
    except UsageError as exc:
        print(exc, file=sys.stderr)
        return 2
    try:
        if args.command == "serve":
            if args.workers > 1 and args.listen_fd is None:
                return _serve_workers(args, argv)
            asyncio.run(_serve(args))
        elif args.command == "crm":
            _crm(args)
        elif args.command == "migrate":
            _migrate(args)
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
