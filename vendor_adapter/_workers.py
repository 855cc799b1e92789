"""Several inbox processes on one port: ``vrm-vendor serve --workers N``.

The parent binds the listening socket once and starts N workers, each a
``vrm-vendor serve`` process that inherits the socket (``--listen-fd``, not
shown in ``--help``) and accepts connections from it; the kernel hands each
new connection to one of the workers waiting in accept(). This is the
pre-fork model of gunicorn and nginx, and works where SO_REUSEPORT does not.

The workers share nothing but the socket and the database: exactly once
comes from the database (see ``_store_postgres``), so a worker may die at any
moment. The parent restarts a worker that exits unexpectedly (after a pause,
so that a worker failing at start does not spin), and on SIGTERM or SIGINT
stops them all (SIGTERM, then SIGKILL after ``grace`` seconds) and exits.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence

__all__ = ["bind", "supervise"]

#: Seconds between a worker's unexpected exit and its restart.
RESTART_PAUSE = 0.5


def bind(host: str, port: int, *, backlog: int = 1024) -> socket.socket:
    """The listening TCP socket the workers share (``port`` 0 picks a free one).
    Raises ``OSError``."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.create_server((host, port), family=family, backlog=backlog)
    sock.set_inheritable(True)
    return sock


def supervise(sock: socket.socket, worker_args: Sequence[str], workers: int, *,
              grace: float = 10.0) -> int:
    """Run ``workers`` copies of ``python -m vendor_adapter.cli *worker_args
    --listen-fd FD`` until SIGTERM or SIGINT; return the exit status (0)."""
    fd = sock.fileno()
    command = [sys.executable, "-m", "vendor_adapter.cli", *worker_args, "--listen-fd", str(fd)]
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}

    def start() -> subprocess.Popen[bytes]:
        process = subprocess.Popen(command, pass_fds=(fd,), stdin=subprocess.DEVNULL)
        print(f"worker {process.pid} started", file=sys.stderr, flush=True)
        return process

    running = [start() for _ in range(workers)]
    try:
        while not stopping:
            time.sleep(0.1)
            for i, process in enumerate(running):
                code = process.poll()
                if code is None or stopping:
                    continue
                print(f"worker {process.pid} exited with status {code}; starting another",
                      file=sys.stderr, flush=True)
                time.sleep(RESTART_PAUSE)
                if not stopping:
                    running[i] = start()
    finally:
        for process in running:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for process in running:
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        sock.close()
    return 0


def inherited(fd: int) -> socket.socket:
    """The listening socket a worker inherited from its parent."""
    sock = socket.socket(fileno=fd)
    sock.set_inheritable(False)
    os.set_blocking(fd, False)
    return sock
