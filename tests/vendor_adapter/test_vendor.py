"""Vendor identities: sealed keys in the database, passphrases, many vendors per file."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from datetime import datetime, timezone
from typing import Any

import pytest

import protocol
from vendor_adapter import PassphraseError, Vendor, VendorAdapterError, VendorNotFound
from vendor_adapter._errors import ClosedError, NotAVendorDatabase

from .conftest import PASSPHRASE, Person


def test_identity_is_created_once_and_sealed(db_path: str) -> None:
    with Vendor.open(db_path, name="Bikes4U", passphrase=PASSPHRASE) as first:
        did = first.did
        seed = first._key.private_bytes()
    assert did.startswith("did:key:z6Mk")
    with Vendor.open(db_path, name="Bikes4U", passphrase=PASSPHRASE) as again:
        assert again.did == did
    for suffix in ("", "-wal"):
        try:
            assert seed not in open(db_path + suffix, "rb").read()
        except FileNotFoundError:
            pass
    conn = sqlite3.connect(db_path)
    (sealed,) = conn.execute("SELECT sealed_key FROM vrm_vendor").fetchone()
    conn.close()
    assert protocol.b64url_encode(seed) not in sealed


def test_passphrase_is_needed_and_checked(store: str) -> None:
    with pytest.raises(PassphraseError, match="passphrase"):
        Vendor.open(store, name="Bikes4U")
    Vendor.open(store, name="Bikes4U", passphrase=PASSPHRASE).close()
    with pytest.raises(PassphraseError, match="wrong"):
        Vendor.open(store, name="Bikes4U", passphrase="not it")


def test_wrong_passphrase_from_a_fresh_process_cache(store: str) -> None:
    from vendor_adapter import _identity
    Vendor.open(store, passphrase=PASSPHRASE).close()
    _identity._CREATED.clear()  # as if another process had created the file
    with pytest.raises(PassphraseError):
        Vendor.open(store, passphrase="not it")
    with Vendor.open(store, passphrase=PASSPHRASE) as vendor:
        assert vendor.name == "VRM vendor"


def test_many_vendors_share_one_file(store: str) -> None:
    vendors = [Vendor.open(store, name=f"shop{i}", passphrase=PASSPHRASE) for i in range(20)]
    try:
        assert len({v.did for v in vendors}) == 20
        assert vendors[0]._db is vendors[19]._db  # one writer for the whole file
        person = Person(vendors[3].did)
        assert vendors[3].handle_sync(person.request(given_name="A"),
                                      protocol.MEDIA_TYPE).status == 200
        assert [len(v.crm.contacts()) for v in vendors] == [0, 0, 0, 1] + [0] * 16
        with pytest.raises(VendorNotFound, match="20 vendors"):
            Vendor.open(store, passphrase=PASSPHRASE)
    finally:
        for v in vendors:
            v.close()
    with Vendor.open(store, name="shop3", passphrase=PASSPHRASE) as again:
        assert again.crm.contacts()[0]["given_name"] == "A"


def test_open_without_create(store: str) -> None:
    Vendor.open(store, name="a", passphrase=PASSPHRASE).close()
    with pytest.raises(VendorNotFound):
        Vendor.open(store, name="b", passphrase=PASSPHRASE, create=False)


def test_bad_path_is_a_storage_error(tmp_path) -> None:
    from vendor_adapter import StorageError
    with pytest.raises(StorageError):
        Vendor.open(str(tmp_path / "missing" / "crm.db"), passphrase=PASSPHRASE)
    not_a_db = tmp_path / "text.db"
    not_a_db.write_text("hello, this is not SQLite" * 100)
    with pytest.raises(StorageError):
        Vendor.open(str(not_a_db), passphrase=PASSPHRASE)


async def test_use_after_close(store: str) -> None:
    vendor = Vendor.open(store, passphrase=PASSPHRASE)
    vendor.close()
    vendor.close()  # idempotent
    with pytest.raises(ClosedError):
        await vendor.make_offer(1, summary="x")
    assert (await vendor.handle(b"{}", protocol.MEDIA_TYPE)).status == 503


async def test_group_commit_batches_concurrent_writes(store: str) -> None:
    with Vendor.open(store, passphrase=PASSPHRASE) as vendor:
        people = [Person(vendor.did) for _ in range(200)]
        stats = vendor._db.writer.stats
        before = stats.batches
        responses = await asyncio.gather(*(vendor.handle(p.request(), protocol.MEDIA_TYPE)
                                           for p in people))
        assert all(r.status == 200 for r in responses)
        assert len(vendor.crm.contacts()) == 200
        # 200 writes in fewer transactions than writes: they were batched
        assert stats.batches - before < 200
        assert stats.largest_batch > 1


async def test_a_failing_job_does_not_spoil_its_batch(store: str) -> None:
    with Vendor.open(store, passphrase=PASSPHRASE) as vendor:
        writer = vendor._db.writer

        def good(conn: Any) -> int:
            conn.execute("INSERT INTO vrm_keystore (id, params) VALUES (1, 'x') "
                         "ON CONFLICT DO NOTHING")
            return 1

        def bad(conn: Any) -> int:
            conn.execute("UPDATE vrm_vendor SET name = 'changed'")
            raise ValueError("no")

        results = await asyncio.gather(writer.run(good), writer.run(bad), writer.run(good),
                                       return_exceptions=True)
        assert results[0] == 1 and results[2] == 1 and isinstance(results[1], ValueError)
        assert vendor._db.read("SELECT name FROM vrm_vendor")[0]["name"] == "VRM vendor"


async def test_public_base_url_names_the_inbox(vendor: Vendor, aiohttp_client) -> None:
    from vendor_adapter.aiohttp import vrm_app
    client = await aiohttp_client(vrm_app(vendor, public_base_url="https://shop.example/vrm/"))
    doc = await (await client.get("/.well-known/vrm")).json()
    assert doc["inbox"] == "https://shop.example/vrm/inbox"


def test_expired_message_ids_are_purged(store: str) -> None:
    from vendor_adapter._ledger import purge_expired as _purge_expired
    with Vendor.open(store, passphrase=PASSPHRASE) as vendor:
        person = Person(vendor.did)
        assert vendor.handle_sync(person.request(), protocol.MEDIA_TYPE).status == 200
        db = vendor._db
        db.writer.run_sync(lambda conn: conn.execute(
            "UPDATE vrm_seen SET expires = '2000-01-01T00:00:00Z'"))
        db.writer.run_sync(lambda conn: _purge_expired(conn, now=datetime.now(timezone.utc)))
        assert db.read("SELECT count(*) AS n FROM vrm_seen")[0]["n"] == 0


def _file_state(path: str) -> tuple[bytes, list[str]]:
    """The file's bytes and the directory beside it (no -wal, -shm or -journal appeared)."""
    with open(path, "rb") as f:
        content = f.read()
    return content, sorted(os.listdir(os.path.dirname(path)))


