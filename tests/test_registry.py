"""The one view registry (``losslens/views/registry.py``) and the places that read it: the plugin's
routes, ``export chart|all|viewer`` and the viewer's ``data.js``."""

from __future__ import annotations

import sqlite3
import subprocess
import sys

import pytest
from helpers import METADATA, compiled, get, pinn_ids, shared_catalogs

from losslens.export.chart import read_catalog
from losslens.export.data import viewer_data
from losslens.views import modes, registry

# builds the shared catalog: ingest and every metric over a tiny sweep (the pipeline end to end)
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def catalogs(tmp_path_factory):
    return shared_catalogs(tmp_path_factory)


def test_export_does_not_load_datasette():
    """Oracle: ``sys.modules`` of a fresh interpreter after ``import losslens.export`` and the registry."""
    code = "import sys, losslens.export, losslens.views.registry; print(sorted(m for m in sys.modules if m.split('.')[0] == 'datasette'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


def test_every_registered_view_is_served_and_compiles(catalogs):
    """Oracle: vl-convert compiles the spec route's answer for every view of the registry (data fetched
    from the data routes) and draws marks; an unknown view or dataset is Datasette's 404."""
    from datasette.app import Datasette

    db = catalogs[0]
    ids = pinn_ids(db)
    a, b = ids["modes"][:2]
    args = {"experiment": f"experiment={ids['experiment']}", "setting": f"setting={ids['setting']}"}
    args |= {"checkpoint": f"checkpoint={a}", "pair": f"a={a}&b={b}"}
    ds = Datasette([str(db)], metadata={**METADATA})
    for name, view in registry.VIEWS.items():
        _, svg = compiled(ds, f"/-/losslens/losslens/spec/{name}.json?{args[view.subject]}")
        assert svg.count("<path") > 1, name
    assert get(ds, f"/-/losslens/losslens/spec/nothing.json?{args['pair']}").status_code == 404
    assert get(ds, f"/-/losslens/losslens/data/nothing.json?{args['pair']}").status_code == 404
    assert get(ds, "/-/losslens/losslens/spec/curve.json?a=" + a).status_code == 404  # b missing


def test_viewer_data_carries_the_registry(catalogs):
    """Oracle: the registry itself: data.js ships its manifest, and each pair lists exactly the registry's
    pair page views that have rows (all four on the fully computed PINN catalog)."""
    db = catalogs[0]
    with read_catalog(db) as conn:
        data = viewer_data(conn, db)
    assert data["registry"] == registry.manifest()
    pair_views = [v.name for v in registry.views_of("pair", page=True)]
    assert pair_views == ["landscapes", "curve", "layer-cka", "predictions"]
    assert all(p["views"] == pair_views for p in data["pairs"].values())
    # A view drawing one dataset for two subjects gets a table for each (both landscapes of a pair, every mode's
    # landscape of a setting), not the last one twice.
    for p in data["pairs"].values():
        used = data["views"][f"landscapes:{p['a']}:{p['b']}"]["data"]
        assert sorted(used.values()) == sorted([f"landscape|{p['a']}", f"landscape|{p['b']}"])
    for sid, s in data["settings"].items():
        used = data["views"][f"mode-landscapes:{sid}"]["data"]
        assert sorted(used.values()) == sorted(f"landscape|{sha}" for sha in s["modes"])


