"""JSON Schema (draft 2020-12) for every registered message type."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ._messages import FlattenedJWS
from ._discovery import DiscoveryDocument
from ._registry import CORE_REGISTRY, MessageRegistry

__all__ = ["message_schema", "write_schemas"]

_DRAFT = "https://json-schema.org/draft/2020-12/schema"


def message_schema(model: type[Any], name: str) -> dict[str, Any]:
    schema = model.model_json_schema(by_alias=True, mode="validation")
    return {"$schema": _DRAFT, "$id": f"urn:vrm:schema:1:{name}", **schema}


def write_schemas(directory: Path, registry: MessageRegistry = CORE_REGISTRY) -> list[Path]:
    """Write ``<type>.json`` for each registered type, plus the JWS and
    discovery document schemas as ``jws.json`` and ``discovery.json``."""
    directory.mkdir(parents=True, exist_ok=True)
    documents = {name: message_schema(model, name) for name, model in registry.items()}
    documents["jws"] = message_schema(FlattenedJWS, "jws")
    documents["discovery"] = message_schema(DiscoveryDocument, "discovery")
    written = []
    for name, schema in sorted(documents.items()):
        path = directory / f"{name}.json"
        path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        written.append(path)
    return written
