"""``vrm backup``, ``vrm restore`` and ``vrm passphrase``: the commands over
:mod:`agent._backup` and :meth:`agent.Agent.change_passphrase`.

Registered by ``agent.cli.main`` through ``agent.cli.register``, like the demo.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from protocol import display_text
from vrm_cli._args import explain

from ._agent import Agent
from ._backup import backup_home, stdout_binary
from ._errors import PassphraseError
from ._keys import can_prompt, prompt_passphrase
from .cli import _fail, _home, _say, open_agent, register

__all__ = ["choose_passphrase", "short_passphrase_warning", "SHORT_PASSPHRASE"]

#: Below this many characters, `vrm init` and `vrm passphrase` warn.
SHORT_PASSPHRASE = 12


def short_passphrase_warning(passphrase: str) -> None:
    if len(passphrase) < SHORT_PASSPHRASE:
        _fail(f"warning: that passphrase is shorter than {SHORT_PASSPHRASE} characters; "
              f"anyone who copies your store can try guesses at it offline.")


def choose_passphrase(*, variable: str, what: str) -> str:
    """A new passphrase from ``variable`` (for scripts), or typed twice on a terminal."""
    value = os.environ.get(variable)
    if value:
        return value
    if sys.stdin is None or not sys.stdin.isatty():
        raise PassphraseError(f"no {what}: set {variable}, or run vrm from a terminal to "
                              f"choose one")
    first = prompt_passphrase(f"choose a {what}: ")
    if first != prompt_passphrase("repeat it: "):
        raise PassphraseError("the two passphrases differ; nothing was changed")
    return first


def _backup_setup(parser: argparse.ArgumentParser) -> None:
    explain(parser.add_argument("-o", "--output", metavar="FILE", required=True,
                                help="write the backup to FILE (mode 0600; written whole or "
                                     "not at all), or - for standard output"),
            missing="say where to write the backup, like vrm backup -o vrm-backup.db "
                    "(-o - for standard output)")


async def _backup(args: argparse.Namespace) -> int:
    home = _home(args)
    if args.output == "-":
        backup_home(home, stdout_binary())
        return 0
    output = Path(args.output)
    backup_home(home, output)
    _note(f"Backed up your store to {output.resolve()}. Your keys in it are sealed "
               f"with your passphrase; keep both safe.")
    return 0


def _note(text: str) -> None:
    """A note on stderr, so that stdout carries only the backup (``-o -``); a
    file name is shown escaped, like every text on the terminal."""
    sys.stderr.write(display_text(text) + "\n")


def _restore_setup(parser: argparse.ArgumentParser) -> None:
    explain(parser.add_argument("file", help="a backup made by `vrm backup`"),
            missing="name the backup to restore, like vrm restore vrm-backup.db")


async def _restore(args: argparse.Namespace) -> int:
    source = Path(args.file)
    if os.environ.get("VRM_PASSPHRASE"):
        passphrase = os.environ["VRM_PASSPHRASE"]
    elif can_prompt():
        passphrase = prompt_passphrase("the backup's passphrase: ")
    else:
        raise PassphraseError("no passphrase: set VRM_PASSPHRASE, or run vrm from a terminal "
                              "to be asked for it")
    async with await Agent.restore(source, _home(args), passphrase=passphrase) as agent:
        pending = agent.pending()
        _say(f"Restored your store into {agent.home}.")
        if pending.get("pending"):
            _say(f"{pending['pending']} message(s) are still pending; `vrm deliver` sends "
                 f"them (each vendor records each message once).")
    return 0


async def _passphrase(args: argparse.Namespace) -> int:
    async with await open_agent(args) as agent:
        new = choose_passphrase(variable="VRM_NEW_PASSPHRASE", what="new passphrase")
        short_passphrase_warning(new)
        await agent.change_passphrase(new)
    _say("Your keys are sealed with the new passphrase; the old one no longer opens them.")
    return 0


def _nothing(parser: argparse.ArgumentParser) -> None:
    pass


register("backup", help="write a consistent copy of your whole store (keys stay sealed)",
         setup=_backup_setup, run=_backup)
register("restore", help="fill an empty VRM_HOME from a backup (checks the passphrase first)",
         setup=_restore_setup, run=_restore)
register("passphrase", help="change your passphrase: every key is re-sealed at once (the new "
         "one from VRM_NEW_PASSPHRASE, or typed twice)", setup=_nothing, run=_passphrase)

