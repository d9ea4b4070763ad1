"""The taxonomy's rules on synthetic metric tables, and the taxonomy metric and command end to end."""

from __future__ import annotations

import json
import math

import pytest
from typer.testing import CliRunner

from losslens.taxonomy import SettingSummary, assign_phases, phase_of, summarize

E = math.e


def summary(sid: str, eig: float, mc: float | None, cka: float | None, trace: float | None = 1.0) -> SettingSummary:
    return SettingSummary(sid, 2, 1, 0.1, 0.01, 0.05, eig, trace, mc, cka)


def test_phase_table_of_yang_et_al():
    """Closed form: the phase table — poor & sharp = I, well & sharp = II, poor & flat = III,
    well & flat = IV-A (low CKA) or IV-B (high CKA)."""
    assert phase_of(False, True, True) == "I"
    assert phase_of(True, True, False) == "II"
    assert phase_of(False, False, True) == "III"
    assert phase_of(True, False, False) == "IV-A"
    assert phase_of(True, False, True) == "IV-B"


def test_summaries_from_synthetic_tables():
    """Hand computation: means over seeds (loss, error, log of mean eigenvalue and trace) and over seed pairs
    within a setting (mc, CKA); a pair across settings is ignored; the PINN's eval rel. L2 stands in as test error."""
    checkpoints = {"a1": "A", "a2": "A", "b1": "B", "b2": "B"}
    performance = [
        {"checkpoint": "a1", "split": "train", "name": "loss", "value": 0.2},
        {"checkpoint": "a2", "split": "train", "name": "loss", "value": 0.4},
        {"checkpoint": "a1", "split": "train", "name": "error", "value": 0.1},
        {"checkpoint": "a2", "split": "train", "name": "error", "value": 0.3},
        {"checkpoint": "a1", "split": "test", "name": "error", "value": 0.5},
        {"checkpoint": "b1", "split": "eval", "name": "rel_l2", "value": 0.9},
    ]
    eig = {"a1": 2.0, "a2": 4.0, "b1": 1.0, "b2": 1.0}
    trace = {"a1": 10.0, "a2": 30.0, "b1": -1.0, "b2": 0.5}
    mc = [
        {"checkpoint_a": "a1", "checkpoint_b": "a2", "value": -3.0},
        {"checkpoint_a": "a1", "checkpoint_b": "b1", "value": 100.0},
    ]
    cka = [{"checkpoint_a": "a1", "checkpoint_b": "a2", "value": 0.8}, {"checkpoint_a": "b1", "checkpoint_b": "b2", "value": 0.6}]
    a, b = summarize(checkpoints, performance, eig, trace, mc, cka)
    assert a.train_loss == pytest.approx(0.3) and a.train_error == pytest.approx(0.2) and a.test_error == 0.5
    assert a.log_top_eigenvalue == pytest.approx(math.log(3.0)) and a.log_trace == pytest.approx(math.log(20.0))
    assert (a.mc, a.cka, a.n_pairs, a.n_checkpoints) == (-3.0, 0.8, 1, 2)
    assert b.test_error == 0.9 and b.train_loss is None
    assert b.log_trace is None  # mean trace −0.25: its log is undefined, never invented
    assert (b.mc, b.n_pairs, b.cka) == (None, 0, 0.6)


def test_phases_with_median_thresholds():
    """Hand computation: four settings with log λmax 1, 2, 3, 4 (median 2.5) and CKA 0.2, 0.9, 0.4, 0.8 (median 0.6)
    land in I, II, III/IV as the table says; the thresholds used are returned with each row."""
    rows = assign_phases(
        [
            summary("flat-low-cka", 1.0, 0.5, 0.2),
            summary("flat-poor", 2.0, -0.5, 0.9),
            summary("sharp-well", 3.0, 0.5, 0.4),
            summary("sharp-poor", 4.0, -0.5, 0.8),
        ]
    )
    phases = {r["setting_id"]: r["phase"] for r in rows}
    assert phases == {"flat-low-cka": "IV-A", "flat-poor": "III", "sharp-well": "II", "sharp-poor": "I"}
    t = rows[0]["thresholds"]
    assert t["sharpness"]["value"] == 2.5 and t["sharpness"]["measure"] == "log_top_eigenvalue"
    assert t["cka"]["value"] == pytest.approx(0.6) and t["mc"] == {
        "value": 0.0,
        "epsilon": 0.0,
        "rule": "well connected when mc >= -epsilon",
    }


