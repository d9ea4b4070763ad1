"""Opening, creating and migrating the catalog file, and the write transaction.

Rule: the database file is only ever opened through SQLite, never with plain I/O (``open``, hashing,
``shutil.copy``) -- not even to peek at its header. SQLite learns that other connections exist only from the
POSIX (fcntl) locks they hold on that file, and closing *any* descriptor of it drops every lock of the
process. A process that holds a connection and reads the file itself then looks to the others as if it had
none: the next connection to close elsewhere takes itself for the last one, checkpoints and deletes the
``-wal``, and this process goes on committing into the deleted file; those commits are lost when it dies
without closing (``tests/test_concurrent_writers.py``). A file that is not a database is recognised by
SQLite's own error instead, and copies go through SQLite's backup API (:func:`backup`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from sqlite_utils import Database

from losslens.errors import LossLensError
from losslens.store import queries
from losslens.store.artifacts import Artifact, load_artifact, save_artifact
from losslens.store.migrate import applied_names, check_not_newer, migrate, pending_names

BUSY_TIMEOUT_S = 60.0
ENV_VAR = "LOSSLENS_CATALOG"


def default_catalog_path() -> Path:
    return Path(os.environ.get(ENV_VAR) or "catalog/losslens.db")


def utcnow() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


def folder_is_read_only(folder: Path) -> bool:
    """Whether nothing may be created in ``folder``: a read-only mount, no write permission for this user,
    or no write bit for anyone (a copy made read-only with ``chmod a-w``; root ignores permission bits, so
    the bits themselves are the owner's statement)."""
    try:
        if os.statvfs(folder).f_flag & os.ST_RDONLY:
            return True
        return not os.access(folder, os.W_OK) or not (os.stat(folder).st_mode & 0o222)
    except OSError:
        return True


def _wal(path: Path) -> Path:
    return path.with_name(path.name + "-wal")


def opens_immutable(path: Path, snapshot: bool = False) -> bool:
    """Whether a reader opens ``path`` with ``immutable=1``; see :func:`read_uri`."""
    path = Path(path).resolve()
    wal = _wal(path)
    if wal.is_file() and wal.stat().st_size > 0:
        return False  # committed pages live in the -wal: read through it
    return folder_is_read_only(path.parent) or (snapshot and not wal.exists())


def read_uri(path: Path, snapshot: bool = False) -> str:
    """The URI a reader opens ``path`` with: always ``mode=ro`` (SQLite cannot write through it), plus
    ``immutable=1`` (no locks, no ``-wal``/``-shm`` side files) when

    * the folder is read-only: SQLite could not create the side files a WAL database needs even for
      reading (a copy received from a colleague, a read-only share);
    * or ``snapshot`` is asked (a short read: ``ls``, ``status``, ``taxonomy``, ``export``) and no ``-wal``
      file exists, i.e. no connection has the database open, so the file alone is the whole database.

    Not when a ``-wal`` file with content lies beside the database: its pages are part of the database,
    so it is read through the existing ``-wal``/``-shm`` with SQLite's locks; in a read-only folder with
    ``readonly_shm=1``, so SQLite never writes the ``-shm`` either (as root, which ignores the folder's bits, it
    would). Long-lived readers that must
    see a writer's new results (``serve``, job workers) do not ask for a snapshot; in a writable folder
    SQLite then creates its ``-wal``/``-shm`` files (the database bytes stay unchanged). A writer that
    starts *and* checkpoints during a snapshot read could make that read fail; rerun it.
    """
    path = Path(path).resolve()
    if opens_immutable(path, snapshot):
        return f"{path.as_uri()}?mode=ro&immutable=1"
    return f"{path.as_uri()}?mode=ro" + ("&readonly_shm=1" if folder_is_read_only(path.parent) else "")


def _ro_uri(path: Path) -> str:
    return f"{path.resolve().as_uri()}?mode=ro"


def _connect(path: Path, readonly: bool, snapshot: bool = False) -> sqlite3.Connection:
    if readonly:
        conn = sqlite3.connect(read_uri(path, snapshot), uri=True, timeout=BUSY_TIMEOUT_S)
    else:
        conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_S)
    try:
        # The first read of the header: a file that is not a database fails here, left unchanged.
        if readonly:
            conn.execute("PRAGMA query_only=ON").fetchall()
            conn.execute("PRAGMA schema_version").fetchall()
        else:
            _use_wal(conn)
    except sqlite3.DatabaseError as exc:
        conn.close()
        if exc.sqlite_errorcode == sqlite3.SQLITE_NOTADB:
            raise LossLensError(
                "not a SQLite database",
                where=str(path),
                hint="point --catalog (or LOSSLENS_CATALOG) at a LossLens catalog, or a new path",
            ) from None
        raise
    conn.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


