"""Private keys at rest: every key is sealed with ``protocol.KeySealer``.

The key-encryption key is derived from the passphrase once per store (scrypt,
parameters kept in ``meta``); each key is then sealed with AES-GCM and its DID
as associated data. Unsealed keys live only in memory, in a per-process cache.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import sys
from datetime import datetime

import protocol

from ._errors import PassphraseError, StoreError
from ._store import Store, ts

__all__ = ["Keyring", "DEFAULT_SCRYPT_N", "passphrase_from_environment"]

#: scrypt cost for new stores (2^15, r=8: about 32 MiB and 0.1 s per derivation).
DEFAULT_SCRYPT_N = 2**15


def passphrase_from_environment(*, prompt: bool = True) -> str:
    """``VRM_PASSPHRASE``, else a getpass prompt on a terminal, else a clear error."""
    value = os.environ.get("VRM_PASSPHRASE")
    if value:
        return value
    if prompt and sys.stdin is not None and sys.stdin.isatty():
        import getpass

        value = getpass.getpass("vrm passphrase: ")
        if value:
            return value
    raise PassphraseError(
        "no passphrase: set VRM_PASSPHRASE, or run vrm from a terminal to be asked for it"
    )


class Keyring:
    """Creates, seals and opens the agent's private keys."""

    def __init__(self, store: Store, sealer: protocol.KeySealer) -> None:
        self._store = store
        self._sealer = sealer
        self._cache: dict[str, protocol.SigningKey] = {}

    @classmethod
    def create(cls, store: Store, conn: sqlite3.Connection, passphrase: str, *,
               scrypt_n: int = DEFAULT_SCRYPT_N) -> Keyring:
        try:
            sealer = protocol.KeySealer.create(passphrase, n=scrypt_n)
        except (protocol.SealedKeyError, ValueError) as exc:
            raise PassphraseError(f"cannot use this passphrase: {exc}") from exc
        store.set_meta(conn, "sealer", json.dumps(sealer.params))
        return cls(store, sealer)

    @classmethod
    async def open(cls, store: Store, passphrase: str) -> Keyring:
        params = store.get_meta("sealer")
        if params is None:
            raise StoreError(f"the store at {store.path} has no key parameters; it is damaged")
        try:
            # scrypt takes ~0.1 s and 32 MiB on purpose: keep the event loop free meanwhile.
            sealer = await asyncio.to_thread(protocol.KeySealer.open, passphrase,
                                             json.loads(params))
        except protocol.WrongPassphrase:
            raise PassphraseError("the passphrase is wrong; check VRM_PASSPHRASE") from None
        except protocol.SealedKeyError as exc:
            raise StoreError(f"the store's key parameters are damaged: {exc}") from None
        return cls(store, sealer)

    def new_key(self, conn: sqlite3.Connection, purpose: str, now: datetime) -> protocol.SigningKey:
        """A fresh key, sealed into ``keys`` inside the caller's transaction."""
        key = protocol.SigningKey.generate()
        conn.execute(
            "INSERT INTO keys (did, sealed, purpose, created) VALUES (?, ?, ?, ?)",
            (key.did, self._sealer.seal(key), purpose, ts(now)),
        )
        self._cache[key.did] = key
        return key

    def get(self, did: str) -> protocol.SigningKey:
        key = self._cache.get(did)
        if key is None:
            row = self._store.one("SELECT sealed FROM keys WHERE did = ?", (did,))
            if row is None:
                raise StoreError(f"the key for {did} is missing from the store")
            try:
                key = self._sealer.unseal(row["sealed"], did=did)
            except protocol.SealedKeyError as exc:
                raise StoreError(f"the key for {did} cannot be opened: {exc}") from None
            self._cache[did] = key
        return key
