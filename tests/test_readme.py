"""README.md's code runs as written (issue 11 §6).

Every ```python and ```sh block of README.md runs, in the order it appears,
in one temporary directory with its own HOME, unless the line right before
its fence is an HTML comment that says why not:

    <!-- readme-test: skip (serves until Ctrl-C; tests/examples/ runs it) -->

so a block added to the README is run without anyone adding it here.

- Shell blocks run in ``bash -e`` with the installed ``vrm`` and
  ``vrm-vendor`` first on PATH; what one block exports (``VRM_HOME``,
  ``VRM_PASSPHRASE``) holds for every later block, Python blocks included.
- Python blocks run in their own interpreter, as ``python -m asyncio``
  would: a top-level ``await`` works.
- The README's example vendors are real local vendors that the test starts:
  ``https://bikes4u.example`` is ``vrm-vendor serve --db crm.db --name
  Bikes4U`` (in that directory, with VRM_VENDOR_PASSPHRASE 'a long
  passphrase', as the README's vendor block has it), and
  ``http://127.0.0.1:8080`` is ``examples/shop_app.py`` (its adapter under
  ``/vrm``), each on a free port. Those two addresses are the only text the
  test changes in a block.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
#: A fenced block, with the HTML comment on the line before it, if any.
BLOCK = re.compile(r"(?:^<!--[ \t]*readme-test:[ \t]*(?P<mark>[^\n]*?)[ \t]*-->\n)?"
                   r"^```(?P<lang>[\w-]*)\n(?P<code>.*?)^```", re.S | re.M)
#: How a Python block runs: as `python -m asyncio` would run it.
RUNNER = """
import ast, asyncio, sys
source = open(sys.argv[1], encoding="utf-8").read()
code = compile(source, "README.md", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
result = eval(code, {"__name__": "__main__"})
if asyncio.iscoroutine(result):
    asyncio.run(result)
"""
VENDOR_PASSPHRASE = "a long passphrase"


def blocks(text: str) -> list[tuple[int, str, str, str | None]]:
    """(line, language, code, mark) of each fenced block of ``text``."""
    return [(text.count("\n", 0, match.start("lang")) + 1, match["lang"], match["code"],
             match["mark"]) for match in BLOCK.finditer(text)]


def test_the_block_finder_sees_marks_and_languages() -> None:
    text = ("a\n<!-- readme-test: skip (why) -->\n```sh\nexit 1\n```\n\n"
            "```python\nprint(1)\n```\n<!-- other -->\n```sh\ntrue\n```\n")
    assert blocks(text) == [(3, "sh", "exit 1\n", "skip (why)"), (7, "python", "print(1)\n", None),
                            (11, "sh", "true\n", None)]


def test_every_mark_gives_a_reason() -> None:
    for line, lang, _, mark in blocks((ROOT / "README.md").read_text()):
        if mark is not None:
            assert re.fullmatch(r"skip \(.+\)", mark), (
                f"README.md line {line}: write <!-- readme-test: skip (why) -->, not {mark!r}")


class Served:
    """A vendor process that prints its URL on its first line of stdout."""

    def __init__(self, argv: list[str], *, cwd: Path, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        self.first_line = self.process.stdout.readline()
        assert self.first_line, self.process.stderr.read()  # type: ignore[union-attr]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str], dict[str, str]]]:
    """The directory the blocks run in, their environment, and the example
    addresses mapped to the local vendors started here."""
    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    home.mkdir()
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("VRM_") and key != "COLUMNS"}
    env.update(HOME=str(home), PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}")
    bikes = Served([str(BIN / "vrm-vendor"), "serve", "--db", "crm.db", "--name", "Bikes4U",
                    "--port", "0"], cwd=work,
                   env={**env, "VRM_VENDOR_PASSPHRASE": VENDOR_PASSPHRASE})
    shop = Served([sys.executable, str(ROOT / "examples" / "shop_app.py"), "--db",
                   str(tmp_path / "shop.db"), "--port", "0"], cwd=work,
                  env={**env, "VRM_VENDOR_PASSPHRASE": "secret"})
    try:
        shop_origin = re.search(r"shop ready at (\S+)", shop.first_line)
        assert shop_origin, shop.first_line
        addresses = {"https://bikes4u.example": bikes.first_line.strip(),
                     "http://127.0.0.1:8080": shop_origin[1]}
        yield work, env, addresses
    finally:
        bikes.stop()
        shop.stop()


def test_every_block_of_the_readme_runs(world) -> None:
    work, env, addresses = world
    env_file = work.parent / "exported.env"
    ran = []
    for line, lang, code, mark in blocks((ROOT / "README.md").read_text()):
        if mark is not None or lang not in ("sh", "python"):
            continue
        for example, local in addresses.items():
            code = code.replace(example, local)
        where = f"README.md line {line} ({lang})"
        if lang == "sh":
            script = f"set -eo pipefail\n{code}\nenv -0 > {env_file}\n"
            result = subprocess.run(["bash", "-c", script], cwd=work, env=env,
                                    capture_output=True, text=True, timeout=600)
        else:
            source = work.parent / "block.py"
            source.write_text(code, encoding="utf-8")
            result = subprocess.run([sys.executable, "-c", RUNNER, str(source)], cwd=work,
                                    env=env, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, f"{where} failed:\n{result.stdout}\n{result.stderr}"
        assert "Traceback" not in result.stderr, f"{where}:\n{result.stderr}"
        if lang == "sh":  # what it exported holds for the blocks after it
            exported = env_file.read_text().split("\0")
            env = dict(item.split("=", 1) for item in exported if "=" in item)
        ran.append(where)
    assert len(ran) >= 8, ran  # the README's examples did run
