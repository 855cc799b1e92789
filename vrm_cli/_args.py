"""argparse whose mistakes are one sentence, naming the argument, plus
"(see PROG --help)": never a usage dump. ``--help`` still prints the usage.

argparse's own messages ("the following arguments are required: X",
"argument X: invalid choice: …") are turned into sentences here, by their
shape. A command may say more for one argument with :func:`explain`.
"""

from __future__ import annotations

import argparse
import re
import shlex
from collections.abc import Sequence
from typing import Any, NoReturn

__all__ = ["ArgumentMistake", "SentenceParser", "explain", "and_list", "finite_seconds"]


class ArgumentMistake(Exception):
    """A mistake in the command line; ``str()`` is the whole sentence to show,
    starting with the command's prog (exit status 2)."""


def explain(action: argparse.Action, *, missing: str | None = None,
            noun: str | None = None) -> argparse.Action:
    """Say what to do when ``action`` is missing (``missing``), and what its
    value is when a choice is wrong (``noun``: "a kind of record")."""
    action.if_missing = missing  # type: ignore[attr-defined]
    action.noun = noun  # type: ignore[attr-defined]
    return action


def and_list(words: Sequence[str], conjunction: str = "and") -> str:
    """``a, b and c``."""
    words = list(words)
    if len(words) == 1:
        return words[0]
    return f"{', '.join(words[:-1])} {conjunction} {words[-1]}"


_TYPE_NAMES = {"int": "a whole number", "float": "a number"}


class SentenceParser(argparse.ArgumentParser):
    """An ``argparse.ArgumentParser`` (subparsers are of the same class) whose
    ``error`` raises :class:`ArgumentMistake` with one sentence, and whose
    ``parse_args`` names the command that was given an unknown argument."""

    def error(self, message: str) -> NoReturn:
        raise ArgumentMistake(f"{self.prog}: {self._sentence(message)} "
                              f"(see {self.prog} --help)")

    def parse_args(self, args: Sequence[str] | None = None,  # type: ignore[override]
                   namespace: argparse.Namespace | None = None) -> argparse.Namespace:
        self._mark_commands()
        parsed, extra = self.parse_known_args(args, namespace)
        if extra:
            # Said by the command concerned, not by the top command as argparse would.
            prog = getattr(parsed, "command_prog_", self.prog)
            what = (f"{extra[0]} is not an option of {prog}" if extra[0].startswith("-")
                    else f"it does not take {shlex.join(extra)!r}; leave it out")
            raise ArgumentMistake(f"{prog}: {what} (see {prog} --help)")
        return parsed

    def _mark_commands(self) -> None:
        """Each (sub)command's namespace remembers its prog, for the message above."""
        self.set_defaults(command_prog_=self.prog)
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    if isinstance(sub, SentenceParser):
                        sub._mark_commands()

    # --- argparse's messages, as sentences ------------------------------------

    def _action(self, name: str) -> argparse.Action | None:
        for action in self._actions:
            if (name in action.option_strings or name == "/".join(action.option_strings)
                    or action.metavar == name or action.dest == name):
                return action
        return None

    def _sentence(self, message: str) -> str:
        if match := re.fullmatch(r"the following arguments are required: (.+)", message):
            return self._missing(match[1].split(", "))
        if match := re.fullmatch(r"argument (\S+): invalid choice: (.+?) \(choose from (.+)\)",
                                 message):
            action = self._action(match[1])
            choices = [choice.strip("'\"") for choice in match[3].split(", ")]
            if isinstance(action, argparse._SubParsersAction):
                noun = "a command"
            else:
                noun = getattr(action, "noun", None) or f"a valid {match[1]}"
            return f"{match[2]} is not {noun}; use {and_list(choices, 'or')}"
        if match := re.fullmatch(r"argument (\S+): expected one argument", message):
            return f"{match[1]} needs a value"
        if match := re.fullmatch(r"argument (\S+): expected (\d+) arguments", message):
            action = self._action(match[1])
            metavar = getattr(action, "metavar", None)
            names = f", {' '.join(metavar)}" if isinstance(metavar, tuple) else ""
            return f"{match[1]} needs {match[2]} values{names}"
        if match := re.fullmatch(r"argument (\S+): invalid (\w+) value: (.+)", message):
            kind = _TYPE_NAMES.get(match[2], f"a {match[2]}")
            return f"{match[1]} must be {kind}, not {match[3]}"
        if match := re.fullmatch(r"argument (\S+): not allowed with argument (\S+)", message):
            return f"{match[1]} and {match[2]} cannot be used together"
        if match := re.fullmatch(r"argument (\S+): ignored explicit argument (.+)", message):
            return f"{match[1]} takes no value (got {match[2]})"
        if match := re.fullmatch(r"ambiguous option: (\S+) could match (.+)", message):
            return f"{match[1]} could be {and_list(match[2].split(', '), 'or')}; write it out"
        if match := re.fullmatch(r"argument (\S+): (.+)", message):
            return match[2]  # the argument's own type check says the whole thing
        return message

    def _missing(self, names: list[str]) -> str:
        action = self._action(names[0])
        if isinstance(action, argparse._SubParsersAction):
            return f"name a command: {and_list(list(action.choices), 'or')}"
        if action is not None and getattr(action, "if_missing", None):
            return action.if_missing  # type: ignore[no-any-return]
        return f"{and_list(names)} {'is' if len(names) == 1 else 'are'} required"


def finite_seconds(option: str, *, minimum: float = 0.0,
                   above: bool = False) -> Any:
    """An argparse ``type``: a finite number of seconds, at least ``minimum``
    (more than it, with ``above=True``); the mistake is one sentence."""
    bound = f"above {minimum:g}" if above else f"{minimum:g} or more"

    def parse(text: str) -> float:
        try:
            value = float(text) if text.strip().isascii() else float("nan")
        except ValueError:
            value = float("nan")
        ok = value > minimum if above else value >= minimum
        if not (ok and value < float("inf")):
            raise argparse.ArgumentTypeError(
                f"{option} must be a number of seconds, {bound}, not {text!r}")
        return value

    return parse
