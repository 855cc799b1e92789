"""The database file: what opening it may write, and the schema migrations."""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import stat
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlite_utils

import protocol
from vendor_adapter import Vendor
from vendor_adapter._schema import MIGRATIONS

from .conftest import PASSPHRASE, Person

#: The installed console script, as a vendor runs it: the one beside the
#: interpreter running the tests, so that every checkout tests its own.
VRM_VENDOR = str(Path(sys.executable).with_name("vrm-vendor"))
ENV = {**os.environ, "VRM_VENDOR_PASSPHRASE": PASSPHRASE}


def _snapshot(path: str) -> tuple[bytes, list[str], list[tuple], str]:
    """The file's bytes, the files beside it, its schema and its journal mode."""
    with open(path, "rb") as f:
        content = f.read()
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        schema = conn.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall()
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
    finally:
        conn.close()
    return content, sorted(os.listdir(os.path.dirname(path))), schema, mode


@pytest.mark.parametrize("command", [
    ["crm", "leads"],
    ["crm", "contacts", "--json"],
    ["offer", "1", "--summary", "A bike", "--price", "10.00"],
])
def test_the_cli_refuses_a_file_that_is_not_a_vendor_database(foreign_db, command) -> None:
    other = foreign_db
    before = _snapshot(other)
    result = subprocess.run([VRM_VENDOR, *command, "--db", "other.sqlite"], env=ENV,
                            cwd=os.path.dirname(other), capture_output=True, text=True,
                            timeout=60)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0] == ("vrm-vendor: other.sqlite is not a vendor database; "
                        "create one with `vrm-vendor serve --db other.sqlite`")
    assert result.stdout == ""
    assert _snapshot(other) == before


def _signed_offer(expires: datetime) -> tuple[str, str]:
    vendor_key, person = protocol.SigningKey.generate(), protocol.SigningKey.generate()
    created = expires - timedelta(days=3)
    offer = protocol.Offer(id=protocol.new_message_id(), sender=vendor_key.did, to=person.did,
                           created=created, expires=expires, thread="intent-1",
                           body=protocol.OfferBody(summary="A bike", price=protocol.Price(
                               amount="10.00", currency="EUR")))
    return protocol.sign(offer, vendor_key).decode(), protocol.format_time(created)


def test_the_outbox_expiry_migration_reads_what_each_queued_message_states(db_path) -> None:
    """0002 adds vrm_outbox.expires to a database made before it, filled from each
    queued JWS's own expires (created + 7 days when it cannot be read)."""
    old = sqlite_utils.Database(db_path)
    MIGRATIONS.apply(old, stop_before="0002_outbox_expires")
    stated = datetime(2030, 1, 2, 3, 4, 5, 600000, tzinfo=timezone.utc)
    jws, created = _signed_offer(stated)
    old.execute("INSERT INTO vrm_outbox (vendor, did, message_id, type, jws, created) "
                "VALUES ('v', 'd', 'm1', 'offer', ?, ?)", (jws, created))
    old.execute("INSERT INTO vrm_outbox (vendor, did, message_id, type, jws, created) "
                "VALUES ('v', 'd', 'm2', 'offer', '{}', '2030-01-01T00:00:00Z')")
    old.close()

    with Vendor.open(db_path, passphrase=PASSPHRASE) as vendor:
        rows = vendor._db.read("SELECT message_id, expires FROM vrm_outbox ORDER BY seq")
        applied = vendor._db.read("SELECT name FROM _sqlite_migrations "
                                  "WHERE migration_set = 'vendor_adapter' ORDER BY id")
        indexes = vendor._db.read("SELECT name FROM sqlite_master WHERE type = 'index' "
                                  "AND tbl_name = 'vrm_outbox'")
    assert rows == [{"message_id": "m1", "expires": "2030-01-02T03:04:05.6Z"},
                    {"message_id": "m2", "expires": "2030-01-08T00:00:00Z"}]
    assert [row["name"] for row in applied][:2] == ["0001_initial", "0002_outbox_expires"]
    assert "vrm_outbox_expires" in {row["name"] for row in indexes}
    payload = json.loads(jws)["payload"]
    decoded = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert decoded["expires"] == "2030-01-02T03:04:05.6Z"


