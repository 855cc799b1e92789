"""Running the dashboard: bind 127.0.0.1, print the first URL, open the
browser, serve until Ctrl-C (or SIGTERM), then stop cleanly.

``vrm ui`` and ``vrm demo --ui`` call :func:`run_dashboard`. Stopping with
Ctrl-C or SIGTERM is the normal way to end it: the status is 0. An action
still running is cancelled; nothing acknowledged is lost, because every
message is in the outbox before it is sent (``vrm deliver`` carries on). On
a platform without signal handlers in asyncio (Windows), Ctrl-C ends it
through ``KeyboardInterrupt`` instead, and ``vrm`` exits 130 as for any
interrupted command.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import webbrowser
from collections.abc import Callable
from typing import TextIO

from aiohttp import web

from .._agent import Agent
from .._errors import UsageError
from .app import create_app
from .security import Gate

__all__ = ["run_dashboard", "start_dashboard"]


async def start_dashboard(agent: Agent, *, port: int = 0) -> tuple[web.AppRunner, Gate]:
    """Serve the dashboard for ``agent`` on 127.0.0.1:``port`` (0: a free port).
    Returns the runner (``await runner.cleanup()`` stops it) and the gate, whose
    :meth:`Gate.url` is the first URL. ``UsageError`` if the port is taken."""
    gate = Gate()
    runner = web.AppRunner(create_app(agent, gate=gate), access_log=None,
                           handle_signals=False)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", port).start()
    except OSError as exc:
        await runner.cleanup()
        raise UsageError(f"cannot listen on 127.0.0.1:{port}: "
                         f"{(exc.strerror or str(exc)).lower()}; pick another --port, "
                         f"or 0 for a free one") from None
    gate.port = runner.addresses[0][1]
    return runner, gate


async def run_dashboard(agent: Agent, *, port: int = 0, open_browser: bool = True,
                        stdout: TextIO | None = None,
                        say: Callable[[str], None] | None = None) -> int:
    """Serve until Ctrl-C or SIGTERM; return the exit status (0).

    The first line on ``stdout`` is the URL with this run's token; ``say``
    (default: stderr) gets the sentences for people."""
    stdout = stdout or sys.stdout
    say = say or (lambda text: print(f"vrm ui: {text}", file=sys.stderr, flush=True))
    runner, gate = await start_dashboard(agent, port=port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    handled: list[int] = []
    try:
        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(signum, stop.set)
                handled.append(signum)
            except (NotImplementedError, RuntimeError):  # Windows, or not the main thread
                pass
        url = gate.url()
        print(url, file=stdout, flush=True)
        say(f"your agent's dashboard is at the address above, for this browser session "
            f"only; stop it with Ctrl-C")
        if open_browser and not await asyncio.to_thread(_open, url):
            say("could not open a browser; open the address above yourself")
        await stop.wait()
        say("stopped; nothing is lost: the outbox keeps what was not confirmed")
        return 0
    finally:
        for signum in handled:
            loop.remove_signal_handler(signum)
        await runner.cleanup()


def _open(url: str) -> bool:
    """Open ``url`` in the person's browser; False if there is none to open.

    On Linux and the BSDs without a graphical session (no DISPLAY or
    WAYLAND_DISPLAY, e.g. over ssh), ``webbrowser`` would fall back to a text
    browser that takes over this terminal: open nothing then, unless BROWSER
    names the browser to use."""
    graphical = (sys.platform in ("darwin", "win32") or os.environ.get("DISPLAY")
                 or os.environ.get("WAYLAND_DISPLAY") or os.environ.get("BROWSER"))
    if not graphical:
        return False
    try:
        return webbrowser.open(url)
    except Exception:  # a broken browser setting must not stop the dashboard
        return False
