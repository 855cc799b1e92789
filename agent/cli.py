"""The ``vrm`` command: a thin layer over :class:`agent.Agent`.

Each command parses its arguments, opens the agent, calls one or two API
methods inside ``asyncio.run`` and prints the answer: a rich table for people,
or JSON on stdout with ``--json``. Every :class:`AgentError` becomes one
sentence on stderr and a non-zero exit status; a person never sees a traceback.

Exit status: 0 done (messages may still be pending: they stay in the outbox);
1 a mistake or an error, said in one sentence; 2 a usage error or an
unexpected failure; 3 a vendor showed a key other than the pinned one, so
nothing more goes to it until the person decides (``vrm vendor list`` says
how); 130 interrupted.

Adding a command (``vrm demo`` does this from ``agent/demo.py``, which ``main``
imports when it exists)::

    from agent.cli import register

    def setup(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--vendors", type=int, default=20)

    async def run(args: argparse.Namespace) -> int:
        ...
        return 0

    register("demo", help="start local vendors and show vrm at work", setup=setup, run=run)

``register(("vendor", "add"), ...)`` adds a command under a group.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import importlib.util
import json
import os
import sys
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ._agent import Agent, Broadcast, SyncResult, default_home
from ._delivery import DeliveryResult
from ._errors import AgentError, UsageError, VendorKeyChanged
from ._profile import SHAREABLE
from ._vendors import key_changed_message

__all__ = ["main", "register", "CliCommand", "open_agent", "print_json", "progress_bar"]

Run = Callable[[argparse.Namespace], Awaitable[int]]
Setup = Callable[[argparse.ArgumentParser], None]

# emoji=False: "did:key:…" must not become "did🔑…".
out = Console(highlight=False, soft_wrap=False, emoji=False)
err = Console(stderr=True, highlight=False, emoji=False)

#: The exit status when a vendor showed a key other than the pinned one.
EXIT_KEY_CHANGED = 3


@dataclass(frozen=True)
class CliCommand:
    """One ``vrm`` subcommand: ``path`` is ("vendor", "add") for ``vrm vendor add``."""

    path: tuple[str, ...]
    help: str
    setup: Setup
    run: Run


_COMMANDS: list[CliCommand] = []


def register(name: str | Sequence[str], *, help: str, setup: Setup, run: Run) -> None:
    """Add a subcommand; ``name`` is "sync" or ("vendor", "add")."""
    path = (name,) if isinstance(name, str) else tuple(name)
    _COMMANDS[:] = [c for c in _COMMANDS if c.path != path]
    _COMMANDS.append(CliCommand(path, help, setup, run))


# --- helpers shared by commands ----------------------------------------------

async def open_agent(args: argparse.Namespace) -> Agent:
    return await Agent.open(_home(args))


def _home(args: argparse.Namespace) -> Path:
    return Path(args.home) if getattr(args, "home", None) else default_home()


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


class progress_bar:
    """A rich progress bar on stderr, fed by the API's ``progress(done, total, result)``
    callback; silent when ``enabled`` is false (for ``--json``)."""

    def __init__(self, label: str, *, enabled: bool = True) -> None:
        self._label = label
        self._enabled = enabled and err.is_terminal
        self._progress: Progress | None = None
        self._task: Any = None

    def __enter__(self) -> progress_bar:
        if self._enabled:
            self._progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                      MofNCompleteColumn(), TimeElapsedColumn(),
                                      console=err, transient=True)
            self._progress.start()
            self._task = self._progress.add_task(self._label, total=None)
        return self

    def __call__(self, done: int, total: int, result: object) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=done, total=total)

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()


def _add_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON on stdout")


class _Styled(str):
    """Text that is ours and may carry rich markup; everything else is escaped."""


def _cell(value: Any) -> str:
    if value is None:
        return ""
    # Names and details come from vendors: never let them inject markup.
    return value if isinstance(value, _Styled) else escape(str(value))


def _table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    table = Table(title=escape(title), title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(_cell(cell) for cell in row))
    out.print(table)


def _say(text: str) -> None:
    out.print(text, markup=False)


_STATUS_STYLE = {"delivered": "green", "pending": "yellow", "rejected": "red",
                 "failed": "red", "expired": "red", "ok": "green", "active": "green",
                 "ended": "dim", "refused": "red", "ending": "yellow",
                 "key-changed": "bold red"}


def _styled(status: str) -> str:
    style = _STATUS_STYLE.get(status)
    return _Styled(f"[{style}]{escape(status)}[/{style}]" if style else escape(status))


def _show_results(title: str, results: Sequence[DeliveryResult]) -> None:
    if not results:
        _say(f"{title}: nothing to send.")
        return
    _table(title, ["vendor", "message", "status", "attempts", "detail"],
           [(r.vendor, r.type, _styled(r.status), r.attempts, r.detail or r.receipt_status)
            for r in results])
    counts: dict[str, int] = {}
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
    _say(", ".join(f"{n} {status}" for status, n in sorted(counts.items())))
    if counts.get("pending"):
        out.print("Pending messages stay in the outbox; `vrm deliver` retries them when due.")


def _held_now(results: Iterable[DeliveryResult]) -> list[int]:
    """The vendors these results held for answering with another key, by number."""
    return sorted({r.vendor_id for r in results if r.vendor_status == "key-changed"})


def _key_changes(agent: Agent, vendor_ids: Sequence[int]) -> int:
    """Say loudly, on stderr, which vendors answered with another key in this run;
    the exit status then says so too."""
    for vendor_id in vendor_ids:
        _fail(key_changed_message(agent.vendor(vendor_id), None))
    return EXIT_KEY_CHANGED if vendor_ids else 0


def _held(vendors: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Vendors whose key changed and that the person has not decided about yet
    (neither ended nor added again)."""
    current = {v["url"] for v in vendors if v["status"] in ("pending", "active", "ending")}
    return [v for v in vendors if v["status"] == "key-changed" and v["url"] not in current]


