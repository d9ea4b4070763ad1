"""The static viewer in a real browser: Debian Chromium driven by Playwright over ``file://``, with
the viewer exported from the small pipeline-built catalog of test_datasette_plugin. No server."""

from __future__ import annotations

import math
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import torch
from helpers import (
    ARTIFACTS,
    EVIL_MODEL,
    PINN_KWARGS,
    WatchedPage,
    overlapping_labels,
    pinn_ids,
    save_checkpoint,
    shared_catalogs,
    wrapped_bind_names,
    write_spec,
)

from losslens.export import export_viewer
from losslens.export.viewer import data_script
from losslens.ingest import ingest
from losslens.models import pinn_mlp

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def viewer(tmp_path_factory):
    db, _ = shared_catalogs(tmp_path_factory)
    index = export_viewer(db, tmp_path_factory.mktemp("viewer"))
    return index.as_uri(), pinn_ids(db)


class Watched(WatchedPage):
    """A viewer page opened from file://: no request may use another scheme."""

    def __init__(self, browser):
        super().__init__(browser, {"width": 1500, "height": 950}, lambda url: urlsplit(url).scheme == "file", "viewer")

    def rendered(self, chart: str, timeout: float = 30_000) -> None:
        self.page.wait_for_selector(f'#chart-{chart}[data-rendered="1"]', timeout=timeout)

    def tabs(self) -> list[str]:
        return self.page.locator("#tabs .tab .label").all_text_contents()

    def active(self) -> str:
        return self.page.locator("#tabs .tab.active .label").text_content()


def test_first_view_renders_and_a_click_in_it_retargets(viewer, browser):
    """Oracle: the taxonomy of the only experiment is drawn with one grid cell per setting; a click on
    the β = 5 cell puts that setting's id in the hash and redraws the modes chart with its modes."""
    url, ids = viewer
    w = Watched(browser)
    w.page.goto(url)
    w.rendered("taxonomy")
    w.rendered("semi")
    assert w.tabs() == ["Taxonomy: tiny-pinn"]
    assert ids["setting"] in w.page.url
    assert w.page.locator('#chart-taxonomy path[aria-label^="beta: "]').count() == 2
    assert int(w.page.get_attribute("html", "data-first-render")) > 0
    w.page.click('#chart-taxonomy path[aria-label^="beta: 5;"]')
    w.page.wait_for_function("s => !location.hash.includes(s)", arg=ids["setting"])
    w.rendered("semi")
    assert w.page.locator('#chart-semi .mark-text.role-mark text:text-matches("^beta5_seed[012]$")').count() == 3
    assert "beta=5" in w.page.locator("#status-selection").text_content()
    assert w.page.locator(".subhead span").first.text_content().startswith("Setting beta=5")  # a name, not a hash
    w.check("first-view")


def test_explorer_click_opens_a_tab_that_renders(viewer, browser):
    """Oracle: the catalog: the clicked mode's tab shows its local view with the 11 × 11 landscape cells,
    and the metric panel lists that checkpoint's performance rows."""
    url, ids = viewer
    w = Watched(browser)
    w.page.goto(url)
    w.rendered("taxonomy")
    w.page.click(f'#tree .row[data-kind="setting"][data-id="{ids["setting"]}"] .twisty')
    w.page.click(f'#tree .row[data-kind="mode"][data-id="{ids["modes"][1]}"]')
    w.rendered("local")
    assert w.tabs() == ["Taxonomy: tiny-pinn", "beta1_seed1"] and w.active() == "beta1_seed1"
    assert w.page.locator("#chart-local svg .mark-rect path").count() >= 11 * 11
    subjects = set(w.page.locator("#panel-body tbody td:first-child").all_text_contents())
    assert subjects == {"beta1_seed1"}
    assert "performance" in w.page.locator("#panel-body tbody").text_content()
    w.page.click('.panel-tab[data-panel="provenance"]')
    assert "hessian" in w.page.locator("#panel-body tbody").text_content()
    w.check("explorer-mode")


