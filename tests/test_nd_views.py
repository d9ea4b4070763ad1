"""Views of 3-D and 4-D landscapes (slices through θ, merge tree, persistence) on small real catalogs:
a tiny PINN checkpoint ingested and computed by the real pipeline. Oracles: the stored grid artifact
indexed by numpy, a fresh model's own loss at θ, the persistence_pairs table and gudhi run on the grid."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import ARGS, CHROMIUM, PINN_KWARGS, WatchedPage, save_checkpoint, write_spec
from playwright.sync_api import sync_playwright

from losslens.export import export_all, export_viewer
from losslens.export.chart import export_chart
from losslens.ingest import ingest
from losslens.jobs import compute
from losslens.models import pinn_mlp
from losslens.problems.convection import convection
from losslens.store.catalog import open_catalog
from losslens.views import registry

PROBLEM = {"n_collocation": 64, "n_x": 32, "n_t": 16}


def _catalog(root: Path, options: list[list[tuple[str, str]]]) -> Path:
    """One untrained PINN checkpoint (β = 1, seed 0), with landscape + topology computed once per option list."""
    torch.manual_seed(0)
    save_checkpoint(root / "runs" / "beta1_seed0.pt", pinn_mlp(**PINN_KWARGS), 0, {"beta": 1.0})
    spec = write_spec(
        root / "pinn.toml",
        "nd-pinn",
        "losslens.models:pinn_mlp",
        PINN_KWARGS,
        "losslens.problems:convection",
        PROBLEM,
        ["runs/*.pt"],
        ["beta"],
    )
    db = root / "catalog" / "losslens.db"
    assert ingest(spec, db).count("added") == 1
    for opts in options:
        report = compute(["landscape", "topology"], opts, catalog_path=db, device="cpu")
        assert report.failed == 0
    return db


@pytest.fixture(scope="module")
def cat3(tmp_path_factory) -> Path:
    """A 2-D landscape (5×5) and a 3-D one (7×7×7, span ±‖θ‖: wide enough for many minima and H1 pairs)
    of the same checkpoint."""
    return _catalog(tmp_path_factory.mktemp("nd3"), [[("steps", "5")], [("dims", "3"), ("steps", "7"), ("span", "1")]])


@pytest.fixture(scope="module")
def cat4(tmp_path_factory) -> Path:
    return _catalog(tmp_path_factory.mktemp("nd4"), [[("dims", "4"), ("steps", "5"), ("span", "1")]])


def stored(db: Path) -> tuple[str, np.ndarray, dict]:
    """(checkpoint, the n-D grid artifact as numpy, its landscapes row), read with plain SQL."""
    with open_catalog(db) as cat:
        row = cat.query("SELECT * FROM landscapes WHERE dims >= 3")[0]
        return row["checkpoint"], np.asarray(cat.artifact(row["grid_artifact"])), row


def own_loss(db: Path) -> float:
    """The oracle of the loss at θ: a fresh model with the saved weights on the problem's own training batch."""
    model = pinn_mlp(**PINN_KWARGS)
    state = torch.load(db.parent.parent / "runs" / "beta1_seed0.pt", weights_only=True)["state_dict"]
    model.load_state_dict(state)
    model.eval()
    problem = convection(beta=1.0, **PROBLEM)
    batch = next(iter(problem.batches("train")))
    with torch.no_grad():
        return float(problem.loss(model, {**dict(model.named_parameters()), **dict(model.named_buffers())}, batch))


def inline(db: Path, view: str, sha: str) -> dict:
    with open_catalog(db) as cat:
        spec, n = registry.inline_spec(cat.conn, view, {"checkpoint": sha})
    assert n > 0
    return spec


def slice_values(spec: dict) -> list[dict]:
    layer = next(lay for lay in spec["layer"] if lay.get("name") == "slice_cells")
    return layer["data"]["values"]