def _use_wal(conn: sqlite3.Connection) -> None:
    """Switch to WAL (persistent: only a catalog's first opener changes it). SQLite answers the switch with
    "database is locked" at once, without its busy handler, while another process holds the new file, so
    two processes creating one catalog together retry here within the same busy timeout."""
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                conn.execute("PRAGMA journal_mode=WAL").fetchall()
            return
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class Catalog:
    """A catalog file and its artifact folder. Use :func:`open_catalog` to get one."""

    def __init__(self, path: Path, readonly: bool = False, snapshot: bool = False):
        self.path = Path(path)
        self.dir = self.path.parent
        self.readonly = readonly
        self.db = Database(_connect(self.path, readonly, snapshot), execute_plugins=False)

    @property
    def conn(self) -> sqlite3.Connection:
        """The SQLite connection, for :mod:`losslens.store.queries`."""
        return self.db.conn

    def close(self) -> None:
        self.db.conn.close()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def write(self) -> Iterator[Database]:
        """One write transaction, taken with ``BEGIN IMMEDIATE`` so that concurrent writers
        queue on the busy timeout instead of failing with "database is locked"."""
        conn = self.db.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            conn.rollback()
            raise
        else:
            conn.execute("COMMIT")

    def query(self, sql: str, params: tuple | dict = ()) -> list[dict[str, Any]]:
        """Rows of any SQL, for tests and notebooks. The package itself reads through the named functions
        of :mod:`losslens.store.queries` (``tests/test_sql_boundary.py`` keeps SQL out of other modules)."""
        return [dict(row) for row in self.db.query(sql, params)]

    def one(self, sql: str, params: tuple | dict = ()) -> dict[str, Any] | None:
        rows = self.query(sql, params)
        return rows[0] if rows else None

    def save_artifacts(self, db: Database, artifacts: list[Artifact]) -> None:
        """Write artifact files, then their rows (inside the caller's transaction)."""
        for art in artifacts:
            save_artifact(self.dir, art)
            db.table("artifacts").insert(
                {
                    "sha256": art.sha256,
                    "kind": art.kind,
                    "shape_json": str(list(art.array.shape)),
                    "dtype": str(art.array.dtype),
                    "path": art.relpath,
                    "size_bytes": len(art.npy),
                    "created_at": utcnow(),
                },
                ignore=True,
            )

    def artifact(self, sha256: str) -> np.ndarray:
        path = queries.artifact_path(self.conn, sha256)
        if path is None:
            raise LossLensError(f"artifact {sha256} is not in the catalog", where=str(self.path))
        return load_artifact(self.dir, path)

    def run_artifact(self, run_id: str, name: str) -> np.ndarray:
        path = queries.run_artifact_path(self.conn, run_id, name)
        if path is None:
            raise LossLensError(f"run {run_id} has no artifact {name!r}", where=str(self.path))
        return load_artifact(self.dir, path)


def backup(path: Path) -> Path:
    """Copy a catalog with SQLite's online backup API before it is migrated."""
    dest_dir = path.parent / "backups"
    dest_dir.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    dest = dest_dir / f"{path.stem}-{stamp}{path.suffix}"
    src = sqlite3.connect(_ro_uri(path), uri=True, timeout=BUSY_TIMEOUT_S)
    dst = sqlite3.connect(str(dest))
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()
    return dest


def _check_is_file(path: Path) -> None:
    """Refuse a folder or a file this user may not read. Only ``stat``/``access``: never ``open`` (module doc);
    whether it is a SQLite database is SQLite's to say (:func:`_connect`)."""
    if path.is_dir():
        raise LossLensError(
            "is a folder, not a catalog file",
            where=str(path),
            hint=f"point --catalog (or LOSSLENS_CATALOG) at the database file in it, e.g. {path / 'losslens.db'}",
        )
    if not os.access(path, os.R_OK):
        raise LossLensError("cannot read the catalog file: Permission denied", where=str(path), hint="check its permissions")


def _unreadable(path: Path, exc: sqlite3.DatabaseError) -> LossLensError:
    """The one line for a catalog SQLite cannot read. A file it cannot open (a WAL copy in a read-only folder)
    is fixed by a writable copy and ``losslens init``; a damaged one (``SQLITE_CORRUPT``, ``SQLITE_NOTADB``:
    any :class:`sqlite3.DatabaseError` that is not an ``OperationalError``) is not, and init refuses it too."""
    if isinstance(exc, sqlite3.OperationalError):
        hint = "copy it (with any -wal file beside it) into a writable folder and run `losslens init` there"
    else:
        hint = "the file is damaged: restore a copy (`losslens init` keeps one in backups/ beside it before each migration) or ingest into a new catalog"
    return LossLensError(f"cannot read the catalog: {exc}", where=str(path), hint=hint)


