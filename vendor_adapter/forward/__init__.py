"""Forwarding: every CRM event, delivered durably to the vendor's own systems.

    from vendor_adapter import Vendor
    from vendor_adapter.forward import Scim, Webhook

    vendor = Vendor.open("crm.db", passphrase=..., forward=[
        Webhook("https://shop.example/hooks/vrm", secret="whsec_..."),
        Scim("https://idp.example/scim/v2", token="..."),
    ])

Each accepted message's events (``contact.created``, ``lead.created``, ...;
see ``_events``) are written to a queue in the vendor's database in the same
transaction as the CRM change (a transactional outbox), and a background task
delivers them after the commit: at least once, with a stable event id, in
order per contact, retried on Svix's schedule. ``Webhook`` signs them as
Standard Webhooks; ``Scim`` keeps SCIM 2.0 Users in step.

Modules: ``_events`` (what is forwarded, sans-IO), ``_queue`` (every SQL
statement about the queue), ``_relay`` (the writes in the transaction and the
delivery task), ``_target`` (what targets share), ``_webhook``, ``_scim``.
"""

from __future__ import annotations

from ._events import EVENT_TYPES, Event, event_id, events_for
from ._queue import TargetStatus
from ._relay import Forwarding
from ._scim import Scim, scim_user
from ._target import SVIX_SCHEDULE, Attempt, ForwardError, Target
from ._webhook import Webhook, sign

__all__ = [
    "Webhook", "Scim", "Target", "Attempt", "Forwarding", "ForwardError", "TargetStatus",
    "Event", "EVENT_TYPES", "events_for", "event_id", "SVIX_SCHEDULE", "sign", "scim_user",
]
