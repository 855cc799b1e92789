"""Every mistake is one sentence on stderr and a non-zero exit, never a traceback
(issue 11 §3): argument errors, Ctrl-C (also while modules load), a closed pipe,
a full disk, values with one obvious meaning (normalised) and values without
(refused, with the right one suggested)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import PASSPHRASE, FakeVendor

ROOT = Path(__file__).resolve().parents[2]
#: The installed console scripts (pip install -e . put them beside the interpreter).
VRM = Path(sys.executable).parent / "vrm"
VRM_VENDOR = Path(sys.executable).parent / "vrm-vendor"


@pytest.fixture
def initialised(home: Path, monkeypatch) -> Path:
    """A store for in-process CLI runs (cheaper than a process per case)."""
    from agent import Agent

    async def init() -> None:
        agent = await Agent.init(home, passphrase=PASSPHRASE, scrypt_n=2**10)
        await agent.close()

    asyncio.run(init())
    monkeypatch.setenv("VRM_HOME", str(home))
    monkeypatch.setenv("VRM_PASSPHRASE", PASSPHRASE)
    return home


def env_for(home: Path) -> dict[str, str]:
    env = {**os.environ, "VRM_HOME": str(home), "VRM_PASSPHRASE": PASSPHRASE,
           "VRM_VENDOR_PASSPHRASE": PASSPHRASE}
    env.pop("VRM_DEBUG", None)
    return env


def one_sentence(stderr: str, prog: str = "vrm") -> str:
    assert stderr.startswith(f"{prog}") and stderr.count("\n") == 1, stderr
    assert "Traceback" not in stderr and "usage:" not in stderr
    return stderr.strip()


# --- the command line ------------------------------------------------------------------

@pytest.mark.parametrize(("argv", "sentence"), [
    (["intent", "Bike", "--budget", "800"],
     "vrm intent: --budget needs 2 values, AMOUNT CURRENCY (see vrm intent --help)"),
    (["intent", "Bike", "--frobnicate"],
     "vrm intent: --frobnicate is not an option of vrm intent (see vrm intent --help)"),
    (["intent", "Bike", "Helmet"],
     "vrm intent: it does not take 'Helmet'; leave it out (see vrm intent --help)"),
    (["vendor", "list", "--verbose"],
     "vrm vendor list: --verbose is not an option of vrm vendor list "
     "(see vrm vendor list --help)"),
    (["intent"], 'vrm intent: say what you want, like vrm intent "Touring bike, 56 cm" '
                 '(see vrm intent --help)'),
    (["vendor", "add"], "vrm vendor add: give the vendor's address, like vrm vendor add "
                        "https://bikes4u.example"),
    (["vendor", "end"], "vrm vendor end: name the vendor (its number, name, DID or URL)"),
    (["deliver", "--wait"], "vrm deliver: --wait needs a value (see vrm deliver --help)"),
    (["deliver", "--wait", "soon"],
     "vrm deliver: --wait must be a number of seconds, 0 or more, not 'soon' "
     "(see vrm deliver --help)"),
    (["deliver", "--wait", "-1"], "--wait must be a number of seconds, 0 or more, not '-1'"),
    (["deliver", "--wait", "inf"], "not 'inf'"),
    (["deliver", "--wait", "nan"], "not 'nan'"),
    (["deliver", "--wait", "1e999"], "not '1e999'"),
    (["deliver", "--wait", "٣"], "not '٣'"),
    (["frobnicate"], "vrm: 'frobnicate' is not a command; use init, vendor, profile"),
    ([], "vrm: name a command: init, vendor, profile"),
    (["vendor"], "vrm vendor: name a command: add, list"),
    (["profile", "set"], "vrm profile set: name at least one field to set, like "
                         "email=ann@example.org (see vrm profile set --help)"),
])
def test_argument_mistakes_are_one_sentence(argv, sentence, capsys, tmp_path, monkeypatch):
    from agent.cli import main

    monkeypatch.setenv("VRM_HOME", str(tmp_path / "never-made"))
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert sentence in one_sentence(captured.err), captured.err
    assert captured.out == ""
    assert not (tmp_path / "never-made").exists()


def test_version_on_both_commands() -> None:
    from importlib.metadata import version

    for script, name in ((VRM, "vrm"), (VRM_VENDOR, "vrm-vendor")):
        result = subprocess.run([str(script), "--version"], capture_output=True, text=True,
                                timeout=120)
        assert result.returncode == 0 and result.stdout == f"{name} {version('vrm')}\n"


def _walk(parser: argparse.ArgumentParser, prog: str):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            for name, sub in action.choices.items():
                yield f"{prog} {name}", "(the command)", helps.get(name)
                yield from _walk(sub, f"{prog} {name}")
        elif not isinstance(action, argparse._HelpAction):
            yield prog, "/".join(action.option_strings) or action.dest, action.help


def test_every_command_and_option_has_help_text() -> None:
    import agent.demo  # noqa: F401 - registers vrm demo
    from agent.cli import build_parser
    from vendor_adapter.cli import _parser

    missing = [(prog, name) for parser, top in ((build_parser(), "vrm"), (_parser(), "vrm-vendor"))
               for prog, name, text in _walk(parser, top)
               if (not text or text == argparse.SUPPRESS) and (prog, name) not in INTERNAL]
    assert not missing, f"no help text: {missing}"


#: Options hidden from --help on purpose: not for people. `serve --workers N`
#: passes its listening socket to each worker with --listen-fd.
INTERNAL = {("vrm-vendor serve", "--listen-fd")}


def test_exit_statuses_are_listed_in_help_and_readme() -> None:
    from agent.cli import EXIT_STATUSES

    help_text = subprocess.run([str(VRM), "--help"], capture_output=True, text=True,
                               timeout=120).stdout
    readme = (ROOT / "README.md").read_text()
    for code, meaning in EXIT_STATUSES.items():
        assert f"  {code:<5}{meaning}" in help_text, (code, help_text)
        assert f"| {code} |" in readme, f"README.md does not list exit status {code}"


# --- Ctrl-C, closed pipes, full disks ---------------------------------------------------

def loading(pid: int, library: str) -> bool:
    """Whether the process has mapped ``library`` (a shared object of a module)."""
    try:
        return library in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


@pytest.mark.parametrize("script", [VRM, VRM_VENDOR])
@pytest.mark.parametrize("library", ["_pydantic_core", "_cffi_backend"])
def test_ctrl_c_while_modules_load(script: Path, library: str, tmp_path: Path) -> None:
    # The signal arrives while the command's modules load: right after pydantic's
    # core (loaded by protocol/) or cryptography's cffi backend is mapped. (Before
    # the interpreter runs vrm_cli's first lines, no Python code can answer it.)
    argv = ["outbox"] if script == VRM else ["crm", "contacts", "--db", "x.db"]
    process = subprocess.Popen([str(script), *argv], env=env_for(tmp_path / "none"),
                               cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    deadline = time.monotonic() + 60
    while not loading(process.pid, library) and process.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.001)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, (process.returncode, stderr)
    assert stderr == f"{script.name}: interrupted\n" and stdout == ""


async def test_ctrl_c_during_a_broadcast_loses_nothing(home: Path, aiohttp_server) -> None:
    vendor = FakeVendor("Slow")
    server = await aiohttp_server(vendor.app())
    url = str(server.make_url("")).rstrip("/")

    async def vrm(*args: str) -> tuple[int, str, str]:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "agent.cli", *args, env=env_for(home),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await process.communicate()
        return process.returncode or 0, out.decode(), err.decode()

    assert (await vrm("init"))[0] == 0
    assert (await vrm("vendor", "add", url, "--share", "email"))[0] == 0
    vendor.mode = "hang"
    hits = vendor.hits
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "agent.cli", "profile", "set", "email=ann@example.org",
        env=env_for(home), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    for _ in range(600):  # until the message is on the wire
        if vendor.hits > hits:
            break
        await asyncio.sleep(0.05)
    assert vendor.hits > hits
    process.send_signal(signal.SIGINT)
    _, stderr = await process.communicate()
    assert process.returncode == 130
    assert one_sentence(stderr.decode()).startswith("vrm: interrupted; nothing is lost")
    status, out, _ = await vrm("outbox", "--json")
    update = [row for row in json.loads(out) if row["type"] == "contact.update"]
    assert [row["status"] for row in update] == ["pending"]  # kept, to be sent again
    vendor.mode = "ok"
    status, out, _ = await vrm("deliver", "--wait", "30", "--json")
    assert [r["status"] for r in json.loads(out)["results"]] == ["delivered"]


def test_a_closed_pipe_ends_quietly(initialised: Path) -> None:
    for argv in ([sys.executable, "-m", "agent.cli", "outbox", "--json"],
                 [sys.executable, "-m", "agent.cli", "vendor", "list"]):
        process = subprocess.Popen(argv, env=env_for(initialised), stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE)
        assert process.stdout is not None and process.stderr is not None
        process.stdout.close()  # like `| head -1` that has read its line
        stderr = process.stderr.read()
        assert process.wait(timeout=120) == 0 and stderr == b"", stderr


def test_a_full_disk_is_one_sentence(initialised: Path, tmp_path: Path) -> None:
    with open("/dev/full", "w") as full:
        result = subprocess.run([sys.executable, "-m", "agent.cli", "profile", "show",
                                 "--json"], env=env_for(initialised), stdout=full,
                                stderr=subprocess.PIPE, text=True, timeout=120)
    assert result.returncode == 1
    assert one_sentence(result.stderr) == "vrm: cannot write the output: no space left on device"
    from vendor_adapter import Vendor

    db = str(tmp_path / "crm.db")
    Vendor.open(db, name="Bikes4U", passphrase=PASSPHRASE).close()
    with open("/dev/full", "w") as full:
        result = subprocess.run([sys.executable, "-m", "vendor_adapter.cli", "crm", "contacts",
                                 "--db", db, "--json"], env=env_for(initialised),
                                stdout=full, stderr=subprocess.PIPE, text=True, timeout=120)
    assert result.returncode == 1
    assert one_sentence(result.stderr, "vrm-vendor") == (
        "vrm-vendor: cannot write the output: no space left on device")


# --- values: normalised where there is one meaning, refused with the right one ----------

def test_profile_values_are_normalised(initialised: Path, capsys) -> None:
    from agent.cli import main

    assert main(["profile", "set", "phone=+44 (20) 7946-0958", "language=EN-gb",
                 "postal_address.country=de"]) == 0
    capsys.readouterr()
    assert main(["profile", "show", "--json"]) == 0
    profile = json.loads(capsys.readouterr().out)
    assert profile == {"phone": "+442079460958", "language": "en-GB",
                       "postal_address.country": "DE"}
    assert main(["profile", "set", "phone=0044 20 7946 0958"]) == 0


@pytest.mark.parametrize(("argv", "sentence"), [
    (["profile", "set", "language=English"],
     "vrm: language is a BCP 47 language tag: for 'English', use language=en"),
    (["profile", "set", "language=Deutsch"], "use language=de"),
    (["profile", "set", "language=zz"], "language must be a BCP 47 language tag like en"),
    (["profile", "set", "phone=020 7946 0958"],
     "vrm: phone must be an international number with its country code, like "
     "+44 20 7946 0958, not '020 7946 0958'"),
    (["profile", "set", "email=a@example.org", "email=b@example.org"],
     "vrm: email is given twice; give each field once"),
])
def test_values_without_one_meaning_are_refused(initialised: Path, capsys, argv,
                                                sentence) -> None:
    from agent.cli import main

    assert main(argv) == 1
    assert sentence in one_sentence(capsys.readouterr().err)
