"""Read paths never write: ls, status, taxonomy, export and serve (real Datasette) on a read-only copy of a
real catalog, and the refusal of a catalog that needs migrating.

Oracle: the file system. Every file's sha256 and the folder listing are the same after the reads as
before, and no ``-wal``/``-shm`` file appears. The tests run as root in CI, where ``chmod`` does not stop
writes, so the unchanged bytes and listing are the real check, not a permission error.
"""

from __future__ import annotations

import asyncio
import hashlib
import html
import shutil
import sqlite3
import stat
from pathlib import Path

import pytest
from datasette.app import Datasette
from helpers import get, pinn_ids, shared_catalogs
from typer.testing import CliRunner

from losslens.cli import app
from losslens.cli.serve_cmd import datasette_command, datasette_options
from losslens.errors import LossLensError
from losslens.export import export_chart, export_viewer
from losslens.overview import coverage, listing
from losslens.store import open_catalog, schema_docs
from losslens.store.catalog import folder_is_read_only, init_catalog, read_uri
from losslens.taxonomy.table import taxonomy_table

runner = CliRunner()


# builds the shared catalog: ingest and every metric over a tiny sweep (the pipeline end to end)
pytestmark = pytest.mark.slow


def snapshot(folder: Path) -> dict[str, str]:
    """Relative path → sha256 of every file under ``folder`` (the listing is the keys)."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def read_only_copy(db: Path, dest: Path) -> Path:
    """The catalog (SQLite's backup API, so the WAL-mode header comes along) and its artifacts in ``dest``,
    then every folder and file made read-only, as a copy received from a colleague."""
    dest.mkdir(parents=True)
    copy = dest / db.name
    src, dst = sqlite3.connect(f"file:{db}?mode=ro", uri=True), sqlite3.connect(copy)
    src.backup(dst)
    dst.close()
    src.close()
    shutil.copytree(db.parent / "artifacts", dest / "artifacts")
    assert copy.read_bytes()[18:20] == b"\x02\x02", "the copy should be a WAL-mode database"
    for path in [*dest.rglob("*"), dest]:
        path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    return copy


@pytest.fixture(scope="module")
def ro_catalog(tmp_path_factory) -> Path:
    pinn, _ = shared_catalogs(tmp_path_factory)
    copy = read_only_copy(pinn, tmp_path_factory.mktemp("ro") / "shared")
    yield copy
    for path in [copy.parent, *copy.parent.rglob("*")]:
        path.chmod(path.stat().st_mode | stat.S_IWUSR)


def test_cli_reads_leave_a_read_only_catalog_untouched(ro_catalog):
    before = snapshot(ro_catalog.parent)
    assert folder_is_read_only(ro_catalog.parent) and read_uri(ro_catalog).endswith("mode=ro&immutable=1")
    data = listing(ro_catalog)
    assert [e["name"] for e in data["experiments"]] == ["tiny-pinn"] and len(data["checkpoints"]) == 6
    assert {r["metric"]: r["done"] for r in coverage(ro_catalog)}["hessian"] == 6
    assert {r["phase"] is not None or r["note"] for r in taxonomy_table(ro_catalog)}
    for args in (["ls"], ["status"], ["taxonomy"], ["ls", "--json"]):
        result = runner.invoke(app, [*args, "--catalog", str(ro_catalog)])
        assert result.exit_code == 0, (args, result.output)
    assert "tiny-pinn" in runner.invoke(app, ["ls", "--catalog", str(ro_catalog)]).output
    assert snapshot(ro_catalog.parent) == before
    assert not list(ro_catalog.parent.glob("*-wal")) and not list(ro_catalog.parent.glob("*-shm"))


def test_export_reads_a_read_only_catalog_without_writing_it(ro_catalog, tmp_path):
    before = snapshot(ro_catalog.parent)
    ids = pinn_ids(ro_catalog)
    chart = export_chart(ro_catalog, "modes", tmp_path / "modes.json", setting=ids["setting"])
    assert '"mark"' in chart.read_text()
    index = export_viewer(ro_catalog, tmp_path / "viewer")
    assert index.is_file() and (tmp_path / "viewer" / "data.js").stat().st_size > 1000
    assert snapshot(ro_catalog.parent) == before
    assert sorted(p.name for p in ro_catalog.parent.iterdir()) == ["artifacts", "losslens.db"]


def test_serve_runs_datasette_immutable_on_a_read_only_copy(ro_catalog):
    """The Datasette that serve starts (same options), through ds.client: the LossLens pages, a data route,
    the hook-provided descriptions and canned queries, and Datasette's own table pages all answer."""
    before = snapshot(ro_catalog.parent)
    options = datasette_options(ro_catalog)
    assert options["immutables"] == [str(ro_catalog)] and options["files"] == []
    assert datasette_command(ro_catalog, "127.0.0.1", 8001)[4:6] == ["-i", str(ro_catalog)]
    ds = Datasette(**options)
    asyncio.run(ds.invoke_startup())
    ids = pinn_ids(ro_catalog)
    for path in (
        "/-/losslens/losslens",
        f"/-/losslens/losslens/setting/{ids['setting']}",
        f"/-/losslens/losslens/checkpoint/{ids['modes'][0]}",
        f"/-/losslens/losslens/data/modes.json?setting={ids['setting']}",
        "/losslens/checkpoints",
        "/losslens/latest_runs",
    ):
        assert get(ds, path).status_code == 200, path
    assert len(get(ds, "/losslens/settings_by_phase.json?_shape=array").json()) == 2
    assert html.escape(schema_docs.table_metadata("checkpoints")["description"]) in get(ds, "/losslens/checkpoints").text
    assert snapshot(ro_catalog.parent) == before
    assert not list(ro_catalog.parent.glob("*-wal")) and not list(ro_catalog.parent.glob("*-shm"))


def test_writable_folder_is_served_mutable_and_read_as_a_snapshot(pinn_catalog):
    """serve opens a writable catalog mutable (read-only), so results computed while it runs show up; the
    short reads leave no -wal/-shm files beside a catalog no one has open."""
    options = datasette_options(pinn_catalog)
    assert options["files"] == [str(pinn_catalog)] and options["immutables"] == []
    assert read_uri(pinn_catalog).endswith("?mode=ro")
    before = snapshot(pinn_catalog.parent)
    assert sorted(before) == ["losslens.db"]
    for args in (["ls"], ["status"], ["taxonomy"]):
        runner.invoke(app, [*args, "--catalog", str(pinn_catalog)])
    assert listing(pinn_catalog)["checkpoints"]
    assert snapshot(pinn_catalog.parent) == before


def test_datasette_hooks_describe_only_losslens_catalogs(pinn_catalog, tmp_path):
    """Keyed on the LossLens tables: another database served beside a catalog gets no LossLens metadata
    and no canned queries, whatever their file names."""
    other = tmp_path / "notes.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE checkpoints (x)")
    renamed = pinn_catalog.with_name("my-sweep.db")
    shutil.copyfile(pinn_catalog, renamed)
    ds = Datasette([str(renamed), str(other)])
    asyncio.run(ds.invoke_startup())
    meta = get(ds, "/-/metadata.json").json()
    assert set(meta["databases"]) == {"my-sweep"}
    assert get(ds, "/my-sweep/sharpest_modes.json?_shape=array").status_code == 200
    assert get(ds, "/notes/sharpest_modes.json").status_code == 404


