"""The PostgreSQL store's own parts: the DSN is never shown with its password,
migrations are recorded, a database without a vendor is refused untouched."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

import protocol
from vendor_adapter import NotAVendorDatabase, StorageError, Vendor
from vendor_adapter._schema_postgres import MIGRATIONS
from vendor_adapter._store_postgres import redact, translate

from .conftest import PASSPHRASE, Person
from .test_cli import fails, run


@pytest.mark.parametrize("dsn, shown", [
    ("postgresql://vrm:s3cret@db.example:5433/shop", "postgresql://vrm@db.example:5433/shop"),
    ("postgresql://vrm@/shop?host=/run/pg&password=s3cret&sslmode=require",
     "postgresql://vrm@%2Frun%2Fpg/shop?sslmode=require"),
    ("host=db.example user=vrm password=s3cret dbname=shop", "postgresql://vrm@db.example/shop"),
    ("postgresql://vrm:s3cret@[::1", "a PostgreSQL database (its DSN does not parse)"),
])
def test_a_dsn_is_shown_without_its_password(dsn: str, shown: str) -> None:
    assert redact(dsn) == shown


def test_placeholders_and_percent_signs() -> None:
    assert translate("SELECT ? WHERE x LIKE '%a%'") == "SELECT %s WHERE x LIKE '%%a%%'"


def test_an_unreachable_database_is_one_sentence_without_the_password(tmp_path: Any) -> None:
    dsn = f"postgresql://vrm:s3cret@/shop?host={tmp_path}"  # no server listens there
    for argv in (["crm", "contacts", "--db", dsn], ["serve", "--db", dsn, "--port", "0"]):
        result = run(*argv)
        fails(result, "cannot use postgresql://vrm@")
        assert "s3cret" not in result.stderr + result.stdout


def test_workers_need_postgresql_and_no_forwarding(db_path: str, tmp_path: Any) -> None:
    fails(run("serve", "--db", db_path, "--workers", "2"), "needs a PostgreSQL database")
    # Refused before any database is opened: each worker would run a relay.
    fails(run("serve", "--db", f"postgresql://vrm@/shop?host={tmp_path}", "--workers", "2",
              "--forward-webhook", "https://crm.example/hook"), "need --workers 1")


def test_migrations_are_recorded_and_a_database_without_a_vendor_is_refused(
        postgres: Any) -> None:
    with postgres.database(template="template1") as dsn:  # an empty database
        with pytest.raises(NotAVendorDatabase, match="is not a vendor database"):
            Vendor.open(dsn, passphrase=PASSPHRASE, create=False)
        with psycopg.connect(dsn) as conn:  # nothing was written
            assert conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
                                ).fetchone()[0] == 0
        Vendor.open(dsn, name="Bikes4U", passphrase=PASSPHRASE).close()
        with psycopg.connect(dsn) as conn:
            assert [name for (name,) in conn.execute(
                "SELECT name FROM vrm_migrations ORDER BY name")] == [
                    name for name, _ in MIGRATIONS]
        with Vendor.open(dsn, passphrase=PASSPHRASE, create=False) as vendor:
            assert vendor.name == "Bikes4U"
        with pytest.raises(StorageError):  # a wrong database name: StorageError, not psycopg's
            Vendor.open(dsn.replace("/vrm_test_", "/no_such_"), passphrase=PASSPHRASE)


async def test_a_job_never_waits_for_a_lock_while_its_batch_holds_one(postgres: Any) -> None:
    """Another process holds relationship X. A batch with a job on Y, then one on
    X: the job on X is handed back to run first in the next batch, so the job on
    Y commits and is answered at once, and no batch ever waits holding a lock
    (two processes' batches could otherwise deadlock)."""
    import asyncio
    import threading

    with postgres.database() as dsn:
        with Vendor.open(dsn, passphrase=PASSPHRASE) as vendor:
            writer = vendor._db.writer
            gate = threading.Event()

            def hold_the_writer(conn: Any) -> None:
                gate.wait(30)  # the next two jobs queue up meanwhile: one batch

            def lock(key: str) -> Any:
                def job(conn: Any) -> str:
                    conn.lock("vendor", key)
                    conn.execute("INSERT INTO vrm_keystore (id, params) VALUES (1, ?) "
                                 "ON CONFLICT DO NOTHING", (key,))
                    return key
                return job

            with psycopg.connect(dsn, autocommit=True) as other:
                other.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))",
                              ("vendor\x1fX",))
                first = asyncio.ensure_future(writer.run(hold_the_writer))
                on_y = asyncio.ensure_future(writer.run(lock("Y")))
                on_x = asyncio.ensure_future(writer.run(lock("X")))
                await asyncio.sleep(0.1)
                gate.set()
                await first
                assert await asyncio.wait_for(on_y, 30) == "Y"  # not held up by X
                await asyncio.sleep(0.2)
                assert not on_x.done()  # it waits for X, in a batch of its own
                other.execute("SELECT pg_advisory_unlock_all()")
                assert await asyncio.wait_for(on_x, 30) == "X"


def test_the_expiry_purge_runs_in_one_process_at_a_time(postgres: Any) -> None:
    from vendor_adapter._store_postgres import _PURGE_LOCK

    with postgres.database() as dsn, Vendor.open(dsn, passphrase=PASSPHRASE) as vendor:
        person = Person(vendor.did)
        assert vendor.handle_sync(person.request(), protocol.MEDIA_TYPE).status == 200
        vendor._db.writer.run_sync(lambda conn: conn.execute(
            "UPDATE vrm_seen SET expires = '2000-01-01T00:00:00Z'"))
        seen = "SELECT count(*) AS n FROM vrm_seen"
        with psycopg.connect(dsn, autocommit=True) as other:  # another process purging
            other.execute("SELECT pg_advisory_lock(%s)", (_PURGE_LOCK,))
            assert vendor._db.purge() is False
            assert vendor._db.read(seen)[0]["n"] == 1
            other.execute("SELECT pg_advisory_unlock_all()")
        assert vendor._db.purge() is True
        assert vendor._db.read(seen)[0]["n"] == 0
