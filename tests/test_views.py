"""The Vega-Lite builders of losslens/views on small inline data (the catalog-backed checks are in
test_datasette_plugin)."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
import vl_convert as vlc

from losslens.topology.isolines import N_LEVELS, isolines
from losslens.views import hessian, labels, landscape, local, modes, pair, taxonomy, topology
from losslens.views.bundle import ensure_bundle
from losslens.views.source import inline, npy_summary, values


def bowl_cells(n: int = 21) -> list[dict]:
    """The closed-form bowl loss = 1 + a² + b² on an n × n grid over [−1, 1]²."""
    axis = np.linspace(-1, 1, n)
    return [
        {"point": i * n + j, "i": i, "j": j, "a": float(a), "b": float(b), "loss": float(1 + a * a + b * b)}
        for i, a in enumerate(axis)
        for j, b in enumerate(axis)
    ]


def bowl_isolines(n: int = 21) -> list[dict]:
    """Isolines of the bowl as the landscape view's rows."""
    axis = np.linspace(-1, 1, n)
    array = isolines(axis, axis, 1 + axis[:, None] ** 2 + axis[None, :] ** 2)
    return [{"line": f"{int(li)}-{int(p)}", "level": lv, "order": int(o), "a": a, "b": b} for li, p, o, a, b, lv in array]


def test_isolines_follow_the_closed_form():
    """Oracle: on the bowl 1 + a² + b², each isoline of level L is the circle a² + b² = L − 1
    (up to the linear interpolation of marching squares on a 0.1 grid); a constant grid has none."""
    rows = bowl_isolines()
    assert len({r["level"] for r in rows}) == N_LEVELS
    for r in rows:
        assert r["a"] ** 2 + r["b"] ** 2 == pytest.approx(r["level"] - 1, abs=0.02)
    assert isolines(np.arange(3.0), np.arange(3.0), np.ones((3, 3))).shape == (0, 6)
    with pytest.raises(ValueError, match="shape"):
        isolines(np.arange(3.0), np.arange(4.0), np.ones((3, 3)))


def test_inline_replaces_url_sources_only():
    """Oracle: a hand-written nested spec; url sources become the fetched rows, other dicts stay."""
    spec = {"data": {"url": "/x"}, "layer": [{"data": {"values": [1]}}, {"data": {"url": "/y"}, "mark": "point"}]}
    out = inline(spec, lambda u: [{"from": u}])
    assert out == {
        "data": {"values": [{"from": "/x"}]},
        "layer": [{"data": {"values": [1]}}, {"data": {"values": [{"from": "/y"}]}, "mark": "point"}],
    }


@pytest.mark.parametrize("array", [np.zeros((41, 41), np.float32), np.arange(7, dtype=np.int16), np.ones((2, 3, 4))])
def test_npy_summary_reads_the_header(array):
    """Oracle: numpy's own dtype and shape of the saved array."""
    buffer = io.BytesIO()
    np.save(buffer, array)
    assert npy_summary(buffer.getvalue()) == f"{array.dtype}[{', '.join(map(str, array.shape))}]"
    assert npy_summary(b"not an array") is None
    assert npy_summary(buffer.getvalue()[:12]) is None


def _signals(spec: dict) -> set[str]:
    vega = vlc.vegalite_to_vega(spec)
    found = {s["name"] for s in vega.get("signals", [])}
    for group in vega.get("marks", []):
        found |= {s["name"] for s in group.get("signals", [])}
    return found


def test_taxonomy_selection_is_keyed_on_setting_id():
    """Oracle: Vega-Lite compiles the shared point selection to a ``setting`` signal, and the
    pre-selected value is the given id; the SVG carries one mark per setting per panel."""
    rows = [
        {"setting_id": "a" * 16, "label": "beta=1", "phase": "IV-B", "mc": 0.1, "log_top_eigenvalue": 1.0, "gx": 1, "gy": ""},
        {"setting_id": "b" * 16, "label": "beta=5", "phase": "I", "mc": -0.2, "log_top_eigenvalue": 2.0, "gx": 5, "gy": ""},
    ]
    spec = taxonomy.taxonomy_spec(values(rows), ["beta"], selected="b" * 16)
    assert "setting" in _signals(spec)
    assert spec["params"][0]["value"] == [{"setting_id": "b" * 16}]
    svg = vlc.vegalite_to_svg(spec)
    assert svg.count('aria-label="log top Hessian eigenvalue') == 2  # one point per setting in the phase plot
    assert svg.count('aria-label="beta: 5; ') >= 1


