"""Output people can read (issue 11 §4): tables that fit 80 columns without
breaking a word, short ids and DIDs (the full value in --json), local times to
the second, the outbox's date column, and a visible wait for a slow vendor."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from datetime import datetime
from pathlib import Path

from aiohttp import web

import protocol
from tests.test_terminal import run_on_pty

from .conftest import PASSPHRASE, FakeVendor

NAME = "Bikes For You Limited of Greater Manchester"
SUMMARY = "Touring bike with a steel frame, dynamo lights and a rear rack"


def words_intact(text: str, *phrases: str) -> None:
    """Each word of each phrase is in ``text`` whole (a cell may wrap between
    words, never inside one)."""
    tokens = set(text.split())
    for phrase in phrases:
        for word in phrase.split():
            assert word in tokens, (word, text)


async def test_tables_fit_80_columns_without_breaking_words(home: Path, serve) -> None:
    env = {**os.environ, "VRM_HOME": str(home), "VRM_PASSPHRASE": PASSPHRASE,
           "COLUMNS": "80"}
    env.pop("VRM_DEBUG", None)

    async def vrm(*args: str) -> str:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "agent.cli", *args, env=env,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        stdout, stderr = await process.communicate()
        assert process.returncode == 0, stderr.decode()
        text = stdout.decode()
        too_wide = [line for line in text.splitlines() if len(line) > 80]
        assert not too_wide, text
        return text

    vendor, url = await serve(FakeVendor(NAME))
    other, other_url = await serve(FakeVendor("Books"))
    await vrm("init")
    await vrm("profile", "set", "email=ann@example.org")
    added = await vrm("vendor", "add", url, "--share", "email")
    assert vendor.did in added.replace("\n", "")  # a sentence may wrap, between words
    await vrm("vendor", "add", other_url, "--share", "email")
    words_intact(await vrm("vendor", "list"), NAME, url, "active", "email")

    other.mode = "500"
    told = await vrm("profile", "set", "email=ann@example.net")
    words_intact(told, NAME, "contact.update", "delivered", "pending", "accepted")
    await vrm("intent", SUMMARY, "--budget", "800", "EUR")
    [intent] = vendor.of_type(protocol.Intent)
    vendor.offer(intent, summary=SUMMARY)
    words_intact(await vrm("sync"), NAME, "ok")
    offers = await vrm("offers")
    words_intact(offers, SUMMARY, "749.00", "EUR")

    outbox = await vrm("outbox")
    words_intact(outbox, NAME, "relationship.request", "contact.update", "intent",
                 "delivered", "pending")
    assert outbox.splitlines()[1].split()[:2] == ["date", "message"]
    # Local time, to the second: the date and the time of each message (a cell
    # may put them on two lines).
    today = datetime.now().astimezone().strftime("%Y-%m-%d")
    assert today in outbox and re.search(r"\b\d\d:\d\d:\d\d\b", outbox)
    # Ids are short in tables (the first 8 characters); --json has them whole.
    outbox_json = await vrm("outbox", "--json")
    for message_id in re.findall(r'"message_id": "([^"]+)"', outbox_json):
        assert message_id[:8] in outbox and message_id not in outbox
    shared = await vrm("shared")
    words_intact(shared, NAME, "email", "relationship.request")
    assert today in shared
    # The later commands' tables too.
    words_intact(await vrm("intents"), SUMMARY, "open")
    words_intact(await vrm("vendor", "show", "1"), NAME, "relationship.request",
                 "contact.update", "delivered")
    words_intact(await vrm("offers", "--vendor", "1"), SUMMARY, "749.00", "live")


async def test_vendor_add_shows_that_it_waits_for_a_slow_vendor(home: Path,
                                                                aiohttp_server) -> None:
    vendor = FakeVendor("Slowpoke")
    app = vendor.app()

    @web.middleware
    async def slow(request: web.Request, handler):
        await asyncio.sleep(2)
        return await handler(request)

    app.middlewares.append(slow)
    server = await aiohttp_server(app)
    env = {**os.environ, "VRM_HOME": str(home), "VRM_PASSPHRASE": PASSPHRASE}
    status, _ = await asyncio.to_thread(run_on_pty, "-m", "agent.cli", "init", env=env,
                                        columns=100)
    assert status == 0
    url = str(server.make_url("")).rstrip("/")
    status, data = await asyncio.to_thread(run_on_pty, "-m", "agent.cli", "vendor", "add",
                                           url, env=env, columns=100)
    assert status == 0
    text = data.decode()
    assert f"asking {url}" in text and "Added vendor 1: Slowpoke" in text
    # Off a terminal (and with --json), nothing but the answer.
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "agent.cli", "vendor", "add", url, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    stdout, stderr = await process.communicate()
    assert process.returncode == 0 and stderr == b"" and b"asking" not in stdout


def test_every_command_and_option_has_help() -> None:
    """`--help` explains each command and option of vrm and vrm-vendor, also the
    ones registered by other modules (demo, backup, ui)."""
    import argparse

    from agent.cli import build_parser
    from vendor_adapter.cli import _parser

    silent: list[str] = []

    def walk(parser: argparse.ArgumentParser, prog: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                helps = {choice.dest: choice.help for choice in action._choices_actions}
                for name, sub in action.choices.items():
                    if not helps.get(name):
                        silent.append(f"{prog} {name}")
                    walk(sub, f"{prog} {name}")
            elif not action.help and not isinstance(action, argparse._HelpAction):
                silent.append(f"{prog} {'/'.join(action.option_strings) or action.dest}")

    walk(build_parser(), "vrm")
    walk(_parser(), "vrm-vendor")
    assert not silent, f"no help text for {silent}"
