"""The Datasette plugin through the real Datasette app (``ds.client``), over a catalog filled by the
real pipeline at small size: a tiny PINN sweep (β ∈ {1, 5} × 3 seeds) with every metric, and a
tiny digits classifier pair for the confusion-matrix view."""

from __future__ import annotations

import asyncio
import html
import json
import re
import sqlite3
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
import torch
import vl_convert as vlc
from datasette.app import Datasette
from helpers import METADATA, compiled, get, pinn_ids, query, shared_catalogs, spec_urls
from markupsafe import escape as html_escape

from losslens.jobs.context import CHECKPOINT_SQL, load_subject
from losslens.views.landscape import SHARED_LABEL

# builds the shared catalog: ingest and every metric over a tiny sweep (the pipeline end to end)
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def catalogs(tmp_path_factory) -> tuple[Path, Path]:
    return shared_catalogs(tmp_path_factory)


@pytest.fixture(scope="module")
def ds(catalogs) -> Datasette:
    pinn, digits = catalogs
    app = Datasette([str(pinn), str(digits)])  # metadata and canned queries come from the plugin's hooks
    asyncio.run(app.invoke_startup())
    return app


def test_four_pages_render_and_every_spec_compiles(ds, catalogs):
    """Oracle: vl-convert compiles each spec the pages embed (data inlined from the same routes)
    and draws SVG marks; every page answers 200."""
    ids = pinn_ids(catalogs[0])
    a, b = ids["modes"][:2]
    pages = [
        "/-/losslens/losslens",
        f"/-/losslens/losslens/setting/{ids['setting']}",
        f"/-/losslens/losslens/checkpoint/{a}",
        f"/-/losslens/losslens/pair/{a}/{b}",
    ]
    seen = 0
    for page in pages:
        response = get(ds, page)
        assert response.status_code == 200, page
        for url in spec_urls(response.text):
            _, svg = compiled(ds, url)
            assert svg.count("<path") > 3, url
            seen += 1
    assert seen == 2 + 3 + 1 + 4  # global: taxonomy, modes; setting: modes, landscapes, local; checkpoint: local; pair: 4


def test_taxonomy_rows_are_the_catalogs(ds, catalogs):
    """Oracle: the taxonomy table read with plain SQL."""
    ids = pinn_ids(catalogs[0])
    rows = get(ds, f"/-/losslens/losslens/data/taxonomy.json?experiment={ids['experiment']}").json()
    expected = {r["setting_id"]: r for r in query(catalogs[0], "SELECT setting_id, phase, mc FROM taxonomy")}
    assert {r["setting_id"] for r in rows} == set(expected)
    for r in rows:
        assert r["phase"] == (expected[r["setting_id"]]["phase"] or "unknown")
        assert r["mc"] == pytest.approx(expected[r["setting_id"]]["mc"])
    assert sorted(r["gx"] for r in rows) == [1.0, 5.0]


def test_local_data_matches_the_metric_tables(ds, catalogs):
    """Oracles: the landscape grid is steps² cells with the landscape_points losses; the diagram's
    finite H0 pairs equal the merge tree's minima minus the global one (elder rule); the spectrum is
    the hessian_eigenvalues rows."""
    db = catalogs[0]
    sha = pinn_ids(db)["modes"][0]
    cells = get(ds, f"/-/losslens/losslens/data/landscape.json?checkpoint={sha}").json()
    assert len(cells) == 11 * 11
    truth = query(
        db, "SELECT p.point, p.loss FROM landscape_points p JOIN landscapes l ON l.id = p.run_id WHERE l.checkpoint = ?", (sha,)
    )
    assert {c["point"]: c["loss"] for c in cells} == pytest.approx({t["point"]: t["loss"] for t in truth})
    pairs = get(ds, f"/-/losslens/losslens/data/persistence.json?checkpoint={sha}").json()
    nodes = get(ds, f"/-/losslens/losslens/data/tree_nodes.json?checkpoint={sha}").json()
    finite_h0 = [p for p in pairs if p["dim"] == 0 and not p["essential"]]
    assert len(finite_h0) == sum(n["kind"] == "minimum" for n in nodes) - 1
    spectrum = get(ds, f"/-/losslens/losslens/data/spectrum.json?checkpoint={sha}").json()
    eig = query(db, "SELECT value FROM hessian_eigenvalues WHERE checkpoint = ? AND which = 'largest' ORDER BY rank", (sha,))
    assert [s["value"] for s in spectrum if s["which"] == "largest"] == pytest.approx([e["value"] for e in eig])


def test_modes_links_and_glyphs(ds, catalogs):
    """Oracles: mds_coords and pair_metrics read with plain SQL: each link carries the mc of its run's fitted
    curve (the quantity the taxonomy averages) and of the straight line; its class at the mc = 0 boundary is
    tested in test_registry."""
    db = catalogs[0]
    setting = pinn_ids(db)["setting"]
    modes = get(ds, f"/-/losslens/losslens/data/modes.json?setting={setting}").json()
    coords = {
        r["checkpoint"]: (r["x"], r["y"])
        for r in query(db, "SELECT checkpoint, x, y FROM mds_coords WHERE setting_id = ?", (setting,))
    }
    assert {m["checkpoint"]: (m["x"], m["y"]) for m in modes} == coords
    links = get(ds, f"/-/losslens/losslens/data/links.json?setting={setting}").json()
    assert len(links) == 3  # 3 seeds → 3 pairs
    stored = {
        (r["checkpoint_a"], r["checkpoint_b"], r["curve"]): r["value"]
        for r in query(
            db,
            "SELECT pm.checkpoint_a, pm.checkpoint_b, pm.curve, pm.value FROM pair_metrics pm "
            "JOIN metric_runs r ON r.id = pm.run_id WHERE pm.metric = 'mc' AND r.setting_id = ?",
            (setting,),
        )
    }
    for link in links:
        assert link["curve"] != "linear"  # the fitted curve, not the line
        assert link["mc"] == pytest.approx(stored[(link["checkpoint_a"], link["checkpoint_b"], link["curve"])])
        assert link["mc_linear"] == pytest.approx(stored[(link["checkpoint_a"], link["checkpoint_b"], "linear")])
        assert (link["x"], link["y"]) == coords[link["checkpoint_a"]]
    glyphs = get(ds, f"/-/losslens/losslens/data/glyphs.json?setting={setting}").json()
    assert sum(g["piece"] == "bar" for g in glyphs) == 3 * 10
    # Ring segments carry the raw performance values (absolute scales), as stored.
    perf = {
        (r["checkpoint"], r["name"]): r["value"]
        for r in query(db, "SELECT p.checkpoint, p.name, p.value FROM performance p JOIN metric_runs r ON r.id = p.run_id")
    }
    names = {"train loss": "loss", "rel. L2 error": "rel_l2", "L∞ error": "linf"}
    ring = [g for g in glyphs if g["piece"] == "ring"]
    assert ring and all(g["value"] == perf[(g["checkpoint"], names[g["metric"]])] for g in ring)