def test_quick_open_finds_a_checkpoint(viewer, browser):
    """Oracle: the name typed: Ctrl+P, "seed2 beta5" lists that checkpoint first (then its pairs), Enter opens its tab."""
    url, _ = viewer
    w = Watched(browser)
    w.page.goto(url)
    w.rendered("taxonomy")
    w.page.keyboard.press("Control+P")
    w.page.wait_for_selector("#quickopen:not([hidden])")
    w.page.keyboard.type("seed2 beta5")
    items = w.page.locator("#quickopen-list li .label").all_text_contents()
    assert items[0] == "beta5_seed2" and all("seed2" in i and "beta5" in i for i in items)  # the mode, then its pairs
    w.page.screenshot(path=str(ARTIFACTS / "viewer-quick-open.png"))
    w.page.keyboard.press("Enter")
    w.rendered("local")
    assert w.active() == "beta5_seed2"
    w.check("quick-open-result")


def test_reload_restores_tabs_and_selection(viewer, browser):
    """Oracle: the state before the reload: the same tabs, active tab and picked mode after it, and the
    pair tab opened from the explorer draws its three views."""
    url, ids = viewer
    w = Watched(browser)
    w.page.goto(url)
    w.rendered("taxonomy")
    w.page.click(f'#tree .row[data-kind="setting"][data-id="{ids["setting"]}"]')
    w.rendered("modes")
    w.page.click('#chart-modes path[aria-label*="mode: beta1_seed2"]')
    w.page.wait_for_function("s => location.hash.includes(s)", arg=ids["modes"][2])
    w.rendered("local")
    w.page.click('#tree .row[data-kind="folder"]')
    w.page.click(f'#tree .row[data-kind="pair"][data-id="{ids["modes"][0]}~{ids["modes"][1]}"]')
    for chart in ("curve", "layer-cka", "predictions"):
        w.rendered(chart)
    w.page.click("#tabs .tab >> nth=1")
    w.rendered("local")
    before, active, hash_ = w.tabs(), w.active(), w.page.url
    w.page.reload()
    w.rendered("local")
    assert w.tabs() == before and w.active() == active and w.page.url == hash_
    assert "Mode beta1_seed2" in w.page.locator(".subhead").text_content()
    fresh = browser.new_page()
    fresh.goto(hash_)  # a shared link restores the same state in a new page
    fresh.wait_for_selector('#chart-local[data-rendered="1"]')
    assert fresh.locator("#tabs .tab .label").all_text_contents() == before
    fresh.close()
    w.check("restored")


def test_user_names_are_text_and_dark_theme(viewer, browser):
    """Oracle: the model name as typed in the spec (an <img onerror> payload) is the header's text, no
    such <img> exists and no dialog opened; the theme toggle flips to dark and is kept across reloads."""
    url, _ = viewer
    w = Watched(browser)
    w.page.goto(url)
    w.rendered("taxonomy")
    w.page.keyboard.press("Control+P")
    w.page.keyboard.type("beta1_seed0")
    w.page.keyboard.press("Enter")
    w.rendered("local")
    assert EVIL_MODEL in w.page.locator(".view-head .meta").text_content()
    assert w.page.locator('img[src="x"]').count() == 0
    w.page.click("#act-theme")
    assert w.page.get_attribute("html", "data-theme") == "dark"
    w.page.reload()
    w.rendered("local")
    assert w.page.get_attribute("html", "data-theme") == "dark"
    w.check("dark")


def test_quick_open_ranks_by_match_quality(viewer, browser):
    """Oracle: the catalog's names: "5 seed2" means β = 5, seed 2, so that mode comes first, ahead of pairs
    and of anything whose sha256 merely contains a 5; items match every typed word."""
    url, _ = viewer
    w = Watched(browser)
    w.page.goto(url)
    w.rendered("taxonomy")
    w.page.keyboard.press("Control+P")
    w.page.wait_for_selector("#quickopen:not([hidden])")
    w.page.keyboard.type("5 seed2")
    items = w.page.locator("#quickopen-list li .label").all_text_contents()
    assert items[0] == "beta5_seed2"
    assert "beta1_seed2" not in items[:2]
    w.page.keyboard.press("Enter")
    w.rendered("local")
    assert w.active() == "beta5_seed2"


