"""``vrm ui``: the person's agent in their own browser, on their own machine.

A thin layer over the async :class:`agent.Agent` API: aiohttp serves
server-rendered Jinja2 pages on 127.0.0.1 only; :mod:`agent.ui.security` lets
in only the browser that opened the first URL; :mod:`agent.ui.app` holds the
pages and actions; :mod:`agent.ui.server` runs it until Ctrl-C.

    runner, gate = await start_dashboard(agent)   # 127.0.0.1, a free port
    print(gate.url())                              # http://127.0.0.1:PORT/?token=…
    await runner.cleanup()
"""

from .app import create_app
from .security import Gate
from .server import run_dashboard, start_dashboard

__all__ = ["create_app", "Gate", "run_dashboard", "start_dashboard"]
