"""Every ``--json`` output of ``vrm`` has its shape documented as a JSON Schema
in ``schemas/cli/`` (issue 11 §4), and the real output of each command, run as a
process against real vendors, is held to it. A schema names every member
(``additionalProperties: false``), so a member added without documenting it
fails here."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.protocol.jsonschema_subset import is_valid

from .conftest import PASSPHRASE

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "schemas" / "cli"


def schema(name: str) -> dict[str, Any]:
    return json.loads((SCHEMAS / f"{name}.json").read_text())


def holds(name: str, output: Any) -> None:
    assert is_valid(output, schema(name)), (
        f"the output does not match schemas/cli/{name}.json:\n{json.dumps(output, indent=2)}")


@pytest.fixture
def vrm(home: Path):
    env = {**os.environ, "VRM_HOME": str(home), "VRM_PASSPHRASE": PASSPHRASE}
    env.pop("VRM_DEBUG", None)

    async def run(*args: str) -> Any:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "agent.cli", *args, env=env,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        stdout, stderr = await process.communicate()
        assert process.returncode == 0, stderr.decode()
        return json.loads(stdout) if args != ("init",) else None

    return run


async def test_every_json_output_matches_its_schema(vrm, shops) -> None:
    await vrm("init")
    shop0, shop1 = await shops(2)
    seen: set[str] = set()

    def check(name: str, output: Any) -> Any:
        if os.environ.get("UX_DUMP"):
            with open(f"{os.environ['UX_DUMP']}/{name}.{len(seen)}.json", "w") as f:
                json.dump(output, f, indent=1)
            seen.add(name)
            return output
        holds(name, output)
        seen.add(name)
        return output

    check("profile-show", await vrm("profile", "show", "--json"))
    check("profile-set", await vrm("profile", "set", "email=ann@example.org", "--json"))
    check("vendor-add", await vrm("vendor", "add", shop0.url, "--share", "email", "--json"))
    check("vendor-add", await vrm("vendor", "add", shop1.url, "--json"))
    check("vendor-add", await vrm("vendor", "add", shop1.url, "--share", "email", "--json"))
    check("vendor-list", await vrm("vendor", "list", "--json"))
    check("profile-show", await vrm("profile", "show", "--json"))
    intent = check("intent", await vrm("intent", "Touring bike", "--budget", "800", "EUR",
                                       "--json"))
    assert {r["status"] for r in intent["results"]} == {"delivered"}
    [lead] = shop0.crm.leads()
    await shop0.vendor.make_offer(lead["id"], summary="Trek 520", price="749.00",
                                  url="https://shop.example/trek")
    check("sync", await vrm("sync", "--json"))
    offers = check("offers", await vrm("offers", "--json"))
    assert offers[0]["url"] == "https://shop.example/trek"
    check("shared", await vrm("shared", "--json"))
    check("offers", await vrm("offers", "--vendor", "Shop0", "--json"))
    intents = check("intents", await vrm("intents", "--json"))
    check("feedback", await vrm("feedback", "Shop0", "9", "--comment", "Quick repair",
                                "--json"))
    check("preferences", await vrm("preferences", "--json"))
    check("preferences", await vrm("preferences", "--no-sms", "--no-marketing", "--json"))
    check("terms", await vrm("terms", "--json"))
    check("terms-set", await vrm("terms", "set", "myterms:nostalking", "--json"))
    check("vendor-show", await vrm("vendor", "show", "Shop0", "--json"))
    # "--": an id is base64url and may begin with "-" (argparse would read an option).
    check("receipt", await vrm("receipt", "--json", "--", intent["results"][0]["message_id"]))
    check("intent-cancel", await vrm("intent", "cancel", "--json", "--", intents[0]["short_id"]))
    check("profile-set", await vrm("profile", "set", "phone=+32 470 12 34 56", "--json"))
    check("profile-unset", await vrm("profile", "unset", "phone", "--json"))
    check("deliver", await vrm("deliver", "--json"))
    shop1.fail_first, shop1.fail_status, shop1.retry_after = 5, 503, "600"
    check("profile-set", await vrm("profile", "set", "email=ann@example.net", "--json"))
    pending = check("deliver", await vrm("deliver", "--json"))
    assert pending["pending"] == 1 and pending["next_attempt"].endswith("Z")
    check("outbox", await vrm("outbox", "--json"))
    check("vendor-end", await vrm("vendor", "end", "Shop0", "--erase", "--yes", "--json"))
    check("export", await vrm("export"))
    documented = {path.stem for path in SCHEMAS.glob("*.json") if not path.stem.startswith(
        "vrm-vendor-")}
    assert seen == documented, f"documented but not checked: {documented - seen}"


def test_every_schema_is_named_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    for path in SCHEMAS.glob("*.json"):
        assert f"schemas/cli/{path.name}" in readme, f"README.md does not name {path.name}"
        assert json.loads(path.read_text())["description"]


def _json_commands(parser, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every (sub)command of ``parser`` that takes ``--json``."""
    import argparse

    found = []
    for action in parser._actions:
        if "--json" in action.option_strings:
            found.append(prefix)
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.extend(_json_commands(sub, prefix + (name,)))
    return found


def test_every_command_with_json_has_a_schema() -> None:
    # A new command that takes --json documents its shape: schemas/cli/<path>.json
    # (vrm vendor add -> vendor-add.json; vrm-vendor crm -> one per kind of record).
    import agent.demo  # noqa: F401 - registers vrm demo
    from agent.cli import build_parser
    from vendor_adapter.cli import _TABLE_COLUMNS, _parser

    # "intent cancel" is one parser named by two words: intent-cancel.json.
    missing = [" ".join(("vrm",) + path) for path in _json_commands(build_parser())
               if not (SCHEMAS / f"{'-'.join(path).replace(' ', '-')}.json").exists()]
    for path in _json_commands(_parser()):
        names = ([f"{'-'.join(path)}-{kind}" for kind in _TABLE_COLUMNS] if path == ("crm",)
                 else ["-".join(path).replace(" ", "-")])
        missing += [f"vrm-vendor {' '.join(path)}" for name in names
                    if not (SCHEMAS / f"vrm-vendor-{name}.json").exists()]
    assert not missing, f"no schema in schemas/cli/ for the --json of {missing}"
