"""The agent's exceptions. Every error the agent raises derives from :class:`AgentError`,
and its message is one sentence a person can act on (the CLI prints it as is)::

    AgentError
    ├── StoreError              the store is missing, damaged or already exists
    │   ├── NoStore             no store yet: run `vrm init`
    │   └── StoreExists         `vrm init` on an existing store
    ├── PassphraseError         no passphrase, or the wrong one
    ├── UsageError              a bad field name, value, vendor reference or option
    │   └── UnknownVendor       no vendor matches the reference given
    ├── VendorError             talking to a vendor went wrong
    │   ├── VendorUnreachable   discovery could not be fetched
    │   ├── DiscoveryRefused    the discovery document is unusable or unsafe
    │   └── VendorKeyChanged    the vendor now shows a key other than the pinned one
    └── ClosedError             the agent was used after close()

Foreign errors (sqlite3, aiohttp, protocol) are translated where they are
caught, with ``raise ... from exc``; none of them escapes the public API.
"""

from __future__ import annotations

__all__ = [
    "AgentError", "StoreError", "NoStore", "StoreExists", "PassphraseError", "UsageError",
    "UnknownVendor", "VendorError", "VendorUnreachable", "DiscoveryRefused",
    "VendorKeyChanged", "ClosedError",
]


class AgentError(Exception):
    """The root of every error raised by ``agent``."""


class StoreError(AgentError):
    pass


class NoStore(StoreError):
    pass


class StoreExists(StoreError):
    pass


class PassphraseError(AgentError):
    pass


class UsageError(AgentError):
    pass


class UnknownVendor(UsageError):
    pass


class VendorError(AgentError):
    pass


class VendorUnreachable(VendorError):
    pass


class DiscoveryRefused(VendorError):
    pass


class VendorKeyChanged(VendorError):
    pass


class ClosedError(AgentError):
    pass
