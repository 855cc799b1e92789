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

__all__ = ["Keyring", "DEFAULT_SCRYPT_N", "PROMPT_TRIES", "passphrase_from_environment",
           "can_prompt", "prompt_passphrase"]

#: scrypt cost for new stores (2^15, r=8: about 32 MiB and 0.1 s per derivation).
DEFAULT_SCRYPT_N = 2**15


#: How many times a person at a terminal may type the passphrase.
PROMPT_TRIES = 3


def can_prompt() -> bool:
    """True when the passphrase can be asked for: no VRM_PASSPHRASE, and a terminal."""
    return not os.environ.get("VRM_PASSPHRASE") and sys.stdin is not None and sys.stdin.isatty()


def prompt_passphrase(prompt: str = "vrm passphrase: ") -> str:
    """Ask on the terminal (getpass: not echoed). An empty answer is refused."""
    import getpass

    value = getpass.getpass(prompt)
    if not value:
        raise PassphraseError("no passphrase was typed")
    return value


def passphrase_from_environment(*, prompt: bool = True) -> str:
    """``VRM_PASSPHRASE``, else a getpass prompt on a terminal, else a clear error."""
    value = os.environ.get("VRM_PASSPHRASE")
    if value:
        return value
    if prompt and can_prompt():
        return prompt_passphrase()
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
    async def open(cls, store: Store, passphrase: str, *,
                   source: str = "VRM_PASSPHRASE") -> Keyring:
        """Open the keyring; ``source`` names where the passphrase came from, for
        the sentence a wrong one gets ("check VRM_PASSPHRASE")."""
        params = store.get_meta("sealer")
        if params is None:
            raise StoreError(f"the store at {store.path} has no key parameters; it is damaged")
        try:
            # scrypt takes ~0.1 s and 32 MiB on purpose: keep the event loop free meanwhile.
            sealer = await asyncio.to_thread(protocol.KeySealer.open, passphrase,
                                             json.loads(params))
        except protocol.WrongPassphrase:
            raise PassphraseError(f"the passphrase is wrong; check {source}") from None
        except protocol.SealedKeyError as exc:
            raise StoreError(f"the store's key parameters are damaged: {exc}") from None
        return cls(store, sealer)

    @classmethod
    async def open_at_prompt(cls, store: Store, *, tries: int = PROMPT_TRIES) -> Keyring:
        """Ask for the passphrase on the terminal until it opens the store, at most
        ``tries`` times; then :class:`PassphraseError`."""
        for attempt in range(1, tries + 1):
            passphrase = await asyncio.to_thread(prompt_passphrase)
            try:
                return await cls.open(store, passphrase, source="the passphrase")
            except PassphraseError:
                if attempt == tries:
                    raise PassphraseError(f"the passphrase you typed is wrong ({tries} tries); "
                                          f"run the command again to retry") from None
                sys.stderr.write("That passphrase is wrong; try again.\n")
                sys.stderr.flush()
        raise AssertionError("unreachable")  # pragma: no cover

    async def reseal(self, new_passphrase: str) -> None:
        """Seal every key under ``new_passphrase``, in one transaction.

        A new salt and check are derived (scrypt, the store's own cost); every
        key is unsealed with the current key-encryption key and sealed with the
        new one; the new parameters replace the old in ``meta``; all of it
        commits together, so a crash leaves the old passphrase or the new one
        working, never neither. Raises :class:`PassphraseError` for an empty
        passphrase, :class:`StoreError` for a key that does not open.
        """
        params = json.loads(self._store.get_meta("sealer") or "{}")
        try:
            sealer = await asyncio.to_thread(
                protocol.KeySealer.create, new_passphrase, n=int(params.get("n", DEFAULT_SCRYPT_N)))
        except (protocol.SealedKeyError, ValueError) as exc:
            raise PassphraseError(f"cannot use this passphrase: {exc}") from None
        with self._store.transaction() as conn:
            rows = conn.execute("SELECT did, sealed FROM keys").fetchall()
            resealed = []
            for did, sealed in rows:
                try:
                    key = self._sealer.unseal(sealed, did=did)
                except protocol.SealedKeyError as exc:
                    raise StoreError(f"the key for {did} cannot be opened: {exc}") from None
                resealed.append((sealer.seal(key), did))
            conn.executemany("UPDATE keys SET sealed = ? WHERE did = ?", resealed)
            self._store.set_meta(conn, "sealer", json.dumps(sealer.params))
        self._sealer = sealer

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
