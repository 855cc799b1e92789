"""A throwaway PostgreSQL server for the test session.

``postgres`` (a session fixture) starts one server listening only on a Unix
socket in a temporary directory, and stops and removes it at the end. It uses
``pgserver`` (PyPI, in the test extra: it ships the PostgreSQL binaries); if
pgserver cannot start a server on this machine, the machine's own
``initdb``/``pg_ctl`` (PATH, or /usr/lib/postgresql/*/bin) are used instead.
If neither works the session fails: no test is skipped for want of a server.

``server.database()`` gives each test a database of its own, created from a
template that already holds the vendor schema (CREATE DATABASE ... TEMPLATE
copies files: a few milliseconds), and drops it afterwards. The server runs
without fsync: these databases are thrown away, and durability on a power cut
is PostgreSQL's, not ours to test.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

__all__ = ["PostgresServer", "postgres"]

_TEMPLATE = "vrm_template"


class PostgresServer:
    """One running server; ``dsn(db)`` names a database on it."""

    def __init__(self, socket_dir: str, *, port: int = 5432, user: str = "postgres",
                 stop: Any = None) -> None:
        self.socket_dir = socket_dir
        self.port = port
        self.user = user
        self._stop = stop
        self._numbers = itertools.count()

    def dsn(self, dbname: str = "postgres") -> str:
        return (f"postgresql://{self.user}@/{dbname}?host={self.socket_dir}"
                f"&port={self.port}")

    def admin(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.dsn(), autocommit=True)

    def prepare(self) -> None:
        """Settings for throwaway data, and the template with the vendor schema."""
        from vendor_adapter._schema_postgres import migrate
        with self.admin() as conn:
            for setting in ("fsync", "synchronous_commit", "full_page_writes"):
                conn.execute(f"ALTER SYSTEM SET {setting} = off")
            conn.execute("SELECT pg_reload_conf()")
            conn.execute(f"CREATE DATABASE {_TEMPLATE}")
        with psycopg.connect(self.dsn(_TEMPLATE), autocommit=True) as conn:
            migrate(conn)

    @contextlib.contextmanager
    def database(self, *, template: str = _TEMPLATE) -> Iterator[str]:
        """A fresh database (from ``template``) for one test; its DSN."""
        name = f"vrm_test_{os.getpid()}_{next(self._numbers)}"
        with self.admin() as conn:
            conn.execute(f"CREATE DATABASE {name} TEMPLATE {template}")
        try:
            yield self.dsn(name)
        finally:
            with self.admin() as conn:
                conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def stop(self) -> None:
        if self._stop is not None:
            self._stop()


def _with_pgserver(directory: Path) -> PostgresServer:
    # pgserver keeps a run directory under XDG_RUNTIME_DIR (and warns if it is
    # unset). One per user, kept: pgserver writes there again at exit.
    runtime = Path(tempfile.gettempdir()) / f"vrm-pgserver-{os.getuid()}"
    runtime.mkdir(mode=0o700, exist_ok=True)
    os.environ.setdefault("XDG_RUNTIME_DIR", str(runtime))
    import pgserver

    server = pgserver.get_server(directory, cleanup_mode="delete")
    uri = server.get_uri()  # postgresql://postgres:@/postgres?host=/tmp/...
    host = uri.split("host=", 1)[1].split("&", 1)[0]
    return PostgresServer(host, stop=server.cleanup)


def _machine_binaries() -> str | None:
    found = shutil.which("pg_ctl")
    if found:
        return os.path.dirname(found)
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return os.path.dirname(candidates[-1]) if candidates else None


def _with_pg_ctl(directory: Path) -> PostgresServer:
    """initdb and pg_ctl from the machine; as root, run as the nobody user."""
    bindir = _machine_binaries()
    if bindir is None:
        raise RuntimeError("no pg_ctl on this machine")
    data, sockets = directory / "data", directory / "run"
    sockets.mkdir()
    prefix: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        os.chmod(directory.parent, 0o711)  # mkdtemp's 0700 would keep nobody out
        shutil.chown(directory, "nobody")
        shutil.chown(sockets, "nobody")
        prefix = ["runuser", "-u", "nobody", "--"]
    subprocess.run([*prefix, f"{bindir}/initdb", "-D", str(data), "-U", "postgres",
                    "--auth=trust", "--no-sync"], check=True, capture_output=True)
    options = f"-k {sockets} -c listen_addresses='' -F"
    subprocess.run([*prefix, f"{bindir}/pg_ctl", "-D", str(data), "-o", options, "-w",
                    "-l", str(directory / "log"), "start"], check=True, capture_output=True)

    def stop() -> None:
        subprocess.run([*prefix, f"{bindir}/pg_ctl", "-D", str(data), "-m", "immediate",
                        "-w", "stop"], capture_output=True)

    return PostgresServer(str(sockets), stop=stop)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """The session's PostgreSQL server (started on first use, removed at the end)."""
    directory = Path(tempfile.mkdtemp(prefix="vrm-pg-"))
    errors = []
    server = None
    for start in (_with_pgserver, _with_pg_ctl):
        attempt = directory / start.__name__
        attempt.mkdir()
        try:
            server = start(attempt)
            server.prepare()
            break
        except Exception as exc:  # try the next way; fail the session if none works
            errors.append(f"{start.__name__}: {exc}")
            if server is not None:
                server.stop()
            server = None
    if server is None:
        shutil.rmtree(directory, ignore_errors=True)
        pytest.fail("cannot start a PostgreSQL server for the tests: " + "; ".join(errors))
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)