def test_epsilon_band_and_ties():
    """Rule checks: mc = 0 is well connected; mc = −0.05 is poor without a band and well with ε = 0.1; a setting
    exactly at the sharpness threshold is flat and one exactly at the CKA threshold is high (IV-B)."""
    base = [summary("zero", 1.0, 0.0, 0.5), summary("small-barrier", 1.0, -0.05, 0.5), summary("sharp", 5.0, 1.0, 0.5)]
    plain = {r["setting_id"]: r for r in assign_phases(base, sharpness_threshold=1.0, cka_threshold=0.5)}
    assert plain["zero"]["phase"] == "IV-B" and plain["zero"]["well_connected"] == 1
    assert plain["small-barrier"]["phase"] == "III"
    assert plain["sharp"]["phase"] == "II"
    band = {r["setting_id"]: r for r in assign_phases(base, epsilon=0.1, sharpness_threshold=1.0, cka_threshold=0.5)}
    assert band["small-barrier"]["phase"] == "IV-B" and band["small-barrier"]["thresholds"]["mc"]["epsilon"] == 0.1
    # odd count, median threshold: the middle setting ties and is flat / high-CKA
    odd = {
        r["setting_id"]: r
        for r in assign_phases([summary("lo", 1.0, 1.0, 0.1), summary("mid", 2.0, 1.0, 0.5), summary("hi", 3.0, 1.0, 0.9)])
    }
    assert [odd[k]["phase"] for k in ("lo", "mid", "hi")] == ["IV-A", "IV-B", "II"]


def test_trace_as_sharpness_and_missing_inputs():
    """Rule checks: --sharpness trace uses log_trace; a setting without mc (one seed) or without a finite
    log trace gets no phase and a note saying what is missing, and does not move the thresholds."""
    rows = {
        r["setting_id"]: r
        for r in assign_phases(
            [
                summary("a", 9.0, 1.0, 0.9, trace=1.0),
                summary("b", 0.0, 1.0, 0.9, trace=3.0),
                summary("one-seed", 0.0, None, None, trace=2.0),
                summary("no-trace", 0.0, 1.0, 0.9, trace=None),
            ],
            sharpness="trace",
        )
    }
    assert rows["a"]["phase"] == "IV-B" and rows["b"]["phase"] == "II"
    assert rows["a"]["thresholds"]["sharpness"]["value"] == 2.0  # median of 1, 3, 2
    assert rows["one-seed"]["phase"] is None and "mc" in rows["one-seed"]["note"]
    assert rows["no-trace"]["phase"] is None and "log_trace" in rows["no-trace"]["note"]