def test_pinn_prediction_fields_are_the_models_output(ds, catalogs):
    """Oracle: each checkpoint reloaded and evaluated on the problem's grid (Problem.predict), and
    the exact solution sin(x − βt)."""
    db = catalogs[0]
    a, b = pinn_ids(db)["modes"][:2]
    rows = get(ds, f"/-/losslens/losslens/data/fields.json?a={a}&b={b}").json()
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    record = dict(conn.execute(CHECKPOINT_SQL + " WHERE c.sha256 = ?", (a,)).fetchone())
    conn.close()
    subject = load_subject(record, torch.device("cpu"))
    u = subject.problem.predict(subject.model, subject.state).numpy()
    shown = np.array([r["value"] for r in rows if r["panel"] == "u (a)"]).reshape(u.shape)  # 32 × 16 fits unstrided
    np.testing.assert_allclose(shown, u, rtol=1e-6, atol=1e-6)
    x = np.array([(r["x0"] + r["x1"]) / 2 for r in rows if r["panel"] == "error (a)"])
    t = np.array([(r["t0"] + r["t1"]) / 2 for r in rows if r["panel"] == "error (a)"])
    error = np.array([r["value"] for r in rows if r["panel"] == "error (a)"])
    np.testing.assert_allclose(error, u.ravel() - np.sin(x - 1.0 * t), atol=1e-5)


def test_confusion_matrices_and_disagreement(ds, catalogs):
    """Oracle: both classifiers' test predictions recomputed with a forward pass and counted by numpy; the
    stored disagreement pair metric (shown in the view's title) is the fraction of differing labels."""
    db = catalogs[1]
    a, b = [r["sha256"] for r in query(db, "SELECT sha256 FROM checkpoints ORDER BY seed")]
    predictions = []
    for sha in (a, b):
        record = query(db, CHECKPOINT_SQL + " WHERE c.sha256 = ?", (sha,))[0]
        s = load_subject(record, torch.device("cpu"))
        x, y = s.problem.split("test")
        with torch.no_grad():
            predictions.append(s.problem.logits(s.model, s.state, x).argmax(-1).numpy())
    cells = get(ds, f"/-/losslens/digits/data/confusion.json?a={a}&b={b}").json()
    for label, pred in (("a", predictions[0]), ("b", predictions[1])):
        counts = np.zeros((10, 10), int)
        np.add.at(counts, (y.numpy(), pred), 1)
        got = np.zeros((10, 10), int)
        for c in cells:
            if c["model"] == label:
                got[c["true_label"], c["predicted_label"]] = c["count"]
        np.testing.assert_array_equal(got, counts)
    spec = get(ds, f"/-/losslens/digits/spec/predictions.json?a={a}&b={b}").json()
    rate = float(np.mean(predictions[0] != predictions[1]))
    stored = query(db, "SELECT value, quantity FROM pair_metrics WHERE metric = 'disagreement'")
    assert stored == [{"value": pytest.approx(rate), "quantity": "test labels"}]
    assert f"{100 * rate:.1f}%" in spec["title"]
    compiled(ds, f"/-/losslens/digits/spec/predictions.json?a={a}&b={b}")


def test_user_names_render_as_text(ds, catalogs):
    """Oracle: the HTML-escaped forms of the payload and the quoted key, and no raw payload."""
    ids = pinn_ids(catalogs[0])
    for page in (f"/-/losslens/losslens/checkpoint/{ids['modes'][0]}", f"/-/losslens/losslens/setting/{ids['setting']}"):
        html = get(ds, page).text
        assert "<img src=x" not in html
    html = get(ds, f"/-/losslens/losslens/checkpoint/{ids['modes'][0]}").text
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    html = get(ds, f"/-/losslens/losslens/setting/{ids['setting']}").text
    assert "it&#39;s &#34;q&#34;" in html


@pytest.mark.parametrize(
    "path",
    [
        "/-/losslens/losslens/setting/%27%20OR%201%3D1%20--",
        "/-/losslens/losslens/setting/0123456789abcdef",
        "/-/losslens/losslens/checkpoint/" + "0" * 64,
        "/-/losslens/losslens/checkpoint/x%22%3E%3Cscript%3E",
        "/-/losslens/losslens/pair/abc/def",
        "/-/losslens/nope",
        "/-/losslens/losslens/data/taxonomy.json?experiment=1%27%3B%20DROP%20TABLE%20settings%3B--",
        "/-/losslens/losslens/data/modes.json",
        "/-/losslens/losslens/data/sqlite_master.json?setting=0123456789abcdef",
        "/-/losslens/losslens/spec/local.json?checkpoint=" + "f" * 64,
        "/-/losslens/losslens?setting=zz",
    ],
)
def test_crafted_ids_get_404(ds, path):
    """Oracle: HTTP 404 for malformed or unknown ids, with no SQL error text."""
    response = get(ds, path)
    assert response.status_code == 404
    assert "sqlite" not in response.text.lower() and "syntax" not in response.text.lower()


def test_plugin_is_read_only(ds, catalogs):
    """Oracle: POST is refused on every plugin route, and the catalog's row counts do not change."""
    ids = pinn_ids(catalogs[0])
    before = query(catalogs[0], "SELECT (SELECT count(*) FROM settings) s, (SELECT count(*) FROM metric_runs) r")
    for path in (
        "/-/losslens/losslens",
        f"/-/losslens/losslens/setting/{ids['setting']}",
        f"/-/losslens/losslens/data/modes.json?setting={ids['setting']}",
    ):
        assert get(ds, path, "post").status_code == 405
    assert query(catalogs[0], "SELECT (SELECT count(*) FROM settings) s, (SELECT count(*) FROM metric_runs) r") == before