def test_back_steps_through_views_and_panels(viewer, browser):
    """Oracle: the order of the clicks: Back returns to the setting, then to the taxonomy; the metrics filter
    "lambda" finds the λmax rows; the compare panel has one column per mode of the setting; the panel
    collapses; the explorer widens when its sash is dragged and names carry their full text as tooltips."""
    url, ids = viewer
    w = Watched(browser)
    w.page.goto(url)
    w.rendered("taxonomy")
    w.page.click(f'#tree .row[data-kind="setting"][data-id="{ids["setting"]}"]')
    w.rendered("modes")
    w.page.click(f'#tree .row[data-kind="mode"][data-id="{ids["modes"][1]}"]')
    w.rendered("local")
    assert w.active() == "beta1_seed1"
    w.page.go_back()
    w.rendered("modes")
    assert w.active().startswith("beta=1")
    w.page.go_back()
    w.rendered("taxonomy")
    assert w.active() == "Taxonomy: tiny-pinn"
    w.page.go_forward()
    w.rendered("modes")
    w.page.fill("#panel-filter", "lambda")
    rows = w.page.locator("#panel-body tbody tr").all_text_contents()
    assert rows and all("λ" in r for r in rows)
    w.page.fill("#panel-filter", "")
    w.page.click('.panel-tab[data-panel="compare"]')
    headers = w.page.locator("#panel-body thead th").all_text_contents()
    assert headers == ["metric", "quantity", "beta1_seed0", "beta1_seed1", "beta1_seed2"]
    assert w.page.locator("#panel-body tbody tr").count() > 5
    w.page.click("#panel-toggle")
    assert w.page.locator("#panel-body").is_hidden()
    w.page.click("#panel-toggle")
    before = w.page.locator("#sidebar").bounding_box()["width"]
    box = w.page.locator("#sash").bounding_box()
    w.page.mouse.move(box["x"] + 2, box["y"] + 200)
    w.page.mouse.down()
    w.page.mouse.move(box["x"] + 150, box["y"] + 200, steps=5)
    w.page.mouse.up()
    assert w.page.locator("#sidebar").bounding_box()["width"] > before + 100
    row = w.page.locator(f'#tree .row[data-kind="mode"][data-id="{ids["modes"][1]}"]')
    assert row.get_attribute("title").startswith("beta1_seed1")
    w.check("back-and-panels")


def test_viewer_downloads_and_help(viewer, browser):
    """Oracles: the bytes downloaded from file:// (nothing fetched): a PNG by its magic number, the landscape's
    rows as JSON (11 × 11 cells) and as CSV (a header and 121 lines); the help text opens with one click."""
    import json

    url, ids = viewer
    w = Watched(browser)
    w.page.goto(url)
    w.rendered("taxonomy")
    w.page.click(f'#tree .row[data-kind="setting"][data-id="{ids["setting"]}"] .twisty')
    w.page.click(f'#tree .row[data-kind="mode"][data-id="{ids["modes"][0]}"]')
    w.rendered("local")
    tools = w.page.locator("#chart-local-tools")
    tools.get_by_role("button", name="? What is this").click()
    assert "merge tree" in w.page.locator("#chart-local-tools + .chart-help").text_content().lower()
    with w.page.expect_download() as png:
        tools.get_by_role("button", name="PNG").click()
    assert Path(png.value.path()).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with w.page.expect_download() as js:
        tools.get_by_role("button", name="landscape.json").click()
    assert len(json.loads(Path(js.value.path()).read_text())) == 11 * 11
    with w.page.expect_download() as csv_file:
        tools.get_by_role("button", name="landscape.csv").click()
    assert len(Path(csv_file.value.path()).read_text().splitlines()) == 1 + 11 * 11
    w.check("downloads")


def test_taxonomy_modes_chart_opens_a_mode(viewer, browser):
    """Oracle: the clicked glyph's mode name: on the taxonomy tab, a click on a mode of the setting's modes
    chart opens that mode's tab (the semi-global view is not a dead end)."""
    url, _ = viewer
    w = Watched(browser)
    w.page.goto(url)
    w.rendered("semi")
    w.page.click('#chart-semi path[aria-label*="mode: beta1_seed2"]')
    w.rendered("local")
    assert w.active() == "beta1_seed2"


