"""The PostgreSQL store's own parts: the DSN is never shown with its password,
migrations are recorded, a database without a vendor is refused untouched."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from vendor_adapter import NotAVendorDatabase, StorageError, Vendor
from vendor_adapter._schema_postgres import MIGRATIONS
from vendor_adapter._store_postgres import redact, translate

from .conftest import PASSPHRASE
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


def test_workers_need_postgresql(db_path: str) -> None:
    fails(run("serve", "--db", db_path, "--workers", "2"), "needs a PostgreSQL database")


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