def test_table_rows_link_to_pages_and_blobs_are_summarised(ds, catalogs):
    """Oracles: the checkpoints table links each sha to its page; a .npy BLOB from SQL shows
    numpy's dtype and shape (np.save of a float32 3×2 array) instead of bytes."""
    sha = pinn_ids(catalogs[0])["modes"][0]
    html = get(ds, "/losslens/checkpoints").text
    assert f'href="/-/losslens/losslens/checkpoint/{sha}"' in html  # the name column links to the page
    html = get(ds, "/losslens/settings").text
    assert 'href="/-/losslens/losslens/setting/' in html
    import io

    buffer = io.BytesIO()
    np.save(buffer, np.zeros((3, 2), np.float32))
    html = get(ds, "/losslens?sql=select+X'" + buffer.getvalue().hex() + "'+as+grid").text
    assert "float32[3, 2]" in html


def test_canned_queries_run(ds):
    """Oracle: each canned query of catalog/datasette.yaml answers 200 as JSON; settings by phase has both settings."""
    for name in ("settings_by_phase", "sharpest_modes", "pairs_with_barriers", "multi_minimum_landscapes"):
        response = get(ds, f"/losslens/{name}.json?_shape=array")
        assert response.status_code == 200, name
    assert len(get(ds, "/losslens/settings_by_phase.json?_shape=array").json()) == 2
    assert len(get(ds, "/losslens/sharpest_modes.json?_shape=array").json()) == 6


def test_pairs_with_barriers_reads_the_fitted_curve_with_the_line_beside_it(catalogs, tmp_path):
    """Oracle: pair_metrics and metric_runs.params_json read with plain SQL and json: one row per pair with a
    barrier, mc of the curve its connectivity run fitted (the taxonomy's quantity, as the setting page shows it),
    the straight line's mc beside it; never the straight line's mc as a row of its own. A copy of the catalog
    whose straight lines all have a barrier (as a PINN's do) and one fitted curve too."""
    import shutil

    db = tmp_path / "losslens.db"
    shutil.copy(catalogs[0], db)
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE pair_metrics SET value = -5.0 WHERE metric = 'mc' AND curve = 'linear'")
        conn.execute(
            "UPDATE pair_metrics SET value = -0.25 WHERE rowid = (SELECT min(rowid) FROM pair_metrics "
            "WHERE metric = 'mc' AND curve != 'linear')"
        )
    conn.close()
    ds = Datasette([str(db)])
    asyncio.run(ds.invoke_startup())
    stored: dict[tuple[str, str], dict] = {}
    for r in query(
        db,
        "SELECT pm.checkpoint_a, pm.checkpoint_b, pm.curve, pm.value, m.params_json FROM pair_metrics pm "
        "JOIN metric_runs m ON m.id = pm.run_id WHERE pm.metric = 'mc' AND m.status = 'done'",
    ):
        pair = stored.setdefault((r["checkpoint_a"], r["checkpoint_b"]), {})
        if r["curve"] == json.loads(r["params_json"])["curve"]:
            pair["mc"] = r["value"]
        if r["curve"] == "linear":
            pair["mc_linear"] = r["value"]
    assert stored and all("mc" in v for v in stored.values())
    expected = {k: v for k, v in stored.items() if v["mc"] < 0}
    rows = get(ds, "/losslens/pairs_with_barriers.json?_shape=array").json()
    assert len(expected) == 1 and len(rows) == 1  # a straight line's barrier alone does not list a pair
    for r in rows:
        e = expected[(r["checkpoint_a"], r["checkpoint_b"])]
        assert (r["mc"], r["mc_linear"]) == (e["mc"], e.get("mc_linear"))
    assert [r["mc"] for r in rows] == sorted(r["mc"] for r in rows)


def test_multi_minimum_query_counts_minima_as_the_views_do(ds, catalogs):
    """Oracle: landscape_summaries read with plain SQL: a minimum is a branch with persistence above τ, the
    pruned ones are counted beside it; with :min_minima = 1 every landscape (one per checkpoint) is listed."""
    stored = {
        r["checkpoint"]: r
        for r in query(catalogs[0], "SELECT checkpoint, n_minima, n_minima_above, threshold FROM landscape_summaries")
    }
    rows = get(ds, "/losslens/multi_minimum_landscapes.json?_shape=array&min_minima=1").json()
    assert len(rows) == len(stored) == 6
    for r in rows:
        s = stored[r["checkpoint"]]
        assert (r["minima"], r["minima_pruned"], r["tau"]) == (
            s["n_minima_above"],
            s["n_minima"] - s["n_minima_above"],
            s["threshold"],
        )
    default = get(ds, "/losslens/multi_minimum_landscapes.json?_shape=array").json()
    assert len(default) == sum(s["n_minima_above"] > 1 for s in stored.values())


def test_metadata_describes_every_table_view_and_column(ds, catalogs):
    """Oracle: PRAGMA table_info of a fully migrated catalog, against what Datasette itself serves at
    /-/metadata.json (filled by the plugin's get_metadata hook) for both catalogs, whatever their file name."""
    served = get(ds, "/-/metadata.json").json()
    assert served["title"] == METADATA["title"]
    conn = sqlite3.connect(f"file:{catalogs[0]}?mode=ro", uri=True)
    names = [
        r[0]
        for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') AND name NOT LIKE '\\_%' ESCAPE '\\' "
            "AND name NOT LIKE 'sqlite%'"
        )
    ]
    assert {"latest_runs", "latest_runs_by_params", "metric_runs"} <= set(names)
    for database in ("losslens", "digits"):
        tables = served["databases"][database]["tables"]
        for table in names:
            assert table in tables, table
            assert tables[table].get("description"), table
            columns = [r[1] for r in conn.execute(f"PRAGMA table_info([{table}])")]
            assert set(columns) == set(tables[table]["columns"]), table
            assert all(tables[table]["columns"].values()), table
        assert set(tables) == set(names), "described but not in the catalog: " + ", ".join(set(tables) - set(names))
    conn.close()
    # Datasette's own table page shows the hook's description
    page = get(ds, "/digits/metric_runs").text
    assert "One row per (metric, subject, parameters)" in page


def test_bundle_is_local_and_pages_load_no_remote_script(ds, catalogs):
    """Oracle: the page's bundle URL serves a script that defines vegaEmbed; every script and stylesheet a
    page loads is a local path."""
    html = get(ds, "/-/losslens/losslens").text
    (src,) = re.findall(r'<script defer src="(/-/losslens-static/[0-9a-f]{16}/vega-bundle.js)">', html)
    bundle = get(ds, src)
    assert bundle.status_code == 200 and "window.vegaEmbed" in bundle.text
    for src in re.findall(r'<(?:script|link)[^>]+(?:src|href)="([^"]+)"', html):
        assert not urlsplit(src).netloc, src


