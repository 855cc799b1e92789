"""The docs are part of the product: README.md's two commands and commands, SECURITY.md's test references."""

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
    venv = blocks[0].split("&&")[0].strip()
    assert venv in [part.strip() for part in blocks[1].split("&&")]  # the same venv step


def command_paths(parser, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    import argparse

    paths = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                paths.extend(command_paths(sub, prefix + (name,)) or [prefix + (name,)])
    return paths


def test_every_vrm_command_is_documented():
    import agent.demo  # noqa: F401 - registers vrm demo
    from agent.cli import build_parser

    readme = (ROOT / "README.md").read_text()
    missing = [" ".join(("vrm",) + path) for path in command_paths(build_parser())
               if " ".join(("vrm",) + path) not in readme]
    assert not missing, f"README.md does not show: {missing}"


def test_every_vrm_vendor_command_is_documented():
    from vendor_adapter.cli import _parser

    readme = (ROOT / "README.md").read_text()
    missing = [" ".join(("vrm-vendor",) + path) for path in command_paths(_parser())
               if " ".join(("vrm-vendor",) + path) not in readme]
    assert not missing, f"README.md does not show: {missing}"


def test_security_md_cites_tests_that_exist():
    text = (ROOT / "SECURITY.md").read_text()
    cited = re.findall(r"`([\w/]+\.py)(?:::(\w+))?`", text)
    assert len(cited) >= 8
    for path, test in cited:
        assert path.startswith("tests/"), f"SECURITY.md should cite {path} from the root"
        assert (ROOT / path).exists(), f"SECURITY.md cites a missing {path}"
        if test:
            assert f"def {test}(" in (ROOT / path).read_text(), f"{path} has no {test}"
    for folder in re.findall(r"`(tests/\w+/)`", text):
        assert (ROOT / folder).is_dir(), f"SECURITY.md cites a missing {folder}"
    # Tests named without their file (in the inbox table) exist somewhere too.
    every_test = "".join(path.read_text() for path in (ROOT / "tests").rglob("test_*.py"))
    for name in re.findall(r"`(test_\w+)`", text):
        assert f"def {name}(" in every_test, f"SECURITY.md cites a missing test {name}"
