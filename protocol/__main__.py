"""``python -m protocol schema DIR [--registry MODULE:NAME]`` and
``python -m protocol vectors DIR`` (the test vectors, see vectors/README.md)."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path

from ._registry import CORE_REGISTRY, MessageRegistry
from ._schema import write_schemas


def _load_registry(spec: str) -> MessageRegistry:
    module_name, _, attribute = spec.partition(":")
    registry = getattr(importlib.import_module(module_name), attribute or "registry")
    if not isinstance(registry, MessageRegistry):
        raise TypeError(f"{spec} is not a MessageRegistry")
    return registry


def vector_files() -> dict[str, bytes]:
    """The bytes of each vector file: indented JSON, ASCII only, one final newline."""
    from ._vectors import build_vectors

    return {name: (json.dumps(document, indent=1, ensure_ascii=True) + "\n").encode("ascii")
            for name, document in build_vectors().items()}


def _write_vectors(directory: Path) -> int:
    try:
        directory.mkdir(parents=True, exist_ok=True)
        files = vector_files()
        for name, data in files.items():
            (directory / name).write_bytes(data)
    except OSError as exc:
        print(f"error: cannot write to {directory}: {exc.strerror}", file=sys.stderr)
        return 1
    print(f"wrote {len(files)} vector files to {directory}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m protocol")
    commands = parser.add_subparsers(dest="command", required=True)
    schema = commands.add_parser("schema", help="write one JSON Schema file per message type")
    schema.add_argument("directory", type=Path)
    schema.add_argument("--registry", metavar="MODULE:NAME",
                        help="a MessageRegistry with extension types (default: the core types)")
    vectors = commands.add_parser("vectors", help="write the language-neutral test vectors")
    vectors.add_argument("directory", type=Path)
    args = parser.parse_args(argv)
    if args.command == "vectors":
        return _write_vectors(args.directory)
    try:
        registry = _load_registry(args.registry) if args.registry else CORE_REGISTRY
        written = write_schemas(args.directory, registry)
    except (ImportError, AttributeError, TypeError) as exc:
        print(f"error: cannot load the registry {args.registry}: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: cannot write to {args.directory}: {exc.strerror}", file=sys.stderr)
        return 1
    print(f"wrote {len(written)} schemas to {args.directory}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