def test_catalog_that_needs_migrating_is_refused_untouched(tmp_path):
    """An older schema (the last migration not yet applied): every read path says to run losslens init, and
    neither migrates nor backs up."""
    db = tmp_path / "old" / "losslens.db"
    init_catalog(db)[0].close()
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM _sqlite_migrations WHERE name = (SELECT max(name) FROM _sqlite_migrations)")
    conn.close()
    before = snapshot(db.parent)
    with pytest.raises(LossLensError, match="older than this LossLens") as info:
        open_catalog(db, readonly=True, snapshot=True)
    assert "losslens init" in info.value.line()
    for args in (["ls"], ["status"], ["taxonomy"], ["serve"], ["export", "viewer", "--out", str(tmp_path / "v")]):
        result = runner.invoke(app, [*args, "--catalog", str(db)])
        assert result.exit_code == 1, (args, result.output)
        assert "losslens init" in result.output, (args, result.output)
    assert snapshot(db.parent) == before and not (db.parent / "backups").exists()


def test_a_damaged_catalog_is_one_line_naming_the_file(pinn_catalog, tmp_path):
    """Oracle: the exact line and the file system. A copy cut after its first page (header intact, tables
    gone) cannot be read; readers and writers (init, compute, ingest: which before gave a DatabaseError
    traceback) say so in one line with the file and a fix that works (not `losslens init`, which cannot
    mend it), and leave the folder as it was (no -wal/-shm, no backup)."""
    damaged = tmp_path / "cut" / "losslens.db"
    damaged.parent.mkdir()
    damaged.write_bytes(pinn_catalog.read_bytes()[:4096])
    before = snapshot(damaged.parent)
    line = (
        f"error: {damaged}: cannot read the catalog: database disk image is malformed — the file is damaged: restore a "
        "copy (`losslens init` keeps one in backups/ beside it before each migration) or ingest into a new catalog"
    )
    with pytest.raises(LossLensError, match="cannot read the catalog") as info:
        listing(damaged)
    assert "error: " + info.value.line() == line
    for args in (["status"], ["ls"], ["serve"], ["init"], ["compute", "performance"]):
        result = runner.invoke(app, [*args, "--catalog", str(damaged)])
        assert result.exit_code == 1 and " ".join(result.output.split()) == line, (args, result.output)
    assert snapshot(damaged.parent) == before


