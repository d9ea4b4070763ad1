"""All SQL of the package lives in ``losslens/store/`` and ``migrations/`` (the architecture's rule).

Oracle: Python's own tokenizer. Every string literal (f-strings included) of every module under
``losslens/`` outside ``losslens/store/`` is searched for SQL statements: SELECT … FROM, INSERT INTO,
DELETE FROM, UPDATE … SET, CREATE/DROP TABLE|INDEX|VIEW|TRIGGER and PRAGMA.
"""

from __future__ import annotations

import io
import re
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "losslens"
SQL = re.compile(
    r"\bSELECT\b[\s\S]*\bFROM\b|\bINSERT\s+(OR\s+\w+\s+)?INTO\b|\bDELETE\s+FROM\b|\bUPDATE\s+\S+\s+SET\b"
    r"|\b(CREATE|DROP)\s+(UNIQUE\s+)?(TABLE|INDEX|VIEW|TRIGGER)\b|\bPRAGMA\s+\w+"
)

# Modules whose SQL is still being moved into losslens/store/ (module -> the helper moving it). Empty since every
# module's SQL moved; an entry is a temporary exception with its owner, never a permanent one.
NOT_YET_MOVED: dict[str, str] = {}


FSTRING_START = getattr(tokenize, "FSTRING_START", None)  # Python ≥ 3.12 splits f-strings into parts
FSTRING_END = getattr(tokenize, "FSTRING_END", None)


def string_literals(path: Path) -> list[tuple[int, str]]:
    """(first line, text) of each string literal in ``path``, f-strings whole."""
    out, depth, start, parts = [], 0, 0, []
    for t in tokenize.generate_tokens(io.StringIO(path.read_text()).readline):
        if t.type == FSTRING_START:
            depth, start, parts = depth + 1, start if depth else t.start[0], parts if depth else []
        if depth:
            parts.append(t.string)
            if t.type == FSTRING_END:
                depth -= 1
                if not depth:
                    out.append((start, " ".join(parts)))
        elif t.type == tokenize.STRING:
            out.append((t.start[0], t.string))
    return out


def sql_literals(path: Path) -> list[tuple[int, str]]:
    """(line, first 80 characters) of each string literal in ``path`` that holds an SQL statement."""
    return [(line, " ".join(text.split())[:80]) for line, text in string_literals(path) if SQL.search(text)]


def modules_with_sql() -> dict[str, list[tuple[int, str]]]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith("losslens/store/"):
            continue
        if hits := sql_literals(path):
            found[rel] = hits
    return found


def test_no_sql_outside_the_store():
    outside = {rel: hits for rel, hits in modules_with_sql().items() if rel not in NOT_YET_MOVED}
    assert not outside, "SQL outside losslens/store/ (add a named function to losslens/store/queries.py): " + "; ".join(
        f"{rel}:{line}: {text}" for rel, hits in outside.items() for line, text in hits
    )


def test_the_scanner_finds_sql_and_ignores_prose(tmp_path):
    """The detector itself, on a known module: SQL in plain, triple-quoted and f-strings is found, prose
    and lower-case English are not."""
    sample = tmp_path / "sample.py"
    sample.write_text(
        'A = "SELECT id FROM t WHERE x = ?"\n'
        'B = f"""\n  UPDATE {name} SET x = 1\n"""\n'
        'C = "select a setting from the list, then insert into the form"\n'
        'D = "INSERT OR IGNORE INTO t VALUES (1)"\n'
        'E = "PRAGMA busy_timeout=1"\n'
        "# SELECT x FROM comment\n"
    )
    assert [line for line, _ in sql_literals(sample)] == [1, 2, 6, 7]