def test_large_sweeps_label_only_the_selected_setting():
    """Without ``cell_labels`` (above ``LABELLED_CELLS`` settings) the phase and CKA plots write only the selected
    setting's label, where every point's would cover the others; with it, every point's. Oracle: the label texts
    in vl-convert's SVG (a ``<text>`` per label drawn)."""
    rows = [
        {
            "setting_id": c * 16,
            "label": f"lr={i}",
            "phase": "II",
            "mc": 0.1 * i,
            "log_top_eigenvalue": float(i),
            "cka": 0.5,
            "gx": i,
            "gy": "",
        }
        for i, c in enumerate("abc")
    ]
    for cell_labels, expected in ((True, {"lr=0": 2, "lr=1": 2, "lr=2": 2}), (False, {"lr=0": 0, "lr=1": 2, "lr=2": 0})):
        svg = vlc.vegalite_to_svg(taxonomy.taxonomy_spec(values(rows), ["lr"], selected="b" * 16, cell_labels=cell_labels))
        assert {label: svg.count(f">{label}</text>") for label in expected} == expected, cell_labels


def test_every_builder_compiles_with_and_without_data():
    """Oracle: vl-convert compiles and draws each builder's spec, empty (a metric not computed yet)
    and with small data."""
    empty = values([])
    cells = bowl_cells(5)
    iso = bowl_isolines(5)
    minima = [{"point": 12, "a": 0.0, "b": 0.0, "loss": 1.0, "persistence": None, "basin_size": 25}]
    nodes = [
        {"node": 0, "kind": "minimum", "point": 12, "value": 1.0, "x": 0.0, "y": 1.0},
        {"node": 1, "kind": "root", "point": 0, "value": 3.0, "x": 0.0, "y": 3.0},
    ]
    segments = [{"x": 0.0, "y": 1.0, "x2": 0.0, "y2": 3.0, "branch": 0}]
    pairs = [{"dim": 0, "birth": 1.0, "death": None, "death_drawn": 3.1, "essential": True, "dimension": "H0", "point": 12}]
    eig = [{"which": "largest", "rank": r, "value": 10.0 / (r + 1), "residual": 1e-6} for r in range(10)]
    esd = [{"x": x, "density": float(np.exp(-x * x))} for x in np.linspace(-2, 2, 9)]
    mode_rows = [
        {"checkpoint": c, "name": c, "seed": i, "x": float(i), "y": float(-i), "test_error": 0.1 * i, "train_loss": 1.0}
        for i, c in enumerate("abc")
    ]
    link_rows = [
        {"checkpoint_a": "a", "checkpoint_b": "b", "mc": -0.1, "link": "poor", "x": 0.0, "y": 0.0, "x2": 1.0, "y2": -1.0}
    ]
    glyph_rows = [
        {"piece": "bar", "checkpoint": "a", "x": 0.0, "y": 0.0, "rank": 0, "value": 5.0, "theta": 0.0, "theta2": 0.5},
        {
            "piece": "ring",
            "checkpoint": "a",
            "x": 0.0,
            "y": 0.0,
            "metric": "train loss",
            "scale": "loss",
            "value": 1.0,
            "theta": 0.0,
            "theta2": 3.0,
            "mid": 1.5,
        },
    ]
    specs = [
        (
            local.local_spec(
                values(cells),
                values(iso),
                values(minima),
                values(nodes),
                values(segments),
                values(pairs),
                values(eig),
                values(esd),
            ),
            local.local_spec(*([empty] * 8)),
        ),
        (
            modes.modes_spec(values(mode_rows), values(link_rows), values(glyph_rows), selected="a", pair_href="/p/"),
            modes.modes_spec(empty, empty, empty),
        ),
        (landscape.landscape_spec(values(cells), values(iso), values(minima)), landscape.landscape_spec(empty, empty, empty)),
        (
            landscape.landscape_multiples(
                [{"cells": values(cells), "name": n, "checkpoint": n * 64, "range": (1.0, 9.0), "record": None} for n in "ab"],
                "Landscapes",
                checkpoint_href="/c/",
            ),
            landscape.landscape_multiples([], "Landscapes"),
        ),
        (topology.merge_tree_spec(values(nodes), values(segments)), topology.merge_tree_spec(empty, empty)),
        (topology.persistence_spec(values(pairs)), topology.persistence_spec(empty)),
        (hessian.hessian_spec(values(eig), values(esd)), hessian.hessian_spec(empty, empty)),
        (
            pair.curve_spec(values([{"curve": "bezier", "t": t, "loss": 1 - t, "error": t} for t in (0, 0.5, 1)])),
            pair.curve_spec(empty),
        ),
        (
            pair.layer_cka_spec(values([{"layer_a": "0: fc", "layer_b": "0: fc", "index_a": 0, "index_b": 0, "value": 1.0}])),
            pair.layer_cka_spec(empty),
        ),
        (
            pair.fields_spec(values([{"panel": "u (a)", "x0": 0, "x1": 1, "t0": 0, "t1": 1, "value": 0.5}])),
            pair.fields_spec(empty),
        ),
        (
            pair.confusion_spec(values([{"model": "a", "true_label": 0, "predicted_label": 0, "count": 3}]), 0.25),
            pair.confusion_spec(empty),
        ),
    ]
    for full, blank in specs:
        assert vlc.vegalite_to_svg(full).count("<path") > 0
        vlc.vegalite_to_svg(blank)
        json.dumps(full, allow_nan=False)


