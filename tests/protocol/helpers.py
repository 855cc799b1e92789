"""Builders for protocol tests: keys, messages and hand-made JWS."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import protocol
from protocol import b64url_encode

NOW = datetime(2026, 6, 1, 12, 0, 0, tzinfo=timezone.utc)


def envelope(sender: str, to: str, type_: str, body: dict[str, Any], **extra: Any) -> dict:
    payload = {"vrm": "1", "id": protocol.new_message_id(), "type": type_, "from": sender,
               "to": to, "created": protocol.format_time(NOW), "body": body}
    payload.update(extra)
    return payload


def raw_jws(header: dict[str, Any] | bytes, payload: dict[str, Any] | bytes,
            key: protocol.SigningKey | None, *, signature: bytes | None = None) -> bytes:
    """A flattened JWS with any header and payload, signed by ``key`` (or not)."""
    header_bytes = header if isinstance(header, bytes) else json.dumps(header).encode()
    payload_bytes = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    protected = b64url_encode(header_bytes)
    body = b64url_encode(payload_bytes)
    if signature is None:
        signature = key.sign(f"{protected}.{body}".encode()) if key else b""
    return json.dumps({"protected": protected, "payload": body,
                       "signature": b64url_encode(signature)}).encode()


def header_for(key: protocol.SigningKey, **changes: Any) -> dict[str, Any]:
    header = {"alg": "Ed25519", "kid": key.kid, "typ": "vrm+json"}
    header.update(changes)
    return {k: v for k, v in header.items() if v is not None}


def signed(payload: dict[str, Any] | bytes, key: protocol.SigningKey, **header: Any) -> bytes:
    return raw_jws(header_for(key, **header), payload, key)


def later(**delta: float) -> datetime:
    return NOW + timedelta(**delta)
