"""The CRM sink interface: where accepted messages are written.

The adapter decides *whether* a message is accepted (signature, dedupe,
relationship rules); a sink decides *what it means* for the vendor's records.
The built-in :class:`~vendor_adapter.SqliteCrm` is one sink; a vendor can
write to its own system by implementing :class:`CrmSink` (or by subclassing
SqliteCrm and calling ``super().apply`` to keep the built-in records too).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

import protocol

__all__ = ["CrmEvent", "CrmSink", "RecordRef"]

#: What a receipt's ``record`` carries: short references to the CRM records.
RecordRef = dict[str, "str | int | bool | None"]


@dataclass(frozen=True, slots=True)
class CrmEvent:
    """One accepted message, ready for the CRM."""

    vendor: str                 # the vendor's DID (the tenant)
    sender: str                 # the person's pairwise DID
    message: protocol.Message   # verified and typed
    raw: bytes                  # the JWS as received, kept as evidence
    received: datetime
    #: The relationship's record reference (from its relationship.request);
    #: None for the relationship.request itself.
    relationship: RecordRef | None


@runtime_checkable
class CrmSink(Protocol):
    def apply(self, conn: Any, event: CrmEvent) -> RecordRef:
        """Record ``event``; return the reference that goes into the receipt.

        ``conn`` is the store's connection (``_store.Tx``: a sqlite3.Connection
        on SQLite; on PostgreSQL an object with the same ``execute`` taking
        ``?`` placeholders). Runs in the writer thread, inside the batch's
        transaction, under the lock of the sender's relationship, and
        is called exactly once per (sender, message id) that commits. Raise a
        ``protocol.InvalidMessage`` (e.g. ``InvalidBody``) to reject the
        message: its changes in ``conn`` are rolled back. A sink writing to an
        external system should be idempotent on ``event.message.id``: if the
        commit fails after the sink ran, the agent retries.

        ``relationship.end`` with ``erase: true`` obliges the sink to erase what
        it holds on the person (the receipt says ``erased``). It may come once
        after an end without erase. The ledger does its own part for any sink:
        it drops the messages queued for the DID, and replaces the
        relationship's record (passed back as ``event.relationship``) with the
        one returned for the erasure, so that return nothing personal there.
        """
        ...
