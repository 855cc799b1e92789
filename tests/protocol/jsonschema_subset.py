"""A JSON Schema (draft 2020-12) validator for exactly the keywords schemas/ uses.

The project has no JSON Schema dependency; this small evaluator lets the tests check
that the published schemas accept and refuse what the code does. An unknown keyword
is an error here, so a schema that grows a new rule also grows this file.
"""

from __future__ import annotations

import re
from typing import Any

_ANNOTATIONS = {"$schema", "$id", "$defs", "title", "description", "default", "format"}
_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    # JSON Schema's integer is any number with no fractional part: 9.0 is one.
    "integer": lambda v: (isinstance(v, int) and not isinstance(v, bool))
    or (isinstance(v, float) and v.is_integer()),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
}


def is_valid(instance: Any, schema: dict[str, Any], root: dict[str, Any] | None = None) -> bool:
    root = root if root is not None else schema
    for keyword, value in schema.items():
        if keyword in _ANNOTATIONS or keyword in ("then", "else"):
            continue
        if not _check(keyword, value, instance, schema, root):
            return False
    return True


def _check(keyword: str, value: Any, instance: Any, schema: dict, root: dict) -> bool:
    if keyword == "$ref":
        assert value.startswith("#/$defs/"), value
        return is_valid(instance, root["$defs"][value[len("#/$defs/"):]], root)
    if keyword == "type":
        return _TYPES[value](instance)
    if keyword == "const":
        return instance == value and type(instance) is type(value)
    if keyword == "enum":
        return instance in value
    if keyword == "anyOf":
        return any(is_valid(instance, sub, root) for sub in value)
    if keyword == "not":
        return not is_valid(instance, value, root)
    if keyword == "if":
        branch = "then" if is_valid(instance, value, root) else "else"
        return branch not in schema or is_valid(instance, schema[branch], root)
    if isinstance(instance, str):
        if keyword == "pattern":
            return re.search(value, instance) is not None
        if keyword == "minLength":
            return len(instance) >= value
        if keyword == "maxLength":
            return len(instance) <= value
    if isinstance(instance, (int, float)) and not isinstance(instance, bool):
        if keyword == "minimum":
            return instance >= value
        if keyword == "maximum":
            return instance <= value
    if isinstance(instance, list):
        if keyword == "items":
            return all(is_valid(item, value, root) for item in instance)
        if keyword == "minItems":
            return len(instance) >= value
        if keyword == "maxItems":
            return len(instance) <= value
        if keyword == "contains":
            return any(is_valid(item, value, root) for item in instance)
    if isinstance(instance, dict):
        if keyword == "properties":
            return all(is_valid(instance[name], sub, root)
                       for name, sub in value.items() if name in instance)
        if keyword == "required":
            return all(name in instance for name in value)
        if keyword == "additionalProperties":
            extra = [name for name in instance if name not in schema.get("properties", {})]
            if value is False:
                return not extra
            if value is True:
                return True
            return all(is_valid(instance[name], value, root) for name in extra)
        if keyword == "minProperties":
            return len(instance) >= value
    if keyword in {"pattern", "minLength", "maxLength", "minimum", "maximum", "items",
                   "minItems", "maxItems", "contains", "properties", "required",
                   "additionalProperties", "minProperties"}:
        return True  # applies to another type of instance
    raise AssertionError(f"jsonschema_subset does not know the keyword {keyword!r}")
