"""``vrm-conformance URL [--offer-hook CMD] [--json]``: check a VRM/1 vendor endpoint.

Prints one line per check: its status (``pass``, ``fail``, ``not run``), the
PROTOCOL.md section, its name and, unless it passed, why. ``--json`` prints
one JSON object instead. The exit status is 0 only when no check failed and
every required check passed; 1 otherwise; 2 for a mistake on the command line.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

import protocol

from ._checks import Result, passed, run_checks

__all__ = ["main"]

_HOOK_HELP = ("a shell command that makes the vendor offer something for the checker's "
              "intent; it gets VRM_CONFORMANCE_THREAD (the intent's id), VRM_CONFORMANCE_LEAD "
              "(record.lead of the intent's receipt), VRM_CONFORMANCE_RECORD (the whole record, "
              "JSON), VRM_CONFORMANCE_AGENT, VRM_CONFORMANCE_VENDOR and VRM_CONFORMANCE_URL in "
              "its environment, e.g. 'vrm-vendor offer \"$VRM_CONFORMANCE_LEAD\" --db crm.db "
              "--summary Test --price 1.00'. Without it the offer checks are not run.")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vrm-conformance",
        description="Check a VRM/1 vendor endpoint as a new agent would, over the public "
                    "protocol only. It opens a relationship with a fresh key, sends good and "
                    "bad messages, and ends the relationship.")
    parser.add_argument("url", metavar="URL",
                        help="the vendor's base URL (its discovery document is "
                             "URL/.well-known/vrm)")
    parser.add_argument("--offer-hook", metavar="CMD", help=_HOOK_HELP)
    parser.add_argument("--json", action="store_true", help="print a JSON report")
    parser.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS",
                        help="the time limit of each HTTP request (default: 30)")
    return parser


def _line(result: Result) -> str:
    check = result.check
    status = result.status.upper()
    line = f"{status:<8} §{check.section:<5} {check.name:<26} {check.summary}"
    if result.reason:
        line += f"\n{'':<8} {'':<6} {'':<26} → {protocol.display_text(result.reason)}"
    return line


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if not args.url.startswith(("http://", "https://")):
        print(f"vrm-conformance: {protocol.display_text(args.url, limit=200)} is not an "
              "http(s) URL", file=sys.stderr)
        return 2
    if not 0 < args.timeout < 3600:
        print("vrm-conformance: --timeout must be between 0 and 3600 seconds", file=sys.stderr)
        return 2
    try:
        results = asyncio.run(run_checks(args.url, offer_hook=args.offer_hook,
                                         timeout=args.timeout))
    except KeyboardInterrupt:
        return 130
    ok = passed(results)
    if args.json:
        print(protocol.display_json({"url": args.url, "passed": ok,
                                     "checks": [r.to_json() for r in results]}, indent=2))
    else:
        for result in results:
            print(_line(result))
        counts = {s: sum(1 for r in results if r.status == s) for s in ("pass", "fail",
                                                                        "not run")}
        print(f"\n{counts['pass']} passed, {counts['fail']} failed, {counts['not run']} not "
              f"run: {'the endpoint conforms' if ok else 'the endpoint does not conform'}")
    return 0 if ok else 1
