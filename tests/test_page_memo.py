"""The plugin's memo of page contexts and specs (``losslens.datasette_plugin.memo``): a page read again costs
no queries, and any commit to the catalog, from another connection or process, shows on the next request.

Oracles: how many times the read function actually ran (counted by the test), and the rows the test itself
wrote with plain SQL on its own connection, looked for in the served HTML and JSON.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import pytest
from datasette.app import Datasette
from helpers import get

from losslens.store import memo


@pytest.fixture
def conns(tmp_path: Path):
    """A reader as Datasette prepares one (with a memo) and a writer on the same file."""
    path = tmp_path / "memo.db"
    writer = sqlite3.connect(path)
    writer.execute("CREATE TABLE t (v INTEGER)")
    writer.execute("INSERT INTO t VALUES (1)")
    writer.commit()
    reader = sqlite3.connect(path)
    memo.reset(reader)
    yield reader, writer
    reader.close()
    writer.close()


def counted(calls: list[str], key: str):
    def read(conn: sqlite3.Connection) -> int:
        calls.append(key)
        return conn.execute("SELECT sum(v) FROM t").fetchone()[0]

    return read


def test_a_read_runs_once_per_catalog_version(conns):
    reader, writer = conns
    calls: list[str] = []
    assert [memo.remembered(reader, "k", counted(calls, "k")) for _ in range(3)] == [1, 1, 1]
    assert calls == ["k"]
    writer.execute("INSERT INTO t VALUES (41)")
    writer.commit()
    assert memo.remembered(reader, "k", counted(calls, "k")) == 42  # the other connection's commit is seen
    assert memo.remembered(reader, "k", counted(calls, "k")) == 42
    assert calls == ["k", "k"]
    writer.execute("INSERT INTO t VALUES (1)")  # not committed: the version does not change
    assert memo.remembered(reader, "k", counted(calls, "k")) == 42 and calls == ["k", "k"]
    writer.rollback()


def test_errors_are_not_remembered_and_unprepared_connections_always_read(conns, tmp_path):
    reader, _ = conns
    attempts = []

    def failing(conn: sqlite3.Connection) -> int:
        attempts.append(1)
        raise LookupError("no such row")

    for _ in range(2):
        with pytest.raises(LookupError):
            memo.remembered(reader, "missing", failing)
    assert len(attempts) == 2
    other = sqlite3.connect(tmp_path / "memo.db")  # never given to memo.reset
    calls: list[str] = []
    assert [memo.remembered(other, "k", counted(calls, "k")) for _ in range(2)] == [1, 1] and calls == ["k", "k"]
    other.close()


def test_least_recently_used_entry_is_dropped_beyond_the_bound(conns, monkeypatch):
    reader, _ = conns
    monkeypatch.setattr(memo, "MAX_ENTRIES", 2)
    calls: list[str] = []
    for key in ("a", "b", "a", "c"):  # "b" is the least recently used when "c" arrives
        memo.remembered(reader, key, counted(calls, key))
    memo.remembered(reader, "a", counted(calls, "a"))
    memo.remembered(reader, "b", counted(calls, "b"))
    assert calls == ["a", "b", "c", "b"]


def test_values_keep_refuses_are_read_each_time(conns):
    reader, _ = conns
    calls: list[str] = []
    for _ in range(2):
        memo.remembered(reader, "big", counted(calls, "big"), keep=lambda v: v < 1)
        memo.remembered(reader, "small", counted(calls, "small"), keep=lambda v: v < 2)
    assert calls == ["big", "small", "big"]


def test_a_reset_connection_starts_empty(conns):
    reader, _ = conns
    calls: list[str] = []
    memo.remembered(reader, "k", counted(calls, "k"))
    memo.reset(reader)  # what Datasette's prepare_connection hook does for a new connection with this id
    memo.remembered(reader, "k", counted(calls, "k"))
    assert calls == ["k", "k"]


def test_served_pages_and_specs_follow_commits_from_another_connection(pinn_catalog):
    """A running server shows what another process (``losslens compute``, a rename) committed since its last
    answer, on the global, setting and checkpoint pages and the taxonomy spec, asked twice before and after."""
    ds = Datasette([str(pinn_catalog)])
    asyncio.run(ds.invoke_startup())
    conn = sqlite3.connect(pinn_catalog)
    experiment, setting = conn.execute("SELECT experiment_id, id FROM settings ORDER BY label LIMIT 1").fetchone()
    sha = conn.execute(
        "SELECT c.sha256 FROM checkpoints c JOIN models m ON m.id = c.model_id WHERE m.setting_id = ? LIMIT 1", (setting,)
    ).fetchone()[0]
    pages = {
        "global": f"/-/losslens/losslens?experiment={experiment}&setting={setting}",
        "setting": f"/-/losslens/losslens/setting/{setting}",
        "checkpoint": f"/-/losslens/losslens/checkpoint/{sha}",
    }
    spec = f"/-/losslens/losslens/spec/taxonomy.json?experiment={experiment}"
    pages["taxonomy rows"] = f"/-/losslens/losslens/data/taxonomy.json?experiment={experiment}"
    for _ in range(2):
        assert all("renamed-by-test" not in get(ds, p).text for p in pages.values())
        assert '"gamma"' not in get(ds, spec).text  # the sweep's key names the grid's axis
    conn.execute("UPDATE settings SET label = 'renamed-by-test setting' WHERE id = ?", (setting,))
    conn.execute("UPDATE checkpoints SET name = 'renamed-by-test mode' WHERE sha256 = ?", (sha,))
    conn.execute("UPDATE settings SET values_json = json_object('gamma', 1) WHERE experiment_id = ?", (experiment,))
    conn.commit()
    for _ in range(2):
        assert "renamed-by-test setting" in get(ds, pages["global"]).text
        setting_html = get(ds, pages["setting"]).text
        assert "renamed-by-test setting" in setting_html and "renamed-by-test mode" in setting_html
        assert "renamed-by-test mode" in get(ds, pages["checkpoint"]).text
        assert "renamed-by-test setting" in {r["label"] for r in get(ds, pages["taxonomy rows"]).json()}
        assert '"gamma"' in get(ds, spec).text
    conn.close()


def test_mode_pages_of_one_experiment_count_its_checkpoints_once_per_version(pinn_catalog):
    """Oracle: SQLite's statement trace. Going from one mode page to another of the same experiment does not
    count the experiment's checkpoints again, until a commit changes the catalog."""
    from losslens.datasette_plugin.pages import checkpoint_context

    conn = sqlite3.connect(f"file:{pinn_catalog}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    memo.reset(conn)
    shas = [r[0] for r in conn.execute("SELECT sha256 FROM checkpoints ORDER BY sha256")]
    seen: list[str] = []
    conn.set_trace_callback(seen.append)

    def counts(sha: str) -> int:
        seen.clear()
        context = checkpoint_context(conn, sha)
        assert context["n_others"] == len(shas) - 1
        return sum("count(*)" in s for s in seen)

    assert [counts(shas[0]), counts(shas[1]), counts(shas[2])] == [1, 0, 0]
    writer = sqlite3.connect(pinn_catalog)
    writer.execute("UPDATE checkpoints SET name = name || '-renamed' WHERE sha256 = ?", (shas[3],))
    writer.commit()
    writer.close()
    assert counts(shas[1]) == 1
    conn.close()


def test_global_pages_of_one_experiment_share_its_settings_and_spec(pinn_catalog):
    """Oracle: SQLite's statement trace on Datasette's own connections (a plugin's ``prepare_connection``). Choosing
    another setting on the global page does not read the experiment's settings again, and the taxonomy spec
    that page inlined is the spec route's answer for the same selection, with no further read."""
    from datasette import hookimpl
    from datasette.plugins import pm

    seen: list[str] = []

    class Trace:
        __name__ = "test_trace"  # Datasette lists plugins by name

        @hookimpl
        def prepare_connection(self, conn):
            conn.set_trace_callback(seen.append)

    tracer = Trace()
    pm.register(tracer, name="test-trace")
    try:
        ds = Datasette([str(pinn_catalog)])
        ds.executor = None  # one connection, so every read is traced in order
        asyncio.run(ds.invoke_startup())
        with sqlite3.connect(pinn_catalog) as conn:
            experiment = conn.execute("SELECT id FROM experiments").fetchone()[0]
            first, second = [r[0] for r in conn.execute("SELECT id FROM settings ORDER BY label")]
        page = get(ds, f"/-/losslens/losslens?experiment={experiment}&setting={first}")
        assert page.status_code == 200
        seen.clear()
        page = get(ds, f"/-/losslens/losslens?experiment={experiment}&setting={second}")
        assert page.status_code == 200
        reads = [s for s in seen if "PRAGMA data_version" not in s]
        assert not any("FROM settings WHERE experiment_id" in s for s in reads), reads
        inlined = page.text.split('id="global-spec">', 1)[1].split("</script>", 1)[0]
        seen.clear()
        spec = get(ds, f"/-/losslens/losslens/spec/taxonomy.json?experiment={experiment}&selected={second}")
        assert spec.json() == json.loads(inlined)
        assert not any("taxonomy" in s for s in seen if "PRAGMA data_version" not in s), seen
    finally:
        pm.unregister(tracer)


@pytest.mark.parametrize("page", ["global", "checkpoint"])
def test_a_commit_while_a_page_is_read_is_not_remembered_as_current(pinn_catalog, page):
    """A page's read asks for a shared part (the experiment's settings, its size) that is itself remembered. When
    another process commits between the page's first queries and that inner read, the inner read sees the new
    catalog version, but the page was partly read before it: remembering the page under the new version would
    serve that older part until the next commit. Oracle: a rename committed by another connection at exactly
    that moment (from SQLite's statement trace on Datasette's own connection), then the names read with plain
    SQL, looked for in the page asked again with no further commit."""
    from datasette import hookimpl
    from datasette.plugins import pm

    writer = sqlite3.connect(pinn_catalog)
    experiment, setting = writer.execute("SELECT experiment_id, id FROM settings ORDER BY label LIMIT 1").fetchone()
    sha = writer.execute(
        "SELECT c.sha256 FROM checkpoints c JOIN models m ON m.id = c.model_id WHERE m.setting_id = ? LIMIT 1", (setting,)
    ).fetchone()[0]
    rename, path, renamed = {
        "global": (
            ("UPDATE experiments SET name = 'renamed-mid-read' WHERE id = ?", experiment),
            f"/-/losslens/losslens?experiment={experiment}&setting={setting}",
            lambda: writer.execute("SELECT name FROM experiments WHERE id = ?", (experiment,)).fetchone()[0],
        ),
        "checkpoint": (
            ("UPDATE checkpoints SET name = 'renamed-mid-read' WHERE sha256 = ?", sha),
            f"/-/losslens/losslens/checkpoint/{sha}",
            lambda: writer.execute("SELECT name FROM checkpoints WHERE sha256 = ?", (sha,)).fetchone()[0],
        ),
    }[page]
    versions_asked = []

    def trace(statement: str) -> None:
        if statement == "PRAGMA data_version" and versions_asked is not None:
            versions_asked.append(statement)
            if len(versions_asked) == 2:  # the inner read's: the page's own first queries have run
                writer.execute(rename[0], (rename[1],))
                writer.commit()

    class Trace:
        __name__ = "test_trace"

        @hookimpl
        def prepare_connection(self, conn):
            conn.set_trace_callback(trace)

    tracer = Trace()
    pm.register(tracer, name="test-trace")
    try:
        ds = Datasette([str(pinn_catalog)])
        ds.executor = None  # one connection, so the trace sees the page's reads in order
        asyncio.run(ds.invoke_startup())
        versions_asked.clear()
        assert get(ds, path).status_code == 200
        assert len(versions_asked) >= 2 and renamed() == "renamed-mid-read"
        for _ in range(2):  # no commit since the rename: the page must show it
            assert "renamed-mid-read" in get(ds, path).text
    finally:
        pm.unregister(tracer)
        writer.close()


def test_a_new_connection_never_gets_a_closed_ones_memo(tmp_path):
    """The memo is keyed on the connection's ``id``, which Python reuses once an object is gone: a plain
    connection opened after a Datasette one was closed (a notebook or an export after a server in the same
    process, the next test) got that id, and, at the same catalog version (every fresh connection reads 1),
    the closed connection's values, read from another catalog. Oracle: the rows each test database holds,
    written with plain SQL."""
    for name in ("a", "b"):
        with sqlite3.connect(tmp_path / f"{name}.db") as conn:
            conn.execute("CREATE TABLE t (v TEXT)")
            conn.execute("INSERT INTO t VALUES (?)", (name,))
        conn.close()

    def read(conn: sqlite3.Connection) -> str:
        return conn.execute("SELECT v FROM t").fetchone()[0]

    first = sqlite3.connect(tmp_path / "a.db")
    memo.reset(first)
    assert memo.remembered(first, "k", read) == "a"
    first.close()
    del first
    answers = []
    for _ in range(50):  # the id of the closed connection comes back at once in CPython
        other = sqlite3.connect(tmp_path / "b.db")
        answers.append(memo.remembered(other, "k", read))
        other.close()
        del other
    assert answers == ["b"] * 50