def test_link_class_is_the_taxonomy_rule_at_the_boundary(catalogs, tmp_path):
    """Closed form (Yang et al.): mc = 0 is well connected, any barrier (mc < 0) is poor, and the ε band of
    the taxonomy run widens "well" to mc ≥ −ε. Checked on a copy of the catalog whose fitted-curve mc of
    one pair is set to 0 and then to −1e-9, and whose taxonomy run is given ε = 0.01."""
    source = sqlite3.connect(catalogs[0])
    conn = sqlite3.connect(tmp_path / "copy.db")
    source.backup(conn)  # the WAL's pages too
    source.close()
    setting = pinn_ids(catalogs[0])["setting"]
    conn.row_factory = sqlite3.Row
    fitted = conn.execute(
        "SELECT pm.rowid AS id, pm.checkpoint_a, pm.checkpoint_b, json_extract(r.params_json, '$.curve') AS curve "
        "FROM pair_metrics pm JOIN metric_runs r ON r.id = pm.run_id "
        "WHERE pm.metric = 'mc' AND r.setting_id = ? AND pm.curve = json_extract(r.params_json, '$.curve') LIMIT 1",
        (setting,),
    ).fetchone()

    def link_of(value: float) -> dict:
        conn.execute("UPDATE pair_metrics SET value = ? WHERE rowid = ?", (value, fitted["id"]))
        (row,) = [
            r
            for r in modes.connectivity_rows(conn, setting)
            if (r["checkpoint_a"], r["checkpoint_b"]) == (fitted["checkpoint_a"], fitted["checkpoint_b"])
        ]
        return row

    assert link_of(0.0)["link"] == "well" and link_of(0.0)["curve"] == fitted["curve"]
    assert link_of(-1e-9)["link"] == "poor"
    conn.execute(
        "UPDATE taxonomy SET thresholds_json = json_set(thresholds_json, '$.mc.epsilon', 0.01) WHERE setting_id = ?", (setting,)
    )
    assert link_of(-0.005)["link"] == "well" and link_of(-0.02)["link"] == "poor"
    conn.close()


def test_every_view_has_help_text():
    """Oracle: the registry's names: each view has a help text of at least a sentence, and the help of the views
    that show mc, CKA, phases, persistence and merge trees names them."""
    assert all(len(v.help) > 80 for v in registry.VIEWS.values())
    assert "mc" in registry.VIEWS["taxonomy"].help and "IV-B" in registry.VIEWS["taxonomy"].help
    assert "CKA" in registry.VIEWS["modes"].help and "persistence" in registry.VIEWS["persistence"].help
    assert "merge" in registry.VIEWS["merge-tree"].help.lower()


def test_merge_tree_is_read_once_per_request(catalogs):
    """Oracle: plain SQL on merge_tree_nodes/edges (the elbow rule: up from the lower node, then across
    to the upper one, per edge) and SQLite's own statement trace on the real catalog: building the
    merge-tree view reads the node rows once and the edges once (they were read twice, once per
    dataset), and the checkpoint's facts once."""
    db = catalogs[0]
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    sha, run = conn.execute("SELECT checkpoint, run_id FROM merge_tree_nodes ORDER BY checkpoint LIMIT 1").fetchone()
    assert conn.execute("SELECT COUNT(DISTINCT run_id) FROM merge_tree_nodes WHERE checkpoint = ?", (sha,)).fetchone()[0] == 1
    nodes = [dict(r) for r in conn.execute("SELECT * FROM merge_tree_nodes WHERE run_id = ? ORDER BY node", (run,))]
    edges = conn.execute(
        "SELECT lower, upper, branch FROM merge_tree_edges WHERE run_id = ? ORDER BY lower, upper", (run,)
    ).fetchall()
    assert edges
    at = {n["node"]: n for n in nodes}
    expected_segments = []
    for lower, upper, branch in edges:
        lo, up = at[lower], at[upper]
        expected_segments += [
            {"x": lo["x"], "y": lo["y"], "x2": lo["x"], "y2": up["y"], "branch": branch},
            {"x": lo["x"], "y": up["y"], "x2": up["x"], "y2": up["y"], "branch": branch},
        ]
    conn.row_factory = None
    columns = ("node", "kind", "point", "value", "x", "y", "branch", "persistence", "basin_size")
    assert registry.rows(conn, "tree_nodes", {"checkpoint": sha}) == [{k: n[k] for k in columns} for n in nodes]
    assert registry.rows(conn, "tree_segments", {"checkpoint": sha}) == expected_segments

    def traced(fn):
        statements: list[str] = []
        conn.set_trace_callback(statements.append)
        try:
            fn()
        finally:
            conn.set_trace_callback(None)
        return statements

    from losslens.views import local

    built = traced(lambda: registry.inline_spec(conn, "merge-tree", {"checkpoint": sha}))
    assert sum("FROM merge_tree_edges" in s for s in built) == 1
    assert sum(s.startswith("SELECT node, kind, point, value") for s in built) == 1
    for statement in set(traced(lambda: local.local_facts(conn, sha))):
        assert built.count(statement) == 1, statement
    conn.close()