def check_is_catalog(db: Database, where: str) -> None:
    """Refuse a database that has tables but no LossLens migration applied: a database of the user's own, which
    is neither a catalog to read nor one to migrate (``losslens init`` would add LossLens's tables to it). An
    empty database is a catalog not made yet.

    :raises LossLensError: as said."""
    if applied_names(db):
        return
    tables = sorted(t for t in db.table_names() if t != "_sqlite_migrations")
    if tables:
        shown = ", ".join(tables[:5]) + (f", … ({len(tables)} in all)" if len(tables) > 5 else "")
        raise LossLensError(
            f"not a LossLens catalog (its tables: {shown})",
            where=where,
            hint="point --catalog (or LOSSLENS_CATALOG) at a LossLens catalog, or at a new file to make one",
        )


def _check_folder_writable(path: Path) -> None:
    """Refuse to write a catalog whose folder is read-only (:func:`folder_is_read_only`): readers open such a
    catalog immutable, on the word of the folder's bits, so a writer must keep that word too (root could go ahead,
    and change the file under a running ``serve``); any other user could not create the ``-wal`` file anyway."""
    folder = path.resolve().parent
    if folder.is_dir() and folder_is_read_only(folder):
        raise LossLensError(
            f"the catalog's folder {folder} is read-only (no write bits)",
            where=str(path),
            hint=f"readers (ls, status, taxonomy, export, serve) work there; to write, `chmod u+w {folder}` "
            "or copy the folder somewhere writable",
        )


def init_catalog(path: Path) -> tuple[Catalog, list[str], Path | None]:
    """Create the catalog or migrate it forward (after a backup). Returns what was done."""
    path = Path(path)
    existed = path.exists() and path.stat().st_size > 0
    backup_path = None
    if existed:
        _check_is_file(path)
    _check_folder_writable(path)
    if existed:
        try:
            with Catalog(path, readonly=True, snapshot=True) as ro:  # a short read: no -wal/-shm left if it fails
                check_not_newer(ro.db, str(path))
                check_is_catalog(ro.db, str(path))
                todo = pending_names(ro.db)
        except sqlite3.DatabaseError as exc:
            raise _unreadable(path, exc) from None
        if todo:
            backup_path = backup(path)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
    catalog = Catalog(path)
    try:
        applied = migrate(catalog.db, str(path))
    except BaseException:
        catalog.close()
        raise
    return catalog, applied, backup_path


def _check_wal_readable(path: Path) -> None:
    """Refuse, before SQLite touches anything, a ``-wal`` file with content and no ``-shm`` beside a catalog in a
    read-only folder: SQLite reads such pages only through a ``-shm`` file it must create there (as root it
    would, despite the folder's read-only bits; otherwise it fails with "unable to open database file"), and
    skipping the ``-wal`` would silently drop committed results."""
    path = Path(path).resolve()
    wal, shm = _wal(path), path.with_name(path.name + "-shm")
    if wal.is_file() and wal.stat().st_size > 0 and not shm.exists() and folder_is_read_only(path.parent):
        raise LossLensError(
            f"{wal.name} holds results not yet in the database file, and SQLite cannot read them in a read-only folder",
            where=str(path),
            hint="copy the folder (with the -wal file) somewhere writable and run `losslens init` there, "
            "which folds the -wal into the database",
        )


def open_catalog(path: Path | None = None, *, readonly: bool = False, snapshot: bool = False) -> Catalog:
    """Open an existing catalog. Writers migrate it forward first (with a backup).

    Readers (``readonly=True``) never migrate, back up or write; ``snapshot=True`` marks a short read that
    leaves no ``-wal``/``-shm`` files behind (see :func:`read_uri`).

    :raises LossLensError: when the path is missing (readers) or a folder, not a SQLite database, unreadable
        (damaged, or a copy whose ``-wal`` holds pages that SQLite could read only by creating a ``-shm`` in a
        read-only folder), written by a newer LossLens, or
        (readers) older than this LossLens: the hint says to run ``losslens init``.
    """
    path = Path(path) if path is not None else default_catalog_path()
    if not path.exists():
        if readonly:
            raise LossLensError("no catalog here", where=str(path), hint="run `losslens init` or `losslens ingest SPEC` first")
        return init_catalog(path)[0]
    _check_is_file(path)
    if readonly:
        _check_wal_readable(path)
        catalog = None
        try:
            catalog = Catalog(path, readonly=True, snapshot=snapshot)
            check_not_newer(catalog.db, str(path))
            check_is_catalog(catalog.db, str(path))
            if pending_names(catalog.db):
                raise LossLensError(
                    "catalog schema is older than this LossLens", where=str(path), hint="run `losslens init` to migrate it"
                )
        except sqlite3.DatabaseError as exc:
            if catalog is not None:
                catalog.close()
            raise _unreadable(path, exc) from None
        except BaseException:
            if catalog is not None:
                catalog.close()
            raise
        return catalog
    return init_catalog(path)[0]
