"""What the two commands, ``vrm`` and ``vrm-vendor``, share: their entry points,
one way of answering a mistake in the command line, and one way of ending.

- :func:`vrm` and :func:`vrm_vendor` are the console scripts. They load the
  command's module (``agent.cli``, ``vendor_adapter.cli``: pydantic, aiohttp and
  rich take a while) with Ctrl-C answered by one line and exit status 130, so
  not even an interrupt while modules load shows a traceback. (Only the few
  milliseconds before the interpreter runs this module's first lines are out
  of any Python code's reach.)
- :class:`SentenceParser` is argparse whose mistakes are one sentence naming the
  argument, plus "(see PROG --help)"; never a usage dump.
- :func:`guarded` runs a command's body: Ctrl-C is one line and 130, a closed
  pipe (``vrm outbox --json | head -1``) ends quietly with status 0, an I/O
  error (a full disk) is one sentence and status 1.

This module imports only the standard library, and only what it needs, so that
it is loaded before anything slow.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from importlib import import_module

__all__ = ["vrm", "vrm_vendor", "load_interruptibly", "guarded", "io_error_sentence", "say",
           "SentenceParser",
           "EXIT_OK", "EXIT_ERROR", "EXIT_USAGE", "EXIT_KEY_CHANGED", "EXIT_INTERRUPTED"]

#: Exit statuses, the same for both commands (3 is vrm's only).
EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_KEY_CHANGED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


def load_interruptibly(module: str, *, prog: str) -> object:
    """Import ``module``; a Ctrl-C meanwhile writes ``PROG: interrupted`` to stderr
    and exits with 130 at once (nothing has been done yet, so nothing is lost).
    Afterwards Ctrl-C raises KeyboardInterrupt again, for the command to handle."""

    def interrupted(signum: int, frame: object) -> None:
        os.write(2, f"{prog}: interrupted\n".encode())
        os._exit(EXIT_INTERRUPTED)

    # A shell that started us in the background ignores SIGINT: leave that alone.
    ours = signal.getsignal(signal.SIGINT) is signal.default_int_handler
    if ours:
        signal.signal(signal.SIGINT, interrupted)
    try:
        return import_module(module)
    finally:
        if ours:
            signal.signal(signal.SIGINT, signal.default_int_handler)


def guarded(prog: str, body: Callable[[], int], *,
            interrupted: str = "interrupted") -> int:
    """Run ``body()`` and return its exit status; see the module's docstring for
    what becomes of Ctrl-C, a closed pipe and an I/O error on the way out."""
    try:
        try:
            status = body()
        finally:
            sys.stdout.flush()  # a closed pipe or a full disk shows here, not at exit
        return status
    except KeyboardInterrupt:
        say(prog, interrupted)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        _quiet_stdout()
        return EXIT_OK
    except OSError as exc:
        _quiet_stdout()
        say(prog, io_error_sentence(exc))
        return EXIT_ERROR


def io_error_sentence(exc: OSError) -> str:
    """``cannot write the output: no space left on device``, and the like."""
    reason = (exc.strerror or str(exc) or type(exc).__name__).lower()
    where = f" ({exc.filename})" if exc.filename else ""
    if exc.filename is None:
        return f"cannot write the output{where}: {reason}"
    return f"an input/output error{where}: {reason}"


def say(prog: str, sentence: str) -> None:
    """One line on stderr, ``PROG: sentence``, its controls escaped."""
    from protocol import display_text

    try:
        sys.stderr.write(f"{prog}: {display_text(sentence)}\n")
        sys.stderr.flush()
    except OSError:  # stderr closed too: nothing more can be said
        pass


def _quiet_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's last flush says nothing."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def vrm() -> None:
    """The ``vrm`` console script."""
    cli = load_interruptibly("agent.cli", prog="vrm")
    sys.exit(cli.main())  # type: ignore[attr-defined]


def vrm_vendor() -> None:
    """The ``vrm-vendor`` console script."""
    cli = load_interruptibly("vendor_adapter.cli", prog="vrm-vendor")
    sys.exit(cli.main())  # type: ignore[attr-defined]


def __getattr__(name: str) -> object:
    # SentenceParser lives in its own module (argparse, re): loaded when asked for.
    if name == "SentenceParser":
        return import_module("vrm_cli._args").SentenceParser
    raise AttributeError(name)