def copy_with_pending_wal(db: Path, dest: Path, shm: bool = False) -> Path:
    """A copy taken while a writer had the catalog open: the database file plus a ``-wal`` that holds a
    committed rename of every experiment (to ``NAME-walonly``) not yet checkpointed into the file, and the
    writer's ``-shm`` only if ``shm``."""
    work = dest.parent / "writer"
    work.mkdir()
    shutil.copyfile(db, work / db.name)
    conn = sqlite3.connect(work / db.name)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA wal_autocheckpoint=0")
    conn.execute("UPDATE experiments SET name = name || '-walonly'")
    conn.commit()
    dest.mkdir()
    shutil.copyfile(work / db.name, dest / db.name)
    shutil.copyfile(work / f"{db.name}-wal", dest / f"{db.name}-wal")
    if shm:
        shutil.copyfile(work / f"{db.name}-shm", dest / f"{db.name}-shm")
    conn.close()
    assert (dest / f"{db.name}-wal").stat().st_size > 0
    return dest / db.name


def test_a_pending_wal_in_a_read_only_folder_is_refused_untouched(pinn_catalog, tmp_path):
    """Oracle: the file system and the data. In a read-only folder SQLite could read the -wal's pages only
    by creating a -shm there (it does as root, which ignores the bits), so every read path refuses in one
    line naming the file and the fix, and no file changes or appears; the fix itself (a writable copy and
    ``losslens init``) then shows the rename that lived only in the -wal."""
    copy = copy_with_pending_wal(pinn_catalog, tmp_path / "from a colleague [1]")
    for path in (copy.parent, *copy.parent.iterdir()):
        path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    before = snapshot(copy.parent)
    try:
        for args in (["ls"], ["status"], ["taxonomy"], ["serve"], ["export", "viewer", "--out", str(tmp_path / "v")]):
            result = runner.invoke(app, [*args, "--catalog", str(copy)])
            assert result.exit_code == 1, (args, result.output)
            line = " ".join(result.output.split())
            assert line == (
                f"error: {copy}: losslens.db-wal holds results not yet in the database file, and SQLite cannot read "
                "them in a read-only folder — copy the folder (with the -wal file) somewhere writable and run "
                "`losslens init` there, which folds the -wal into the database"
            ), args
        assert snapshot(copy.parent) == before and sorted(before) == ["losslens.db", "losslens.db-wal"]
    finally:
        for path in (copy.parent, *copy.parent.iterdir()):
            path.chmod(path.stat().st_mode | stat.S_IWUSR)
    writable = tmp_path / "mine"
    shutil.copytree(copy.parent, writable)
    assert runner.invoke(app, ["init", "--catalog", str(writable / copy.name)]).exit_code == 0
    assert sorted(p.name for p in writable.iterdir()) == ["losslens.db"]
    assert [e["name"] for e in listing(writable / copy.name)["experiments"]] == ["tiny-pinn-walonly"]


