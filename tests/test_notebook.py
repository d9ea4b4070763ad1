"""The notebook API: ``losslens.open(catalog).chart(view, ...)`` over the small pipeline-built catalogs."""

from __future__ import annotations

import subprocess
import sys

import pytest
import vl_convert as vlc
from helpers import WatchedPage, pinn_ids, query, shared_catalogs

import losslens
from losslens.errors import LossLensError
from losslens.notebook import VEGALITE_MIMETYPE, vegalite_mimetype

# builds the shared catalog: ingest and every metric over a tiny sweep (the pipeline end to end)
pytestmark = pytest.mark.slow


def data_values(spec):
    """Every inline data table of a spec, depth first."""
    if isinstance(spec, dict):
        if isinstance(spec.get("values"), list):
            yield spec["values"]
        for v in spec.values():
            yield from data_values(v)
    elif isinstance(spec, list):
        for v in spec:
            yield from data_values(v)


@pytest.fixture(scope="module")
def catalogs(tmp_path_factory):
    return shared_catalogs(tmp_path_factory)


def test_chart_displays_as_vega_lite_with_the_catalogs_rows(catalogs, tmp_path):
    """Oracle: landscape_points read with plain SQL: the chart Jupyter would display (the Vega-Lite mimetype
    of its mime bundle) draws exactly the checkpoint's stored losses, found by the checkpoint's name;
    vl-convert compiles it and its saved SVG."""
    db = catalogs[0]
    sha = pinn_ids(db)["modes"][0]
    name = query(db, "SELECT name FROM checkpoints WHERE sha256 = ?", (sha,))[0]["name"]
    lens = losslens.open(db)
    chart = lens.chart("landscape", checkpoint=name)
    bundle = chart._repr_mimebundle_()
    spec = bundle[VEGALITE_MIMETYPE]
    assert spec["$schema"].endswith("/v6.json") and "landscape" in bundle["text/plain"]
    cells = next(rows for rows in data_values(spec) if rows and "a0" in rows[0])
    stored = query(
        db,
        "SELECT p.loss FROM landscape_points p JOIN landscapes l ON l.id = p.run_id WHERE l.checkpoint = ? ORDER BY p.point",
        (sha,),
    )
    assert [c["loss"] for c in cells] == pytest.approx([r["loss"] for r in stored])
    vlc.vegalite_to_vega(spec)
    assert chart.save(tmp_path / "l.svg").read_text().startswith("<svg")
    assert lens.views()["layer-cka"] == "pair"


def test_chart_errors_name_the_fix(catalogs):
    """Oracle: the digits catalog has no landscape run; an unknown view lists the registry's views."""
    lens = losslens.open(catalogs[1])
    sha = query(catalogs[1], "SELECT sha256 FROM checkpoints")[0]["sha256"]
    with pytest.raises(LossLensError, match="nothing to draw") as err:
        lens.chart("landscape", checkpoint=sha)
    assert "compute it first: losslens compute landscape topology -e tiny-digits" in err.value.line()
    with pytest.raises(LossLensError, match="unknown view"):
        lens.chart("surface-of-mars", checkpoint=sha)
    with pytest.raises(LossLensError, match="no catalog"):
        losslens.open(catalogs[1].parent / "missing.db")


def test_import_losslens_stays_light():
    """Oracle: ``sys.modules`` of a fresh interpreter: ``import losslens`` loads neither the notebook module,
    the views nor vl-convert."""
    code = "import sys, losslens; print(sorted(m for m in sys.modules if m.startswith(('losslens.', 'vl_convert'))))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "[]"


def test_mimetype_is_the_specs_vega_lite_major_version(catalogs, browser):
    """Oracles: vl-convert and Chromium. The mimetype's major version is that of the Vega-Lite that compiles
    the spec in the ``text/html`` output (vl-convert's bundle holds its newest Vega-Lite), and that output
    draws the chart offline in Chromium: the page may request nothing, and the heat map's cells are drawn."""
    db = catalogs[0]
    chart = losslens.open(db).chart("landscape", checkpoint=pinn_ids(db)["modes"][0])
    bundle = chart._repr_mimebundle_()
    (mimetype,) = [k for k in bundle if k.startswith("application/vnd.vegalite.")]
    assert bundle[mimetype]["$schema"] == "https://vega.github.io/schema/vega-lite/v6.json"
    w = WatchedPage(browser, {"width": 1200, "height": 900}, lambda url: url.startswith(("about:", "data:")), "notebook")
    w.page.set_content(f"<!doctype html><html><body>{bundle['text/html']}</body></html>")
    w.page.wait_for_selector('.losslens-chart[data-rendered="1"]', timeout=30_000)
    major = max(tuple(int(p) for p in v.split(".")) for v in vlc.get_vegalite_versions())[0]
    assert mimetype == f"application/vnd.vegalite.v{major}+json" == VEGALITE_MIMETYPE
    assert w.page.locator(".losslens-chart svg .mark-rect path").count() >= 11 * 11
    w.check("html-output")
    with pytest.raises(ValueError, match="not a Vega-Lite schema"):
        vegalite_mimetype("https://vega.github.io/schema/vega/v6.json")