def test_setting_landscapes_and_pair_landscapes(viewer, browser):
    """Oracles: the catalog's seed order and the landscape rows: the setting tab draws one landscape per mode
    and a click on the second opens that mode's tab; the pair tab's two landscapes draw two different
    landscapes (each its own mode's rows, not one of them twice)."""
    url, ids = viewer
    w = Watched(browser)
    w.page.goto(url)
    w.rendered("taxonomy")
    w.page.click(f'#tree .row[data-kind="setting"][data-id="{ids["setting"]}"]')
    w.rendered("landscapes")
    assert w.page.locator("#chart-landscapes g.role-legend").count() == len(ids["modes"])
    w.page.locator("#chart-landscapes g.concat_1_marks path").nth(60).click()
    w.rendered("local")
    assert w.active() == "beta1_seed1"
    w.page.click('#tree .row[data-kind="folder"]')
    w.page.click(f'#tree .row[data-kind="pair"][data-id="{ids["modes"][0]}~{ids["modes"][1]}"]')
    w.rendered("landscapes")
    cells = [
        w.page.locator(f"#chart-landscapes g.concat_{i}_marks path").evaluate_all(
            "ps => ps.map(p => p.getAttribute('aria-label'))"
        )
        for i in (0, 1)
    ]
    assert len(cells[0]) == len(cells[1]) == 11 * 11 and cells[0] != cells[1]
    assert wrapped_bind_names(w.page, "#chart-landscapes") == []
    w.check("landscapes")


def test_bound_inputs_and_labels_stay_readable(viewer, browser):
    """Oracle: Chromium's layout, in a window 700 px wide (where the check box's name used to wrap): in the
    taxonomy tab (with the modes chart below it) no two text marks overlap, and the modes chart's "same scale"
    check box has its name on one line beside it."""
    url, _ = viewer
    w = Watched(browser)
    w.page.set_viewport_size({"width": 700, "height": 950})
    w.page.goto(url)
    w.rendered("taxonomy")
    w.rendered("semi")
    assert overlapping_labels(w.page, "#chart-taxonomy") == [] and overlapping_labels(w.page, "#chart-semi") == []
    assert wrapped_bind_names(w.page, "#chart-semi") == []
    w.check("readable")


def test_explorer_shows_whole_names_and_the_missing_views_command(tmp_path, browser):
    """Oracles: Chromium's layout and the command written out here. A catalog whose names are long (ingested,
    nothing computed): at the explorer's default width every name is drawn whole (its box as wide as its
    text, the hint shortened first), the row's tooltip holds the name, and a mode's missing local view says
    which command computes it."""
    for seed in (0, 1):
        torch.manual_seed(seed)
        save_checkpoint(
            tmp_path / "runs" / f"convection_beta30_adam_seed{seed}.pt",
            pinn_mlp(**PINN_KWARGS),
            seed,
            {"beta": 30.0, "optimizer": "adam-with-warm-restarts"},
        )
    spec = write_spec(
        tmp_path / "pinn.toml",
        "convection sweep",
        "losslens.models:pinn_mlp",
        PINN_KWARGS,
        "losslens.problems:convection",
        {"n_collocation": 64, "n_x": 32, "n_t": 16},
        ["runs/*.pt"],
        ["beta", "optimizer"],
    )
    db = tmp_path / "catalog" / "losslens.db"
    ingest(spec, db)
    w = Watched(browser)
    w.page.goto(export_viewer(db, tmp_path / "viewer").as_uri())
    w.rendered("taxonomy")
    w.page.click('#tree .row[data-kind="setting"] .twisty')
    w.page.click('#tree .row[data-kind="folder"]')
    rows = w.page.locator("#tree .row").evaluate_all(
        "rs => rs.map(r => { const l = r.querySelector('.label'); return [l.textContent, l.scrollWidth, l.clientWidth, r.title]; })"
    )
    assert len(rows) == 6 and rows[-1][0] == "convection_beta30_adam_seed0 ↔ convection_beta30_adam_seed1"
    assert [r for r in rows if r[1] > r[2] or not r[3].startswith(r[0])] == []
    w.page.click('#tree .row[data-kind="mode"]')
    w.page.wait_for_selector('#chart-local[data-rendered="missing"]')
    hint = "losslens compute landscape topology hessian -e 'convection sweep'"
    assert f"run `{hint}` and export again" in w.page.text_content("#chart-local")
    w.check("long-names")