def test_assets_are_content_addressed_and_cacheable(ds):
    """Oracle: the bytes on disk and their sha256; a page's script URL serves exactly those bytes with an
    immutable Cache-Control and an ETag that revalidates to 304, and any other hash is a 404."""
    import hashlib

    from losslens.views.bundle import ensure_bundle

    body = ensure_bundle().read_bytes()
    digest = hashlib.sha256(body).hexdigest()[:16]
    html = get(ds, "/-/losslens/losslens").text
    url = f"/-/losslens-static/{digest}/vega-bundle.js"
    assert f'<script defer src="{url}">' in html
    response = get(ds, url)
    assert response.status_code == 200 and response.content == body
    assert "immutable" in response.headers["cache-control"] and response.headers["etag"] == f'"{digest}"'
    assert asyncio.run(ds.client.get(url, headers={"if-none-match": f'"{digest}"'})).status_code == 304
    assert get(ds, f"/-/losslens-static/{'0' * 16}/vega-bundle.js").status_code == 404
    assert get(ds, f"/-/losslens-static/{digest}/datasette.yaml").status_code == 404


def test_global_page_inlines_the_taxonomy_spec(ds, catalogs):
    """Oracle: the spec route; the spec inlined into the global page is the one the route serves for the
    chart's data-spec URL, and it survives a user label holding ``</script>``."""
    html = get(ds, "/-/losslens/losslens").text
    inlined = re.search(r'<script type="application/json" id="global-spec">(.*?)</script>', html, re.S).group(1)
    url = re.search(r'<div id="global"[^>]+data-spec="([^"]+)"', html).group(1).replace("&amp;", "&")
    assert json.loads(inlined) == get(ds, url).json()
    from losslens.datasette_plugin.pages import script_json

    hostile = {"label": "</script><img src=x onerror=alert(1)> & more"}
    text = str(script_json(hostile))
    assert "</" not in text and json.loads(text) == hostile


def test_plain_datasette_picks_up_the_plugin():
    """Oracle: the `datasette plugins` command of the installed Datasette lists ours with its hooks."""
    import json
    import subprocess
    import sys

    exe = str(Path(sys.executable).parent / "datasette")
    plugins = json.loads(subprocess.run([exe, "plugins"], check=True, capture_output=True, text=True).stdout)
    ours = next(p for p in plugins if p["name"] == "losslens")
    assert {"register_routes", "render_cell"} <= set(ours["hooks"])


def test_stored_isolines_lie_on_their_level(ds, catalogs):
    """Oracle: marching squares puts each vertex on a grid edge, where linear interpolation of log10(loss)
    between the edge's two landscape_points (read with plain SQL) equals log10 of the line's level."""
    db = catalogs[0]
    sha = pinn_ids(db)["modes"][0]
    lines = get(ds, f"/-/losslens/losslens/data/isolines.json?checkpoint={sha}").json()
    cells = get(ds, f"/-/losslens/losslens/data/landscape.json?checkpoint={sha}").json()
    assert len({r["level"] for r in lines}) == 10
    a_axis = sorted({c["a"] for c in cells})
    b_axis = sorted({c["b"] for c in cells})
    z = {(c["a"], c["b"]): np.log10(c["loss"]) for c in cells}
    for r in lines:
        on_a = min(a_axis, key=lambda v: abs(v - r["a"]))
        if abs(on_a - r["a"]) < 1e-9:  # on a vertical edge: interpolate along b
            i = max(k for k, v in enumerate(b_axis) if v <= r["b"] + 1e-12)
            j = min(i + 1, len(b_axis) - 1)
            lo, hi, t = z[(on_a, b_axis[i])], z[(on_a, b_axis[j])], (r["b"] - b_axis[i]) / ((b_axis[j] - b_axis[i]) or 1)
        else:
            on_b = min(b_axis, key=lambda v: abs(v - r["b"]))
            assert abs(on_b - r["b"]) < 1e-9
            i = max(k for k, v in enumerate(a_axis) if v <= r["a"] + 1e-12)
            j = min(i + 1, len(a_axis) - 1)
            lo, hi, t = z[(a_axis[i], on_b)], z[(a_axis[j], on_b)], (r["a"] - a_axis[i]) / ((a_axis[j] - a_axis[i]) or 1)
        assert lo + t * (hi - lo) == pytest.approx(np.log10(r["level"]), abs=1e-6)


# ---------------------------------------------------------------------------------------------
# Charts that read true (#15): scales, thresholds and legends, on the spec and on the drawn SVG


def _layer_named(spec: dict, name: str) -> dict:
    found = []

    def walk(node):
        if isinstance(node, dict):
            if node.get("name") == name:
                found.append(node)
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(spec)
    return found[0]


def _legend_labels(svg: str) -> list[str]:
    """Text of every legend entry label in a drawn chart."""
    out = []
    for group in re.findall(r'<g class="mark-text role-legend-label"[^>]*>(.*?)</g>', svg, re.S):
        out += [html.unescape(t) for t in re.findall(r"<text[^>]*>([^<]*)</text>", group)]
    return out


def _centres(svg: str) -> dict[str, tuple[float, float]]:
    """Pixel position of each mode's centre circle, by mode name (from its aria label)."""
    group = re.search(r'mode_centres_marks"[^>]*>(.*?)</g>', svg, re.S).group(1)
    return {
        re.search(r"mode: ([^;]+);", label).group(1): (float(x), float(y))
        for label, x, y in re.findall(r'<path aria-label="([^"]+)"[^>]*transform="translate\(([-\d.e]+),([-\d.e]+)\)"', group)
    }


