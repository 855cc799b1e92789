"""The ``vrm`` command: a thin layer over :class:`agent.Agent`.

Each command parses its arguments, opens the agent, calls one or two API
methods inside ``asyncio.run`` and prints the answer: a rich table for people,
or JSON on stdout with ``--json``. Every :class:`AgentError` becomes one
sentence on stderr and a non-zero exit status; a person never sees a traceback.

Output rules, kept by the helpers below so that a new command keeps them too:

- Text from outside (a vendor's name, an offer, a problem's detail, an
  exception that quotes them) reaches the terminal only through
  :func:`protocol.display_text` (controls and bidi characters shown escaped,
  never rich markup): :func:`say`, :func:`fail` and :func:`table` do it; a
  table cell is a ``rich.text.Text``, never markup, unless it is our own
  :class:`_Styled` text.
- ``--json`` output goes through :func:`print_json` (:func:`protocol.display_json`).
  Its shapes are JSON Schemas in ``schemas/cli/``.
- Tables fit 80 columns and never break a word: long ids and DIDs are
  shortened (:func:`short_id`, :func:`short_did`; the full value is in
  ``--json``), times are local, to the second (:func:`local_time`).

Exit status (:data:`EXIT_STATUSES`): 0 done (messages may still be pending:
they stay in the outbox); 1 a mistake or an error, said in one sentence; 2 a
mistake in the command line, or an unexpected failure; 3 a vendor showed a key
other than the pinned one, so nothing more goes to it until the person decides
(``vrm vendor list`` says how); 130 interrupted (Ctrl-C).

Adding a command (``vrm demo`` does this from ``agent/demo.py``, ``vrm backup``
from ``agent/_store_commands.py``: the modules in ``_COMMAND_MODULES``, which
``build_parser`` imports when they exist)::

    from agent.cli import register

    def setup(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--vendors", type=int, default=20)

    async def run(args: argparse.Namespace) -> int:
        ...
        return 0

    register("demo", help="start local vendors and show vrm at work", setup=setup, run=run)

``register(("vendor", "add"), ...)`` adds a command under a group. A command
that takes ``--json`` (:func:`add_json`) documents its output's shape in
``schemas/cli/`` (``vrm intent cancel`` -> ``intent-cancel.json``); a test fails
until it does.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import importlib
import importlib.util
import os
import sqlite3
import sys
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from protocol import display_json, display_text
from vrm_cli import EXIT_INTERRUPTED, EXIT_USAGE, guarded, io_error_sentence
from vrm_cli._args import ArgumentMistake, SentenceParser, explain, finite_seconds


from ._agent import Agent, Broadcast, SyncResult, default_home
from ._delivery import DeliveryResult
from ._errors import AgentError, UsageError, VendorKeyChanged
from ._feedback import nps_class
from ._files import write_private
from ._preferences import CHANNELS
from ._profile import SHAREABLE
from ._vendors import key_changed_message

__all__ = ["main", "register", "CliCommand", "open_agent", "print_json", "progress_bar",
           "say", "fail", "table", "short_id", "short_did", "local_time", "waiting",
           "add_json", "EXIT_STATUSES"]

Run = Callable[[argparse.Namespace], Awaitable[int]]
Setup = Callable[[argparse.ArgumentParser], None]


class _Console(Console):
    """rich's Console, except that a closed pipe is left to ``vrm_cli.guarded``
    (rich's own answer is exit status 1)."""

    def on_broken_pipe(self) -> None:
        raise BrokenPipeError


# emoji=False: "did:key:…" must not become "did🔑…".
out = _Console(highlight=False, soft_wrap=False, emoji=False)
err = _Console(stderr=True, highlight=False, emoji=False)

#: The exit status when a vendor showed a key other than the pinned one.
EXIT_KEY_CHANGED = 3
#: Every exit status, with its meaning (shown in ``vrm --help`` and README.md).
EXIT_STATUSES = {
    0: "done (messages may still be pending in the outbox)",
    1: "a mistake or an error, said in one sentence on stderr",
    2: "a mistake in the command line, or an unexpected failure",
    3: "a vendor showed a key other than the pinned one",
    130: "interrupted (Ctrl-C); nothing already written is lost",
}


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
    """The store's directory, always absolute: a relative VRM_HOME or --home is
    taken from the current directory once, and shown (and kept) as that."""
    home = Path(args.home).expanduser() if getattr(args, "home", None) else default_home()
    return home.absolute()


def print_json(data: Any) -> None:
    """``data`` as indented JSON on stdout, through :func:`protocol.display_json`:
    controls and bidi characters in strings are ``\\u`` escapes; bytes are
    decoded as UTF-8 (a bad byte as U+FFFD), anything else not JSON is ``str()``."""
    sys.stdout.write(display_json(data, indent=2, default=_jsonable) + "\n")


def _jsonable(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "replace")
    return str(value)


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


def add_json(parser: argparse.ArgumentParser) -> None:
    """The ``--json`` option (its output's shape: ``schemas/cli/``)."""
    parser.add_argument("--json", action="store_true",
                        help="print JSON on stdout instead (its shape: schemas/cli/ in "
                             "the source)")


_add_json = add_json


class _Styled(str):
    """Text that is ours and may carry rich markup; everything else is shown as text."""


def _cell(value: Any) -> Text:
    if value is None:
        return Text("")
    if isinstance(value, Text):
        return value
    if isinstance(value, _Styled):
        return Text.from_markup(value)
    # Names and details come from vendors: text, never markup or a control.
    return Text(display_text(value))


#: A column that never wraps (a short id, a status, a number).
NOWRAP = {"no_wrap": True}


def table(title: str, columns: Sequence[str | tuple[str, dict[str, Any]]],
          rows: Sequence[Sequence[Any]]) -> None:
    """Print a table that fits the terminal (80 columns when not one) without
    breaking a word: cells wrap between words, and a word longer than its
    column ends in "…". A column is a name, or ``(name, {"no_wrap": True})``."""
    grid = Table(title=Text(display_text(title)), title_justify="left",
                 box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True)
    for column in columns:
        name, options = (column, {}) if isinstance(column, str) else column
        grid.add_column(name, overflow="ellipsis", **options)
    for row in rows:
        grid.add_row(*(_cell(cell) for cell in row))
    out.print(grid)


_table = table


def say(text: str) -> None:
    """A sentence on stdout; what it quotes from outside is shown escaped."""
    out.print(display_text(text), markup=False)


_say = say


def short_id(value: str | None, length: int = 10) -> str:
    """The first ``length`` characters of a message id (``--json`` has them all)."""
    return (value or "")[:length]


def short_did(did: str | None) -> str:
    """``did:key:z6Mk…`` and the last 6 characters: enough to tell two apart."""
    if not did:
        return ""
    return did if len(did) <= 24 else f"{did[:12]}…{did[-6:]}"


def local_time(value: str | datetime | None) -> str:
    """An RFC 3339 time (or a datetime) as local time to the second,
    ``2026-11-30 07:05:09``; "" for none, and the text itself if it is not a time."""
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
    if value.tzinfo is not None:
        value = value.astimezone()
    return value.strftime("%Y-%m-%d %H:%M:%S")


@contextlib.contextmanager
def waiting(what: str, *, enabled: bool = True) -> Iterator[None]:
    """A spinner on stderr saying what vrm waits for (on a terminal only, and
    never with ``--json``), gone when the wait ends."""
    if not (enabled and err.is_terminal):
        yield
        return
    with err.status(Text(display_text(what)), spinner="dots"):
        yield


_STATUS_STYLE = {"delivered": "green", "pending": "yellow", "rejected": "red",
                 "failed": "red", "expired": "red", "ok": "green", "active": "green",
                 "ended": "dim", "refused": "red", "ending": "yellow",
                 "key-changed": "bold red"}


def _styled(status: str) -> str:
    status = display_text(status)
    style = _STATUS_STYLE.get(status)
    return _Styled(f"[{style}]{escape(status)}[/{style}]" if style else escape(status))


def _show_results(title: str, results: Sequence[DeliveryResult]) -> None:
    if not results:
        _say(f"{title}: nothing to send.")
        return
    apart = _apart(results)
    _table(title, ["vendor", ("message", NOWRAP), ("status", NOWRAP), ("tries", NOWRAP),
                   "detail"],
           [(apart(r), r.type, _styled(r.status), r.attempts,
             r.detail or r.receipt_status)
            for r in results])
    counts: dict[str, int] = {}
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
    _say(", ".join(f"{n} {status}" for status, n in sorted(counts.items())))
    if counts.get("pending"):
        out.print("Pending messages stay in the outbox; `vrm deliver` retries them when due.")


def _apart(results: Sequence[DeliveryResult]) -> Callable[[DeliveryResult], str]:
    """Name each result's vendor, with its number when another vendor in ``results``
    has the same name (``Shop (#3)``)."""
    ids: dict[str, set[int]] = {}
    for r in results:
        ids.setdefault(r.vendor, set()).add(r.vendor_id)
    return lambda r: f"{r.vendor} (#{r.vendor_id})" if len(ids[r.vendor]) > 1 else r.vendor


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
        name = name.strip()
        if name in changes:
            raise UsageError(f"{name} is given twice; give each field once")
        changes[name] = value.strip() or None
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
    explain(parser.add_argument("url", help="the vendor's address, e.g. https://bikes4u.example"),
            missing="give the vendor's address, like vrm vendor add https://bikes4u.example")
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
        with waiting(f"asking {args.url} (it may be slow; Ctrl-C stops, nothing is lost)",
                     enabled=not args.json):
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
    _table("Vendors", [("#", NOWRAP), "name", ("status", NOWRAP), "shares", "url"],
           [(v["id"], v["name"],
             _Styled(_styled(v["status"]) + (" (erased)" if v["erased"] else "")),
             ",".join(v["share"]) or "-", v["url"]) for v in vendors])
    for v in _held(vendors):
        _say(f"{v['name']} ({v['id']}) answered with a key other than the pinned one, so "
             f"it gets nothing: if you trust the new key, `vrm vendor add {v['url']}` "
             f"starts a new relationship; otherwise `vrm vendor end {v['id']}`.")
    return 0


def _vendor_end_setup(parser: argparse.ArgumentParser) -> None:
    explain(parser.add_argument("vendor", help="the vendor's number, name, DID or URL"),
            missing="name the vendor (its number, name, DID or URL); `vrm vendor list` "
                    "lists them")
    parser.add_argument("--erase", action="store_true",
                        help="ask the vendor to erase your data (also after an end)")
    parser.add_argument("--reason", help="a short reason to give the vendor")
    parser.add_argument("--yes", action="store_true",
                        help="do not ask before an erasure (needed with --erase when not "
                             "at a terminal)")
    _add_json(parser)


async def _vendor_end(args: argparse.Namespace) -> int:
    async with await open_agent(args) as agent:
        before = agent.vendor(args.vendor)
        if args.erase:
            _confirm_erase(agent, args.vendor, args.yes)
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
    explain(parser.add_argument("fields", nargs="+", metavar="FIELD=VALUE",
                                help="e.g. email=ann@example.org postal_address.locality=Leeds "
                                     "(an empty value removes the field)"),
            missing="name at least one field to set, like email=ann@example.org")
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
    explain(parser.add_argument("summary", help='what you want, e.g. "Touring bike, 56 cm"'),
            missing='say what you want, like vrm intent "Touring bike, 56 cm"')
    parser.add_argument("--category", help="e.g. bicycles")
    parser.add_argument("--budget", nargs=2, metavar=("AMOUNT", "CURRENCY"),
                        help="the most you will pay, e.g. --budget 800 EUR")
    parser.add_argument("--needed-by", metavar="YYYY-MM-DD",
                        help="the date by which you need it, e.g. 2027-06-01")
    parser.add_argument("--to", action="append", metavar="VENDOR",
                        help="only this vendor (number, name, DID or URL); repeat for more: "
                             "--to Bikes4U --to 3 (default: all that accept intents)")
    _add_json(parser)
    parser.epilog = ("To withdraw an intent: vrm intent cancel INTENT (see vrm intents). "
                     "An intent whose summary is the one word cancel: vrm intent -- cancel.")


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
        labels = _labels(agent)
    if args.json:
        print_json(rows)
        return 0
    if not rows:
        out.print("The outbox is empty.")
        return 0
    _table("Outbox", [("date", {"min_width": 10}), ("message", NOWRAP),
                      ("vendor", {"min_width": 6}), ("type", NOWRAP), ("status", NOWRAP),
                      ("detail", {"min_width": 10})],
           [(local_time(r["created"]), short_id(r["message_id"], 8), labels[r["vendor_id"]],
             r["type"], _styled(r["status"]), _outbox_detail(r)) for r in rows])
    return 0


def _outbox_detail(row: dict[str, Any]) -> str:
    """The receipt's status; for a pending message, the tries made and when the
    next is due; and the last error, if any."""
    parts = [row["receipt_status"] or ""] if row["status"] != "pending" else []
    if row["status"] == "pending":
        tries = row["attempts"]
        parts.append(f"{tries} {'try' if tries == 1 else 'tries'}, next "
                     f"{local_time(row['next_attempt'])}" if tries else
                     f"next {local_time(row['next_attempt'])}")
    if row["last_error"]:
        parts.append(row["last_error"])
    return "; ".join(part for part in parts if part)


def _deliver_setup(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--wait", type=finite_seconds("--wait"), default=0.0,
                        metavar="SECONDS",
                        help="also make the retries that fall due within SECONDS "
                             "(a number, 0 or more; default 0)")
    _add_json(parser)


async def _deliver(args: argparse.Namespace) -> int:
    async with await open_agent(args) as agent:
        with progress_bar("delivering", enabled=not args.json) as bar:
            results = await agent.deliver(progress=bar, patience=args.wait)
        status = _key_changes(agent, _held_now(results))
        left = agent.pending()
    if args.json:
        due = left["next_attempt"]
        print_json({"results": [r.to_json() for r in results], "pending": left["pending"],
                    "next_attempt": _utc(due)})
        return status
    if results:
        _show_results("Delivery", results)
    elif left["pending"]:
        n, due = left["pending"], left["next_attempt"]
        _say(f"Nothing is due now; {n} message{'s are' if n > 1 else ' is'} pending, the "
             f"next attempt is at {local_time(due)} "
             f"(`vrm deliver --wait SECONDS` waits for it).")
    else:
        _say("Nothing to send: every message in the outbox is settled.")
    return status


async def _sync(args: argparse.Namespace) -> int:
    async with await open_agent(args) as agent:
        with progress_bar("collecting offers", enabled=not args.json) as bar:
            results: list[SyncResult] = await agent.sync(progress=bar)
        labels = _labels(agent)
        status = _key_changes(agent, [r.vendor_id for r in results
                                      if r.status == "key-changed"])
    if args.json:
        print_json([r.to_json() for r in results])
        return status
    if not results:
        out.print("No active vendors to ask.")
        return status
    _table("Sync", ["vendor", ("status", NOWRAP), "new messages", "detail"],
           [(labels[r.vendor_id], _styled(r.status), r.new_messages, r.detail)
            for r in results])
    return status


def _export_setup(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", metavar="FILE",
                        help="write to FILE, a new private (0600) file put in place by "
                             "rename; an existing symlink or non-regular FILE is refused; "
                             "- writes to standard output")


async def _export(args: argparse.Namespace) -> int:
    async with await open_agent(args) as agent:
        data = agent.export()
    if args.output and args.output != "-":
        # display_json: controls as \u escapes, lone surrogates too; the data is exact.
        write_private(args.output, (display_json(data, indent=2) + "\n").encode("utf-8"))
        err.print(display_text(f"Exported your data to {args.output}."), markup=False)
    else:
        print_json(data)
    return 0


async def _shared(args: argparse.Namespace) -> int:
    async with await open_agent(args) as agent:
        rows = agent.shared()
        labels = _labels(agent)
    if args.json:
        print_json(rows)
        return 0
    if not rows:
        out.print("No vendor holds any of your fields.")
        return 0
    _table("Who knows what", [("vendor", {"min_width": 6}), "field", ("told by", NOWRAP),
                              ("receipt", NOWRAP), ("as of", {"min_width": 10})],
           [(labels[r["vendor_id"]], r["field"], r["message_type"], short_id(r["receipt_id"]),
             local_time(r["as_of"])) for r in rows])
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
register("export", help="all your data as JSON", setup=_export_setup, run=_export)
register("shared", help="which vendor knows which of your fields", setup=_json_only,
         run=_shared)


# --- every message type, the history, the receipts (issue 11 §1) -------------------
#
# Each command below calls one or two Agent methods and prints through the
# helpers above (say, fail, table, print_json), which escape what came from
# outside. A table cell is never cut short: it wraps between words.

def _labels(agent: Agent) -> dict[int, str]:
    """How each vendor is named in tables: its name, and its number beside it when
    another vendor has the same name (``Shop (#3)``)."""
    vendors = agent.vendors()
    counts: dict[str, int] = {}
    for v in vendors:
        counts[v["name"].casefold()] = counts.get(v["name"].casefold(), 0) + 1
    return {v["id"]: display_text(v["name"]) + (
        f" (#{v['id']})" if counts[v["name"].casefold()] > 1 else "") for v in vendors}


def _results_table(title: str, results: Sequence[DeliveryResult],
                   labels: dict[int, str]) -> None:
    if not results:
        _say(f"{title}: no vendor to tell.")
        return
    _table(title, ["vendor", ("message", NOWRAP), ("status", NOWRAP), "detail"],
           [(labels.get(r.vendor_id, r.vendor), r.type, _styled(r.status),
             r.detail or r.receipt_status) for r in results])
    if any(r.status == "pending" for r in results):
        out.print("Pending messages stay in the outbox; `vrm deliver` retries them when due.")


async def _finish_broadcast(agent: Agent, args: argparse.Namespace, broadcast: Broadcast,
                            title: str, extra: dict[str, Any] | None = None) -> int:
    status = _key_changes(agent, _held_now(broadcast.results))
    if args.json:
        print_json({**broadcast.to_json(), **(extra or {})})
    else:
        _results_table(title, broadcast.results, _labels(agent))
    return status


# vrm feedback ---------------------------------------------------------------------

def _feedback_setup(parser: argparse.ArgumentParser) -> None:
    explain(parser.add_argument("vendor", metavar="VENDOR",
                                help="the vendor's number, name, DID or URL"),
            missing="name the vendor and the score, like vrm feedback bikes4u 9; "
                    "`vrm vendor list` lists the vendors")
    explain(parser.add_argument("score", metavar="SCORE",
                                help="0 to 10: how likely you are to recommend the vendor"),
            missing="give the score from 0 to 10, like vrm feedback bikes4u 9")
    parser.add_argument("--comment", metavar="TEXT", help="what you want to tell the vendor")
    parser.add_argument("--subject", metavar="TEXT", help="what the score is about, e.g. "
                        "an order number")
    _add_json(parser)


def _score(text: str) -> int:
    stripped = text.strip()
    if not (stripped.isascii() and stripped.isdigit() and int(stripped) <= 10):
        raise UsageError(f"the score is a whole number from 0 to 10, like 9, not "
                         f"'{display_text(text, limit=20)}'")
    return int(stripped)


async def _feedback(args: argparse.Namespace) -> int:
    score = _score(args.score)
    klass = nps_class(score)
    async with await open_agent(args) as agent:
        broadcast = await agent.feedback(args.vendor, score, comment=args.comment,
                                         subject=args.subject)
        receipt = agent.receipt(broadcast.message_ids[0])
        if args.json:
            return await _finish_broadcast(agent, args, broadcast, "", {
                "score": score, "nps_class": klass,
                "receipt": _receipt_json(receipt) if receipt else None})
        [result] = broadcast.results
        name = _labels(agent).get(result.vendor_id, result.vendor)
        status = _key_changes(agent, _held_now(broadcast.results))
    _say(f"{name} will record a score of {score}: a {klass} (9-10 promoter, 7-8 passive, "
         f"0-6 detractor).")
    if receipt is not None and result.status == "delivered":
        check = "signature verifies" if receipt["verified"] else "does NOT verify"
        _say(f"{name} confirmed it with a signed receipt ({receipt['receipt_id'][:10]}, "
             f"signature {check}); `vrm receipt {result.message_id[:10]}` shows it.")
    else:
        _results_table("Feedback", broadcast.results, {result.vendor_id: name})
    return status


# vrm preferences --------------------------------------------------------------------

def _preferences_setup(parser: argparse.ArgumentParser) -> None:
    for channel in CHANNELS:
        parser.add_argument(f"--{channel}", action=argparse.BooleanOptionalAction,
                            default=None, help=f"vendors may (or, --no-{channel}, may not) "
                                               f"contact you by {channel}")
    parser.add_argument("--marketing", action=argparse.BooleanOptionalAction, default=None,
                        help="vendors may (or, --no-marketing, may not) market to you")
    parser.add_argument("--to", action="append", metavar="VENDOR",
                        help="tell only this vendor (number, name, DID or URL); repeat for "
                             "more (default: every active vendor that accepts it)")
    _add_json(parser)
    parser.epilog = ("Without options, shows your choices. The choices are yours, not a "
                     "vendor's: with --to they are recorded and only those vendors are told now.")


def _yes_no(value: bool | None) -> str:
    return "not stated" if value is None else "yes" if value else "no"


async def _preferences(args: argparse.Namespace) -> int:
    channels = {c: getattr(args, c) for c in CHANNELS if getattr(args, c) is not None}
    async with await open_agent(args) as agent:
        if not channels and args.marketing is None:
            if args.to:
                raise UsageError("say what to tell them, like --no-sms or --marketing")
            current = agent.preferences()
            if args.json:
                print_json(current)
                return 0
            _table("Your contact preferences", ["channel", "vendors may use it"],
                   [(c, _yes_no(current["channels"].get(c))) for c in CHANNELS]
                   + [("marketing", _yes_no(current["marketing"]))])
            return 0
        broadcast = await agent.set_preferences(channels=channels, marketing=args.marketing,
                                                to=args.to)
        current = agent.preferences()
        if not args.json:
            _say(f"Recorded: {broadcast.summary}.")
        return await _finish_broadcast(agent, args, broadcast, "Preferences sent",
                                       {"preferences": current})


# vrm terms, vrm terms set --------------------------------------------------------------

def _terms_set_setup(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("terms", nargs="*", metavar="ID",
                        help="term ids from a public roster, like myterms:nostalking")
    parser.add_argument("--none", action="store_true",
                        help="proffer no terms at all (instead of IDs)")
    _add_json(parser)


async def _terms(args: argparse.Namespace) -> int:
    async with await open_agent(args) as agent:
        terms = agent.terms()
    if args.json:
        print_json(terms)
    elif not terms:
        _say("You proffer no terms. Proffer some with `vrm terms set myterms:nostalking`.")
    else:
        _table("The terms you proffer", ["term"], [(t,) for t in terms])
    return 0


async def _terms_set(args: argparse.Namespace) -> int:
    if args.none == bool(args.terms):
        raise UsageError("name the terms to proffer, like myterms:nostalking, or give "
                         "--none to proffer none" if not args.none else
                         "give either term ids or --none, not both")
    async with await open_agent(args) as agent:
        broadcast = await agent.set_terms(args.terms)
        terms = agent.terms()
        if not args.json:
            _say(f"You now proffer {', '.join(terms) or 'no terms'}; every active vendor "
                 f"gets a relationship request that re-states them.")
        return await _finish_broadcast(agent, args, broadcast, "Terms re-stated",
                                       {"terms": terms})


# vrm intents, vrm intent cancel -------------------------------------------------------

async def _intents(args: argparse.Namespace) -> int:
    async with await open_agent(args) as agent:
        intents = agent.intents()
    if args.json:
        print_json(intents)
        return 0
    if not intents:
        _say('No intents yet. Send one with `vrm intent "Touring bike"`.')
        return 0
    _table("Your intents", [("intent", NOWRAP), ("date", {"min_width": 10}), "summary",
                            "vendors told", ("offers", NOWRAP), ("status", NOWRAP)],
           [(i["short_id"], local_time(i["created"]), i["summary"],
             f"{i['told']} of {len(i['vendors'])}", i["offers"],
             _styled(i["status"])) for i in intents])
    return 0


def _intent_cancel_setup(parser: argparse.ArgumentParser) -> None:
    explain(parser.add_argument("intent", metavar="INTENT",
                                help="the intent's id, or its start as `vrm intents` shows it"),
            missing="give the INTENT to cancel (its id, or its start), like vrm intent "
                    "cancel h6h0nttL; `vrm intents` lists them")
    parser.add_argument("--reason", metavar="TEXT", help="a short reason to give the vendors")
    _add_json(parser)


async def _intent_cancel(args: argparse.Namespace) -> int:
    async with await open_agent(args) as agent:
        broadcast = await agent.cancel_intent(args.intent, reason=args.reason)
        if not args.json and not broadcast.message_ids:
            _say("Cancelled; no vendor still had it to be told.")
            return 0
        return await _finish_broadcast(agent, args, broadcast,
                                       f"Cancelled {broadcast.summary[8:]}")


# vrm offers --------------------------------------------------------------------------

def _offers_setup(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--intent", metavar="INTENT",
                        help="only the offers for this intent (its id or start, as "
                             "`vrm intents` shows it)")
    parser.add_argument("--vendor", metavar="VENDOR",
                        help="only this vendor's offers (number, name, DID or URL)")
    _add_json(parser)


async def _offers_filtered(args: argparse.Namespace) -> int:
    async with await open_agent(args) as agent:
        offers = agent.offers(intent=args.intent, vendor=args.vendor)
        labels = _labels(agent)
    if args.json:
        print_json(offers)
        return 0
    if not offers:
        out.print("No offers yet. Send an intent with `vrm intent`, then run `vrm sync`."
                  if not (args.intent or args.vendor) else "No offers match.")
        return 0
    _table("Offers", ["for your intent", "vendor", "offer", ("price", NOWRAP),
                      ("valid until", {"min_width": 10}), "status"],
           [(o["intent_summary"] or "-", labels.get(o["vendor_id"], ""),
             _offer_cell(o), f"{o['price']} {o['currency']}",
             local_time(o["valid_until"]), _styled(o["status"])) for o in offers])
    return 0


def _offer_cell(offer: dict[str, Any]) -> Text:
    """The offer's summary, and its URL (if any) on the next line: both text."""
    cell = Text(display_text(offer["summary"]))
    if offer.get("url"):
        cell.append("\n" + display_text(offer["url"]), style="dim")
    return cell


# vrm profile unset ----------------------------------------------------------------------

def _profile_unset_setup(parser: argparse.ArgumentParser) -> None:
    explain(parser.add_argument("fields", nargs="+", metavar="FIELD",
                                help="e.g. phone, or postal_address for the whole address"),
            missing="name at least one field to remove, like vrm profile unset phone")
    _add_json(parser)


async def _profile_unset(args: argparse.Namespace) -> int:
    async with await open_agent(args) as agent:
        broadcast = await agent.unset_profile(args.fields)
        if not args.json and not broadcast.changed:
            _say("Nothing changed: your profile holds none of these fields.")
            return 0
        if not args.json:
            _say(f"Removed {', '.join(broadcast.changed or ())}.")
            if not broadcast.message_ids:
                _say("No vendor may see these fields, so none was told.")
                return 0
        return await _finish_broadcast(agent, args, broadcast, "Vendors told")


# vrm vendor show ----------------------------------------------------------------------

def _vendor_show_setup(parser: argparse.ArgumentParser) -> None:
    explain(parser.add_argument("vendor", metavar="VENDOR",
                                help="the vendor's number, name, DID or URL"),
            missing="name the vendor (its number, name, DID or URL); `vrm vendor list` "
                    "lists them")
    _add_json(parser)


def _carried(message: dict[str, Any]) -> str:
    parts = list(message["fields"]) + [f"-{f}" for f in message["removed"]]
    body = message["body"]
    if message["type"] == "relationship.request" and body.get("terms"):
        parts.append("terms: " + ", ".join(body["terms"]))
    if not message["fields"] and not message["removed"]:
        parts += [k for k in body if k not in ("profile", "changes", "terms")]
    return ", ".join(parts)


def _receipt_cell(receipt: dict[str, Any] | None) -> str:
    if receipt is None:
        return ""
    check = "signature verifies" if receipt["verified"] else "[bold red]signature FAILS[/bold red]"
    return _Styled(f"{escape(display_text(receipt['status']))}, {check}")


async def _vendor_show(args: argparse.Namespace) -> int:
    async with await open_agent(args) as agent:
        history = agent.vendor_history(args.vendor)
        label = _labels(agent)[history["vendor"]["id"]]
    if args.json:
        print_json(history)
        return 0
    v = history["vendor"]
    _say(f"{label}, vendor {v['id']}: {v['status']}{' (erased)' if v['erased'] else ''}, "
         f"at {v['url']}")
    _say(f"Pinned key {v['vendor_did']}; you are {v['pairwise_did']} to them.")
    _say(f"May see: {', '.join(v['share']) or 'none of your fields'}.")
    if not history["messages"]:
        _say("Nothing sent yet.")
        return 0
    _table(f"Messages sent to {label}", [("sent", {"min_width": 10}), ("message", NOWRAP),
                                          ("type", NOWRAP), "carried", ("delivery", NOWRAP),
                                          "receipt"],
           [(local_time(m["created"]), short_id(m["message_id"], 8), m["type"], _carried(m),
             _styled(m["delivery"]), _receipt_cell(m["receipt"]))
            for m in history["messages"]])
    failing = [m for m in history["messages"] if m["receipt"] and not m["receipt"]["verified"]]
    if failing:
        _fail(f"warning: {len(failing)} receipt(s) do not verify with the pinned key; "
              f"`vrm receipt MESSAGE` says why.")
    return 0


# vrm receipt ----------------------------------------------------------------------------

def _receipt_setup(parser: argparse.ArgumentParser) -> None:
    explain(parser.add_argument("message", metavar="MESSAGE",
                                help="the message's id, or its start as `vrm outbox` shows it"),
            missing="name the message, like vrm receipt 7HflpK5h; `vrm outbox` lists them")
    parser.add_argument("--raw", action="store_true",
                        help="print the vendor's signed JWS exactly as received (RFC 7515 "
                             "§7.2.2), for anyone to check with a JOSE library")
    _add_json(parser)
    parser.epilog = ("The exit status is 1 when the receipt's signature does not verify "
                     "with the vendor's pinned key.")


def _receipt_json(receipt: dict[str, Any]) -> dict[str, Any]:
    return {**receipt, "jws": bytes(receipt["jws"]).decode("ascii", "replace")}


async def _receipt(args: argparse.Namespace) -> int:
    async with await open_agent(args) as agent:
        receipt = agent.find_receipt(args.message)
        labels = _labels(agent)
    if receipt is None:
        raise UsageError(f"no receipt has come back for {display_text(args.message, limit=40)} yet; "
                         f"`vrm deliver` retries pending messages")
    status = 0 if receipt["verified"] else 1
    if args.raw:
        raw = bytes(receipt["jws"])
        if sys.stdout.isatty():  # never a raw control character on a terminal; no wrapping
            sys.stdout.write(display_text(raw.decode("utf-8", "replace")) + "\n")
        else:
            sys.stdout.buffer.write(raw)
            sys.stdout.flush()
    elif args.json:
        print_json(_receipt_json(receipt))
    else:
        name = labels.get(receipt["vendor_id"], receipt["vendor"])
        rows = [("message", receipt["message_id"]), ("type", receipt["message_type"]),
                ("vendor", name), ("receipt", receipt["receipt_id"]),
                ("status", _styled(receipt["status"])),
                ("received", local_time(receipt["received"]))]
        if receipt["record"]:
            rows.append(("record", json.dumps(receipt["record"])))
        if receipt["problem"]:
            rows.append(("problem", receipt["problem"].get("detail")
                        or receipt["problem"].get("type")))
        rows.append(("signature", _Styled("verifies with the pinned key" if receipt["verified"]
                                          else "[bold red]does NOT verify[/bold red]: "
                                          + escape(display_text(receipt["verify_detail"] or "")))))
        _table("Receipt", ["", ""], rows)
    if not receipt["verified"]:
        _fail(f"the receipt for {receipt['message_id']} does not verify with the pinned key: "
              f"{receipt['verify_detail']}")
    return status


# vrm vendor end --erase asks first ------------------------------------------------------

def _confirm_erase(agent: Agent, ref: str, yes: bool) -> None:
    """Erasure cannot be undone: on a terminal, ask; without one, only with --yes."""
    if yes:
        return
    vendor = agent.vendor(ref)
    name = _labels(agent).get(vendor["id"], display_text(vendor["name"]))
    if not sys.stdin.isatty():
        raise UsageError(f"asking {name} to erase your data cannot be undone; add --yes to "
                         f"confirm it when not at a terminal")
    try:
        answer = input(f"Ask {name} to erase your data? This cannot be undone. [y/N] ")
    except EOFError:
        answer = ""
    if answer.strip().lower() not in ("y", "yes"):
        raise UsageError("nothing was sent: erasure not confirmed")


register("feedback", help="score a vendor from 0 to 10, with a comment if you like",
         setup=_feedback_setup, run=_feedback)
register("preferences", help="show or change how vendors may contact you, and whether "
         "they may market to you", setup=_preferences_setup, run=_preferences)
register("terms", help="the terms you proffer to vendors (IEEE 7012 MyTerms ids)",
         setup=_json_only, run=_terms)
register(("terms", "set"), help="proffer exactly these terms, re-stated to every active "
         "vendor", setup=_terms_set_setup, run=_terms_set)
register("intents", help="your intents, with the vendors told, offers and status",
         setup=_json_only, run=_intents)
register(("intent", "cancel"), help="withdraw an intent from the vendors that got it",
         setup=_intent_cancel_setup, run=_intent_cancel)
register("offers", help="the offers you received, beside your intents, live or not",
         setup=_offers_setup, run=_offers_filtered)
register(("profile", "unset"), help="remove profile fields and tell the vendors who may see "
         "them", setup=_profile_unset_setup, run=_profile_unset)
register(("vendor", "show"), help="a relationship's history: every message, its delivery and "
         "its receipt, checked again", setup=_vendor_show_setup, run=_vendor_show)
register("receipt", help="a vendor's signed receipt for a message, checked again",
         setup=_receipt_setup, run=_receipt)


def _joined(argv: Sequence[str]) -> list[str]:
    """``vrm intent cancel X`` and ``vrm terms set X``: where a word is both a command
    and a group, the subcommand is one parser named "intent cancel" (see
    :func:`build_parser`), and the two words become that one name here. Only the
    word right after the command counts: ``vrm intent -- cancel`` sends an intent
    whose summary is "cancel"."""
    argv = list(argv)
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        i += 2 if argv[i] == "--home" else 1
    if i + 1 < len(argv) and f"{argv[i]} {argv[i + 1]}" in _JOINED_NAMES:
        argv[i:i + 2] = [f"{argv[i]} {argv[i + 1]}"]
    return argv


#: Subcommand paths whose first word is a command of its own (filled by build_parser).
_JOINED_NAMES: set[str] = set()


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

def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("vrm")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def _utc(moment: datetime | None) -> str | None:
    from protocol import format_time

    return format_time(moment) if moment is not None else None


#: Modules that register commands of their own when imported.
_COMMAND_MODULES = ("agent.demo", "agent._store_commands")


def build_parser() -> argparse.ArgumentParser:
    for module in _COMMAND_MODULES:
        if importlib.util.find_spec(module) is not None:
            importlib.import_module(module)
    statuses = "\n".join(f"  {code:<5}{meaning}" for code, meaning in EXIT_STATUSES.items())
    parser = SentenceParser(
        prog="vrm", description="Your agent for dealing with vendors: one change, every "
        "vendor, with signed receipts.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"VRM_HOME picks the store's directory; VRM_PASSPHRASE unlocks it\n"
               f"without a prompt. `vrm COMMAND --help` says more about each command.\n\n"
               f"exit status:\n{statuses}")
    parser.add_argument("--home", help="the store's directory (default: $VRM_HOME, or "
                        "your user data directory)")
    parser.add_argument("--version", action="version", version=f"vrm {_version()}",
                        help="print vrm's version and exit")
    top = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    groups: dict[str, argparse._SubParsersAction] = {}
    for cmd in _COMMANDS:
        if len(cmd.path) == 1:
            sub = top.add_parser(cmd.path[0], help=cmd.help, description=cmd.help)
        elif any(other.path == cmd.path[:1] for other in _COMMANDS):
            # "intent" is a command and "intent cancel" one too: one parser named by
            # both words, which main() joins (see _joined).
            name = " ".join(cmd.path)
            _JOINED_NAMES.add(name)
            sub = top.add_parser(name, help=cmd.help, description=cmd.help)
        else:
            group = groups.get(cmd.path[0])
            if group is None:
                holder = top.add_parser(cmd.path[0], help=f"{cmd.path[0]} commands",
                                        description=f"{cmd.path[0]} commands")
                group = groups[cmd.path[0]] = holder.add_subparsers(
                    dest="subcommand", metavar="SUBCOMMAND", required=True)
            sub = group.add_parser(cmd.path[1], help=cmd.help, description=cmd.help)
        cmd.setup(sub)
        sub.set_defaults(run=cmd.run)
    return parser


_INTERRUPTED = ("interrupted; nothing is lost: the outbox keeps what was not confirmed, "
                "and `vrm deliver` carries on.")


def main(argv: Sequence[str] | None = None) -> int:
    """The ``vrm`` entry point. Returns the exit status (:data:`EXIT_STATUSES`).

    Ctrl-C anywhere is one line and 130; a closed stdout (``vrm outbox --json |
    head -1``) ends quietly with 0; an I/O error is one sentence (``vrm_cli.guarded``)."""
    return guarded("vrm", lambda: _main(argv), interrupted=_INTERRUPTED)


def _main(argv: Sequence[str] | None) -> int:
    try:
        args = build_parser().parse_args(_joined(sys.argv[1:] if argv is None else argv))
    except ArgumentMistake as exc:
        sys.stderr.write(f"{display_text(str(exc))}\n")
        return EXIT_USAGE
    try:
        status = asyncio.run(args.run(args))
    except VendorKeyChanged as exc:
        _fail(str(exc))
        status = EXIT_KEY_CHANGED
    except AgentError as exc:
        _fail(str(exc))
        status = 1
    except KeyboardInterrupt:
        _fail(_INTERRUPTED)
        status = EXIT_INTERRUPTED
    except BrokenPipeError:
        raise  # stdout was closed: guarded() ends quietly
    except OSError as exc:  # a full disk, an I/O error: one sentence
        _fail(io_error_sentence(exc))
        status = 1
    except sqlite3.OperationalError as exc:  # "database or disk is full", "disk I/O error"
        _fail(f"the store cannot be written: {exc}; free some space, or check the disk")
        status = 1
    except Exception as exc:  # the last resort: a sentence, never a traceback
        if os.environ.get("VRM_DEBUG"):
            raise
        _fail(f"unexpected error ({type(exc).__name__}: {exc}); set VRM_DEBUG=1 to see "
              f"the details, and please report it.")
        status = 2
    return status


def fail(sentence: str) -> None:
    """``vrm: sentence`` on stderr: plain, not rich, one unwrapped line that
    scripts can grep; what it quotes from outside is shown escaped."""
    sys.stderr.write(f"vrm: {display_text(sentence)}\n")
    sys.stderr.flush()


_fail = fail


if __name__ == "__main__":
    # Run as `python -m agent.cli`: this module is then __main__, a second copy;
    # commands registered by other modules go to `agent.cli`, so run that one.
    from agent.cli import main as _main

    sys.exit(_main())
