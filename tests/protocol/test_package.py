"""protocol/ is sans-IO: importing it brings in no network, database or event loop."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "protocol"
#: What protocol/ must never import (the issue: no aiohttp, sqlite-utils or asyncio).
FORBIDDEN = ("aiohttp", "sqlite_utils", "asyncio", "sqlite3", "socket", "ssl", "http",
             "urllib.request", "selectors")


def test_importing_protocol_loads_no_io_library():
    code = ("import json, sys, protocol, protocol.__main__; "
            "print(json.dumps(sorted(m for m in sys.modules)))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    loaded = set(json.loads(result.stdout))
    for name in ("aiohttp", "sqlite_utils", "asyncio", "sqlite3"):
        assert name not in loaded, f"import protocol loaded {name}"
    assert "protocol" in loaded


def test_no_module_of_protocol_imports_io():
    # The subprocess test sees what is loaded; this sees what protocol itself asks for
    # (socket, for one, is loaded anyway by the standard library's email package).
    for path in sorted(PACKAGE.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            else:
                continue
            for name in names:
                assert not any(name == bad or name.startswith(bad + ".") for bad in FORBIDDEN), (
                    f"{path.name} imports {name}")