@pytest.mark.parametrize("common", [False, True])
def test_mds_map_has_equal_aspect_and_states_the_1_minus_cka_scale(ds, catalogs, common):
    """Oracles: classical MDS redone with numpy from the stored pairwise CKA (B = −½ J D² J), which decides
    1-D vs 2-D; the largest 1 − CKA and every setting's coordinates read with SQL; in the drawn SVG, the
    pixels per unit of 1 − CKA measured between mode centres are the same along x and y (equal aspect) and
    match the domain of this setting's, or (box ticked) the whole experiment's, largest coordinate."""
    db = catalogs[0]
    ids = pinn_ids(db)
    names = {r["sha256"]: r["name"] for r in query(db, "SELECT sha256, name FROM checkpoints")}
    coords = {
        names[r["checkpoint"]]: (r["x"], r["y"])
        for r in query(db, "SELECT checkpoint, x, y FROM mds_coords WHERE setting_id = ?", (ids["setting"],))
    }
    cka = query(
        db,
        "SELECT checkpoint_a, checkpoint_b, value FROM pair_metrics WHERE metric = 'cka' AND checkpoint_a IN "
        "(SELECT checkpoint FROM mds_coords WHERE setting_id = ?)",
        (ids["setting"],),
    )
    order = list(ids["modes"])
    d = np.zeros((len(order), len(order)))
    for r in cka:
        i, j = order.index(r["checkpoint_a"]), order.index(r["checkpoint_b"])
        d[i, j] = d[j, i] = max(1 - r["value"], 0.0)
    j_ = np.eye(len(order)) - 1 / len(order)
    eig = np.sort(np.linalg.eigvalsh(-0.5 * j_ @ d**2 @ j_))[::-1]
    one_d = np.sqrt(max(eig[1], 0) / eig[0]) < 0.01

    spec, _ = compiled(ds, f"/-/losslens/losslens/spec/modes.json?setting={ids['setting']}")
    toggle = next(p for p in spec["params"] if p["name"] == "common_scale")
    toggle["value"] = common  # what ticking the checkbox does
    svg = vlc.vegalite_to_svg(spec)
    mode_map = spec["hconcat"][0]
    width, height = mode_map["width"], mode_map["height"]
    extent = max(max(abs(x), abs(y)) for x, y in coords.values())
    if common:
        extent = query(db, "SELECT max(max(abs(x), abs(y))) AS m FROM mds_coords")[0]["m"]
    half = max(extent, d.max() / 2) * 1.35
    assert (height < width) == bool(one_d)
    subtitle = " ".join(mode_map["title"]["subtitle"])
    assert f"largest between two modes: {d.max():.2g}" in subtitle
    assert ("1-D" in subtitle) == bool(one_d)
    xd = [-half, half]
    px = _centres(svg)
    assert set(px) == set(coords)
    a, b = max(((p, q) for p in coords for q in coords), key=lambda pq: abs(coords[pq[0]][0] - coords[pq[1]][0]))
    x_slope = (px[a][0] - px[b][0]) / (coords[a][0] - coords[b][0])
    assert x_slope == pytest.approx(width / (xd[1] - xd[0]), rel=1e-3)  # the stated domain, drawn
    if not one_d:
        a, b = max(((p, q) for p in coords for q in coords), key=lambda pq: abs(coords[pq[0]][1] - coords[pq[1]][1]))
        y_slope = (px[a][1] - px[b][1]) / (coords[a][1] - coords[b][1])
        assert -y_slope == pytest.approx(x_slope, rel=1e-3)


def test_glyph_ring_is_absolute_and_labelled(ds, catalogs):
    """Oracle: the error scale is fixed at [0, 1] whatever the setting's values, the loss scale spans the
    experiment's train losses (SQL min/max over every checkpoint), and the glyph key labels each segment."""
    db = catalogs[0]
    ids = pinn_ids(db)
    spec, svg = compiled(ds, f"/-/losslens/losslens/spec/modes.json?setting={ids['setting']}")
    text = json.dumps(spec)
    assert '"domain": [0, 1], "clamp": true' in text
    lo_hi = query(db, "SELECT min(value) AS lo, max(value) AS hi FROM performance WHERE split = 'train' AND name = 'loss'")[0]
    loss_scale = re.search(r'"title": "train loss \(log; experiment\'s range\)", "scale": (\{[^}]*\})', text)
    assert json.loads(loss_scale.group(1))["domain"] == [lo_hi["lo"], lo_hi["hi"]]
    for label in ("train loss", "rel. L2 error", "L∞ error"):
        assert f">{label}</text>" in svg
    assert "error (absolute; ≥ 1 fails)" in svg  # the legend title, whole


def test_phase_plot_draws_the_thresholds_and_only_present_phases(ds, catalogs):
    """Oracles: the thresholds stored by the taxonomy run (SQL) are drawn as rules in the spec and the
    SVG; the legend lists exactly the phases in the taxonomy table; mc is on a symlog axis whose
    constant is the smallest |mc|."""
    db = catalogs[0]
    ids = pinn_ids(db)
    rows = query(db, "SELECT phase, mc, thresholds_json FROM taxonomy")
    thresholds = json.loads(rows[0]["thresholds_json"])
    spec, svg = compiled(ds, f"/-/losslens/losslens/spec/taxonomy.json?experiment={ids['experiment']}")
    rules = [
        (ch, layer["data"]["values"][0]["v"])
        for panel in spec["vconcat"][0]["hconcat"][:2]
        for layer in panel["layer"]
        if layer["mark"]["type"] == "rule"
        for ch in layer["encoding"]
    ]
    assert ("y", 0.0) in rules
    assert ("x", thresholds["sharpness"]["value"]) in rules
    assert ("x", thresholds["cka"]["value"]) in rules
    mc_scale = _layer_named(spec, "phase_points")["encoding"]["y"]["scale"]
    assert mc_scale["type"] == "symlog"
    assert mc_scale["constant"] == pytest.approx(min(abs(r["mc"]) for r in rows if r["mc"]))
    assert svg.count("role-mark phase_plot") >= 1 or "sharp →" in svg
    for label in ("mc = 0", "sharp →", "high CKA →"):
        assert label in svg
    present = {r["phase"] or "unknown" for r in rows}
    assert set(_legend_labels(svg)) == present
    for phase in present:
        assert phase.split()[0] in svg  # each present phase is explained on the chart


