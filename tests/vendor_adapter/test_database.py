"""The database file: what opening it may write, and the schema migrations."""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import subprocess
from datetime import datetime, timedelta, timezone

import pytest
import sqlite_utils

import protocol
from vendor_adapter import Vendor
from vendor_adapter._schema import MIGRATIONS

from .conftest import PASSPHRASE, Person

#: The installed console script, as a vendor runs it.
VRM_VENDOR = "/work/main/.venv/bin/vrm-vendor"
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
def test_the_cli_refuses_a_file_that_is_not_a_vendor_database(tmp_path, command) -> None:
    other = str(tmp_path / "other.sqlite")
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total TEXT)")
    conn.execute("INSERT INTO invoices (total) VALUES ('12.50')")
    conn.commit()
    conn.close()
    before = _snapshot(other)
    result = subprocess.run([VRM_VENDOR, *command, "--db", "other.sqlite"], env=ENV,
                            cwd=tmp_path, capture_output=True, text=True, timeout=60)
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

