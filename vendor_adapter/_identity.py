"""The vendor's identity: an Ed25519 key, sealed at rest with protocol.KeySealer.

The scrypt derivation is deliberately slow (about 0.1 s), so it runs once per
file per passphrase in a process, not once per identity: a file holding a
thousand vendors opens with one derivation. New files created in the same
process with the same passphrase reuse the derived key (and so its salt),
which lets a benchmark create a thousand files without a thousand derivations;
each private key is still sealed with its own random nonce and its DID as
associated data.
"""

from __future__ import annotations

import hashlib
import json
import threading
from datetime import datetime, timezone

import protocol

from ._store import Store, Tx
from ._errors import NotAVendorDatabase, PassphraseError, VendorNotFound

__all__ = ["open_identity", "DEFAULT_NAME", "PASSPHRASE_ENV"]

DEFAULT_NAME = "VRM vendor"
#: The environment variable the CLI reads the passphrase from.
PASSPHRASE_ENV = "VRM_VENDOR_PASSPHRASE"

# Sealers created in this process, by passphrase digest: reused for new files.
_CREATED: dict[bytes, protocol.KeySealer] = {}
_CREATED_LOCK = threading.Lock()


def _digest(passphrase: str, salt: object = "") -> bytes:
    return hashlib.sha256(f"{salt}\0{passphrase}".encode()).digest()


def _sealer(db: Store, passphrase: str | None, *, create: bool) -> protocol.KeySealer:
    if not passphrase:
        raise PassphraseError(
            f"the vendor key in {db.path} is sealed with a passphrase: pass passphrase= "
            f"(or set {PASSPHRASE_ENV} for the vrm-vendor command)"
        )
    rows = db.read("SELECT params FROM vrm_keystore WHERE id = 1")
    if not rows:
        if not create:  # only a file that holds a vendor is opened without create
            raise NotAVendorDatabase(f"{db.path} holds no vendor key store; "
                                     f"create a vendor with `vrm-vendor serve --db {db.path}`")
        with _CREATED_LOCK:
            sealer = _CREATED.get(_digest(passphrase))
            if sealer is None:
                sealer = _CREATED[_digest(passphrase)] = protocol.KeySealer.create(passphrase)
        params = json.dumps(sealer.params)
        db.writer.run_sync(lambda conn: conn.execute(
            "INSERT INTO vrm_keystore (id, params) VALUES (1, ?) ON CONFLICT DO NOTHING",
            (params,)))
        rows = db.read("SELECT params FROM vrm_keystore WHERE id = 1")
    params = json.loads(rows[0]["params"])
    cache_key = _digest(passphrase, params.get("salt"))
    sealer = db.sealers.get(cache_key)
    if sealer is None:
        with _CREATED_LOCK:
            created = _CREATED.get(_digest(passphrase))
        if created is not None and created.params == params:
            sealer = created
        else:
            try:
                sealer = protocol.KeySealer.open(passphrase, params)
            except protocol.SealedKeyError as exc:
                raise PassphraseError(f"cannot open the vendor key in {db.path}: {exc}") from exc
        db.sealers[cache_key] = sealer
    return sealer


def _named(db: Store, name: str) -> list[dict[str, object]]:
    """The vendor named ``name``. Names match case-insensitively (Unicode case
    folding: ``bikes4u`` is ``Bikes4U``), so that a name typed another way never
    makes a second vendor with a key of its own. An exact match wins; several
    that differ only in case (from before this rule) are ``VendorNotFound``."""
    rows = db.read("SELECT did, name, sealed_key FROM vrm_vendor WHERE name = ?", (name,))
    if rows:
        return rows
    folded = name.casefold()
    rows = [row for row in db.read("SELECT did, name, sealed_key FROM vrm_vendor")
            if str(row["name"]).casefold() == folded]
    if len(rows) > 1:
        names = ", ".join(repr(row["name"]) for row in rows[:5])
        raise VendorNotFound(f"{db.path} holds several vendors named {name!r} in some case "
                             f"({names}); name the one you want exactly")
    return rows


def open_identity(db: Store, *, name: str | None, passphrase: str | None,
                  create: bool = True) -> tuple[protocol.SigningKey, str]:
    """The vendor's key and name: the one named ``name`` (case-insensitively), created
    if missing (with ``create``)."""
    sealer = _sealer(db, passphrase, create=create)
    if name is not None:
        rows = _named(db, name)
    else:
        rows = db.read("SELECT did, name, sealed_key FROM vrm_vendor ORDER BY created")
        if len(rows) > 1:
            names = ", ".join(repr(r["name"]) for r in rows[:5])
            raise VendorNotFound(
                f"{db.path} holds {len(rows)} vendors ({names}...); name the one you want")
    if not rows:
        if not create:
            raise VendorNotFound(f"{db.path} holds no vendor named {name!r}")
        key = protocol.SigningKey.generate()
        chosen = name or DEFAULT_NAME
        sealed = sealer.seal(key)
        created = protocol.format_time(datetime.now(timezone.utc))

        def insert(conn: Tx) -> None:
            conn.execute("INSERT INTO vrm_vendor (did, name, sealed_key, created) "
                         "VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                         (key.did, chosen, sealed, created))

        db.writer.run_sync(insert)
        # Another process may have created it first: read back whatever won.
        return open_identity(db, name=chosen, passphrase=passphrase, create=False)
    row = rows[0]
    try:
        key = sealer.unseal(row["sealed_key"], did=row["did"])
    except protocol.SealedKeyError as exc:
        raise PassphraseError(f"cannot open the key of vendor {row['name']!r}: {exc}") from exc
    return key, row["name"]