@pytest.mark.parametrize("which", ["cat3", "cat4"])
def test_slice_rows_are_the_stored_grid_and_the_centre_is_theta(which, request):
    db = request.getfixturevalue(which)
    sha, grid, row = stored(db)
    dims, steps = grid.ndim, grid.shape[0]
    assert dims == row["dims"] == (3 if which == "cat3" else 4)
    spec = inline(db, "slice", sha)
    rows = slice_values(spec)
    assert len(rows) == grid.size
    index = [[r[a] for a in "ijkl"[:dims]] for r in rows]
    assert np.allclose([r["loss"] for r in rows], [grid[tuple(i)] for i in index])
    # The selectors: one plane per pair of axes, one index per axis, all at the centre (θ) by default.
    params = {p["name"]: p for p in spec["params"]}
    assert params["plane"]["bind"]["options"] == ["".join(p) for p in itertools.combinations("ijkl"[:dims], 2)]
    assert [params[f"at_{a}"]["value"] for a in "ijkl"[:dims]] == [steps // 2] * dims
    assert params["at_i"]["bind"]["max"] == steps - 1
    # The default slice (plane d1×d2, others at the centre) holds the loss at θ: a fresh model's own loss.
    c = steps // 2
    default = [r for r in rows if all(r[a] == c for a in "ijkl"[2:dims])]
    assert len(default) == steps * steps
    centre = next(r for r in default if r["i"] == r["j"] == c)
    assert centre["loss"] == pytest.approx(own_loss(db), rel=1e-5)
    # The colour scale spans the whole grid, so every slice is on the same scale.
    colour = spec["layer"][0]["encoding"]["color"]["scale"]
    finite = grid[np.isfinite(grid) & (grid > 0)]
    assert colour["domain"] == pytest.approx([finite.min(), finite.max()])


def test_nd_topology_views_list_the_stored_pairs_and_gudhis(cat3):
    """The persistence diagram/barcode of the 3-D run list exactly the stored pairs, which are gudhi's
    cubical persistence of the grid; the merge tree's minima are the stored ones."""
    import gudhi

    sha, grid, row = stored(cat3)
    with open_catalog(cat3) as cat:
        run = cat.query("SELECT DISTINCT run_id FROM persistence_pairs WHERE landscape_id = ?", (row["id"],))[0]["run_id"]
        table = cat.query("SELECT dim, birth, death FROM persistence_pairs WHERE run_id = ?", (run,))
        minima = cat.query("SELECT point, persistence FROM merge_tree_nodes WHERE run_id = ? AND kind = 'minimum'", (run,))
    key = lambda d, b, e: (int(d), round(float(b), 9), None if e is None or not np.isfinite(e) else round(float(e), 9))  # noqa: E731
    want = sorted((key(r["dim"], r["birth"], r["death"]) for r in table), key=str)
    oracle = gudhi.CubicalComplex(vertices=grid)
    ours = sorted((key(d, b, e) for d, (b, e) in oracle.persistence()), key=str)
    assert want == ours and len(want) > 10 and {w[0] for w in want} == {0, 1}
    for view in ("nd-persistence", "nd-barcode"):
        spec = inline(cat3, view, sha)
        values = spec["layer"][-1]["data"]["values"] if view == "nd-persistence" else spec["data"]["values"]
        assert sorted((key(v["dim"], v["birth"], v["death"]) for v in values), key=str) == want
        assert "3-D landscape" in spec["title"]["text"]
    tree = inline(cat3, "nd-merge-tree", sha)
    nodes = tree["layer"][1]["data"]["values"]
    drawn = sorted((n["point"], n["persistence"]) for n in nodes if n["kind"] == "minimum")
    assert drawn == sorted((m["point"], m["persistence"]) for m in minima) and len(drawn) > 1
    # Elder rule: each kept non-global minimum's persistence is that of a finite H0 pair.
    finite_h0 = {round(e - b, 9) for d, b, e in ((r["dim"], r["birth"], r["death"]) for r in table) if d == 0 and e is not None}
    assert {round(m["persistence"], 9) for m in minima if m["persistence"] is not None} <= finite_h0


def test_two_d_landscape_unchanged_beside_a_three_d_one(cat3):
    """The 2-D views keep drawing the 2-D grid (5×5); only the n-D views read the 3-D one."""
    sha, grid, _ = stored(cat3)
    spec = inline(cat3, "landscape", sha)
    assert len(spec["layer"][0]["data"]["values"]) == 25
    with open_catalog(cat3) as cat:
        assert len(registry.rows(cat.conn, "nd_landscape", {"checkpoint": sha})) == grid.size == 343
        assert registry.has_rows(cat.conn, "nd", {"checkpoint": sha})


def test_no_nd_view_without_an_nd_landscape(tmp_path):
    db = _catalog(tmp_path, [[("steps", "3")]])
    with open_catalog(db) as cat:
        sha = cat.query("SELECT sha256 FROM checkpoints")[0]["sha256"]
        assert not registry.has_rows(cat.conn, "nd", {"checkpoint": sha})
        assert registry.has_rows(cat.conn, "local", {"checkpoint": sha})


# ---------------------------------------------------------------------------------------------
# In Chromium: the selectors redraw the slice (exported HTML, offline viewer).


def drawn_losses(page) -> list[float]:
    """The losses of the slice cells drawn, read from each cell's accessible description."""
    labels = page.eval_on_selector_all("g.mark-rect.slice_cells_marks path", "els => els.map(e => e.getAttribute('aria-label'))")
    return [float(re.search(r"loss \(log\): ([-+0-9.e]+)", text).group(1)) for text in labels if text]


@pytest.mark.slow
def test_chromium_slice_selectors_redraw_the_cells(cat3, tmp_path):
    """Oracle: the drawn cells are numpy's slices of the stored grid, before and after moving the
    fixed index of d3 and changing the plane."""
    sha, grid, _ = stored(cat3)
    out = export_chart(cat3, "slice", tmp_path / "slice.html", checkpoint=sha)
    c = grid.shape[0] // 2
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        w = WatchedPage(browser, {"width": 1000, "height": 900}, lambda url: url.startswith("file://"), "nd")
        w.page.goto(out.as_uri())
        w.page.wait_for_selector('#chart[data-rendered="1"]')
        first = drawn_losses(w.page)
        assert sorted(first) == pytest.approx(sorted(grid[:, :, c].ravel()), rel=1e-5)
        slider = w.page.locator("input[name='at_k']")
        slider.fill("0")
        slider.dispatch_event("input")
        w.page.wait_for_timeout(500)
        moved = drawn_losses(w.page)
        assert sorted(moved) == pytest.approx(sorted(grid[:, :, 0].ravel()), rel=1e-5)
        assert sorted(moved) != pytest.approx(sorted(first), rel=1e-5)
        w.page.select_option("select[name='plane']", "ik")
        w.page.wait_for_timeout(500)
        assert sorted(drawn_losses(w.page)) == pytest.approx(sorted(grid[:, c, :].ravel()), rel=1e-5)
        w.check("slice-export")
        viewer = export_viewer(cat3, tmp_path / "viewer")
        v = WatchedPage(browser, {"width": 1400, "height": 1000}, lambda url: url.startswith("file://"), "nd")
        with open_catalog(cat3) as cat:
            setting = cat.query("SELECT id FROM settings")[0]["id"]
        v.page.goto(viewer.as_uri())
        v.page.click(f'#tree .row[data-kind="setting"][data-id="{setting}"] .twisty')
        v.page.click(f'#tree .row[data-kind="mode"][data-id="{sha}"]')
        v.page.wait_for_selector('#chart-nd[data-rendered="1"]', timeout=30_000)
        assert sorted(drawn_losses(v.page)) == pytest.approx(sorted(grid[:, :, c].ravel()), rel=1e-5)
        v.check("viewer-mode")
        browser.close()


def test_datasette_mode_page_embeds_the_nd_view_and_its_routes_serve_it(cat4):
    """The real Datasette app: the mode page embeds the n-D chart; its spec names the data route, whose
    rows are the stored 4-D grid (numpy oracle)."""
    import asyncio
    from urllib.parse import urlsplit

    from datasette.app import Datasette

    sha, grid, _ = stored(cat4)
    app = Datasette([str(cat4)])
    asyncio.run(app.invoke_startup())
    page = asyncio.run(app.client.get(f"/-/losslens/losslens/checkpoint/{sha}"))
    assert page.status_code == 200
    assert 'id="nd"' in page.text and f"/spec/nd.json?checkpoint={sha}" in page.text and "4-D landscape" in page.text
    spec = asyncio.run(app.client.get(f"/-/losslens/losslens/spec/nd.json?checkpoint={sha}")).json()
    slice_layer = spec["vconcat"][0]["hconcat"][0]["layer"][0]
    url = urlsplit(slice_layer["data"]["url"])
    rows = asyncio.run(app.client.get(f"{url.path}?{url.query}")).json()
    assert len(rows) == grid.size == 5**4
    assert np.allclose([r["loss"] for r in rows], [grid[r["i"], r["j"], r["k"], r["l"]] for r in rows])
    assert [p["name"] for p in spec["params"]][:5] == ["plane", "at_i", "at_j", "at_k", "at_l"]


@pytest.mark.parametrize("which", ["cat3", "cat4"])
def test_datasette_setting_page_lists_the_modes_nd_landscapes(which, request):
    """The setting page draws its 2-D landscapes chart only where a mode has a 2-D grid (cat3: 5×5 beside the
    3-D one; cat4: a 4-D one alone) and links each mode with an n-D grid, with its dims read from the
    landscapes table by plain SQL."""
    import asyncio

    from datasette.app import Datasette

    db = request.getfixturevalue(which)
    sha, _, row = stored(db)
    with open_catalog(db) as cat:
        setting = cat.query("SELECT id FROM settings")[0]["id"]
        has_2d = bool(cat.query("SELECT count(*) AS n FROM landscapes WHERE dims = 2")[0]["n"])
    app = Datasette([str(db)])
    asyncio.run(app.invoke_startup())
    html = asyncio.run(app.client.get(f"/-/losslens/losslens/setting/{setting}")).text
    assert ('id="landscapes" class="chart"' in html) == has_2d == (which == "cat3")
    assert f'/checkpoint/{sha}#nd">beta1_seed0 ({row["dims"]}-D)</a>' in html


def test_export_chart_writes_every_nd_view(cat4, tmp_path):
    """``export chart`` draws each n-D view with vl-convert; the slice SVG holds the default slice's 5 × 5 cells,
    whose losses are numpy's grid[:, :, 2, 2]."""
    sha, grid, _ = stored(cat4)
    for view in ("nd", "slice", "nd-merge-tree", "nd-persistence", "nd-barcode"):
        out = export_chart(cat4, view, tmp_path / f"{view}.svg", checkpoint=sha)
        assert out.read_text().startswith("<svg")
    for fmt in ("json", "html", "png", "pdf"):
        data = export_chart(cat4, "nd", tmp_path / f"nd.{fmt}", checkpoint=sha).read_bytes()
        assert data[:4] in (b"\x89PNG", b"%PDF") or b"plane" in data
    assert b"default-src 'none'" in (tmp_path / "nd.html").read_bytes()
    written = export_all(cat4, tmp_path / "all", formats=("json",))
    assert {p.stem for p in written} >= {"slice", "nd-merge-tree", "nd-persistence", "nd-barcode"}
    svg = (tmp_path / "slice.svg").read_text()
    drawn = [float(x) for x in re.findall(r"loss \(log\): ([-+0-9.e]+)", svg)]
    assert sorted(drawn) == pytest.approx(sorted(grid[:, :, 2, 2].ravel()), rel=1e-5)


@pytest.mark.slow
def test_chromium_datasette_mode_page_slice_selectors(cat3):
    """The mode page of a real ``losslens serve``: the n-D chart draws numpy's centre slice, and moving the
    d1 slider after choosing the plane d2 × d3 redraws it as grid[0, :, :]."""
    import socket
    import subprocess
    import sys
    import time
    import urllib.request
    from urllib.parse import urlsplit

    sha, grid, _ = stored(cat3)
    c = grid.shape[0] // 2
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "losslens", "serve", "--catalog", str(cat3), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while True:
            try:
                urllib.request.urlopen(base + "/-/versions.json", timeout=2)
                break
            except OSError:
                assert time.time() < deadline and proc.poll() is None, "losslens serve did not start"
                time.sleep(0.5)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            w = WatchedPage(browser, {"width": 1400, "height": 1000}, lambda url: urlsplit(url).hostname == "127.0.0.1", "nd")
            w.page.goto(f"{base}/-/losslens/losslens/checkpoint/{sha}")
            w.page.wait_for_selector('#nd[data-rendered="1"]', timeout=30_000)
            assert sorted(drawn_losses(w.page)) == pytest.approx(sorted(grid[:, :, c].ravel()), rel=1e-5)
            w.page.select_option("#nd select[name='plane']", "jk")
            w.page.wait_for_timeout(500)
            assert sorted(drawn_losses(w.page)) == pytest.approx(sorted(grid[c, :, :].ravel()), rel=1e-5)
            slider = w.page.locator("#nd input[name='at_i']")
            slider.fill("0")
            slider.dispatch_event("input")
            w.page.wait_for_timeout(500)
            assert sorted(drawn_losses(w.page)) == pytest.approx(sorted(grid[0, :, :].ravel()), rel=1e-5)
            w.check("datasette-mode")
            browser.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