def fixture_table() -> list[dict]:
    """80 rows (above the codec's 64-row JSON cut-off, so numbers go to typed arrays) of known values:
    float32 floats (negatives, tiny and huge magnitudes, NaN and NULL), a float64 column (beyond
    float32's range), int32 ints at both ends, a column of few distinct numbers (a dictionary), unicode
    strings (a dictionary) and a key only some rows have."""
    specials = [0.0, -0.0, 1.5, -2.25, 1e-30, -3.3e-38, 3.0e38, -1.7e38, 123456.789, -1e-7, math.nan, None]
    strings = ["β = 5", "λ_max", "日本語", "emoji 🙂", '</script><b>"x"</b>', "", "a\u2028b", "plain"]
    rows = []
    for i in range(80):
        row = {
            "f32": specials[i] if i < len(specials) else (-1) ** i * (i + 0.1) * 10.0 ** (i % 17 - 8),
            "f64": [1e300, -2.5e-300, None, math.pi][i % 4] if i < 8 else (-1) ** i * i * 1e200,
            "i32": [2**31 - 1, -(2**31), 0, -1][i] if i < 4 else (i * 7919) % 100003 - 50000,
            "few": [0.25, -4.0, 7.0][i % 3],
            "text": strings[i % len(strings)],
        }
        if i % 3 == 0:
            row["sometimes"] = f"row {i} ✓"
        rows.append(row)
    return rows


def test_viewer_decoder_gives_back_the_values_encoded(tmp_path, browser):
    """Oracle: the Python values the codec encoded, decoded by the exported viewer's own JS
    (``LossLensViewer.rows``) in Chromium: ints and strings exactly, the float32 column equal to
    numpy's float32 rounding of each value, float64 exactly, NaN and NULL both null (the codec's
    promise), and a key only some rows have present in exactly those rows. A short table stays JSON."""
    import json

    import numpy as np

    from losslens.export.codec import Blobs, encode_rows
    from losslens.store.catalog import init_catalog

    catalog, _, _ = init_catalog(tmp_path / "empty.db")
    catalog.close()
    index = export_viewer(tmp_path / "empty.db", tmp_path / "viewer")
    data_js = index.parent / "data.js"
    prefix = "window.LOSSLENS = "
    data = json.loads(data_js.read_text().removeprefix(prefix).rstrip().removesuffix(";"))
    table, short = fixture_table(), [{"x": -0.1, "s": "ψ", "n": None}, {"x": 2**40, "s": "日本", "n": 3}]
    blobs = Blobs()
    data["tables"] = {"fixture": encode_rows(table, blobs), "short": encode_rows(short, blobs)}
    data["blobs"] = blobs.items
    cols = data["tables"]["fixture"]["cols"]
    assert "f32" in cols["f32"] and "f64" in cols["f64"] and "i32" in cols["i32"]  # typed arrays
    assert "dict" in cols["few"] and "dict" in cols["text"] and "has" in cols["sometimes"]
    data_js.write_text(data_script(data))

    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(index.as_uri())
    page.wait_for_function("() => window.LossLensViewer !== undefined")
    decoded = page.evaluate("k => LossLensViewer.rows(k)", "fixture")
    decoded_short = page.evaluate("k => LossLensViewer.rows(k)", "short")
    page.close()
    assert errors == []

    def f32(v):
        return None if v is None or math.isnan(v) else float(np.float32(v))

    def f64(v):
        return None if v is None or math.isnan(v) else v

    assert len(decoded) == len(table)
    for got, want in zip(decoded, table, strict=True):
        assert set(got) == set(want), (got, want)
        assert got["f32"] == f32(want["f32"]), (got, want)
        assert got["f64"] == f64(want["f64"]), (got, want)
        assert got["i32"] == want["i32"] and got["few"] == want["few"]
        assert got["text"] == want["text"] and got.get("sometimes") == want.get("sometimes")
    assert decoded_short == short
