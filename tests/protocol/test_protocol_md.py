"""PROTOCOL.md's tables say what the code enforces, so the page cannot drift from it.

Each object's table follows a ``<!-- members: ModelName ... -->`` marker. For every
model reachable from the envelope, the JWS, the discovery document and the core
bodies, the table must list exactly the model's members, say "yes" or "no" as the
model requires them, and show every limit and pattern of the member's JSON Schema,
in the row itself or in the row of the value type (section 3.1) it names.
"""

from __future__ import annotations

import json
import re
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel

import protocol
from protocol import CORE_REGISTRY, PROBLEMS, DiscoveryDocument, Envelope, FlattenedJWS
from protocol._b64 import _CANONICAL_LAST
from protocol._jws import _ACCEPTED_TYP, _DANGEROUS_MEMBERS, _HEADER_MEMBERS
from protocol._registry import EXTENSION_TYPE_PATTERN

SPEC = (Path(__file__).resolve().parents[2] / "PROTOCOL.md").read_text()
_MARKER = re.compile(r"<!-- (members|value-types|problems)(?:: ([^>]*?))? -->\n((?:\|.*\n)+)")
_CONSTRAINTS = ("pattern", "minLength", "maxLength", "minimum", "maximum", "minItems",
                "maxItems")


def cells(line: str) -> list[str]:
    parts = re.split(r"(?<!\\)\|", line.strip())[1:-1]
    return [part.strip().replace("\\|", "|") for part in parts]


def read_table(text: str) -> list[dict[str, str]]:
    lines = text.strip().splitlines()
    header = cells(lines[0])
    assert set(cells(lines[1])) == {"---"}, "the second row of a table is its separator"
    return [dict(zip(header, cells(line), strict=True)) for line in lines[2:]]


def tables() -> dict[str, list[dict[str, str]]]:
    found: dict[str, list[dict[str, str]]] = {}
    for kind, names, body in _MARKER.findall(SPEC):
        for name in (names.split() if kind == "members" else [kind]):
            assert name not in found, f"two tables for {name}"
            found[name] = read_table(body)
    return found


TABLES = tables()
VALUE_TYPES = {row["name"].strip("`"): row["rule"] for row in TABLES["value-types"]}


