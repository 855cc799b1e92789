"""The group-commit writer on its own: durability, acknowledgement after commit,
and a job's failure kept to that job."""

from __future__ import annotations

import asyncio
import sqlite3
import threading

from vendor_adapter._writer import GroupCommitWriter


def _table(path: str) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (n INTEGER)")


async def test_commits_are_fsynced_before_they_are_acknowledged(tmp_path) -> None:
    # "Nothing acknowledged is ever lost", power cuts included: in WAL mode only
    # synchronous=FULL (2) fsyncs the WAL at each COMMIT; NORMAL (1) survives a
    # process crash but may lose the last commits to a power cut.
    path = str(tmp_path / "w.db")
    _table(path)
    writer = GroupCommitWriter(path)
    try:
        settings = await writer.run(lambda conn: (
            conn.execute("PRAGMA journal_mode").fetchone()[0],
            conn.execute("PRAGMA synchronous").fetchone()[0]))
        assert settings == ("wal", 2)
    finally:
        writer.close()


async def test_a_result_is_handed_back_only_after_its_batch_committed(tmp_path) -> None:
    path = str(tmp_path / "w.db")
    _table(path)
    writer = GroupCommitWriter(path)
    inside = threading.Event()
    release = threading.Event()

    def slow(conn: sqlite3.Connection) -> str:
        conn.execute("INSERT INTO t VALUES (1)")
        inside.set()
        release.wait(10)  # hold the batch open
        return "done"

    try:
        job = asyncio.ensure_future(writer.run(slow))
        await asyncio.to_thread(inside.wait, 10)
        await asyncio.sleep(0.05)
        # The job has run but its batch has not committed: no answer yet, and
        # another connection does not see the row.
        assert not job.done()
        with sqlite3.connect(path) as reader:
            assert reader.execute("SELECT count(*) FROM t").fetchone()[0] == 0
        release.set()
        assert await job == "done"
        with sqlite3.connect(path) as reader:
            assert reader.execute("SELECT count(*) FROM t").fetchone()[0] == 1
    finally:
        release.set()
        writer.close()
