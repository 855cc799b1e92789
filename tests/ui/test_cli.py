"""``vrm ui`` and ``vrm demo --ui`` as real processes."""

from __future__ import annotations

import http.cookiejar
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from .conftest import Dashboard, agent_env, first_line, stop


def _opener() -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))


def test_the_first_line_is_the_address_and_ctrl_c_stops_it_cleanly(
        dashboard: Dashboard) -> None:
    assert dashboard.url.startswith(f"http://127.0.0.1:{dashboard.port}/?token=")
    with _opener().open(dashboard.url, timeout=10) as response:
        assert response.status == 200
        assert response.url == dashboard.origin + "/"  # the token left the address
        assert "Your vendors" in response.read().decode()
    dashboard.proc.send_signal(signal.SIGINT)
    assert dashboard.proc.wait(timeout=30) == 0
    err = dashboard.proc.stderr.read()
    assert "stopped; nothing is lost" in err
    assert "Traceback" not in err
    # It listened on 127.0.0.1 only, and now not at all.
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", dashboard.port)) != 0


def test_sigterm_stops_it_cleanly_too(dashboard: Dashboard) -> None:
    dashboard.proc.send_signal(signal.SIGTERM)
    assert dashboard.proc.wait(timeout=30) == 0


def test_without_no_browser_it_opens_the_browser_on_the_printed_address(
        tmp_path: Path) -> None:
    env = agent_env(tmp_path / "agent")
    subprocess.run([sys.executable, "-m", "agent", "init"], env=env, check=True,
                   capture_output=True, timeout=60)
    opened = tmp_path / "opened.txt"
    browser = tmp_path / "browser.py"
    browser.write_text("import sys, pathlib\n"
                       f"pathlib.Path({str(opened)!r}).write_text(sys.argv[1])\n")
    env["BROWSER"] = f"{sys.executable} {browser} %s"
    proc = subprocess.Popen([sys.executable, "-m", "agent", "ui"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = first_line(proc)
        for _ in range(300):
            if opened.exists() and opened.read_text():
                break
            time.sleep(0.05)
        assert opened.read_text() == url
    finally:
        assert stop(proc) == 0


def test_a_port_in_use_or_out_of_range_is_one_sentence(tmp_path: Path) -> None:
    env = agent_env(tmp_path / "agent")
    subprocess.run([sys.executable, "-m", "agent", "init"], env=env, check=True,
                   capture_output=True, timeout=60)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = subprocess.run([sys.executable, "-m", "agent", "ui", "--no-browser",
                               "--port", str(port)], env=env, capture_output=True, text=True,
                              timeout=60)
    assert busy.returncode == 1
    assert busy.stdout == ""
    assert busy.stderr.startswith(f"vrm: cannot listen on 127.0.0.1:{port}: ")
    assert busy.stderr.count("\n") == 1
    wrong = subprocess.run([sys.executable, "-m", "agent", "ui", "--port", "70000"],
                           env=env, capture_output=True, text=True, timeout=60)
    assert wrong.returncode == 2
    assert "--port is a number from 0 to 65535" in wrong.stderr
    assert "Traceback" not in wrong.stderr


def test_the_demo_opens_the_dashboard_on_its_agent(tmp_path: Path) -> None:
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    proc = subprocess.Popen([sys.executable, "-m", "agent", "demo", "--vendors", "3",
                             "--ui", "--no-browser"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        line = first_line(proc, timeout=120)
        while not line.startswith("http://127.0.0.1:"):
            line = first_line(proc, timeout=120)
        with _opener().open(line, timeout=10) as response:
            html = response.read().decode()
        assert "Ada" in html
        for shop in ("Bikes4U", "Velo Berlin", "Kettenblatt"):
            assert shop in html
        with _opener().open(line.split("?")[0].rstrip("/") + "/intents?token="
                            + line.split("token=")[1], timeout=10) as response:
            assert "Trek 520 touring bike" in response.read().decode()
    finally:
        status = stop(proc)
    assert status == 0, proc.stderr.read()
    assert list(tmp_path.glob("vrm-demo-*")) == []  # every file and server cleaned up


def test_pip_install_ships_every_template_and_static_file() -> None:
    import fnmatch
    import tomllib

    root = Path(__file__).resolve().parents[2]
    config = tomllib.loads((root / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["agent.ui"]
    package = root / "agent" / "ui"
    files = [str(p.relative_to(package)) for folder in ("templates", "static")
             for p in (package / folder).iterdir()]
    assert files
    assert [f for f in files if not any(fnmatch.fnmatch(f, pat) for pat in patterns)] == []