def test_offers_are_queued_with_their_expiry(db_path) -> None:
    with Vendor.open(db_path, passphrase=PASSPHRASE) as vendor:
        person = Person(vendor.did)
        assert vendor.handle_sync(person.request(), protocol.MEDIA_TYPE).status == 200
        assert vendor.handle_sync(person.message("intent", {"summary": "bike"}),
                                  protocol.MEDIA_TYPE).status == 200
        offer_id = vendor.make_offer_sync(vendor.crm.leads()[0]["id"], summary="A bike")
        (row,) = vendor._db.read("SELECT jws, expires FROM vrm_outbox")
    offer = protocol.parse(row["jws"].encode(), now=datetime.now(timezone.utc),
                           keys=protocol.resolve_did_key, recipient=person.did)
    assert offer.id == offer_id
    assert row["expires"] == protocol.format_time(offer.expires_at)


def test_ends_recorded_before_0003_are_finished_by_it(db_path) -> None:
    """Rows as the code before 0003 left them: an erased contact that kept its terms,
    preferences, counts, feedback class, leads, feedback and customer id (in the
    relationship's and the seen ids' records); an ended one with an open lead and
    a queued offer. 0003 leaves only the tombstone, and voids what an end voids."""
    old = sqlite_utils.Database(db_path)
    MIGRATIONS.apply(old, stop_before="0003_finish_earlier_ends")
    for sql in (
        "INSERT INTO contact (id, vendor, did, customer_id, given_name, channels, marketing,"
        " terms, message_counts, intent_categories, feedback_class, shared_fields, status,"
        " erased, created, updated, ended) VALUES (1, 'v', 'erased', NULL, NULL,"
        " '{\"email\":true}', NULL, '[\"myterms:x\"]', '{\"intent\":1}', '[]', 'promoter',"
        " '[]', 'ended', 1, '2026-01-01T00:00:00Z', '2026-01-02T00:00:00Z',"
        " '2026-01-02T00:00:00Z')",
        "INSERT INTO contact (id, vendor, did, customer_id, given_name, status, created,"
        " updated, ended) VALUES (2, 'v', 'ended', 'C000002', 'Bob', 'ended',"
        " '2026-01-01T00:00:00Z', '2026-01-03T00:00:00Z', '2026-01-03T00:00:00Z')",
        "INSERT INTO contact (id, vendor, did, customer_id, given_name, created, updated)"
        " VALUES (3, 'v', 'active', 'C000003', 'Cy', '2026-01-01T00:00:00Z',"
        " '2026-01-01T00:00:00Z')",
        "INSERT INTO lead (vendor, contact_id, did, message_id, summary, category, budget_max,"
        " status, created, updated) VALUES ('v', 1, 'erased', 'i1', NULL, 'bikes', '800',"
        " 'open', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z'),"
        " ('v', 2, 'ended', 'i2', 'helmet', NULL, NULL, 'offered', '2026-01-01T00:00:00Z',"
        " '2026-01-01T00:00:00Z'),"
        " ('v', 3, 'active', 'i3', 'lamp', NULL, NULL, 'open', '2026-01-01T00:00:00Z',"
        " '2026-01-01T00:00:00Z')",
        "INSERT INTO feedback (vendor, contact_id, did, message_id, score, nps_class, received)"
        " VALUES ('v', 1, 'erased', 'f1', 10, 'promoter', '2026-01-01T00:00:00Z'),"
        " ('v', 3, 'active', 'f3', 3, 'detractor', '2026-01-01T00:00:00Z')",
        "INSERT INTO vrm_relationship (vendor, did, state, record, created, ended) VALUES"
        " ('v', 'erased', 'ended', '{\"contact\":1,\"customer_id\":\"C000001\"}',"
        " '2026-01-01T00:00:00Z', '2026-01-02T00:00:00Z'),"
        " ('v', 'ended', 'ended', '{\"contact\":2,\"customer_id\":\"C000002\"}',"
        " '2026-01-01T00:00:00Z', '2026-01-03T00:00:00Z'),"
        " ('v', 'active', 'active', '{\"contact\":3,\"customer_id\":\"C000003\"}',"
        " '2026-01-01T00:00:00Z', NULL)",
        "INSERT INTO vrm_seen (vendor, sender, message_id, expires, status, record) VALUES"
        " ('v', 'erased', 'r1', '2030-01-01T00:00:00Z', 'accepted',"
        " '{\"contact\":1,\"customer_id\":\"C000001\"}'),"
        " ('v', 'active', 'r3', '2030-01-01T00:00:00Z', 'accepted',"
        " '{\"contact\":3,\"customer_id\":\"C000003\"}')",
        "INSERT INTO vrm_outbox (vendor, did, message_id, type, jws, created, expires) VALUES"
        " ('v', 'ended', 'o2', 'offer', '{}', '2026-01-01T00:00:00Z', '2030-01-01T00:00:00Z'),"
        " ('v', 'active', 'o3', 'offer', '{}', '2026-01-01T00:00:00Z', '2030-01-01T00:00:00Z')",
    ):
        old.execute(sql)
    old.close()

    Vendor.open(db_path, passphrase=PASSPHRASE).close()
    conn = sqlite3.connect(db_path)
    conn.row_factory = sqlite3.Row
    try:
        def rows(sql: str) -> list[dict]:
            return [dict(row) for row in conn.execute(sql)]

        erased = rows("SELECT * FROM contact WHERE id = 1")[0]
        assert {c: v for c, v in erased.items() if v not in (None, "{}", "[]")} == {
            "id": 1, "vendor": "v", "did": "erased", "status": "ended", "erased": 1,
            "created": "2026-01-01T00:00:00Z", "updated": "2026-01-02T00:00:00Z",
            "ended": "2026-01-02T00:00:00Z"}
        assert rows("SELECT did, status, updated FROM lead ORDER BY id") == [
            {"did": "ended", "status": "cancelled", "updated": "2026-01-03T00:00:00Z"},
            {"did": "active", "status": "open", "updated": "2026-01-01T00:00:00Z"}]
        assert rows("SELECT did FROM feedback") == [{"did": "active"}]
        assert rows("SELECT did, state, record FROM vrm_relationship ORDER BY did") == [
            {"did": "active", "state": "active",
             "record": '{"contact":3,"customer_id":"C000003"}'},
            {"did": "ended", "state": "ended",
             "record": '{"contact":2,"customer_id":"C000002"}'},
            {"did": "erased", "state": "erased", "record": '{"contact":1,"erased":true}'}]
        assert rows("SELECT sender, record FROM vrm_seen ORDER BY sender") == [
            {"sender": "active", "record": '{"contact":3,"customer_id":"C000003"}'},
            {"sender": "erased", "record": '{"contact":1}'}]
        assert rows("SELECT did FROM vrm_outbox") == [{"did": "active"}]
        assert rows("SELECT given_name FROM contact WHERE id IN (2, 3) ORDER BY id") == [
            {"given_name": "Bob"}, {"given_name": "Cy"}]
    finally:
        conn.close()


def test_a_new_database_and_its_wal_are_private(tmp_path) -> None:
    # The file holds customers' personal data and the sealed vendor key.
    path = tmp_path / "new.db"
    with Vendor.open(str(path), name="Private", passphrase=PASSPHRASE):
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}
    assert modes["new.db"] == 0o600
    assert modes["new.db-wal"] == modes["new.db-shm"] == 0o600


def test_an_existing_database_keeps_the_mode_its_owner_gave_it(tmp_path) -> None:
    path = tmp_path / "shared.db"
    with Vendor.open(str(path), name="Shared", passphrase=PASSPHRASE):
        pass
    os.chmod(path, 0o640)  # e.g. readable by a backup group
    with Vendor.open(str(path), name="Shared", passphrase=PASSPHRASE):
        pass
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
