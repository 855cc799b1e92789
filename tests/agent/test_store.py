"""The store: sealed keys only, file modes, passphrase handling, migrations."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

import protocol
from agent import Agent, NoStore, PassphraseError, StoreExists
from agent._store import DB_NAME

from .conftest import PASSPHRASE, FakeVendor


def _files(home: Path) -> list[Path]:
    return [p for p in home.iterdir() if p.name.startswith(DB_NAME)]


async def test_no_plaintext_private_key_on_disk(agent: Agent, home: Path, serve) -> None:
    for i in range(3):
        _, url = await serve(FakeVendor(f"V{i}"))
        await agent.add_vendor(url)
    dids = [row["did"] for row in agent.store.rows("SELECT did FROM keys")]
    assert len(dids) == 4  # the identity and three pairwise keys
    secrets = [agent._keys.get(did).private_bytes() for did in dids]
    on_disk = b"".join(p.read_bytes() for p in _files(home))
    for secret in secrets:
        assert secret not in on_disk
        assert protocol.b64url_encode(secret).encode() not in on_disk
        assert secret.hex().encode() not in on_disk
    for path in _files(home):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE(home.stat().st_mode) == 0o700


async def test_reopen_with_the_passphrase(agent: Agent, home: Path, serve) -> None:
    _, url = await serve(FakeVendor("V"))
    await agent.add_vendor(url)
    await agent.close()
    reopened = await Agent.open(home, passphrase=PASSPHRASE)
    try:
        assert reopened.name == "Ann"
        # the pairwise key unseals and signs
        await reopened.set_profile({"email": "ann@example.org"})
        assert reopened.outbox()[-1]["status"] == "delivered"
    finally:
        await reopened.close()


async def test_wrong_passphrase(agent: Agent, home: Path) -> None:
    await agent.close()
    with pytest.raises(PassphraseError, match="passphrase is wrong"):
        await Agent.open(home, passphrase="not it")


async def test_no_store_and_existing_store(agent: Agent, home: Path, tmp_path: Path) -> None:
    with pytest.raises(NoStore, match="vrm init"):
        await Agent.open(tmp_path / "elsewhere", passphrase=PASSPHRASE)
    with pytest.raises(StoreExists):
        await Agent.init(home, passphrase=PASSPHRASE, scrypt_n=2**10)


async def test_passphrase_from_the_environment(home: Path, monkeypatch) -> None:
    monkeypatch.setenv("VRM_PASSPHRASE", PASSPHRASE)
    monkeypatch.setenv("VRM_HOME", str(home))
    agent = await Agent.init(scrypt_n=2**10)
    await agent.close()
    agent = await Agent.open()
    assert agent.home == home
    await agent.close()
    monkeypatch.delenv("VRM_PASSPHRASE")
    with pytest.raises(PassphraseError, match="VRM_PASSPHRASE"):
        await Agent.open()


async def test_migrations_are_recorded(agent: Agent) -> None:
    names = [row["name"] for row in agent.store.rows(
        "SELECT name FROM _sqlite_migrations WHERE migration_set = 'vrm-agent'")]
    assert names == ["m001_initial", "m002_vendor_url_not_unique", "m003_outbox_claims"]
    assert agent.store.one("PRAGMA journal_mode")["journal_mode"] == "wal"


async def test_default_scrypt_cost_is_strong() -> None:
    from agent import DEFAULT_SCRYPT_N

    assert DEFAULT_SCRYPT_N >= 2**15


async def test_closed_agent(agent: Agent) -> None:
    from agent import ClosedError

    await agent.close()
    await agent.close()
    with pytest.raises(ClosedError):
        agent.vendors()


async def test_an_existing_empty_vrm_home_is_made_private(tmp_path: Path) -> None:
    home = tmp_path / "vrm"
    home.mkdir()
    home.chmod(0o755)
    agent = await Agent.init(home, passphrase=PASSPHRASE, scrypt_n=2**10)
    try:
        assert stat.S_IMODE(home.stat().st_mode) == 0o700
        assert agent.warnings == []
    finally:
        await agent.close()


async def test_a_shared_directory_keeps_its_mode_with_a_warning(tmp_path: Path) -> None:
    home = tmp_path / "ann"  # a directory that is not vrm's own, like a home directory
    home.mkdir()
    (home / ".profile").write_text("# mine")
    home.chmod(0o755)
    agent = await Agent.init(home, passphrase=PASSPHRASE, scrypt_n=2**10)
    try:
        assert stat.S_IMODE(home.stat().st_mode) == 0o755
        [warning] = agent.warnings
        assert "left its mode alone" in warning and "0755" in warning
        for path in _files(home):
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    finally:
        await agent.close()
    reopened = await Agent.open(home, passphrase=PASSPHRASE)
    assert reopened.warnings == []  # said once, at init
    await reopened.close()


async def test_a_store_from_before_m002_is_migrated(tmp_path: Path) -> None:
    """A store made by the first schema: its vendors keep their rows and links,
    and one URL may then hold a second relationship."""
    import sqlite3

    import sqlite_utils

    from agent._store import _migrations

    home = tmp_path / "old"
    home.mkdir()
    db = sqlite_utils.Database(home / DB_NAME)
    _migrations.apply(db, stop_before="m002_vendor_url_not_unique")
    db.execute("INSERT INTO keys VALUES ('did:key:zA', 'sealed', 'pairwise', 't')")
    db.execute("INSERT INTO vendors (id, name, url, discovery_url, discovery, vendor_did, "
               "vendor_jwk, inbox, pairwise_did, share, status, added, updated) VALUES "
               "(1, 'Shop', 'https://shop.example', 'u', '{}', 'did:key:zV', '{}', 'i', "
               "'did:key:zA', '[]', 'ended', 't', 't')")
    db.execute("INSERT INTO outbox (id, vendor_id, type, jws, created, expires, status, "
               "next_attempt, updated) VALUES ('m1', 1, 'relationship.end', x'00', 't', 't', "
               "'delivered', 't', 't')")
    db.conn.commit()
    db.close()
    from agent._store import Store

    store = Store.open(home)
    try:
        assert store.one("SELECT name, status FROM vendors") == {"name": "Shop",
                                                                "status": "ended"}
        store.db.execute("INSERT INTO keys VALUES ('did:key:zB', 'sealed', 'pairwise', 't')")
        store.db.execute(
            "INSERT INTO vendors (name, url, discovery_url, discovery, vendor_did, "
            "vendor_jwk, inbox, pairwise_did, share, status, added, updated) VALUES "
            "('Shop', 'https://shop.example', 'u', '{}', 'did:key:zV', '{}', 'i', "
            "'did:key:zB', '[]', 'active', 't', 't')")
        assert store.rows("PRAGMA foreign_key_check") == []
        assert store.one("PRAGMA foreign_keys")["foreign_keys"] == 1
        with pytest.raises(sqlite3.IntegrityError):  # links still hold
            store.db.execute("INSERT INTO outbox (id, vendor_id, type, jws, created, "
                             "expires, status, next_attempt, updated) VALUES "
                             "('m2', 99, 't', x'00', 't', 't', 'pending', 't', 't')")
        assert store.rows("SELECT * FROM shared") == []
    finally:
        store.close()