@pytest.mark.slow
def test_compute_taxonomy_end_to_end_on_the_pinn_sweep(pinn_catalog):
    """Independent recomputation: `compute taxonomy` runs performance, hessian, connectivity, cka and similarity
    first; each stored setting row equals means taken here with plain SQL over those tables (loss, log of mean top
    eigenvalue, mean Bezier mc, mean CKA), and its phase follows the table with median thresholds over the two
    β settings. `losslens taxonomy --json` prints the same rows."""
    import numpy as np

    from losslens.cli import app
    from losslens.jobs import compute
    from losslens.store.catalog import open_catalog

    opts = [("k", "2"), ("trace-probes", "4"), ("no-esd", None), ("steps", "5"), ("points", "3")]
    report = compute(["taxonomy"], opts, catalog_path=pinn_catalog)
    assert report.failed == 0
    assert [m.metric for m in report.metrics][-1] == "taxonomy"
    with open_catalog(pinn_catalog, readonly=True) as cat:
        rows = {r["setting_id"]: r for r in cat.query("SELECT * FROM taxonomy")}
        settings = {s["id"]: s["label"] for s in cat.query("SELECT * FROM settings")}

        def per_setting(sql: str) -> dict[str, float]:
            return {r["sid"]: r["v"] for r in cat.query(sql)}

        ckpt = "SELECT c.sha256, m.setting_id AS sid FROM checkpoints c JOIN models m ON m.id = c.model_id"
        loss = per_setting(
            f"SELECT k.sid, AVG(p.value) AS v FROM performance p JOIN ({ckpt}) k ON k.sha256 = p.checkpoint "
            "WHERE p.split = 'train' AND p.name = 'loss' GROUP BY k.sid"
        )
        eig = per_setting(
            f"SELECT k.sid, AVG(h.value) AS v FROM hessian_eigenvalues h JOIN ({ckpt}) k ON k.sha256 = h.checkpoint "
            "WHERE h.which = 'largest' AND h.rank = 0 GROUP BY k.sid"
        )
        mc = per_setting(
            f"SELECT k.sid, AVG(p.value) AS v FROM pair_metrics p JOIN ({ckpt}) k ON k.sha256 = p.checkpoint_a "
            "WHERE p.metric = 'mc' AND p.curve = 'bezier' GROUP BY k.sid"
        )
        cka = per_setting(
            f"SELECT k.sid, AVG(p.value) AS v FROM pair_metrics p JOIN ({ckpt}) k ON k.sha256 = p.checkpoint_a "
            "WHERE p.metric = 'cka' GROUP BY k.sid"
        )
    assert set(rows) == set(settings) and len(rows) == 2
    tau_s = float(np.median([math.log(v) for v in eig.values()]))
    tau_c = float(np.median(list(cka.values())))
    for sid, row in rows.items():
        assert row["train_loss"] == pytest.approx(loss[sid]) and row["mc"] == pytest.approx(mc[sid])
        assert row["log_top_eigenvalue"] == pytest.approx(math.log(eig[sid])) and row["cka"] == pytest.approx(cka[sid])
        sharp, well, high = math.log(eig[sid]) > tau_s, mc[sid] >= 0, cka[sid] >= tau_c
        expected = ("II" if sharp else ("IV-B" if high else "IV-A")) if well else ("I" if sharp else "III")
        assert row["phase"] == expected and row["n_pairs"] == 1 and row["n_checkpoints"] == 2
        thresholds = json.loads(row["thresholds_json"])
        assert thresholds["sharpness"]["value"] == pytest.approx(tau_s) and thresholds["cka"]["value"] == pytest.approx(tau_c)
        assert all(json.loads(row["sources_json"])[m] for m in ("performance", "hessian", "connectivity", "cka"))
    out = CliRunner().invoke(app, ["taxonomy", "--catalog", str(pinn_catalog), "--json"])
    assert out.exit_code == 0, out.output
    printed = {r["setting"]: r["phase"] for r in json.loads(out.stdout)}
    assert printed == {settings[sid]: r["phase"] for sid, r in rows.items()}
    table = CliRunner().invoke(app, ["taxonomy", "--catalog", str(pinn_catalog)])
    assert table.exit_code == 0, table.output
    assert all(label in table.stdout for label in settings.values())
    assert all(r["phase"] in table.stdout for r in rows.values())


def test_taxonomy_command_without_results_fails_with_a_hint(pinn_catalog):
    """CLI contract: before `compute taxonomy`, the command exits 1 with one error line naming the fix."""
    from losslens.cli import app

    out = CliRunner().invoke(app, ["taxonomy", "--catalog", str(pinn_catalog)])
    assert out.exit_code == 1 and "losslens compute taxonomy" in out.output
