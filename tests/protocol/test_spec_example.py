"""PROTOCOL.md's worked example verifies, and signs byte for byte (section 10)."""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from pathlib import Path

import pytest

import protocol

SPEC = (Path(__file__).resolve().parents[2] / "PROTOCOL.md").read_text()
EXAMPLE = SPEC[SPEC.index("## 10. Worked example"):SPEC.index("## 11.")]
BLOCKS = re.findall(r"```json\n(.*?)\n```", EXAMPLE, re.S)
HEADER, PAYLOAD, MESSAGE = BLOCKS
AGENT_D = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"  # RFC 8037 §A.1
VENDOR = "did:key:z6MkpTHR8VNsBxYAAWHut2Geadd9jSwuBV8xRoAnwWsdvktH"


def test_the_published_message_verifies():
    now = datetime(2026, 6, 1, 12, 30, tzinfo=timezone.utc)
    message = protocol.parse(MESSAGE.encode(), now=now, keys=protocol.resolve_did_key,
                             recipient=VENDOR)
    assert isinstance(message, protocol.ContactUpdate)
    assert message.body.changes.postal_address.locality == "Berlin"
    assert protocol.encode_payload(message).decode() == PAYLOAD


def test_signing_the_published_payload_reproduces_the_message():
    key = protocol.SigningKey.from_private_bytes(protocol.b64url_decode(AGENT_D))
    assert json.loads(HEADER)["kid"] == key.kid
    assert protocol.sign_payload(PAYLOAD.encode(), key).decode() == MESSAGE


@pytest.mark.parametrize("now, error", [
    (datetime(2026, 6, 1, 11, 54, 59, tzinfo=timezone.utc), protocol.NotYetValid),
    (datetime(2026, 6, 8, 12, 0, tzinfo=timezone.utc), protocol.Expired),
])
def test_the_published_validity_window(now, error):
    with pytest.raises(error):
        protocol.parse(MESSAGE.encode(), now=now, keys=protocol.resolve_did_key,
                       recipient=VENDOR)
