"""The person's agent: their profile, their keys, a durable outbox, verified
receipts and offers, and the ``vrm`` command (``agent.cli``).

    from agent import Agent
    agent = await Agent.open(home, passphrase="…")
    broadcast = await agent.set_profile({"postal_address.locality": "Leeds"})
    for result in broadcast.results: print(result.vendor, result.status)
    await agent.close()
"""

from ._agent import Agent, Broadcast, SyncResult, default_home
from ._delivery import DeliveryResult, Progress, backoff, classify
from ._errors import (
    AgentError,
    ClosedError,
    DiscoveryRefused,
    NoStore,
    PassphraseError,
    StoreError,
    StoreExists,
    UnknownVendor,
    UsageError,
    VendorError,
    VendorKeyChanged,
    VendorUnreachable,
)
from ._feedback import nps_class
from ._http import Limits
from ._keys import DEFAULT_SCRYPT_N
from ._profile import FIELD_NAMES, SHAREABLE

__all__ = [
    "Agent", "Broadcast", "SyncResult", "default_home", "DeliveryResult", "Progress",
    "backoff", "classify", "Limits", "DEFAULT_SCRYPT_N", "FIELD_NAMES", "SHAREABLE",
    "AgentError", "ClosedError", "DiscoveryRefused", "NoStore", "PassphraseError",
    "StoreError", "StoreExists", "UnknownVendor", "UsageError", "VendorError",
    "VendorKeyChanged", "VendorUnreachable", "nps_class",
]
