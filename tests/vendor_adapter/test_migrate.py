"""``vrm-vendor migrate``: a vendor copied from SQLite to PostgreSQL keeps its
key, DID, relationships, CRM, seen message ids and queued offers."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import protocol
from vendor_adapter import Vendor

from .conftest import PASSPHRASE, Person, crm_records, table_rows
from .test_cli import ENV, fails


def migrate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vendor_adapter.cli", "migrate", *args],
                          env=ENV, capture_output=True, text=True, timeout=120)


def fetched(vendor: Vendor, person: Person, after: str | None = None) -> dict[str, Any]:
    response = vendor.handle_sync(person.message("messages.fetch", {"after": after}),
                                  protocol.MEDIA_TYPE)
    assert response.status == 200
    payload = json.loads(protocol.b64url_decode(json.loads(response.body)["payload"], what="p"))
    return payload["body"]


def test_a_vendor_moves_to_postgresql_and_its_customers_see_no_change(
        db_path: str, postgres: Any) -> None:
    with Vendor.open(db_path, name="Bikes4U", passphrase=PASSPHRASE) as old, \
            Vendor.open(db_path, name="Neighbour", passphrase=PASSPHRASE):
        ann, bob = Person(old.did), Person(old.did)
        for person, name in ((ann, "Ann"), (bob, "Bob")):
            assert old.handle_sync(person.request(given_name=name),
                                   protocol.MEDIA_TYPE).status == 200
        intent = ann.message("intent", {"summary": "a touring bike", "category": "bikes"})
        assert old.handle_sync(intent, protocol.MEDIA_TYPE).status == 200
        assert old.handle_sync(bob.message("feedback", {"score": 9}),
                               protocol.MEDIA_TYPE).status == 200
        offer_id = old.make_offer_sync(old.crm.leads()[0]["id"], summary="Trek 520")
        first = fetched(old, ann)  # Ann fetched it once already: her cursor
        assert len(first["messages"]) == 1
        second_offer = old.make_offer_sync(old.crm.leads()[0]["id"], summary="Trek 520, red")
        before, did = crm_records(old), old.did

    with postgres.database() as dsn:
        result = migrate("--from", db_path, "--to", dsn, "--name", "Bikes4U")
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == did
        with Vendor.open(dsn, passphrase=PASSPHRASE, create=False) as new:
            assert (new.did, new.name) == (did, "Bikes4U")  # the same key
            assert crm_records(new) == before  # the same records, ids included
            # Ann's agent goes on from its cursor and gets the offer queued last.
            later = fetched(new, ann, first["cursor"])
            assert [json.loads(protocol.b64url_decode(m["payload"], what="p"))["id"]
                    for m in later["messages"]] == [second_offer]
            assert offer_id != second_offer
            # A message the vendor had already taken is still a duplicate.
            again = new.handle_sync(intent, protocol.MEDIA_TYPE)
            payload = json.loads(protocol.b64url_decode(json.loads(again.body)["payload"],
                                                        what="p"))
            assert payload["body"]["status"] == "duplicate"
            # New records get new ids after the copied ones.
            assert new.handle_sync(bob.message("intent", {"summary": "a bell"}),
                                   protocol.MEDIA_TYPE).status == 200
            leads = new.crm.leads()
            assert leads[-1]["id"] > leads[0]["id"] and len(leads) == 2
        # Only the vendor named went; its key is sealed, never in plain text.
        rows = table_rows(dsn)
        assert [v["name"] for v in rows["vrm_vendor"]] == ["Bikes4U"]
        assert {r["vendor"] for r in rows["contact"]} == {did}

        # A second copy is refused, and changes nothing.
        snapshot = table_rows(dsn)
        fails(migrate("--from", db_path, "--to", dsn, "--name", "Bikes4U"),
              "already holds vendor 'Bikes4U'")
        assert table_rows(dsn) == snapshot


def test_migrate_mistakes_are_one_sentence(db_path: str, tmp_path: Any) -> None:
    fails(migrate("--from", str(tmp_path / "none.db"), "--to", "postgresql://x@/y"),
          "there is no vendor database")
    fails(migrate("--from", db_path, "--to", db_path), "the same database")