def test_prediction_errors_share_one_symmetric_scale(ds, catalogs):
    """Oracle: |u − u_exact| recomputed with numpy from the stored prediction artifacts at the displayed
    (strided) points: its maximum is the half-width of the one colour domain both error panels share."""
    db = catalogs[0]
    a, b = pinn_ids(db)["modes"][:2]
    spec, svg = compiled(ds, f"/-/losslens/losslens/spec/predictions.json?a={a}&b={b}")
    cells = get(ds, f"/-/losslens/losslens/data/fields.json?a={a}&b={b}").json()
    vega = vlc.vegalite_to_vega(spec)
    colour_domains = {s["name"]: s.get("domain") for s in vega["scales"]} if "scales" in vega else {}
    err = [p["encoding"]["color"]["scale"] for g in spec["hconcat"] if "hconcat" in g for p in g["hconcat"]]
    u_scale, u_scale_b, e_scale, e_scale_b = err
    assert e_scale == e_scale_b and u_scale == u_scale_b
    m = max(abs(c["value"]) for c in cells if c["panel"].startswith("error"))
    assert e_scale["domain"] == pytest.approx([-m, m])
    diff = spec["hconcat"][2]["encoding"]["color"]["scale"]["domain"]
    md = max(abs(c["value"]) for c in cells if c["panel"] == "u (a) − u (b)")
    assert diff == pytest.approx([-md, md])
    # One legend per shared scale: u, error, difference.
    assert svg.count('class="mark-group role-legend"') == 3
    del colour_domains


def test_hessian_bars_have_a_named_linear_axis_and_print_lambda_max_and_trace(ds, catalogs):
    """Oracle: hessian_eigenvalues and hessian_trace read with SQL; only 'largest' was computed, so no
    legend offers 'smallest'."""
    db = catalogs[0]
    sha = pinn_ids(db)["modes"][0]
    _, svg = compiled(ds, f"/-/losslens/losslens/spec/local.json?checkpoint={sha}")
    top = query(db, "SELECT max(value) AS v FROM hessian_eigenvalues WHERE checkpoint = ? AND which = 'largest'", (sha,))[0]["v"]
    trace = query(db, "SELECT estimate FROM hessian_trace WHERE checkpoint = ?", (sha,))[0]["estimate"]
    assert f"λmax = {top:.4g}" in svg and f"trace = {trace:.4g}" in svg
    assert "eigenvalue λ (linear axis)" in svg
    assert "smallest" not in _legend_labels(svg)
    dims = {f"H{r['dim']}" for r in query(db, "SELECT DISTINCT dim FROM persistence_pairs WHERE checkpoint = ?", (sha,))}
    shown = {label for label in _legend_labels(svg) if re.fullmatch(r"H\d", label)}
    assert shown == (dims if len(dims) > 1 else set())  # one dimension needs no legend


def test_persistence_views_draw_the_simplification_threshold(ds, catalogs):
    """Oracle (elder rule): the minima the merge tree prunes are the finite H0 pairs with persistence ≤ τ;
    τ is landscape_summaries.threshold, and the counts are read from persistence_pairs with SQL. The
    barcode has one bar per pair."""
    db = catalogs[0]
    sha = pinn_ids(db)["modes"][0]
    tau = query(db, "SELECT threshold FROM landscape_summaries WHERE checkpoint = ?", (sha,))[0]["threshold"]
    pairs = query(db, "SELECT dim, persistence FROM persistence_pairs WHERE checkpoint = ?", (sha,))
    pruned = sum(1 for p in pairs if p["dim"] == 0 and p["persistence"] is not None and p["persistence"] <= tau)
    spec, svg = compiled(ds, f"/-/losslens/losslens/spec/local.json?checkpoint={sha}")
    text = json.dumps(spec, ensure_ascii=False)
    assert f"datum.v + {tau!r}" in text  # the band's upper edge: the diagonal plus τ
    if pruned:
        assert f"{pruned} with persistence ≤ {tau:.3g} pruned" in svg
    # The pruned minima are on the heat map too (faded), one marker each, so a click on one in the diagram shows where it lies.
    on_map = re.search(r'class="mark-symbol role-mark landscape_pruned_marks"[^>]*?(/>|>(.*?)</g>)', svg, re.S)
    assert on_map is not None and (on_map.group(2) or "").count("<path") == pruned
    bars = re.search(r'<g class="mark-rect role-mark[^"]*"[^>]*aria-roledescription="rect mark container">', svg)
    assert bars is not None
    barcode = next(
        p
        for row in spec["vconcat"]
        for p in row["hconcat"]
        if isinstance(p.get("title"), dict) and p["title"]["text"] == "Persistence barcode"
    )
    assert barcode["data"]["values"] and len(barcode["data"]["values"]) == len(pairs)


def test_landscape_states_its_provenance(ds, catalogs):
    """Oracle: the landscapes row read with SQL (directions, normalisation, span and its mode)."""
    db = catalogs[0]
    sha = pinn_ids(db)["modes"][0]
    row = query(
        db, "SELECT directions, normalization, span, span_mode FROM landscapes WHERE checkpoint = ? AND dims = 2", (sha,)
    )[0]
    _, svg = compiled(ds, f"/-/losslens/losslens/spec/local.json?checkpoint={sha}")
    words = {"filter": "filter-normalised", "layer": "layer-normalised", "unit": "unit-norm"}
    assert "random directions" in svg if row["directions"] == "random" else True
    assert words[row["normalization"]] in svg
    assert f"±{row['span']:g}" in svg and f"({row['span_mode']})" in svg


def _legend_numbers(svg: str) -> list[list[str]]:
    """The label texts of each legend drawn in an SVG, legend by legend."""
    legends = svg.split('class="mark-group role-legend"')[1:]
    return [
        re.findall(r'role-legend-label[^"]*"[^>]*>(?:<[^>]*>)*?<text[^>]*>([^<]+)</text>', g.split("role-legend-title")[0])
        for g in legends
    ]


