"""Several writer processes on one WAL catalog while readers read it: no committed row is lost.

The hazard (POSIX advisory locks): SQLite knows that other connections exist only from the fcntl locks they
hold on the database file, and closing *any* descriptor of that file drops every such lock of the process.
A process that holds a connection and then opens the database file with plain I/O (a header check, a hash,
a copy) looks to the others as if it had no connection; the next connection to close elsewhere believes it
is the last one, checkpoints and deletes the ``-wal`` file, and the first process then commits into a deleted
file. Its commits vanish when it dies without closing (SIGKILL, a node lost), which is how a sweep is stopped.

Oracle: the rows themselves. Each writer logs a row's name only after its COMMIT returned; every logged name
must be in the catalog at the end, read by a fresh connection after all writers were killed without closing.
Each writer also checks ``/proc/self/fd`` for a ``-wal`` it still holds that was unlinked. Real processes,
real SQLite file, no mocks; the run is bounded by a row count, not by time.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from losslens.store import open_catalog

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc (Linux)")]

ROOT = Path(__file__).resolve().parents[1]

# A writer: a connection through the library's write path, closed and reopened every few rows as a sweep
# does between its stages (ingest, each compute pass); between commits it opens the same catalog again
# through the library's read paths (a reader, a short snapshot read, another writer) and closes them.
# At the end it does not close its connection: os._exit stands for a kill.
WRITER = textwrap.dedent(
    """
    import os, sys
    from losslens.store.catalog import open_catalog, utcnow
    from losslens.overview import listing
    path, tag, rows, log = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    cat = open_catalog(path)
    lost_wal = False
    with open(log, "a") as out:
        for i in range(rows):
            name = f"{tag}-{i}"
            with cat.write() as db:
                db.table("experiments").insert({"id": name, "name": name, "created_at": utcnow()})
            out.write(name + "\\n")
            out.flush()
            if i % 7 == 6:
                cat.close()
                cat = open_catalog(path)
            kind = i % 3
            if kind == 0:
                open_catalog(path, readonly=True).close()
            elif kind == 1:
                listing(path)
            else:
                open_catalog(path).close()
            for fd in os.listdir("/proc/self/fd"):
                try:
                    target = os.readlink(f"/proc/self/fd/{fd}")
                except OSError:
                    continue
                if target.endswith("-wal (deleted)"):
                    print(f"{tag}: my -wal was deleted while I held it, after row {i}", flush=True)
                    lost_wal = True
    os._exit(3 if lost_wal else 0)
    """
)

READER = textwrap.dedent(
    """
    import sys
    from losslens.overview import coverage, listing
    from losslens.store import open_catalog
    path, rounds = sys.argv[1], int(sys.argv[2])
    for _ in range(rounds):
        listing(path)
        coverage(path)
        with open_catalog(path, readonly=True) as cat:
            cat.query("SELECT COUNT(*) FROM experiments")
    """
)


def test_writers_and_readers_lose_no_committed_row(tmp_path):
    db = tmp_path / "catalog" / "losslens.db"
    open_catalog(db).close()
    log = tmp_path / "committed.txt"
    log.touch()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(db), tag, "30", str(log)], env=env, stdout=subprocess.PIPE, text=True)
        for tag in ("a", "b", "c")
    ]
    readers = [subprocess.Popen([sys.executable, "-c", READER, str(db), "10"], env=env) for _ in range(2)]
    outputs = [w.communicate(timeout=300)[0] for w in writers]
    for r in readers:
        assert r.wait(timeout=300) == 0
    committed = set(log.read_text().split())
    assert len(committed) == 90
    with sqlite3.connect(db) as conn:
        present = {row[0] for row in conn.execute("SELECT name FROM experiments")}
    assert sorted(committed - present) == []
    assert [w.returncode for w in writers] == [0, 0, 0], "".join(outputs)
