"""Schema migrations: the ordered ``.sql`` files in ``migrations/``, applied with sqlite-utils.

Each file is one sqlite-utils migration; all pending ones are applied in one transaction
together with the record that they ran. A catalog that has migrations this code does not know was written by a
newer LossLens and is refused untouched.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlite_utils import Database, Migrations

from losslens.errors import LossLensError
from losslens.resources import resource_path

MIGRATION_SET = "losslens"


def migration_files() -> list[Path]:
    return sorted(resource_path("migrations").glob("[0-9][0-9][0-9][0-9]_*.sql"))


def split_statements(sql: str) -> list[str]:
    """Split a script into statements without ``executescript`` (which commits implicitly)."""
    statements, current = [], ""
    for line in sql.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            if current.strip():
                statements.append(current.strip())
            current = ""
    if current.strip() and not all(ln.strip().startswith("--") or not ln.strip() for ln in current.splitlines()):
        raise ValueError(f"incomplete SQL statement at end of migration: {current[:80]!r}")
    return statements


def _migrations() -> Migrations:
    migrations = Migrations(MIGRATION_SET)
    for path in migration_files():
        statements = split_statements(path.read_text())

        def apply(db: Database, statements: list[str] = statements) -> None:
            for statement in statements:
                db.conn.execute(statement)

        migrations(name=path.stem)(apply)
    return migrations


def applied_names(db: Database) -> list[str]:
    return [m.name for m in Migrations(MIGRATION_SET).applied(db)]


def check_not_newer(db: Database, where: str) -> None:
    """Refuse a catalog that a newer LossLens has migrated past what this code knows."""
    known = {p.stem for p in migration_files()}
    unknown = [name for name in applied_names(db) if name not in known]
    if unknown:
        raise LossLensError(
            f"catalog was written by a newer LossLens (unknown migrations: {', '.join(unknown)})",
            where=where,
            hint="upgrade LossLens (pip install -U losslens) to open it; the file was left untouched",
        )


def pending_names(db: Database) -> list[str]:
    return [m.name for m in _migrations().pending(db)]


def migrate(db: Database, where: str = "catalog") -> list[str]:
    """Apply pending migrations in order, all in one ``BEGIN IMMEDIATE`` transaction.

    The immediate lock serialises concurrent writers that open a new catalog at once: the
    second one waits, then finds nothing pending. Each migration runs in a savepoint.
    """
    conn = db.conn
    conn.execute("BEGIN IMMEDIATE")
    try:
        check_not_newer(db, where)
        migrations = _migrations()
        names = [m.name for m in migrations.pending(db)]
        migrations.apply(db)
        conn.execute("COMMIT")
    except BaseException:
        conn.rollback()
        raise
    return names
