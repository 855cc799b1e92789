"""``vrm-vendor``: serve a vendor's inbox, list its CRM records, make offers.

A thin layer over the library: each command opens the vendor, calls one
method and prints. Every mistake ends in one actionable sentence on stderr
and a non-zero exit status, never a traceback.

The vendor key is sealed in the database with a passphrase read from the
environment variable VRM_VENDOR_PASSPHRASE (never from the command line,
where other users could read it in the process list). The same holds for the
forwarding secrets: VRM_VENDOR_WEBHOOK_SECRET and VRM_VENDOR_SCIM_TOKEN.

Every CRM field is a person's text: tables show it through
:func:`protocol.display_text` as ``rich.text.Text`` (never markup, controls
escaped, ``did:key:`` never an emoji), and ``--json`` through
:func:`protocol.display_json`. Exit status: 0 done, 1 a mistake said in one
sentence, 2 a mistake in the command line, 130 interrupted.

``--db`` is a SQLite file or a PostgreSQL URI (``postgresql://user@host/db``;
its password from the URI, PGPASSWORD or ~/.pgpass, and never printed).
``serve --workers N`` runs N inbox processes on one port (PostgreSQL only);
``migrate`` copies a vendor from one database to another, key included.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
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

from ._errors import NotAVendorDatabase, VendorAdapterError, VendorNotFound
from ._identity import PASSPHRASE_ENV
from ._mapping import DEFAULT, MAPPINGS
from ._store import is_dsn
from ._vendor import Vendor

__all__ = ["main"]

#: The environment variables holding the forwarding secrets (never on the command line).
WEBHOOK_SECRET_ENV = "VRM_VENDOR_WEBHOOK_SECRET"
SCIM_TOKEN_ENV = "VRM_VENDOR_SCIM_TOKEN"

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
                       help="the vendor database: a SQLite file (created on first run) or a "
                            "postgresql:// URI (the schema is created on first run)")
    serve.add_argument("--host", default="127.0.0.1",
                       help="the address to listen on (default: 127.0.0.1)")
    serve.add_argument("--port", type=_port, default=8080,
                       help="the port to listen on; 0 picks a free port (default: 8080)")
    serve.add_argument("--name", help="the vendor's name, matched case-insensitively; created "
                                      "on first run (default: the only vendor in --db, or "
                                      "\"VRM vendor\" in a new one)")
    serve.add_argument("--public-url", help="the base URL people's agents use, if behind a "
                                            "proxy (default: http://HOST:PORT)")
    # The defaults are ServerLimits' (not imported here: aiohttp loads only to serve).
    serve.add_argument("--header-timeout", type=_positive("--header-timeout", float),
                       metavar="SECONDS",
                       help="answer 408 and close a connection whose request line and headers "
                            "take longer (default: 10)")
    serve.add_argument("--max-connections", type=_positive("--max-connections", int),
                       metavar="N", help="answer 503 to connections beyond this many "
                                         "per worker (default: 1000, or fewer if the open-file "
                                         "limit is low)")
    serve.add_argument("--forward-webhook", action="append", default=[], metavar="URL",
                       help="POST every CRM event to URL as a Standard Webhook, signed with "
                            f"the whsec_ secret in ${WEBHOOK_SECRET_ENV} (repeatable)")
    serve.add_argument("--forward-scim", action="append", default=[], metavar="URL",
                       help="keep the SCIM 2.0 Users at base URL in step with the contacts, "
                            f"with the bearer token in ${SCIM_TOKEN_ENV} (repeatable)")
    serve.add_argument("--max-connections-per-client", metavar="N",
                       type=_positive("--max-connections-per-client", int),
                       help="answer 503 to connections beyond this many from one client "
                            "address, an IPv6 client's /64, per worker (default: 100)")
    serve.add_argument("--write-timeout", type=_positive("--write-timeout", float),
                       metavar="SECONDS",
                       help="drop a client that reads none of its answers for this long "
                            "(default: 30)")
    serve.add_argument("--max-pipelined", type=_positive("--max-pipelined", int), metavar="N",
                       help="stop reading a connection while this many requests wait "
                            "behind the one being answered (default: 16)")
    serve.add_argument("--max-queued-bytes", type=_positive("--max-queued-bytes", int),
                       metavar="BYTES",
                       help="make no more answers for a client with this many bytes of answers "
                            "unread (default: 65536)")
    serve.add_argument("--new-vendor", action="store_true",
                       help="add the vendor named by --name to a database that holds other "
                            "vendors (never done without it)")
    serve.add_argument("--workers", type=_positive("--workers", int), default=1, metavar="N",
                       help="inbox processes sharing the port (above 1 needs a PostgreSQL "
                            "--db; default: 1)")
    # A worker started by `serve --workers N`: the socket it inherited.
    serve.add_argument("--listen-fd", type=int, help=argparse.SUPPRESS)

    crm = commands.add_parser("crm", help="list CRM records")
    kinds = ", ".join(sorted(_TABLE_COLUMNS))
    explain(crm.add_argument("kind", choices=sorted(_TABLE_COLUMNS), metavar="KIND",
                             help="one of: " + kinds),
            missing=f"name the records to list: {kinds}", noun="a kind of record")
    crm.add_argument("--db", required=True, help="a SQLite file or a postgresql:// URI")
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

    offer = commands.add_parser("offer", help="make an offer for a lead",
                                epilog="To withdraw an offer not fetched yet: "
                                       "vrm-vendor offer withdraw OFFER.")
    explain(offer.add_argument("lead_id", metavar="LEAD_ID",
                               help="the lead's number, as `vrm-vendor crm leads` shows it"),
            missing="name the lead to make the offer for; `vrm-vendor crm leads` lists them")
    offer.add_argument("--db", required=True, help="the vendor database")
    offer.add_argument("--name", help="the vendor, if the database holds several")
    offer.add_argument("--summary", required=True, help="what is offered, like \"Trek 520\"")
    offer.add_argument("--price", required=True, help="a decimal amount with a dot, like 199.00")
    offer.add_argument("--currency", default="EUR",
                       help="ISO 4217 code, like EUR; upper-cased (default: EUR)")
    offer.add_argument("--valid-until", help="RFC 3339 UTC time after now, like "
                                             "2026-06-01T12:00:00Z (default: no limit)")
    offer.add_argument("--url", help="a page about the offer, like https://shop.example/trek")
    offer.add_argument("--json", action="store_true",
                       help="print the offer as JSON (its shape: schemas/cli/ in the source)")

    offers = commands.add_parser("offers", help="list the offers made, and whether each "
                                 "was fetched")
    offers.add_argument("--lead", metavar="ID", help="only the offers for this lead")
    offers.add_argument("--db", required=True, help="the vendor database")
    offers.add_argument("--name", help="the vendor, if the database holds several")
    offers.add_argument("--json", action="store_true",
                        help="print a JSON array (its shape: schemas/cli/ in the source)")

    # "offer withdraw" is its own command: main() joins the two words (see _joined).
    withdraw = commands.add_parser("offer withdraw", help="withdraw an offer the person's "
                                   "agent has not fetched yet")
    explain(withdraw.add_argument("offer_id", metavar="OFFER",
                                  help="the offer's id (or its start), as `vrm-vendor offers` "
                                       "shows it"),
            missing="name the offer to withdraw; `vrm-vendor offers` lists them")
    withdraw.add_argument("--db", required=True, help="the vendor database")
    withdraw.add_argument("--name", help="the vendor, if the database holds several")
    withdraw.add_argument("--json", action="store_true",
                          help="print the offer as JSON (its shape: schemas/cli/ in the "
                               "source)")

    forward = commands.add_parser("forward", help="see and retry the forwarding queue")
    actions = forward.add_subparsers(dest="action", required=True, metavar="ACTION")
    status = actions.add_parser("status", help="per target: queued, delivered, failing, "
                                               "last error, next attempt")
    status.add_argument("--db", required=True, help="the vendor database")
    status.add_argument("--name", help="the vendor, if the database holds several")
    status.add_argument("--json", action="store_true",
                        help="print a JSON array (its shape: schemas/cli/ in the source)")
    retry = actions.add_parser("retry", help="make failed events due now (and enable a "
                                             "target that answered 410 again)")
    retry.add_argument("target", nargs="?", metavar="TARGET",
                       help="the target's URL (default: every target)")
    retry.add_argument("--db", required=True, help="the vendor database")
    retry.add_argument("--name", help="the vendor, if the database holds several")

    migrate = commands.add_parser(
        "migrate", help="copy a vendor (key, DID, ledger, CRM, queued offers) to another "
                        "database, e.g. from SQLite to PostgreSQL")
    migrate.add_argument("--from", dest="source", required=True, metavar="DB",
                         help="the database the vendor is in (a SQLite file or a URI)")
    migrate.add_argument("--to", dest="target", required=True, metavar="DB",
                         help="the database to copy it to (postgresql://...)")
    migrate.add_argument("--name", help="the vendor, if --from holds several")
    return parser


#: Commands named by two words (see _joined).
_JOINED = ("offer withdraw",)


def _joined(argv: Sequence[str]) -> list[str]:
    """``vrm-vendor offer withdraw X`` is the command "offer withdraw": lead ids are
    numbers, so the word "withdraw" after "offer" is never a lead."""
    argv = list(argv)
    if len(argv) >= 2 and f"{argv[0]} {argv[1]}" in _JOINED:
        argv[:2] = [f"{argv[0]} {argv[1]}"]
    return argv


def _passphrase() -> str:
    passphrase = os.environ.get(PASSPHRASE_ENV)
    if not passphrase:
        raise CliError(f"set {PASSPHRASE_ENV} to the passphrase that seals the vendor key "
                       "(choose one on first run, and keep it)")
    try:
        passphrase.encode("utf-8")
    except UnicodeEncodeError:  # bytes that are not UTF-8, kept as lone surrogates
        raise CliError(f"{PASSPHRASE_ENV} is not valid UTF-8 text; set it to the passphrase "
                       "in UTF-8") from None
    return passphrase


def _shown(db: str) -> str:
    """What a message calls ``--db``: the file path, or the URI without its password."""
    if not is_dsn(db):
        return db
    from ._store_postgres import redact
    return redact(db)


def _open_existing(args: argparse.Namespace) -> Vendor:
    if not is_dsn(args.db) and not os.path.isfile(args.db):
        raise CliError(f"there is no vendor database at {args.db}; "
                       f"create it with `vrm-vendor serve --db {args.db}`")
    return Vendor.open(args.db, name=args.name, passphrase=_passphrase(), create=False)


# --- commands -----------------------------------------------------------------------

def _open_for_serving(args: argparse.Namespace, forward: list[Any]) -> Vendor:
    """The vendor ``serve`` serves. A missing or empty ``--db`` file is created
    with a new vendor. A non-empty file must already hold a vendor (any other
    SQLite file is refused, untouched). A PostgreSQL database that holds no
    vendor (no vendor tables, or none in them) is a new one: a database is made
    for the adapter with ``createdb``, and the adapter's tables are created in
    it (a table of another application with one of their names is refused,
    with nothing created). On either store a vendor is added beside others,
    with a key of its own, only with ``--new-vendor``; names match
    case-insensitively. Nothing is left behind when a new file cannot be made a
    vendor database."""
    passphrase = _passphrase()
    path = args.db
    if not is_dsn(path) and (not os.path.isfile(path) or os.path.getsize(path) == 0):
        created = not os.path.exists(path)
        try:
            return Vendor.open(path, name=args.name, passphrase=passphrase, forward=forward)
        except BaseException:
            if created:
                for leftover in (path, path + "-wal", path + "-shm", path + "-journal"):
                    with contextlib.suppress(OSError):
                        os.remove(leftover)
            raise
    try:
        return Vendor.open(path, name=args.name, passphrase=passphrase, create=False,
                           forward=forward)
    except NotAVendorDatabase:
        if not is_dsn(path):
            raise CliError(f"{path} is not a vendor database (it holds no vendor); point "
                           "--db at a new file, or at one that `vrm-vendor serve` made") from None
    except VendorNotFound:
        if args.name is None:  # several vendors, and none named: the message says so
            raise
        if not args.new_vendor:
            raise CliError(f"{_shown(path)} holds no vendor named {args.name!r}; to add one, "
                           "with a key of its own, add --new-vendor") from None
    return Vendor.open(path, name=args.name, passphrase=passphrase, forward=forward)


def _serve_workers(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """``serve --workers N``: create the vendor once, bind, start the workers."""
    from ._workers import bind, supervise

    if not is_dsn(args.db):
        raise CliError("--workers above 1 needs a PostgreSQL database in --db "
                       "(postgresql://...): a SQLite file has one writer process")
    if args.forward_webhook or args.forward_scim:
        raise CliError("--forward-webhook and --forward-scim need --workers 1: one relay "
                       "delivers a database's forwarding queue (several would deliver twice)")
    # The vendor is opened (or created, by serve's rules) once, here; the workers
    # then find it (by its exact name).
    with _open_for_serving(args, []) as vendor:
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
    # Each worker gets this command line, with every option (the server limits
    # too); the last --name pins the vendor just opened, by its exact name (in
    # one word: a name may start with "-").
    worker_argv = [*argv, f"--name={name}"]
    return supervise(sock, worker_argv, args.workers)


async def _serve(args: argparse.Namespace) -> None:
    from .aiohttp import GuardedAppRunner, ServerLimits, serve, vrm_app

    chosen = {"header_timeout": args.header_timeout, "max_connections": args.max_connections,
              "max_connections_per_client": args.max_connections_per_client,
              "write_timeout": args.write_timeout, "max_pipelined": args.max_pipelined,
              "max_queued_bytes": args.max_queued_bytes}
    limits = ServerLimits(**{name: value for name, value in chosen.items() if value is not None})
    vendor = _open_for_serving(args, _forward_targets(args))
    try:
        await vendor.forwarding.start()  # delivers what an earlier run left queued
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
                print(f"vendor {display_text(repr(vendor.name))} ({vendor.did}) is listening; "
                      "stop with Ctrl-C", file=sys.stderr, flush=True)
            await stop.wait()
        finally:
            await runner.cleanup()
    finally:
        await vendor.forwarding.stop()
        vendor.close()


def _forward_targets(args: argparse.Namespace) -> list[Any]:
    """The --forward-* targets, with their secrets from the environment."""
    from .forward import Scim, Webhook

    targets: list[Any] = []
    for option, env, make in (("--forward-webhook", WEBHOOK_SECRET_ENV,
                               lambda url, s: Webhook(url, secret=s)),
                              ("--forward-scim", SCIM_TOKEN_ENV,
                               lambda url, s: Scim(url, token=s))):
        urls = getattr(args, option[2:].replace("-", "_"))
        if not urls:
            continue
        secret = os.environ.get(env)
        if not secret:
            raise CliError(f"{option} needs its secret in ${env} (never on the command line)")
        targets.extend(make(url, secret) for url in urls)
    return targets


def _forward(args: argparse.Namespace) -> None:
    vendor = _open_existing(args)
    try:
        if args.action == "retry":
            count = vendor.forwarding.retry(args.target)
            print(f"{count} event{'s' if count != 1 else ''} due now", file=sys.stderr)
            return
        rows = vendor.forwarding.status()
    finally:
        vendor.close()
    records = [{"target": r.target, "kind": r.kind, "queued": r.queued,
                "delivered": r.delivered, "failing": r.failing, "failed": r.failed,
                "last_error": r.last_error, "last_failure": _time(r.last_failure),
                "next_attempt": _time(r.next_attempt), "disabled": r.disabled}
               for r in rows]
    if args.json:
        print(display_json(records, indent=2))
        return
    if not records:
        print("no forwarding targets; add them with `vrm-vendor serve --forward-webhook URL` "
              "or `--forward-scim URL`", file=sys.stderr)
        return
    for record in records:
        state = "disabled (410 Gone)" if record["disabled"] else "enabled"
        print(f"{display_text(record['target'])} [{record['kind']}, {state}]: "
              f"{record['queued']} queued, {record['delivered']} delivered, "
              f"{record['failing']} failing, {record['failed']} failed")
        if record["last_error"]:
            print(f"  last error: {display_text(record['last_error'])} "
                  f"at {_local_time(record['last_failure'] or '')}")
        if record["next_attempt"]:
            print(f"  next attempt: {_local_time(record['next_attempt'])}")


def _time(ms: int | None) -> str | None:
    if ms is None:
        return None
    from datetime import datetime, timezone

    from protocol import format_time
    return format_time(datetime.fromtimestamp(ms // 1000, timezone.utc))


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
    _table(f"{kind} ({len(rows)})", columns,
           [[_cell(column, row.get(column)) for column in columns] for row in rows],
           nowrap=("id", "contact_id", "score"))


def _table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], *,
           nowrap: Sequence[str] = ()) -> None:
    """A table that fits the terminal (80 columns when not one): every cell is
    ``rich.text.Text`` through :func:`protocol.display_text`, so a person's
    "[/]" or "[link=…]" is shown as it is, never read as markup or a control."""
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(title=Text(display_text(title)), title_justify="left",
                  box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for column in columns:
        table.add_column(Text(column), overflow="ellipsis", no_wrap=column in nowrap)
    for row in rows:
        table.add_row(*(Text(display_text("" if value is None else value)) for value in row))

    class _Console(Console):
        def on_broken_pipe(self) -> None:  # rich's answer is exit status 1
            raise BrokenPipeError  # guarded() ends quietly

    # emoji=False: "did:key:…" must never become "did🔑…".
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
                                          currency=args.currency, valid_until=args.valid_until,
                                          url=args.url)
        made = [o for o in vendor.offers() if o["id"] == offer_id]
    finally:
        vendor.close()
    if args.json:
        print(display_json(made[0] if made else {"id": offer_id}, indent=2))
        return
    print(offer_id)
    print(f"offer {offer_id} for lead {display_text(args.lead_id)} is queued; the person's "
          f"agent collects it with messages.fetch (until then, `vrm-vendor offer withdraw "
          f"{offer_id}` withdraws it)", file=sys.stderr)


def _withdraw(args: argparse.Namespace) -> None:
    vendor = _open_existing(args)
    try:
        offer = vendor.withdraw_offer_sync(args.offer_id)
    finally:
        vendor.close()
    if args.json:
        print(display_json(offer, indent=2))
        return
    print(display_text(f"withdrew offer {offer['id']} for lead {offer['lead_id']}; it will "
                       f"never be delivered, and the lead is open again"))


def _offers(args: argparse.Namespace) -> None:
    vendor = _open_existing(args)
    try:
        offers = vendor.offers(lead_id=args.lead)
    finally:
        vendor.close()
    if args.json:
        print(display_json(offers, indent=2))
        return
    _table(f"offers ({len(offers)})",
           ["offer", "lead", "summary", "price", "valid until", "status"],
           [(o["id"], o["lead_id"], o["summary"], f"{o['amount']} {o['currency']}",
             _local_time(o["valid_until"]) if o["valid_until"] else "",
             o["status"] + (f" {_local_time(o['fetched'])}" if o["fetched"] else ""))
            for o in offers],
           nowrap=("offer", "lead", "price"))


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("vrm")
    except PackageNotFoundError:  # a source tree that was never installed
        return "unknown"


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
    print(display_text(f"vendor {copied.name!r} ({copied.did}) is copied to {copied.target} "
                       f"({counts}); serve it from there with `vrm-vendor serve --db ...`"),
          file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """The ``vrm-vendor`` entry point; returns the exit status. Ctrl-C is one line
    and 130, a closed stdout ends quietly, an I/O error is one sentence."""
    return guarded("vrm-vendor", lambda: _main(argv))


def _main(argv: Sequence[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = _parser().parse_args(_joined(argv))
    except ArgumentMistake as exc:
        print(display_text(str(exc)), file=sys.stderr)
        return EXIT_USAGE
    try:
        if args.command == "serve":
            if args.workers > 1 and args.listen_fd is None:
                return _serve_workers(args, argv)
            asyncio.run(_serve(args))
        elif args.command == "crm":
            _crm(args)
        elif args.command == "migrate":
            _migrate(args)
        elif args.command == "forward":
            _forward(args)
        elif args.command == "offers":
            _offers(args)
        elif args.command == "offer withdraw":
            _withdraw(args)
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