def test_mode_links_open_the_pair_view():
    """Oracle: the href Vega computes for a link is the prefix + both checkpoint ids (read back from the SVG,
    where vl-convert resolves it against its own base URL)."""
    link_rows = [
        {"checkpoint_a": "aa", "checkpoint_b": "bb", "mc": 0.2, "link": "well", "x": 0.0, "y": 0.0, "x2": 1.0, "y2": 1.0}
    ]
    spec = modes.modes_spec(values([]), values(link_rows), values([]), pair_href="/-/losslens/db/pair/")
    assert '/-/losslens/db/pair/aa/bb"' in vlc.vegalite_to_svg(spec)


def test_bundle_is_built_once(tmp_path):
    """Oracle: the file's mtime does not change on the second call; the text defines vegaEmbed offline."""
    path = ensure_bundle(tmp_path / "vega-bundle.js")
    stamp = path.stat().st_mtime_ns
    assert ensure_bundle(path).stat().st_mtime_ns == stamp
    text = path.read_text()
    assert "window.vegaEmbed" in text and len(text) > 500_000


def test_bundle_goes_to_the_cache_folder_never_into_the_package(tmp_path, monkeypatch):
    """Oracle: the file system. With LOSSLENS_CACHE_DIR set the bundle is written there; the installed
    package's folder gains no file."""
    import losslens

    package = Path(losslens.__file__).parent
    before = sorted(p.relative_to(package) for p in package.rglob("*") if "__pycache__" not in p.parts)
    monkeypatch.setenv("LOSSLENS_CACHE_DIR", str(tmp_path / "cache"))
    assert ensure_bundle() == tmp_path / "cache" / "vega-bundle.js"
    assert (tmp_path / "cache" / "vega-bundle.js").read_text().startswith("/* vega + vega-lite")
    after = sorted(p.relative_to(package) for p in package.rglob("*") if "__pycache__" not in p.parts)
    assert after == before