@pytest.mark.parametrize("shared", [True, False])
def test_landscapes_of_a_setting_share_one_colour_scale_when_ticked(ds, catalogs, shared):
    """Oracle: each mode's landscape_points read with SQL. Ticked (the default), every panel's log colour
    domain is the union [min, max] of the positive losses of all the setting's landscapes, so every legend
    reads the same; unticked, each panel spans its own [min, max]. Each panel is titled by its mode's name,
    the shared provenance stated once, and a click on a landscape leads to its mode's page."""
    db = catalogs[0]
    ids = pinn_ids(db)
    names = {r["sha256"]: r["name"] for r in query(db, "SELECT sha256, name FROM checkpoints")}
    own = {
        sha: query(
            db,
            "SELECT min(p.loss) AS lo, max(p.loss) AS hi FROM landscape_points p JOIN landscapes l ON l.id = p.run_id "
            "WHERE l.checkpoint = ? AND l.dims = 2 AND p.loss > 0",
            (sha,),
        )[0]
        for sha in ids["modes"]
    }
    spec, _ = compiled(ds, f"/-/losslens/losslens/spec/mode-landscapes.json?setting={ids['setting']}")
    spec["params"][0]["value"] = shared  # what the check box does
    svg = vlc.vegalite_to_svg(spec)
    panels = spec["concat"]
    assert [p["title"]["text"] for p in panels] == [names[sha] for sha in ids["modes"]]
    lo, hi = min(r["lo"] for r in own.values()), max(r["hi"] for r in own.values())
    for p, sha in zip(panels, ids["modes"], strict=True):
        expr = p["encoding"]["color"]["scale"]["domain"]["expr"]
        when_shared, when_own = (json.loads(part.strip()) for part in expr.split("?")[1].split(" : "))
        assert when_shared == pytest.approx([lo, hi]) and when_own == pytest.approx([own[sha]["lo"], own[sha]["hi"]])
        assert p["transform"][-1]["calculate"] == '"/-/losslens/losslens/checkpoint/" + datum.checkpoint'
    assert "random directions" in " ".join(spec["title"]["subtitle"])
    drawn = [labels for labels in _legend_numbers(svg) if labels]
    assert len(drawn) == len(ids["modes"])
    assert (len({tuple(x) for x in drawn}) == 1) == shared


def test_datasette_pages_link_to_the_views_with_names(ds, catalogs):
    """Oracle: names and ids read with plain SQL: the home and database pages point at the LossLens views;
    a pair_metrics row links both checkpoints by name and the pair; a taxonomy row links its setting by
    label; a canned query's rows link too; REAL cells show 6 significant digits with the full value as title."""
    db = catalogs[0]
    ids = pinn_ids(db)
    names = {r["sha256"]: r["name"] for r in query(db, "SELECT sha256, name FROM checkpoints")}
    label = query(db, "SELECT label FROM settings WHERE id = ?", (ids["setting"],))[0]["label"]
    assert 'href="/-/losslens/losslens"' in get(ds, "/").text
    page = get(ds, "/losslens").text
    assert "Open the LossLens views of losslens" in page and 'href="/losslens/taxonomy"' in page
    html = get(ds, "/losslens/pair_metrics?metric=mc&_size=5").text
    row = query(db, "SELECT checkpoint_a, checkpoint_b, value FROM pair_metrics WHERE metric = 'mc' LIMIT 1")[0]
    a, b = row["checkpoint_a"], row["checkpoint_b"]
    assert f'href="/-/losslens/losslens/checkpoint/{a}" title="{a}">{names[a]}</a>' in html
    assert f'href="/-/losslens/losslens/pair/{a}/{b}">pair {names[a]} ↔ {names[b]}</a>' in html
    assert f'title="{row["value"]!r}">{row["value"]:.6g}</span>' in html
    taxonomy_html = get(ds, "/losslens/taxonomy").text
    assert f'href="/-/losslens/losslens/setting/{ids["setting"]}" title="{ids["setting"]}">' in taxonomy_html
    assert html_escape(label) in taxonomy_html
    canned = get(ds, "/losslens/pairs_with_barriers").text + get(ds, "/losslens/sharpest_modes").text
    assert "/-/losslens/losslens/checkpoint/" in canned


def test_compare_picker_and_uncomputed_pair(ds, catalogs):
    """Oracle: the catalog's own settings: the picker on a mode page offers every other checkpoint of the
    experiment and redirects to the pair page; a pair across settings (never computed) says which command
    computes each view instead of drawing empty axes, while both landscapes draw."""
    db = catalogs[0]
    ids = pinn_ids(db)
    a = ids["modes"][0]
    other = query(
        db, "SELECT c.sha256 FROM checkpoints c JOIN models m ON m.id = c.model_id WHERE m.setting_id != ?", (ids["setting"],)
    )
    page = get(ds, f"/-/losslens/losslens/checkpoint/{a}").text
    offered = set(re.findall(r'<option value="([0-9a-f]{64})"', page))
    assert offered == {r["sha256"] for r in query(db, "SELECT sha256 FROM checkpoints")} - {a}
    b = other[0]["sha256"]
    redirect = asyncio.run(ds.client.get(f"/-/losslens/losslens/checkpoint/{a}?compare={b}"))
    assert redirect.status_code == 302 and redirect.headers["location"] == f"/-/losslens/losslens/pair/{a}/{b}"
    pair = get(ds, f"/-/losslens/losslens/pair/{a}/{b}").text
    assert "Not computed for this pair — run <code>losslens compute connectivity --pairs all -e tiny-pinn</code>" in pair
    assert "losslens compute cka --pairs all -e tiny-pinn" in pair
    urls = spec_urls(pair)
    assert [u.split("/spec/")[1].split(".json")[0] for u in urls] == ["landscapes", "predictions"]
    spec, svg = compiled(ds, urls[0])
    assert spec["params"][0] == {"name": "shared_scale", "value": True, "bind": {"input": "checkbox", "name": SHARED_LABEL}}
    assert svg.count("<path") > 2 * 11 * 11
    assert get(ds, f"/-/losslens/losslens/checkpoint/{a}?compare=nope").status_code == 404


def test_compare_picker_is_bounded_and_finds_by_name(ds, catalogs, monkeypatch):
    """Oracle: the catalog's rows read with plain SQL. Above ``PICKER_ALL`` other checkpoints the picker lists
    only the mode's own setting; a name search lists the experiment's checkpoints whose names contain the
    text (LIKE's ``%`` and ``_`` taken literally), each linked to its pair page, at most ``FOUND_MAX``."""
    from collections import OrderedDict

    from losslens.datasette_plugin import pages
    from losslens.store import memo

    db = catalogs[0]
    ids = pinn_ids(db)
    a = ids["modes"][0]
    monkeypatch.setattr(memo, "_memos", OrderedDict())  # pages read afresh: they were served with other bounds
    monkeypatch.setattr(pages, "PICKER_ALL", 2)
    page = get(ds, f"/-/losslens/losslens/checkpoint/{a}").text
    assert set(re.findall(r'<option value="([0-9a-f]{64})"', page)) == set(ids["modes"]) - {a}
    assert "5 other checkpoints in this experiment" in page

    def found(text: str) -> list[str]:
        html_text = get(ds, f"/-/losslens/losslens/checkpoint/{a}?find={text}").text
        return re.findall(rf'href="/-/losslens/losslens/pair/{a}/([0-9a-f]{{64}})"', html_text)

    seed1 = query(db, "SELECT sha256 FROM checkpoints WHERE instr(name, 'seed1') > 0 AND sha256 != ?", (a,))
    assert sorted(found("SEED1")) == sorted(r["sha256"] for r in seed1) and len(seed1) == 2
    assert (
        found("%25") == []
        and "No other checkpoint of this experiment has" in get(ds, f"/-/losslens/losslens/checkpoint/{a}?find=%25").text
    )
    monkeypatch.setattr(pages, "FOUND_MAX", 3)
    page = get(ds, f"/-/losslens/losslens/checkpoint/{a}?find=seed").text
    assert len(re.findall(rf"/pair/{a}/", page)) == 3 and "refine the search" in page