def _schema(path: str) -> tuple[list[tuple], str]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return (conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master "
                             "ORDER BY name").fetchall(),
                conn.execute("PRAGMA journal_mode").fetchone()[0])
    finally:
        conn.close()


def test_open_without_create_refuses_a_file_that_is_not_a_vendor_database(foreign_db) -> None:
    """crm/offer open with create=False: pointed at another SQLite file, they must
    refuse it before writing anything (no migration, no WAL switch, no keystore)."""
    other = foreign_db
    state, schema = _file_state(other), _schema(other)
    assert schema[1] == "delete"
    with pytest.raises(NotAVendorDatabase, match="is not a vendor database") as caught:
        Vendor.open(other, passphrase=PASSPHRASE, create=False)
    assert isinstance(caught.value, VendorAdapterError)
    assert "vrm-vendor serve --db" in str(caught.value)
    assert _file_state(other) == state and _schema(other) == schema
    # The file was not left open either: a later create=True really creates.
    with Vendor.open(other, passphrase=PASSPHRASE) as vendor:
        assert vendor.did


@pytest.mark.parametrize("content", [None, b"", b"hello, this is not SQLite" * 100])
def test_open_without_create_refuses_missing_empty_and_foreign_files(tmp_path,
                                                                     content) -> None:
    path = str(tmp_path / "crm.db")
    if content is not None:
        with open(path, "wb") as f:
            f.write(content)
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(NotAVendorDatabase):
        Vendor.open(path, passphrase=PASSPHRASE, create=False)
    assert sorted(os.listdir(tmp_path)) == before
    if content is not None:
        with open(path, "rb") as f:
            assert f.read() == content


def test_open_without_create_refuses_a_vendor_schema_without_a_vendor(db_path: str) -> None:
    Vendor.open(db_path, name="gone", passphrase=PASSPHRASE).close()
    conn = sqlite3.connect(db_path)
    conn.execute("DELETE FROM vrm_vendor")
    conn.commit()
    conn.close()
    before = _schema(db_path)
    with pytest.raises(NotAVendorDatabase, match="holds no vendor"):
        Vendor.open(db_path, passphrase=PASSPHRASE, create=False)
    assert _schema(db_path) == before
    conn = sqlite3.connect(db_path)
    assert conn.execute("SELECT count(*) FROM vrm_vendor").fetchone() == (0,)
    conn.close()