def models_in(annotation: object) -> typing.Iterator[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
    for arg in typing.get_args(annotation):
        yield from models_in(arg)


def documented_models() -> list[type[BaseModel]]:
    todo = [Envelope, FlattenedJWS, DiscoveryDocument,
            *(model.model_fields["body"].annotation for model in CORE_REGISTRY.values())]
    seen: list[type[BaseModel]] = []
    while todo:
        model = todo.pop()
        if model in seen:
            continue
        seen.append(model)
        for field in model.model_fields.values():
            todo.extend(models_in(field.annotation))
    return sorted(seen, key=lambda m: m.__name__)


def constraints(schema: object) -> typing.Iterator[tuple[str, object]]:
    """Every limit, pattern, constant and choice in a member's schema, not
    following $ref (a nested model has its own table)."""
    if isinstance(schema, dict):
        for key, value in schema.items():
            if key in _CONSTRAINTS or key == "const":
                yield key, value
            elif key == "enum":
                for choice in value:
                    yield "const", choice
            elif key != "$ref":
                yield from constraints(value)
    elif isinstance(schema, list):
        for item in schema:
            yield from constraints(item)


def row_text(row: dict[str, str]) -> str:
    """The row, and the rule of every value type it names."""
    text = " ".join(row.values())
    for name in re.findall(r"`([a-z]+)`", row["type"] + " " + row.get("rules", "")):
        if name in VALUE_TYPES:
            text += " " + VALUE_TYPES[name]
    return text


@pytest.mark.parametrize("model", documented_models(), ids=lambda m: m.__name__)
def test_every_model_has_a_table_of_exactly_its_members(model):
    assert model.__name__ in TABLES, f"PROTOCOL.md has no <!-- members: {model.__name__} -->"
    rows = {row["member"].strip("`"): row for row in TABLES[model.__name__]}
    fields = {field.alias or name: field for name, field in model.model_fields.items()}
    assert set(rows) == set(fields), f"{model.__name__}: the table and the model differ"
    schema = model.model_json_schema(by_alias=True, mode="validation")["properties"]
    for member, field in fields.items():
        row = rows[member]
        required = "yes" if field.is_required() else "no"
        assert row["required"].startswith(required), f"{model.__name__}.{member} is {required}"
        text = row_text(row)
        for keyword, value in constraints(schema[member]):
            if keyword == "pattern":
                assert value in text, f"{model.__name__}.{member}: pattern {value} not shown"
            elif keyword == "const":
                assert (json.dumps(value) if value == "1" else f"`{value}`") in text, (
                    f"{model.__name__}.{member}: {value!r} not shown")
            else:
                assert re.search(rf"(?<![0-9,]){value}(?![0-9,])", text), (
                    f"{model.__name__}.{member}: {keyword} {value} not shown")
        if field.is_required() and "null" in json.dumps(schema[member]):
            assert "null" in row["required"], f"{model.__name__}.{member} may be null: say so"


def test_every_table_names_a_model():
    names = {model.__name__ for model in documented_models()}
    special = {"value-types", "problems", "protected-header"}
    assert set(TABLES) - special == names


def test_the_protected_header_table():
    assert {row["member"].strip("`") for row in TABLES["protected-header"]} == _HEADER_MEMBERS
    section = SPEC[SPEC.index("### 2.1"):SPEC.index("### 2.2")]
    for name in (*_DANGEROUS_MEMBERS, *protocol.ACCEPTED_ALGORITHMS, *_ACCEPTED_TYP):
        assert f"`{name}`" in section, f"§2.1 does not name {name}"


def test_the_problem_table_matches_problems():
    rows = {row["name"].strip("`"): row for row in TABLES["problems"]}
    assert set(rows) == set(PROBLEMS)
    for name, cls in PROBLEMS.items():
        row = rows[name]
        assert int(re.match(r"[0-9]+", row["HTTP"]).group()) == cls.status_hint, name
        answered = row["answered with"]
        if cls.authenticated:
            assert answered == f"receipt, `{cls.receipt_status}`", name
        else:
            assert answered.startswith("problem document"), name


@pytest.mark.parametrize("name", sorted(CORE_REGISTRY))
def test_each_type_says_whether_it_needs_a_thread(name):
    start = SPEC.index(f"`{name}` →")
    section = SPEC[start:SPEC.index("\n### ", start) if "\n### " in SPEC[start:] else None]
    section = section[:section.index("\n## ")] if "\n## " in section else section
    needed = "`thread`: required" in section
    assert needed == CORE_REGISTRY[name].requires_thread, name
    assert needed or "`thread`: not used" in section


def test_the_numbers_and_patterns_in_the_text():
    section9 = SPEC[SPEC.index("## 9. Extensions"):SPEC.index("## 10.")]
    assert f"`^{EXTENSION_TYPE_PATTERN.pattern}$`" in section9
    assert f"at most {protocol.MAX_TYPE_LENGTH} characters" in section9
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    for last in _CANONICAL_LAST.values():
        assert f"`{''.join(sorted(last, key=alphabet.index))}`" in SPEC
    assert f"{protocol.MAX_MESSAGE_BYTES:,} bytes" in SPEC
    assert f"deeper than **{protocol.MAX_DEPTH}** levels" in SPEC
    assert f"`created` + {protocol.DEFAULT_LIFETIME.days} days" in SPEC
    assert f"`created` + {protocol.MAX_LIFETIME.days} days" in SPEC
    assert f"now + {protocol.MAX_CLOCK_SKEW.seconds // 60} minutes" in SPEC