def _remind_key_changes(agent: Agent) -> None:
    """Vendors held since an earlier run get nothing: say so on every broadcast."""
    held = [v["name"] for v in _held(agent.vendors())]
    if held:
        whose = "its" if len(held) == 1 else "their"
        _fail(f"warning: {', '.join(held)} got nothing, because {whose} key changed; "
              f"see `vrm vendor list` for what to do.")


def _split_fields(pairs: Sequence[str]) -> dict[str, str | None]:
    changes: dict[str, str | None] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise UsageError(f"write each field as name=value, like email=ann@example.org "
                             f"(got {pair!r})")
        changes[name.strip()] = value.strip() or None
    return changes


# --- the commands -------------------------------------------------------------

def _init_setup(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--name", help="your name, kept in your own store only")


async def _init(args: argparse.Namespace) -> int:
    from ._store_commands import choose_passphrase, short_passphrase_warning

    typed = not os.environ.get("VRM_PASSPHRASE")
    passphrase = choose_passphrase(variable="VRM_PASSPHRASE", what="passphrase")
    if typed:
        short_passphrase_warning(passphrase)
    agent = await Agent.init(_home(args), passphrase=passphrase, name=args.name)
    try:
        for warning in agent.warnings:
            _fail(f"warning: {warning}.")
        _say(f"Created your store in {agent.home}.")
        out.print("Your keys are sealed with your passphrase; keep it safe.")
        out.print("Next: vrm profile set email=you@example.org, then vrm vendor add URL.")
    finally:
        await agent.close()
    return 0


def _vendor_add_setup(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("url", help="the vendor's address, e.g. https://bikes4u.example")
    parser.add_argument("--share", default=None,
                        help=f"profile fields this vendor may see, comma-separated: "
                             f"{','.join(SHAREABLE)} (none if not given; for a vendor "
                             f"already added, giving it again re-states exactly these)")
    parser.add_argument("--allow-http", action="store_true",
                        help="accept a plain http:// address that is not loopback "
                             "(messages are signed, not encrypted: anyone on the way "
                             "can read them)")
    _add_json(parser)


async def _vendor_add(args: argparse.Namespace) -> int:
    share = None if args.share is None else [s for s in args.share.split(",") if s.strip()]
    async with await open_agent(args) as agent:
        vendor = await agent.add_vendor(args.url, share=share, allow_http=args.allow_http)
        delivery = vendor.get("delivery")
        # Its own request's answer is what can have held this (new) relationship.
        status = _key_changes(agent, [vendor["id"]] if vendor["status"] == "key-changed"
                              else [])
    if args.json:
        print_json(vendor)
        return status
    action, name, shares = vendor["action"], vendor["name"], ", ".join(vendor["share"])
    if action == "unchanged":
        _say(f"{name} is already vendor {vendor['id']} ({vendor['status']}) and may see "
             f"{shares or 'none of your fields'}; nothing to send.")
        return status
    if action == "share-updated":
        _say(f"{name} may now see {shares or 'none of your fields'}; a relationship "
             f"request re-states exactly that.")
    else:
        again = (f" (a new relationship; vendor {vendor['replaces']} is kept as history)"
                 if action == "added-again" else "")
        _say(f"Added vendor {vendor['id']}: {name} ({vendor['status']}){again}.")
        _say(f"Pinned key {vendor['vendor_did']}; you are {vendor['pairwise_did']} to them.")
    if delivery and delivery["status"] == "pending":
        _say(f"The relationship request is queued ({delivery['detail']}); "
             f"`vrm deliver` retries it.")
    elif delivery and delivery["status"] == "delivered" and action == "share-updated":
        _say(f"{name} confirmed it with a signed receipt.")
    elif delivery and delivery["status"] not in ("pending", "delivered"):
        _say(f"The relationship request {delivery['status']}: {delivery['detail']}")
    return status


async def _vendor_list(args: argparse.Namespace) -> int:
    async with await open_agent(args) as agent:
        vendors = agent.vendors()
    if args.json:
        print_json(vendors)
        return 0
    if not vendors:
        out.print("No vendors yet. Add one with `vrm vendor add URL`.")
        return 0
    _table("Vendors", ["#", "name", "status", "shares", "url"],
           [(v["id"], v["name"],
             _Styled(_styled(v["status"]) + (" (erased)" if v["erased"] else "")),
             ",".join(v["share"]) or "-", v["url"]) for v in vendors])
    for v in _held(vendors):
        _say(f"{v['name']} ({v['id']}) answered with a key other than the pinned one, so "
             f"it gets nothing: if you trust the new key, `vrm vendor add {v['url']}` "
             f"starts a new relationship; otherwise `vrm vendor end {v['id']}`.")
    return 0


def _vendor_end_setup(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("vendor", help="the vendor's number, name, DID or URL")
    parser.add_argument("--erase", action="store_true",
                        help="ask the vendor to erase your data (also after an end)")
    parser.add_argument("--reason", help="a short reason to give the vendor")
    _add_json(parser)


async def _vendor_end(args: argparse.Namespace) -> int:
    async with await open_agent(args) as agent:
        before = agent.vendor(args.vendor)
        result = await agent.end_vendor(args.vendor, erase=args.erase, reason=args.reason)
        vendor = agent.vendor(before["id"])
        status = _key_changes(agent, _held_now([result] if result else []))
    if args.json:
        print_json({"vendor": vendor, "delivery": result.to_json() if result else None})
        return status
    if result is None:
        _say(f"Ended the relationship with {vendor['name']} here only: its key changed, so "
             f"it could not confirm anything, and nothing was sent to it.")
    elif result.status == "delivered":
        what = ", and that your data will be erased" if args.erase else ""
        _say(f"{vendor['name']} confirmed with a signed receipt that the relationship has "
             f"ended{what}.")
    else:
        _show_results(f"Ending the relationship with {vendor['name']}", [result])
    return status


def _profile_set_setup(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("fields", nargs="+", metavar="FIELD=VALUE",
                        help="e.g. email=ann@example.org postal_address.locality=Leeds "
                             "(an empty value removes the field)")
    _add_json(parser)


async def _profile_set(args: argparse.Namespace) -> int:
    changes = _split_fields(args.fields)
    async with await open_agent(args) as agent:
        with progress_bar("telling vendors", enabled=not args.json) as bar:
            broadcast = await agent.set_profile(changes, progress=bar)
        status = _key_changes(agent, _held_now(broadcast.results))
        _remind_key_changes(agent)
    if not args.json and not broadcast.changed:
        _say("Nothing changed: your profile already holds these values, so nothing was sent.")
        return status
    return _show_broadcast(args, broadcast, "Profile updated") or status


def _show_broadcast(args: argparse.Namespace, broadcast: Broadcast, title: str) -> int:
    if args.json:
        print_json(broadcast.to_json())
    elif not broadcast.message_ids:
        _say(f"{title}; no vendor needed to be told.")
    else:
        _show_results(f"{title}: {broadcast.summary}", broadcast.results)
    return 0


async def _profile_show(args: argparse.Namespace) -> int:
    async with await open_agent(args) as agent:
        profile = agent.profile()
    if args.json:
        print_json(profile)
    elif not profile:
        out.print("Your profile is empty. Set fields with `vrm profile set email=…`.")
    else:
        _table("Your profile", ["field", "value"], sorted(profile.items()))
    return 0


def _intent_setup(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("summary", help='what you want, e.g. "Touring bike, 56 cm"')
    parser.add_argument("--category", help="e.g. bicycles")
    parser.add_argument("--budget", nargs=2, metavar=("AMOUNT", "CURRENCY"),
                        help="the most you will pay, e.g. --budget 800 EUR")
    parser.add_argument("--needed-by", metavar="YYYY-MM-DD")
    parser.add_argument("--to", action="append", metavar="VENDOR",
                        help="only this vendor (number, name, DID or URL); repeat for more: "
                             "--to Bikes4U --to 3 (default: all that accept intents)")
    _add_json(parser)


async def _intent(args: argparse.Namespace) -> int:
    async with await open_agent(args) as agent:
        with progress_bar("sending the intent", enabled=not args.json) as bar:
            broadcast = await agent.intent(
                args.summary, category=args.category,
                budget=tuple(args.budget) if args.budget else None,  # type: ignore[arg-type]
                needed_by=args.needed_by, to=args.to, progress=bar)
        status = _key_changes(agent, _held_now(broadcast.results))
        if not args.to:
            _remind_key_changes(agent)
    if not args.json:
        out.print("Offers arrive with `vrm sync`; see them with `vrm offers`.")
    return _show_broadcast(args, broadcast, "Intent sent") or status


async def _outbox(args: argparse.Namespace) -> int:
    async with await open_agent(args) as agent:
        rows = agent.outbox()
    if args.json:
        print_json(rows)
        return 0
    if not rows:
        out.print("The outbox is empty.")
        return 0
    _table("Outbox", ["message", "vendor", "type", "status", "attempts", "next attempt",
                      "last error / receipt"],
           [(r["message_id"][:10], r["vendor"], r["type"], _styled(r["status"]), r["attempts"],
             r["next_attempt"][:19] if r["status"] == "pending" else "",
             r["last_error"] or r["receipt_status"]) for r in rows])
    return 0


def _deliver_setup(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                        help="also make the retries that fall due within SECONDS")
    _add_json(parser)


async def _deliver(args: argparse.Namespace) -> int:
    async with await open_agent(args) as agent:
        with progress_bar("delivering", enabled=not args.json) as bar:
            results = await agent.deliver(progress=bar, patience=args.wait)
        status = _key_changes(agent, _held_now(results))
        waiting = agent.pending()
    if args.json:
        print_json([r.to_json() for r in results])
        return status
    if results:
        _show_results("Delivery", results)
    elif waiting["pending"]:
        n, due = waiting["pending"], waiting["next_attempt"]
        _say(f"Nothing is due now; {n} message{'s are' if n > 1 else ' is'} pending, the "
             f"next attempt is at {due:%Y-%m-%d %H:%M:%S} UTC "
             f"(`vrm deliver --wait SECONDS` waits for it).")
    else:
        _say("Nothing to send: every message in the outbox is settled.")
    return status


async def _sync(args: argparse.Namespace) -> int:
    async with await open_agent(args) as agent:
        with progress_bar("collecting offers", enabled=not args.json) as bar:
            results: list[SyncResult] = await agent.sync(progress=bar)
        status = _key_changes(agent, [r.vendor_id for r in results
                                      if r.status == "key-changed"])
    if args.json:
        print_json([r.to_json() for r in results])
        return status
    if not results:
        out.print("No active vendors to ask.")
        return status
    _table("Sync", ["vendor", "status", "new messages", "detail"],
           [(r.vendor, _styled(r.status), r.new_messages, r.detail) for r in results])
    return status


async def _offers(args: argparse.Namespace) -> int:
    async with await open_agent(args) as agent:
        offers = agent.offers()
    if args.json:
        print_json(offers)
        return 0
    if not offers:
        out.print("No offers yet. Send an intent with `vrm intent`, then run `vrm sync`.")
        return 0
    _table("Offers", ["for your intent", "vendor", "offer", "price", "valid until"],
           [(o["intent_summary"] or "-", o["vendor"], o["summary"],
             f"{o['price']} {o['currency']}", o["valid_until"] or "") for o in offers])
    return 0


def _export_setup(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", metavar="FILE",
                        help="write to FILE, mode 0600 (an existing file is made 0600 too)")


async def _export(args: argparse.Namespace) -> int:
    async with await open_agent(args) as agent:
        data = agent.export()
    if args.output:
        text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
        try:
            fd = os.open(args.output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                # O_CREAT's mode applies only to a new file: an existing one keeps
                # its own, which may let others read everything exported.
                os.fchmod(fd, 0o600)
            except BaseException:
                os.close(fd)
                raise
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
        except OSError as exc:
            raise UsageError(f"cannot write {args.output}: {exc.strerror}") from None
        err.print(f"Exported your data to {args.output}.", markup=False)
    else:
        print_json(data)
    return 0


async def _shared(args: argparse.Namespace) -> int:
    async with await open_agent(args) as agent:
        rows = agent.shared()
    if args.json:
        print_json(rows)
        return 0
    if not rows:
        out.print("No vendor holds any of your fields.")
        return 0
    _table("Who knows what", ["vendor", "field", "told by", "receipt", "as of"],
           [(r["vendor"], r["field"], r["message_type"], r["receipt_id"][:10],
             r["as_of"][:19]) for r in rows])
    return 0


def _json_only(parser: argparse.ArgumentParser) -> None:
    _add_json(parser)


def _nothing(parser: argparse.ArgumentParser) -> None:
    pass


register("init", help="create your store and keys", setup=_init_setup, run=_init)
register(("vendor", "add"), help="discover a vendor and open a relationship (again, after "
         "an end or a key change; or re-state what it may see with --share)",
         setup=_vendor_add_setup, run=_vendor_add)
register(("vendor", "list"), help="list your vendors", setup=_json_only, run=_vendor_list)
register(("vendor", "end"), help="end a relationship (optionally erasing your data)",
         setup=_vendor_end_setup, run=_vendor_end)
register(("profile", "set"), help="change your profile and tell the vendors who may see it",
         setup=_profile_set_setup, run=_profile_set)
register(("profile", "show"), help="show your profile", setup=_json_only, run=_profile_show)
register("intent", help="ask vendors for offers", setup=_intent_setup, run=_intent)
register("outbox", help="every message sent or waiting, with its status",
         setup=_json_only, run=_outbox)
register("deliver", help="send what is due in the outbox", setup=_deliver_setup,
         run=_deliver)
register("sync", help="collect offers and messages from your vendors", setup=_json_only,
         run=_sync)
register("offers", help="the offers you received, beside your intents", setup=_json_only,
         run=_offers)
register("export", help="all your data as JSON", setup=_export_setup, run=_export)
register("shared", help="which vendor knows which of your fields", setup=_json_only,
         run=_shared)


# --- vrm ui ---------------------------------------------------------------------

def _port(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"--port is a number from 0 to 65535, not {text!r}")
    return int(text)


def _ui_setup(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=_port, default=0,
                        help="the port on 127.0.0.1 (default 0: a free one)")
    parser.add_argument("--no-browser", action="store_true",
                        help="do not open a browser; open the printed address yourself")


async def _ui(args: argparse.Namespace) -> int:
    from .ui import run_dashboard  # aiohttp's server and Jinja2 load only here

    async with await open_agent(args) as agent:
        for warning in agent.warnings:
            _fail(f"warning: {warning}.")
        return await run_dashboard(agent, port=args.port, open_browser=not args.no_browser)


register("ui", help="your agent in your browser: a dashboard on 127.0.0.1 (the first line "
         "printed is its address; Ctrl-C stops it, exit status 0)", setup=_ui_setup, run=_ui)


# --- entry point ----------------------------------------------------------------

#: Modules that register commands of their own when imported.
_COMMAND_MODULES = ("agent.demo", "agent._store_commands")


def build_parser() -> argparse.ArgumentParser:
    for module in _COMMAND_MODULES:
        if importlib.util.find_spec(module) is not None:
            importlib.import_module(module)
    parser = argparse.ArgumentParser(
        prog="vrm", description="Your agent for dealing with vendors: one change, every "
        "vendor, with signed receipts.",
        epilog="VRM_HOME picks the store's directory; VRM_PASSPHRASE unlocks it "
               "without a prompt.")
    parser.add_argument("--home", help="the store's directory (default: $VRM_HOME, or "
                        "your user data directory)")
    top = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    groups: dict[str, argparse._SubParsersAction] = {}
    for cmd in _COMMANDS:
        if len(cmd.path) == 1:
            sub = top.add_parser(cmd.path[0], help=cmd.help, description=cmd.help)
        else:
            group = groups.get(cmd.path[0])
            if group is None:
                holder = top.add_parser(cmd.path[0], help=f"{cmd.path[0]} commands")
                group = groups[cmd.path[0]] = holder.add_subparsers(
                    dest="subcommand", metavar="SUBCOMMAND", required=True)
            sub = group.add_parser(cmd.path[1], help=cmd.help, description=cmd.help)
        cmd.setup(sub)
        sub.set_defaults(run=cmd.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The ``vrm`` entry point. Returns the exit status (and exits with it)."""
    args = build_parser().parse_args(argv)
    try:
        status = asyncio.run(args.run(args))
    except VendorKeyChanged as exc:
        _fail(str(exc))
        status = EXIT_KEY_CHANGED
    except AgentError as exc:
        _fail(str(exc))
        status = 1
    except KeyboardInterrupt:
        _fail("interrupted; nothing is lost: the outbox keeps what was not confirmed, "
              "and `vrm deliver` carries on.")
        status = 130
    except Exception as exc:  # the last resort: a sentence, never a traceback
        if os.environ.get("VRM_DEBUG"):
            raise
        _fail(f"unexpected error ({type(exc).__name__}: {exc}); set VRM_DEBUG=1 to see "
              f"the details, and please report it.")
        status = 2
    return status


def _fail(sentence: str) -> None:
    # Plain write, not rich: one unwrapped line that scripts can grep.
    sys.stderr.write(f"vrm: {sentence}\n")
    sys.stderr.flush()


if __name__ == "__main__":
    # Run as `python -m agent.cli`: this module is then __main__, a second copy;
    # commands registered by other modules go to `agent.cli`, so run that one.
    from agent.cli import main as _main

    sys.exit(_main())
