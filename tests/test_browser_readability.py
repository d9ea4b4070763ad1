"""What the charts draw stays readable, checked on Chromium's own layout: no two text marks overlap (the
point labels of the taxonomy's plots and of the MDS map, the Hessian bars' values, the confusion matrices'
counts). The specs come from the real builders with rows placed to collide (settings at one point, modes on
top of each other, long numbers) and are drawn by the offline page of ``export chart --format html``
(vega-embed from vl-convert's bundle)."""

from __future__ import annotations

import pytest
from helpers import WatchedPage, drawn_labels, overlapping_labels

from losslens.export.chart import to_html
from losslens.views import hessian, modes, pair, taxonomy
from losslens.views.source import values

pytestmark = pytest.mark.slow  # Chromium


def drawn(browser, spec, name):
    """The spec drawn offline in a new page (no request may leave it)."""
    w = WatchedPage(browser, {"width": 1600, "height": 1200}, lambda url: url.startswith(("about:", "data:")), "readability")
    w.page.set_content(to_html(spec, name))
    w.page.wait_for_selector('#chart[data-rendered="1"]', timeout=30_000)
    return w


def names_in(texts):
    """The names a set of labels shows ("a, b +2 more" shows a and b)."""
    return {n.split(" +")[0] for t in texts for n in t.split(", ")}


SETTINGS = [
    # alpha and bravo at one point of both plots, charlie a few pixels away, delta far off
    {"label": "alpha", "mc": 0.0, "cka": 0.99998, "log_top_eigenvalue": 1.0},
    {"label": "bravo", "mc": 0.0, "cka": 0.99998, "log_top_eigenvalue": 1.0},
    {"label": "charlie", "mc": 0.001, "cka": 0.99997, "log_top_eigenvalue": 1.01},
    {"label": "delta", "mc": -70.0, "cka": 0.93, "log_top_eigenvalue": 3.0},
]


def test_taxonomy_point_labels_never_overlap(browser):
    """Oracle: the text boxes Chromium lays out: no two overlap (nor the threshold lines' labels), and every
    setting's name is written in both scatter plots, the coincident ones in one shared label."""
    rows = [
        {**s, "setting_id": f"{i:016x}", "phase": "IV-B", "gx": i, "gy": "", "train_loss": 0.1, "test_error": 0.1}
        for i, s in enumerate(SETTINGS)
    ]
    thresholds = {"sharpness": {"measure": "log_top_eigenvalue", "value": 2.0, "source": "given"}, "cka": {"value": 0.99}}
    w = drawn(browser, taxonomy.taxonomy_spec(values(rows), ["i"], thresholds=thresholds), "taxonomy")
    assert overlapping_labels(w.page, "#chart") == []
    texts = [t[0] for t in drawn_labels(w.page, "#chart")]
    assert {"alpha", "bravo", "charlie", "delta"} <= names_in(texts)
    assert sum(t in ("alpha, bravo", "bravo, alpha") for t in texts) == 2  # one shared label per plot
    w.check("taxonomy")


def test_mode_names_never_overlap(browser):
    """Oracle: Chromium's text boxes: three modes at one point of the MDS map and a fourth beside them get
    labels that do not overlap, and every mode is named."""
    rows = [
        {"checkpoint": c * 64, "name": f"seed{i}", "seed": i, "x": x, "y": y, "train_loss": 0.1, "test_error": 0.1}
        for i, (c, x, y) in enumerate([("a", 0.0, 0.0), ("b", 0.0, 0.0), ("c", 1e-9, 0.0), ("d", 0.02, 0.01), ("e", 0.3, -0.2)])
    ]
    w = drawn(browser, modes.modes_spec(values(rows), values([]), values([])), "modes")
    assert overlapping_labels(w.page, "#chart") == []
    assert {f"seed{i}" for i in range(5)} <= names_in(t[0] for t in drawn_labels(w.page, "#chart"))
    w.check("modes")


def test_bar_values_and_matrix_counts_never_overlap(browser):
    """Oracle: Chromium's text boxes: long eigenvalues over neighbouring bars and five-digit counts in
    neighbouring cells of a confusion matrix are each drawn without touching the next."""
    eig = [12345.6, -9876.54, 0.000123, -1.5e-7, 654.321, -0.00421, 99.99, 1e-9, -3.333, 2.222]
    rows = [{"which": "largest", "rank": k, "value": v, "residual": 1e-6} for k, v in enumerate(eig)]
    rows += [{"which": "smallest", "rank": k, "value": -v, "residual": 1e-6} for k, v in enumerate(eig)]
    w = drawn(browser, hessian.hessian_spec(values(rows), values([])), "hessian")
    assert len(drawn_labels(w.page, "#chart")) == 20
    texts = {t[0] for t in drawn_labels(w.page, "#chart")}
    # Plain or exponent notation, never SI prefixes ("814m" would read as 814 million).
    assert {"1.23e+4", "654", "0.000123", "1e-9"} <= texts and not any(t[-1] in "kmµnpMG" for t in texts), texts
    assert overlapping_labels(w.page, "#chart") == []
    w.check("hessian")
    cells = [
        {"model": m, "true_label": t, "predicted_label": p, "count": 98765 if t == p else 12345}
        for m in ("a", "b")
        for t in range(10)
        for p in range(10)
    ]
    w = drawn(browser, pair.confusion_spec(values(cells)), "confusion")
    assert len(drawn_labels(w.page, "#chart")) == 200
    assert overlapping_labels(w.page, "#chart") == []
    w.check("confusion")
