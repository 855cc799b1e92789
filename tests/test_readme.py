"""README.md's two commands are the project's contract with a new user."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def shell_blocks(text: str) -> list[str]:
    return [block.strip() for block in re.findall(r"```sh\n(.*?)```", text, re.S)]


def test_ci_runs_exactly_the_readme_test_command():
    blocks = shell_blocks((ROOT / "README.md").read_text())
    test_command = next(b for b in blocks if "pytest" in b)
    ci_lines = [line for line in (ROOT / ".ci" / "run").read_text().splitlines()
                if line and not line.startswith("#") and not line.startswith(("set ", "cd "))]
    assert ci_lines == [test_command]


def test_readme_demo_command_runs_vrm_demo():
    blocks = shell_blocks((ROOT / "README.md").read_text())
    assert blocks[0].endswith("vrm demo")
    assert blocks[0].split("&&")[0] == blocks[1].split("&&")[0]  # same venv step