@pytest.mark.parametrize("args", [["ls"], ["status"], ["taxonomy"], ["serve"], ["init"], ["export", "viewer", "--out", "v"]])
def test_a_folder_given_as_the_catalog_is_one_line(tmp_path, args):
    """Oracle: the exact line. ``--catalog`` naming a folder (the catalog's, say) is a user error with the fix,
    not a traceback, for readers and writers alike; nothing is created in it."""
    folder = tmp_path / "catalog"
    folder.mkdir()
    result = runner.invoke(app, [*args, "--catalog", str(folder)])
    assert result.exit_code == 1, result.output
    assert " ".join(result.output.split()) == (
        f"error: {folder}: is a folder, not a catalog file — point --catalog (or LOSSLENS_CATALOG) at the "
        f"database file in it, e.g. {folder / 'losslens.db'}"
    )
    assert list(folder.iterdir()) == []


def test_printed_addresses_survive_spaces_and_brackets(pinn_catalog, tmp_path):
    """Oracle: real Datasette (ds.client) and the shell's own word splitting. The views address serve prints
    for a catalog named with spaces and brackets is one word that Datasette answers with the catalog's own
    page; the demo's browse commands split (shlex) back into the real paths."""
    import shlex
    import types
    from urllib.parse import urlsplit

    from losslens.cli import demo_cmd
    from losslens.cli.serve_cmd import views_url

    named = tmp_path / "my runs [v2]" / "sweep (final) [1].db"
    named.parent.mkdir()
    shutil.copyfile(pinn_catalog, named)
    url = views_url(named, "127.0.0.1", 8001)
    assert len(url.split()) == 1
    ds = Datasette(**datasette_options(named))
    asyncio.run(ds.invoke_startup())
    page = get(ds, urlsplit(url).path)
    assert page.status_code == 200 and "tiny-pinn" in page.text
    result = types.SimpleNamespace(catalog=named, viewer=tmp_path / "my runs [v2]" / "viewer" / "index.html", study="x")
    with demo_cmd.console.capture() as captured:
        demo_cmd.print_browse(result)
    lines = captured.get().splitlines()
    assert shlex.split(lines[1], comments=True) == ["losslens", "serve", "--catalog", str(named)]
    assert shlex.split(lines[2], comments=True) == ["open", str(result.viewer)]
    assert shlex.split(lines[3], comments=True) == ["losslens", "taxonomy", "--catalog", str(named)]


def test_writers_refuse_a_read_only_folder_untouched(pinn_catalog, pinn_experiment, tmp_path):
    """A folder without write bits is read-only for every LossLens command, writers included: readers open its
    catalog immutable (no locks) on the owner's word, so a writer that went ahead (root ignores the bits) would
    change the file under a running ``serve`` and leave its pages stale or its reads corrupt. init, ingest and
    compute (and a new catalog in such a folder) refuse in one line naming the folder and the fix. Oracle: the
    file system (every file's sha256 and the listing, before and after)."""
    (pinn_catalog.parent / "artifacts").mkdir(exist_ok=True)  # ingested only: no results yet
    copy = read_only_copy(pinn_catalog, tmp_path / "shared")
    before = snapshot(copy.parent)
    try:
        for args, target in (
            (["init"], copy),
            (["compute", "performance"], copy),
            (["ingest", str(pinn_experiment)], copy),
            (["init"], copy.parent / "new.db"),
        ):
            result = runner.invoke(app, [*args, "--catalog", str(target)])
            line = " ".join(result.output.split())
            assert result.exit_code == 1, (args, result.output)
            assert line.startswith(f"error: {target}: the catalog's folder {copy.parent} is read-only (no write bits)"), line
            assert "chmod u+w" in line and len(result.output.strip().splitlines()) <= 3, result.output
        assert snapshot(copy.parent) == before
    finally:
        for path in [copy.parent, *copy.parent.rglob("*")]:
            path.chmod(path.stat().st_mode | stat.S_IWUSR)


