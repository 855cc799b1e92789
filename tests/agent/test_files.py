"""Issue 9, item 6 (the agent's files): ``vrm export -o PATH`` never follows a
symlink or opens a FIFO, and ``vrm init`` refuses SQLite side files
(``vrm.db-wal``, ``-shm``, ``-journal``) planted in VRM_HOME. Through the real
``vrm`` command as a subprocess."""

from __future__ import annotations

import asyncio
import json
import os
import stat
from pathlib import Path

import pytest

from .test_cli import vrm  # noqa: F401 - the fixture that runs the real `vrm`


def _one_sentence(stderr: str) -> None:
    assert stderr.startswith("vrm: ") and stderr.count("\n") == 1, stderr


async def test_export_refuses_a_symlink_and_leaves_its_target_alone(vrm, tmp_path: Path  # noqa: F811
                                                                    ) -> None:
    await vrm("init")
    target = tmp_path / "notes.txt"
    target.write_text("mine")
    target.chmod(0o644)
    link = tmp_path / "export.json"
    link.symlink_to(target)
    ran = await vrm("export", "-o", str(link), ok=False)
    assert ran.status == 1 and "symbolic link" in ran.stderr
    _one_sentence(ran.stderr)
    assert target.read_text() == "mine" and stat.S_IMODE(target.stat().st_mode) == 0o644
    assert link.is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export.json", "home", "notes.txt"]


async def test_export_refuses_a_fifo_without_blocking(vrm, tmp_path: Path) -> None:  # noqa: F811
    await vrm("init")
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    ran = await asyncio.wait_for(vrm("export", "-o", str(fifo), ok=False), timeout=60)
    assert ran.status == 1 and "FIFO" in ran.stderr
    _one_sentence(ran.stderr)
    assert stat.S_ISFIFO(fifo.lstat().st_mode)


async def test_export_refuses_a_directory(vrm, tmp_path: Path) -> None:  # noqa: F811
    await vrm("init")
    ran = await vrm("export", "-o", str(tmp_path), ok=False)
    assert ran.status == 1 and "directory" in ran.stderr
    _one_sentence(ran.stderr)


async def test_export_replaces_a_regular_file_by_rename(vrm, tmp_path: Path) -> None:  # noqa: F811
    await vrm("init")
    target = tmp_path / "export.json"
    target.write_text("old")
    target.chmod(0o644)
    other_name = tmp_path / "hard-link"
    os.link(target, other_name)  # another name for the old file: it is not written through
    before = target.stat().st_ino
    await vrm("export", "-o", str(target))
    assert json.loads(target.read_text())["format"] == "vrm-export/1"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600 and target.stat().st_ino != before
    assert other_name.read_text() == "old"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # no leftovers


async def test_export_dash_writes_to_standard_output(vrm, tmp_path: Path) -> None:  # noqa: F811
    await vrm("init")
    ran = await vrm("export", "-o", "-")
    assert ran.json()["format"] == "vrm-export/1"
    assert not (Path.cwd() / "-").exists()


async def test_export_into_a_missing_directory_is_one_sentence(vrm, tmp_path: Path  # noqa: F811
                                                               ) -> None:
    await vrm("init")
    ran = await vrm("export", "-o", str(tmp_path / "nowhere" / "x.json"), ok=False)
    assert ran.status == 1 and "cannot write" in ran.stderr
    _one_sentence(ran.stderr)


# --- SQLite side files planted before `vrm init` -------------------------------------

def _plant(home: Path, name: str, how: str) -> Path:
    home.mkdir(mode=0o777, exist_ok=True)
    home.chmod(0o777)  # a directory others can write
    planted = home / name
    if how == "symlink":
        elsewhere = home.parent / "elsewhere"
        elsewhere.write_bytes(b"")
        elsewhere.chmod(0o666)
        planted.symlink_to(elsewhere)
    elif how == "fifo":
        os.mkfifo(planted, 0o600)
    else:
        planted.write_bytes(b"")
        planted.chmod(int(how, 8))
    return planted


@pytest.mark.parametrize("name, how", [
    ("vrm.db-wal", "666"), ("vrm.db-shm", "644"), ("vrm.db-journal", "640"),
    ("vrm.db-wal", "symlink"), ("vrm.db-shm", "fifo"), ("vrm.db-journal", "660")])
async def test_init_refuses_planted_side_files(vrm, home: Path, name: str, how: str  # noqa: F811
                                               ) -> None:
    planted = _plant(home, name, how)
    ran = await vrm("init", ok=False)
    assert ran.status == 1 and name in ran.stderr and "not the store's own" in ran.stderr
    _one_sentence(ran.stderr)
    assert not (home / "vrm.db").exists()  # nothing written into it, nothing created
    if how not in ("symlink", "fifo"):
        assert planted.read_bytes() == b""


@pytest.mark.skipif(os.geteuid() != 0, reason="making a file another user's needs root")
async def test_init_refuses_a_side_file_of_another_user(vrm, home: Path) -> None:  # noqa: F811
    planted = _plant(home, "vrm.db-wal", "600")
    os.chown(planted, 65534, 65534)
    ran = await vrm("init", ok=False)
    assert ran.status == 1 and "owner 65534" in ran.stderr
    assert not (home / "vrm.db").exists()


async def test_init_takes_the_owner_s_own_private_side_file(vrm, home: Path) -> None:  # noqa: F811
    _plant(home, "vrm.db-wal", "600")
    await vrm("init")
    assert (await vrm("profile", "show", "--json")).json() == {}


async def test_open_refuses_a_side_file_planted_later(vrm, home: Path) -> None:  # noqa: F811
    await vrm("init")
    for suffix in ("-wal", "-shm"):
        (home / f"vrm.db{suffix}").unlink(missing_ok=True)
    shm = home / "vrm.db-shm"
    shm.write_bytes(b"")
    shm.chmod(0o666)
    ran = await vrm("profile", "show", ok=False)
    assert ran.status == 1 and "vrm.db-shm" in ran.stderr
    _one_sentence(ran.stderr)
