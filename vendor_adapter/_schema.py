"""The database schema, applied as sqlite-utils migrations (one transaction each).

Every table carries a ``vendor`` column (the vendor's DID): one database file
may hold many vendor identities, served by one group-commit writer. Tables
prefixed ``vrm_`` are the adapter's own ledger (identity, dedupe, relationship
state, outbox); the others are the built-in CRM, which a vendor may replace
with its own sink.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

__all__ = ["MIGRATIONS", "migrate"]

MIGRATIONS = Migrations("vendor_adapter")


@MIGRATIONS(name="0001_initial")
def _initial(db: Database) -> None:
    db.executescript(
        """
        -- The key-encryption parameters (scrypt salt, check value): one per file,
        -- so one passphrase derivation opens every identity in it.
        CREATE TABLE vrm_keystore (id INTEGER PRIMARY KEY CHECK (id = 1), params TEXT NOT NULL);
        -- Vendor identities; the private key is sealed (AES-256-GCM), never plaintext.
        CREATE TABLE vrm_vendor (
            did TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, sealed_key TEXT NOT NULL,
            created TEXT NOT NULL);
        -- (sender, message id) pairs already processed, with the original outcome,
        -- kept until the message expires.
        CREATE TABLE vrm_seen (
            vendor TEXT NOT NULL, sender TEXT NOT NULL, message_id TEXT NOT NULL,
            expires TEXT NOT NULL, status TEXT NOT NULL, record TEXT,
            PRIMARY KEY (vendor, sender, message_id)) WITHOUT ROWID;
        CREATE INDEX vrm_seen_expires ON vrm_seen (expires);
        -- One row per relationship: active or ended.
        CREATE TABLE vrm_relationship (
            vendor TEXT NOT NULL, did TEXT NOT NULL, state TEXT NOT NULL,
            record TEXT NOT NULL, created TEXT NOT NULL, ended TEXT,
            PRIMARY KEY (vendor, did)) WITHOUT ROWID;
        -- Signed messages waiting for the agent's messages.fetch; seq is the cursor.
        CREATE TABLE vrm_outbox (
            seq INTEGER PRIMARY KEY AUTOINCREMENT, vendor TEXT NOT NULL, did TEXT NOT NULL,
            message_id TEXT NOT NULL, type TEXT NOT NULL, jws TEXT NOT NULL,
            created TEXT NOT NULL);
        CREATE INDEX vrm_outbox_recipient ON vrm_outbox (vendor, did, seq);

        -- The built-in CRM.
        CREATE TABLE contact (
            id INTEGER PRIMARY KEY, vendor TEXT NOT NULL, did TEXT NOT NULL,
            customer_id TEXT,
            given_name TEXT, family_name TEXT, email TEXT, phone TEXT,
            street_address TEXT, locality TEXT, region TEXT, postal_code TEXT, country TEXT,
            language TEXT,
            channels TEXT, marketing INTEGER, terms TEXT,
            message_counts TEXT NOT NULL DEFAULT '{}',
            intent_categories TEXT NOT NULL DEFAULT '[]',
            feedback_class TEXT,
            shared_fields TEXT NOT NULL DEFAULT '[]',
            status TEXT NOT NULL DEFAULT 'active', erased INTEGER NOT NULL DEFAULT 0,
            created TEXT NOT NULL, updated TEXT NOT NULL, ended TEXT,
            UNIQUE (vendor, did));
        CREATE TABLE lead (
            id INTEGER PRIMARY KEY, vendor TEXT NOT NULL, contact_id INTEGER NOT NULL,
            did TEXT NOT NULL, message_id TEXT NOT NULL,
            summary TEXT, category TEXT, quantity INTEGER, budget_max TEXT,
            budget_currency TEXT, needed_by TEXT, location TEXT, valid_until TEXT,
            status TEXT NOT NULL DEFAULT 'open', offer_id TEXT,
            created TEXT NOT NULL, updated TEXT NOT NULL,
            UNIQUE (vendor, did, message_id));
        CREATE INDEX lead_vendor ON lead (vendor, id);
        CREATE TABLE activity (
            id INTEGER PRIMARY KEY, vendor TEXT NOT NULL, contact_id INTEGER NOT NULL,
            did TEXT NOT NULL, type TEXT NOT NULL, message_id TEXT NOT NULL,
            received TEXT NOT NULL, jws TEXT);
        CREATE INDEX activity_vendor ON activity (vendor, id);
        CREATE INDEX activity_contact ON activity (contact_id);
        CREATE TABLE feedback (
            id INTEGER PRIMARY KEY, vendor TEXT NOT NULL, contact_id INTEGER NOT NULL,
            did TEXT NOT NULL, message_id TEXT NOT NULL, score INTEGER NOT NULL,
            nps_class TEXT NOT NULL, subject TEXT, comment TEXT, received TEXT NOT NULL);
        CREATE INDEX feedback_vendor ON feedback (vendor, id);
        CREATE INDEX feedback_contact ON feedback (contact_id);
        """
    )


@MIGRATIONS(name="0002_outbox_expires")
def _outbox_expires(db: Database) -> None:
    # A queued message that has expired can never be accepted by the agent
    # (PROTOCOL.md section 4, step 10): messages.fetch skips it and the periodic
    # maintenance deletes it, which needs its expiry beside it. Rows queued
    # before this migration get the expiry their signed payload states (or
    # created + 7 days, the protocol's default lifetime).
    db.executescript(
        """
        ALTER TABLE vrm_outbox ADD COLUMN expires TEXT;
        CREATE INDEX vrm_outbox_expires ON vrm_outbox (expires);
        """
    )
    rows = db.execute("SELECT seq, jws, created FROM vrm_outbox").fetchall()
    db.conn.executemany("UPDATE vrm_outbox SET expires = ? WHERE seq = ?",
                        [(_stated_expiry(jws, created), seq) for seq, jws, created in rows])


def _stated_expiry(jws: str, created: str) -> str:
    """The ``expires`` of a queued JWS (format_time text), or ``created`` + 7 days.

    Self-contained (no protocol/ import): a migration must keep doing what it did
    when it was written, whatever later code changes."""
    try:
        payload = json.loads(jws)["payload"]
        stated = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        if isinstance(stated, dict) and isinstance(stated.get("expires"), str):
            return stated["expires"]
    except (ValueError, KeyError, TypeError):
        pass
    moment = datetime.fromisoformat(created.replace("Z", "+00:00")) + timedelta(days=7)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@MIGRATIONS(name="0003_finish_earlier_ends")
def _finish_earlier_ends(db: Database) -> None:
    # Relationships that ended before this migration get what an end does since:
    # an erased contact keeps only its tombstone (its terms, preferences, counts,
    # feedback class, leads and feedback went unerased before, and its customer id
    # stayed in the relationship's and the seen ids' records), and an ended one
    # has no open lead and nothing queued. Written out in full, not shared with
    # _crm.py: a migration must keep doing what it did when it was written.
    db.executescript(
        """
        UPDATE contact SET customer_id = NULL, given_name = NULL, family_name = NULL,
            email = NULL, phone = NULL, street_address = NULL, locality = NULL,
            region = NULL, postal_code = NULL, country = NULL, language = NULL,
            channels = NULL, marketing = NULL, terms = NULL, message_counts = '{}',
            intent_categories = '[]', feedback_class = NULL, shared_fields = '[]'
        WHERE erased = 1;
        DELETE FROM lead WHERE contact_id IN (SELECT id FROM contact WHERE erased = 1);
        DELETE FROM feedback WHERE contact_id IN (SELECT id FROM contact WHERE erased = 1);
        UPDATE activity SET jws = NULL WHERE jws IS NOT NULL AND type != 'relationship.end'
            AND contact_id IN (SELECT id FROM contact WHERE erased = 1);
        UPDATE vrm_relationship
        SET state = 'erased',
            record = json_object('contact', json_extract(record, '$.contact'),
                                 'erased', json('true'))
        WHERE state = 'ended' AND EXISTS (
            SELECT 1 FROM contact AS c WHERE c.vendor = vrm_relationship.vendor
            AND c.did = vrm_relationship.did AND c.erased = 1);
        UPDATE vrm_seen SET record = json_remove(record, '$.customer_id')
        WHERE record LIKE '%"customer_id"%' AND EXISTS (
            SELECT 1 FROM contact AS c WHERE c.vendor = vrm_seen.vendor
            AND c.did = vrm_seen.sender AND c.erased = 1);
        UPDATE lead SET status = 'cancelled',
            updated = coalesce((SELECT ended FROM contact WHERE id = lead.contact_id), updated)
        WHERE status IN ('open', 'offered')
            AND contact_id IN (SELECT id FROM contact WHERE status = 'ended');
        DELETE FROM vrm_outbox WHERE EXISTS (
            SELECT 1 FROM vrm_relationship AS r WHERE r.vendor = vrm_outbox.vendor
            AND r.did = vrm_outbox.did AND r.state != 'active');
        """
    )


@MIGRATIONS(name="0004_forward_queue")
def _forward_queue(db: Database) -> None:
    # The forwarding queue (issue 12): its tables and all of its SQL live in
    # vendor_adapter/forward/_queue.py, whose SCHEMA is frozen like this file.
    from .forward._queue import SCHEMA

    db.executescript(SCHEMA)


@MIGRATIONS(name="0005_offers")
def _offers(db: Database) -> None:
    # Every offer made, kept after its outbox row is fetched, purged or dropped:
    # what the vendor said, and whether the person's agent fetched it. ``fetched``
    # is set in the transaction that hands the offer to a messages.fetch, and
    # ``withdrawn`` in the one that deletes it from the outbox: the writer runs
    # one at a time, so a withdrawn offer is never handed out. Offers made before
    # this migration are not listed (their terms live only in their signed JWS).
    db.executescript(
        """
        CREATE TABLE vrm_offer (
            vendor TEXT NOT NULL, message_id TEXT NOT NULL, did TEXT NOT NULL,
            lead_id INTEGER NOT NULL, summary TEXT NOT NULL, amount TEXT NOT NULL,
            currency TEXT NOT NULL, valid_until TEXT, url TEXT, created TEXT NOT NULL,
            expires TEXT NOT NULL, fetched TEXT, withdrawn TEXT,
            PRIMARY KEY (vendor, message_id)) WITHOUT ROWID;
        CREATE INDEX vrm_offer_lead ON vrm_offer (vendor, lead_id);
        """
    )


def migrate(db: Database) -> None:
    MIGRATIONS.apply(db)