@pytest.mark.parametrize("name", ["run#2.db", "run?2.db", "run%41.db"])
def test_serve_refuses_a_path_datasette_would_misread_and_creates_nothing(pinn_catalog, tmp_path, name):
    """Datasette opens a database as the SQLite URI ``file:{path}?mode=ro`` without escaping the path, so in a
    path with ``#``, ``?`` or ``%`` SQLite reads the URI differently: ``run#2.db`` opened ``run``, read-write (the
    ``mode=ro`` fell into the URI's fragment), creating an empty file beside the catalog and answering 500;
    ``run%41.db`` opened ``runA.db`` and failed with a traceback. serve refuses such a path in one line with a
    fix, before Datasette starts. Oracle: the real ``losslens serve`` process (its exit and output) and the
    folder's listing and bytes."""
    import os
    import subprocess
    import sys

    folder = tmp_path / "shared"
    folder.mkdir()
    shutil.copyfile(pinn_catalog, folder / name)
    before = snapshot(folder)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "COLUMNS": "300"}
    proc = subprocess.run(
        [sys.executable, "-m", "losslens", "serve", "--catalog", str(folder / name), "--port", "0"],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,  # refused at once; a server that started instead is killed here
    )
    output = (proc.stdout + proc.stderr).strip()
    assert proc.returncode == 1, output
    line, command = output.split(" — rename it, or serve it through a link whose path has none: ")
    assert line == (
        f"error: {folder / name}: Datasette cannot open a database whose path holds '#', '?' or '%' (it reads the "
        "path as an SQLite URI)"
    ), output
    import shlex

    assert shlex.split(command) == [
        "ln",
        "-s",
        str(folder / name),
        "/tmp/catalog.db",
        "&&",
        "losslens",
        "serve",
        "--catalog",
        "/tmp/catalog.db",
    ]
    assert snapshot(folder) == before


def test_a_pending_wal_with_its_shm_in_a_read_only_folder_is_read_untouched(pinn_catalog, tmp_path):
    """Beside its ``-shm``, a ``-wal`` that holds results is read in a read-only folder: the readers show the
    rename that lives only in the ``-wal``, and no byte of any file changes, the ``-shm`` included (SQLite
    updates a ``-shm`` it may write while it reads; as root, which ignores the folder's bits, it rewrote this
    one). Oracle: the file system (every file's sha256) and the rename committed to the ``-wal`` alone."""
    copy = copy_with_pending_wal(pinn_catalog, tmp_path / "shared", shm=True)
    for path in (copy.parent, *copy.parent.iterdir()):
        path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    before = snapshot(copy.parent)
    try:
        assert sorted(before) == ["losslens.db", "losslens.db-shm", "losslens.db-wal"]
        assert [e["name"] for e in listing(copy)["experiments"]] == ["tiny-pinn-walonly"]
        for args in (["ls"], ["status"], ["export", "viewer", "--out", str(tmp_path / "v")]):  # (no taxonomy computed)
            result = runner.invoke(app, [*args, "--catalog", str(copy)])
            assert result.exit_code == 0, (args, result.output)
        assert "tiny-pinn-walonly" in runner.invoke(app, ["ls", "--catalog", str(copy)]).output
        assert snapshot(copy.parent) == before
    finally:
        for path in (copy.parent, *copy.parent.iterdir()):
            path.chmod(path.stat().st_mode | stat.S_IWUSR)


def test_a_database_that_is_not_a_catalog_is_named_so_and_left_alone(tmp_path):
    """A SQLite database of the user's own (notes beside the catalog, a wrong ``--catalog``) is not "a catalog
    whose schema is older": that hint sent readers to ``losslens init``, which then backed the file up and
    added LossLens's tables to it. Every command says what it is in one line and changes nothing. Oracle:
    the file system (every file's sha256 and the listing) and the database's tables read with plain SQL."""
    notes = tmp_path / "mine" / "notes.db"
    notes.parent.mkdir()
    with sqlite3.connect(notes) as conn:
        conn.execute("CREATE TABLE seen (checkpoint TEXT)")
        conn.execute("CREATE TABLE todo (what TEXT)")
    conn.close()
    before = snapshot(notes.parent)
    for args in (["ls"], ["status"], ["taxonomy"], ["serve"], ["export", "viewer", "--out", str(tmp_path / "v")], ["init"]):
        result = runner.invoke(app, [*args, "--catalog", str(notes)])
        assert result.exit_code == 1, (args, result.output)
        assert " ".join(result.output.split()) == (
            f"error: {notes}: not a LossLens catalog (its tables: seen, todo) — point --catalog (or "
            "LOSSLENS_CATALOG) at a LossLens catalog, or at a new file to make one"
        ), (args, result.output)
    assert snapshot(notes.parent) == before
    with sqlite3.connect(f"file:{notes}?mode=ro", uri=True) as conn:
        assert [r[0] for r in conn.execute("SELECT name FROM sqlite_master ORDER BY name")] == ["seen", "todo"]
    conn.close()
