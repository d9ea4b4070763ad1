"""The test suite's own rules, checked on its source: shared code lives in tests/helpers.py, seeds are
fixed numbers (Python's ``hash()`` of a str is salted per process, so a failure could not be replayed),
and test metrics are registered through the ``register_metric`` fixture, never at import."""

from __future__ import annotations

import ast
import re
from pathlib import Path

TESTS = Path(__file__).resolve().parent
MODULES = sorted(TESTS.glob("test_*.py"))


def _lines(pattern: str) -> list[str]:
    rx = re.compile(pattern)
    return [
        f"{p.name}:{n}: {line.strip()}"
        for p in MODULES
        for n, line in enumerate(p.read_text().splitlines(), 1)
        if rx.search(line)
    ]


def test_no_test_module_imports_another_or_conftest():
    assert _lines(r"^\s*(from|import)\s+(tests\.|test_|conftest\b)") == []


def test_no_seed_from_hash():
    assert _lines(r"default_rng\(\s*hash\(|manual_seed\(\s*hash\(|seed\(\s*hash\(") == []


def test_no_metric_registered_at_import():
    """A module-level function decorated with ``register(...)`` would register when the module is imported
    (plugin sources written out by a test, in strings, are not code of the test module)."""
    found = []
    for path in MODULES:
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.FunctionDef):
                for deco in node.decorator_list:
                    call = deco.func if isinstance(deco, ast.Call) else deco
                    if getattr(call, "id", getattr(call, "attr", None)) == "register":
                        found.append(f"{path.name}:{node.lineno}: {node.name}")
    assert found == []
