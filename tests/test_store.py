"""Catalog file, migrations, backups and the refusal of newer catalogs (oracle: SQLite itself)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

import losslens.store.migrate as migrate_module
from losslens.errors import LossLensError
from losslens.store import Artifact, open_catalog
from losslens.store.catalog import init_catalog
from losslens.store.migrate import migration_files, split_statements

FOUNDATION_TABLES = {
    "experiments",
    "settings",
    "models",
    "checkpoints",
    "metric_runs",
    "artifacts",
    "run_artifacts",
    "performance",
}


def tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def test_init_creates_schema_with_wal_foreign_keys_and_busy_timeout(tmp_path):
    """Oracle: SQLite's own pragmas and sqlite_master."""
    db = tmp_path / "cat" / "losslens.db"
    cat, applied, backup = init_catalog(db)
    assert applied == [p.stem for p in migration_files()]
    assert backup is None
    assert cat.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert cat.db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert cat.db.execute("PRAGMA busy_timeout").fetchone()[0] >= 10_000
    cat.close()
    assert tables(db) >= FOUNDATION_TABLES


def test_second_init_is_a_no_op_without_backup(tmp_path):
    db = tmp_path / "losslens.db"
    init_catalog(db)[0].close()
    cat, applied, backup = init_catalog(db)
    cat.close()
    assert applied == [] and backup is None
    assert not (tmp_path / "backups").exists()


def migration_copy(tmp_path: Path, extra: dict[str, str]) -> Path:
    folder = tmp_path / "mig"
    folder.mkdir()
    for path in migration_files():
        (folder / path.name).write_text(path.read_text())
    for name, sql in extra.items():
        (folder / name).write_text(sql)
    return folder


def test_pending_migration_is_applied_after_a_backup(tmp_path, monkeypatch):
    """A catalog one migration behind is copied with the backup API, then migrated forward."""
    db = tmp_path / "losslens.db"
    init_catalog(db)[0].close()
    folder = migration_copy(tmp_path, {"9999_extra.sql": "CREATE TABLE extra_table (id INTEGER PRIMARY KEY);\n"})
    monkeypatch.setattr(migrate_module, "resource_path", lambda name: folder)
    cat, applied, backup = init_catalog(db)
    cat.close()
    assert applied == ["9999_extra"]
    assert backup is not None and backup.exists()
    assert "extra_table" in tables(db)
    assert "extra_table" not in tables(backup)
    assert tables(backup) >= FOUNDATION_TABLES


def test_catalog_from_newer_version_is_refused_untouched(tmp_path):
    db = tmp_path / "losslens.db"
    init_catalog(db)[0].close()
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO _sqlite_migrations (migration_set, name, applied_at) VALUES ('losslens', '9999_future', 'x')")
    before = db.read_bytes()
    with pytest.raises(LossLensError, match="newer LossLens"):
        init_catalog(db)
    with pytest.raises(LossLensError, match="newer LossLens"):
        open_catalog(db, readonly=True)
    assert db.read_bytes() == before
    assert not (tmp_path / "backups").exists()


def test_failed_migration_rolls_back_everything(tmp_path, monkeypatch):
    """Atomicity: a broken migration leaves no table and no migration record behind."""
    mig = migration_copy(tmp_path, {"9998_broken.sql": "CREATE TABLE half (id INTEGER);\nCREATE TABLE half (id INTEGER);\n"})
    monkeypatch.setattr(migrate_module, "resource_path", lambda name: mig)
    db = tmp_path / "losslens.db"
    with pytest.raises(sqlite3.OperationalError):
        init_catalog(db)
    assert "half" not in tables(db)
    assert "experiments" not in tables(db)


def test_not_a_database_is_refused(tmp_path):
    bogus = tmp_path / "losslens.db"
    bogus.write_text("hello, I am a text file\n")
    with pytest.raises(LossLensError, match="not a SQLite database"):
        open_catalog(bogus)
    for snapshot in (False, True):  # readers too, through SQLite's own check (no plain read of the file)
        with pytest.raises(LossLensError, match="not a SQLite database"):
            open_catalog(bogus, readonly=True, snapshot=snapshot)
    assert bogus.read_text() == "hello, I am a text file\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["losslens.db"]


def test_readonly_open_of_missing_catalog_says_how_to_fix(tmp_path):
    with pytest.raises(LossLensError) as info:
        open_catalog(tmp_path / "nope.db", readonly=True)
    assert "losslens init" in info.value.line()


def test_split_statements_keeps_triggers_whole():
    sql = "CREATE TABLE a (x);\nCREATE TRIGGER t AFTER INSERT ON a BEGIN\n  UPDATE a SET x = 1;\nEND;\n-- trailing comment\n"
    assert len(split_statements(sql)) == 2


def test_artifacts_are_content_addressed_and_round_trip(tmp_path):
    """Equal arrays share one file; NaN and inf survive storage."""
    cat = open_catalog(tmp_path / "losslens.db")
    a = np.array([[1.0, np.nan], [np.inf, -2.0]], dtype=np.float32)
    art1, art2 = Artifact.from_array("grid", a), Artifact.from_array("grid", a.copy())
    assert art1.sha256 == art2.sha256
    with cat.write() as db:
        cat.save_artifacts(db, [art1, art2])
    assert cat.db["artifacts"].count == 1
    back = cat.artifact(art1.sha256)
    np.testing.assert_array_equal(back, a)
    cat.close()