def test_surface_is_the_grid_with_its_provenance():
    """Oracle: the closed-form bowl 1 + a² + b² — the surface's height at (α, β) is that value, its colour
    log10 of it; the title states the landscape's provenance."""
    from losslens.views.surface import surface_figure, surface_html

    record = {
        "directions": "random",
        "normalization": "filter",
        "seed": 3,
        "orthogonalized": 1,
        "span": 0.5,
        "span_mode": "absolute",
        "steps": 21,
        "dims": 2,
        "samples": 0,
    }
    import base64

    def array(value):  # plotly.js typed-array JSON: {"dtype", "bdata" (base64), "shape"}
        if isinstance(value, dict):
            flat = np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
            return flat.reshape([int(n) for n in str(value.get("shape", len(flat))).split(",")])
        return np.array(value)

    fig = surface_figure(bowl_cells(), record)
    surf = fig["data"][0]
    a, b, z = array(surf["x"]), array(surf["y"]), array(surf["z"])
    np.testing.assert_allclose(z, 1 + a[None, :] ** 2 + b[:, None] ** 2)
    np.testing.assert_allclose(array(surf["surfacecolor"]), np.log10(z))
    title = fig["layout"]["title"]["text"]
    assert "filter-normalised" in title and "seed 3" in title and "±0.5 in units of each direction (absolute)" in title
    assert "21×21 grid" in title
    page = surface_html(fig)
    assert "Content-Security-Policy" in page and "<script src=" not in page  # plotly.js inline, nothing fetched


SLOTS = labels.around(11.0, 9.0)


def test_labels_at_one_place_share_one_label_and_the_others_take_a_free_slot():
    """Oracle: the boxes worked out by hand (10 px font: 12.5 px high, 6.2 px a character, 2 px apart). a and b
    lie within 4 px: one label "a, b" above a (the topmost); c, 12 px below a, would meet that label above
    itself (its box from y 93.75 reaches a's, which ends at 96.25), so it goes below; d is far off."""
    found = labels.place([(100, 100, "a"), (101, 100.5, "b"), (100, 112, "c"), None, (300, 100, "d")], SLOTS, 10)
    assert found == [("a, b", "above"), ("", ""), ("c", "below"), ("", ""), ("d", "above")]
    crowd = labels.place([(50, 50, f"p{i}") for i in range(5)], SLOTS, 10)
    assert crowd[0] == ("p0, p1, p2 +2 more", "above") and crowd[1:] == [("", "")] * 4


def test_labels_keep_off_fixed_text_and_other_marks():
    """Oracle: hand-worked boxes: fixed text over the place above a point sends its label below, and over
    both, to the right; with marks of half-width 38 px, a name is kept off another point's mark while a
    free place exists (above "low" would sit on "top"'s mark, so below)."""
    assert labels.place([(100, 100, "a")], SLOTS, 10, taken=[(90, 85, 110, 95)]) == [("a", "below")]
    assert labels.place([(100, 100, "a")], SLOTS, 10, taken=[(95, 85, 105, 95), (95, 105, 105, 118)]) == [("a", "right")]
    glyphs = labels.place([(100, 100, "top"), (100, 140, "low")], labels.around(46.0, 42.0), 11, marker=38)
    assert glyphs == [("top", "above"), ("low", "below")]


def test_label_pixels_are_where_vega_draws_the_points():
    """Oracle: Vega itself (vl-convert's SVG): the pixel where the labels are placed for each setting, in both
    scatter plots, is where Vega's symlog and linear scales draw its point (within 0.5 px)."""
    settings = [("alpha", 0.0, 0.99998, 1.0), ("charlie", 0.03, 0.9, 1.5), ("delta", -70.0, 0.93, 3.0), ("echo", -0.5, 0.95, 2.2)]
    rows = [
        {"setting_id": f"{i:016x}", "label": n, "mc": mc, "cka": c, "log_top_eigenvalue": s, "phase": "I", "gx": i, "gy": ""}
        for i, (n, mc, c, s) in enumerate(settings)
    ]
    thresholds = {"sharpness": {"measure": "log_top_eigenvalue", "value": 2.0}, "cka": {"value": 0.92}}
    svg = vlc.vegalite_to_svg(taxonomy.taxonomy_spec(values(rows), ["i"], thresholds=thresholds))
    expected = taxonomy.scatter_pixels(rows, thresholds)
    for plot in ("phase", "cka"):
        group = svg.split(f"{plot}_points_marks")[1].split("</g>")[0]
        drawn = {
            name: (float(x), float(y))
            for name, x, y in re.findall(r"setting: (\w+);.*?translate\(([-\d.e]+),([-\d.e]+)\)", group)
        }
        assert set(drawn) == {n for n, *_ in settings}
        for row, at in zip(rows, expected[plot]["at"], strict=True):
            assert drawn[row["label"]] == pytest.approx(at, abs=0.5), (plot, row["label"])