def test_mode_page_queries_do_not_grow_with_the_experiment(catalogs, tmp_path):
    """Oracle: SQLite's own statement trace. The mode page runs as many statements on a catalog with 200 more
    settings (and 600 more checkpoints) as on the original: no query per setting or checkpoint."""
    import shutil

    from losslens.datasette_plugin.pages import checkpoint_context

    db = tmp_path / "grown.db"
    shutil.copy(catalogs[0], db)
    ids = pinn_ids(db)
    a = ids["modes"][0]

    def statements() -> int:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        seen: list[str] = []
        conn.set_trace_callback(seen.append)
        context = checkpoint_context(conn, a, find="seed")
        conn.close()
        assert context["record"]["sha256"] == a and context["found"]
        return len(seen)

    before = statements()
    conn = sqlite3.connect(db)
    for k in range(200):
        sid = f"{k:016x}"
        conn.execute(
            "INSERT INTO settings (id, experiment_id, label, values_json) VALUES (?, ?, ?, '{}')",
            (sid, ids["experiment"], f"extra {k}"),
        )
        conn.execute(
            "INSERT INTO models (id, experiment_id, setting_id, name, architecture_json, problem_json, hparams_json) "
            "VALUES (?, ?, ?, 'm', '{}', '{}', '{}')",
            (f"m{k:015x}", ids["experiment"], sid),
        )
        for seed in range(3):
            conn.execute(
                "INSERT INTO checkpoints (sha256, path, size_bytes, format, model_id, name, seed, n_params, meta_json, ingested_at) "
                "VALUES (?, '/x', 1, 'torch', ?, ?, ?, 1, '{}', '2026-01-01')",
                (f"{k:060x}{seed:04x}", f"m{k:015x}", f"extra{k}_seed{seed}", seed),
            )
    conn.commit()
    conn.close()
    assert statements() == before


def test_data_routes_download_as_csv(ds, catalogs):
    """Oracle: the JSON route's rows: the CSV route has the same rows and columns (parsed by the csv module),
    offered as an attachment."""
    import csv
    import io

    sha = pinn_ids(catalogs[0])["modes"][0]
    rows = get(ds, f"/-/losslens/losslens/data/spectrum.json?checkpoint={sha}").json()
    response = get(ds, f"/-/losslens/losslens/data/spectrum.csv?checkpoint={sha}")
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"] == 'attachment; filename="spectrum.csv"'
    parsed = list(csv.DictReader(io.StringIO(response.text)))
    assert len(parsed) == len(rows) and set(parsed[0]) == set(rows[0])
    assert [float(r["value"]) for r in parsed] == pytest.approx([r["value"] for r in rows])


def test_ids_in_other_databases_stay_plain_and_expanded_keys_need_no_query(catalogs, tmp_path):
    """A database beside the catalog that is not one (a user's own notes) keeps its cells as they are, even a
    column named ``checkpoint`` holding a 64-hex id; in the catalog, the settings table's ``experiment_id``
    cells (foreign keys Datasette expands by the experiments' ``name``) link to the global page labelled with
    the experiment's name. Oracle: the rows read with plain SQL."""
    db = catalogs[0]
    notes = tmp_path / "notes.db"
    sha = query(db, "SELECT sha256 FROM checkpoints LIMIT 1")[0]["sha256"]
    with sqlite3.connect(notes) as conn:
        conn.execute("CREATE TABLE seen (checkpoint TEXT, setting_id TEXT)")
        conn.execute("INSERT INTO seen VALUES (?, ?)", (sha, "0123456789abcdef"))
    app = Datasette([str(db), str(notes)])
    asyncio.run(app.invoke_startup())
    page = get(app, "/notes/seen")
    assert page.status_code == 200 and sha in page.text and "/-/losslens/" not in page.text.split("<table", 1)[1]
    experiment = query(db, "SELECT id, name FROM experiments")[0]
    settings = get(app, "/losslens/settings").text
    link = f'<a href="/-/losslens/losslens?experiment={experiment["id"]}" title="{experiment["id"]}">{experiment["name"]}</a>'
    assert settings.count(link) == len(query(db, "SELECT id FROM settings"))


def test_cells_of_other_databases_are_datasettes_own(pinn_catalog, tmp_path):
    """The plugin is a ``datasette`` entry point, so it runs for every database any Datasette of the environment
    serves. In a database that is not a LossLens catalog (a user's own notes beside it) a REAL cell shows its
    whole value and a BLOB stays Datasette's download link, exactly as without the plugin; in the catalog a BLOB
    that is not a ``.npy`` array keeps that download link too. Oracle: the values written with plain SQL, and
    Datasette's own markup for a BLOB (``blob-download`` link to the row's ``.blob``)."""
    notes = tmp_path / "notes.db"
    with sqlite3.connect(notes) as conn:
        conn.execute("CREATE TABLE seen (id INTEGER PRIMARY KEY, x REAL, b BLOB)")
        conn.execute("INSERT INTO seen VALUES (1, 0.1234567891234, X'00010203')")
    app = Datasette([str(pinn_catalog), str(notes)])
    asyncio.run(app.invoke_startup())
    cells = dict(re.findall(r'<td class="col-(\w+) [^"]*">(.*?)</td>', get(app, "/notes/seen").text, re.S))
    assert cells["x"].strip() == "0.1234567891234"
    assert 'class="blob-download" href="/notes/seen/1.blob?_blob_column=b"' in cells["b"], cells["b"]
    page = get(app, "/notes?sql=select+0.1234567891234+as+x,+X'00010203'+as+b").text
    assert "0.1234567891234</td>" in page and "blob-download" in page
    page = get(app, "/losslens?sql=select+X'00010203'+as+b").text
    assert "blob-download" in page and "&lt;4 bytes&gt;" not in page
