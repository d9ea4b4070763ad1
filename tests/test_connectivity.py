"""Mode connectivity: curves, the mc score, BatchNorm re-estimation, and the metric end to end."""

from __future__ import annotations

import copy
import json
import math
import sqlite3

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import PINN_KWARGS

from losslens.connectivity import coefficients, fit_bends, mode_connectivity, point_on_curve
from losslens.connectivity.fit import lbfgs_fall, plateau, settled, stopping_step
from losslens.connectivity.metric import ConnectivityParams, PathEvaluator, profile
from losslens.jobs import compute, load_subject
from losslens.jobs.context import CHECKPOINT_SQL
from losslens.models import pinn_mlp
from losslens.problems import convection
from losslens.store.catalog import open_catalog


def ring_loss(params: dict[str, torch.Tensor], batch: object = None) -> torch.Tensor:
    """Two symmetric minima (±1, 0) on a circular valley centred at (0, −0.75) with radius 1.25.

    The straight line between them crosses (0, 0), where the loss is exactly (0.5625 − 1.5625)² = 1;
    the valley's upper arc stays below 0.1 · 0.5² = 0.025."""
    w1, w2 = params["w"][0], params["w"][1]
    return (w1**2 + (w2 + 0.75) ** 2 - 1.5625) ** 2 + 0.1 * w2**2


def _records(db, experiment=None):
    with open_catalog(db, readonly=True) as cat:
        return cat.query(CHECKPOINT_SQL + " ORDER BY s.label, c.seed")


def test_curve_coefficients_sum_to_one_and_hit_the_ends():
    """Closed form: every curve's weights sum to 1, equal (1,0,…) at t=0 and (…,0,1) at t=1; the quadratic
    Bezier weights are (1−t)², 2t(1−t), t²."""
    for curve, k in (("linear", 0), ("bezier", 1), ("bezier", 3), ("polychain", 1), ("polychain", 3)):
        for t in np.linspace(0, 1, 9):
            assert math.isclose(sum(coefficients(curve, float(t), k)), 1.0, abs_tol=1e-12)
        assert coefficients(curve, 0.0, k)[0] == 1.0 and coefficients(curve, 1.0, k)[-1] == 1.0
    assert coefficients("bezier", 0.3, 1) == pytest.approx([0.49, 0.42, 0.09])


def test_untrained_bends_are_the_linear_path():
    """Invariance: bends initialised on the line reproduce the linear path for every curve (Bernstein
    polynomials reproduce linear functions)."""
    a, b = {"w": torch.tensor([-1.0, 2.0])}, {"w": torch.tensor([3.0, 0.5])}
    for curve in ("bezier", "polychain"):
        for k in (1, 3):
            bends = fit_bends(curve, a, b, ring_loss, lambda: iter([None]), bends=k, steps=0, lr=0.01, momentum=0.9, seed=0).bends
            for t in (0.0, 0.2, 0.5, 0.9, 1.0):
                line = point_on_curve("linear", t, a, b, [])["w"]
                assert torch.allclose(point_on_curve(curve, t, a, b, bends)["w"], line, atol=1e-6)


def test_mc_score_closed_form():
    """Closed form: mc = ½(e0+e1) − e(t*), t* maximising |e(t) − ½(e0+e1)|; a constant profile gives 0."""
    assert mode_connectivity([1.0, 3.0, 2.0]) == (-1.5, 1)
    assert mode_connectivity([4.0, 1.0, 3.0, 4.0]) == (3.0, 1)
    assert mode_connectivity([2.0, 2.0, 2.0]) == (0.0, 0)


def test_bezier_removes_the_barrier_between_symmetric_minima():
    """Known barrier: on the ring loss the linear path peaks at exactly 1 (mc = −1 < 0); the fitted quadratic
    Bezier curve follows the valley, so its maximum loss drops far below 1 and its mc rises."""
    a, b = {"w": torch.tensor([-1.0, 0.0])}, {"w": torch.tensor([1.0, 0.0])}
    ts = np.linspace(0, 1, 21)
    linear = [float(ring_loss(point_on_curve("linear", float(t), a, b, []))) for t in ts]
    mc_linear, star = mode_connectivity(linear)
    assert mc_linear == pytest.approx(-1.0, abs=1e-6) and ts[star] == 0.5
    bends, trace, *_ = fit_bends(
        "bezier", a, b, ring_loss, lambda: iter([None]), bends=1, steps=300, lr=0.01, momentum=0.9, seed=0
    )
    curve = [float(ring_loss(point_on_curve("bezier", float(t), a, b, bends))) for t in ts]
    assert max(curve) < 0.1 < max(linear)
    assert mode_connectivity(curve)[0] > -0.1
    assert np.mean(trace[-20:]) < np.mean(trace[:20])


def test_plateau_rule_closed_form():
    """Closed form: the relative fall of the last window's mean from the window before; nan until two windows."""
    assert plateau([4.0, 4.0, 2.0, 2.0], 2) == 0.5
    assert plateau([9.0, 1.0, 3.0, 3.0, 4.0], 2) == pytest.approx((2.0 - 3.5) / 2.0)
    assert math.isnan(plateau([1.0, 2.0, 3.0], 2))


def test_end_rules_closed_form():
    """Closed forms: the window rule holds when the loss moved by under tol either way (a rise is not a plateau;
    nan and tol 0 never hold); L-BFGS's fall is the best value's over the last max(5, n // 10) evaluations, against
    the first evaluation when there are no more."""
    assert settled(0.005, 0.01) and settled(-0.005, 0.01)
    assert not settled(-0.5, 0.01) and not settled(0.02, 0.01) and not settled(math.nan, 1.0) and not settled(0.0, 0.0)
    assert lbfgs_fall([10.0, 12.0, 8.0, 9.0, 7.0, 7.0, 7.0, 7.0, 7.0, 7.0]) == 0.0  # best 7 since the 5th of 10
    assert lbfgs_fall([10.0, 12.0, 8.0, 9.0, 7.0, 7.0, 7.0, 7.0, 7.0, 6.0]) == pytest.approx(1 / 7)
    assert lbfgs_fall([4.0, 3.0, 2.0]) == 0.5  # 3 evaluations: against the first
    assert lbfgs_fall([float(v) for v in range(100, 40, -1)]) == pytest.approx(6 / 47)  # 60: the last 6
    assert math.isnan(lbfgs_fall([]))


def _decay_stop(floor: float, amplitude: float, tau: float, window: int, tol: float) -> int:
    """Closed form: on L(n) = floor + A·exp(−n/τ) the mean of window k (steps kW … kW+W−1) is floor + A·c·rᵏ with
    r = exp(−W/τ), c = (1 − r) / (W·(1 − exp(−1/τ))); the rule holds at n = (k+1)·W once the window means fall by
    less than tol: A·c·r^(k−1)·(1 − r) < tol·(floor + A·c·r^(k−1))."""
    r, c = math.exp(-window / tau), (1 - math.exp(-window / tau)) / (window * (1 - math.exp(-1 / tau)))
    k = 1
    while amplitude * c * r ** (k - 1) * (1 - r) >= tol * (floor + amplitude * c * r ** (k - 1)):
        k += 1
    return (k + 1) * window


def test_plateau_window_on_a_noisy_synthetic_fit_curve():
    """Why the modular study's bends use 100-step windows. The synthetic fit curve is the stored modular fits' shape at
    weight decay 2 (loss ≈ 3.5 falling to 3.2, per-step spread ≈ 0.1 of the mean from one random t a step):
    L(n) = 3 + 1.5·exp(−n/200), times 1 + 0.1·N(0, 1) noise. Noise-free, the rule stops where the closed form says.
    With the noise (40 seeded curves), 20-step windows (standard error of a window mean ≈ 0.1/√20 ≈ 2 %, twice the
    1 % tolerance) stop three in four fits before half its noise-free step (30 of these 40; a rise within the tolerance
    counts as much as a fall, so noise stops a fit on either side), while the loss is still over a quarter above its
    floor; 100-step windows (≈ 1 %) stop none that early, within 2 % of the floor."""
    n = np.arange(3000)
    clean = 3.0 + 1.5 * np.exp(-n / 200)
    for window in (20, 100):
        assert stopping_step(clean, window, 0.01) == _decay_stop(3.0, 1.5, 200, window, 0.01)
    assert stopping_step(clean, 100, 0.0) is None and stopping_step(clean[:150], 100, 0.01) is None
    for window, early_at_least, early_at_most, excess in ((20, 0.7, 1.0, (0.25, 1.0)), (100, 0.0, 0.0, (0.0, 0.02))):
        noise_free = stopping_step(clean, window, 0.01)
        stops = np.array(
            [
                stopping_step(clean * (1 + 0.1 * np.random.default_rng(seed).standard_normal(n.size)), window, 0.01)
                for seed in range(40)
            ]
        )
        early = float(np.mean(stops < noise_free / 2))
        above = float(np.median((clean[stops - 1] - 3.0) / 3.0))
        assert early_at_least <= early <= early_at_most, (window, early)
        assert excess[0] <= above <= excess[1], (window, above)


def test_sgd_bend_stops_at_its_plateau_and_says_so():
    """Stopping rule, checked on the recorded trace: SGD stops at the first window boundary where the window mean
    moved by less than tol either way (recomputed here with numpy), long before the budget; without the rule it runs
    the whole budget and is not called converged."""
    a, b = {"w": torch.tensor([-1.0, 0.0])}, {"w": torch.tensor([1.0, 0.0])}
    common = dict(bends=1, lr=0.01, momentum=0.9, seed=0)
    fit = fit_bends("bezier", a, b, ring_loss, lambda: iter([None]), steps=5000, window=20, tol=0.01, **common)
    trace = np.asarray(fit.trace)
    assert fit.converged and fit.steps == len(trace) < 5000 and fit.steps % 20 == 0
    fall = lambda n: (trace[n - 40 : n - 20].mean() - trace[n - 20 : n].mean()) / trace[n - 40 : n - 20].mean()  # noqa: E731
    assert abs(fall(fit.steps)) < 0.01 and all(abs(fall(n)) >= 0.01 for n in range(40, fit.steps, 20))
    assert fit.rel_change == pytest.approx(fall(fit.steps))
    assert stopping_step(fit.trace, 20, 0.01) == fit.steps  # the replay on the stored curve agrees with the live rule
    budget = fit_bends("bezier", a, b, ring_loss, lambda: iter([None]), steps=300, **common)
    assert not budget.converged and budget.steps == 300 and math.isnan(budget.rel_change)


def test_adam_lbfgs_bend_reaches_the_scanned_optimum():
    """Oracle: a dense scan. By symmetry the best quadratic Bezier bend between (±1, 0) on the ring loss is (0, y*);
    y* minimises the midpoint-rule objective over 10 t, found here by scanning y. Adam then L-BFGS lands on it well
    within its budget, and its best objective no longer falls over its last evaluations (converged)."""
    a, b = {"w": torch.tensor([-1.0, 0.0])}, {"w": torch.tensor([1.0, 0.0])}
    ts = [(i + 0.5) / 10 for i in range(10)]
    ys = np.linspace(0.5, 1.5, 20001)
    objective = [
        np.mean(
            [
                float(ring_loss(point_on_curve("bezier", t, a, b, [{"w": torch.tensor([0.0, y], dtype=torch.float64)}])))
                for t in ts
            ]
        )
        for y in ys[::20]
    ]
    coarse = ys[::20][int(np.argmin(objective))]
    fine = ys[np.abs(ys - coarse) <= 1e-3]
    objective = [
        np.mean(
            [
                float(ring_loss(point_on_curve("bezier", t, a, b, [{"w": torch.tensor([0.0, y], dtype=torch.float64)}])))
                for t in ts
            ]
        )
        for y in fine
    ]
    y_star = fine[int(np.argmin(objective))]
    fit = fit_bends(
        "bezier",
        a,
        b,
        ring_loss,
        lambda: iter([None]),
        bends=1,
        steps=50,
        lr=0.01,
        momentum=0.0,
        seed=0,
        optimizer="adam-lbfgs",
        lbfgs_iterations=200,
    )
    bend = fit.bends[0]["w"]
    assert fit.converged and fit.steps < 50 + 200 and len(fit.trace) - 50 < 200  # stopped on its own tests
    assert abs(float(bend[0])) < 1e-3 and float(bend[1]) == pytest.approx(y_star, abs=1e-3)


def _last_window_oracle(curve: np.ndarray, window: int, tol: float) -> tuple[float, bool]:
    """The documented end rule, by hand, on a stored SGD/Adam fit curve: the mean of its last ``window`` values against
    the mean of the ``window`` before them; converged iff the relative change is under ``tol`` either way."""
    last, previous = (
        float(np.mean(curve[len(curve) - window :])),
        float(np.mean(curve[len(curve) - 2 * window : len(curve) - window])),
    )
    fall = (previous - last) / previous
    return fall, abs(fall) < tol


def _lbfgs_end_oracle(evaluations: np.ndarray, budget: int, tol: float) -> tuple[float, bool]:
    """The documented end rule, by hand, on the L-BFGS part of a stored fit curve: the best value so far, its fall over
    the last w = max(5, n // 10) of n evaluations relative to the best before them (the first evaluation when n ≤ w);
    converged iff fewer evaluations than the iteration budget (so torch stopped on its own tests, before both of its
    budgets) or, with more than w evaluations, that fall is under ``tol``."""
    best = np.minimum.accumulate(evaluations)
    tail = max(5, len(best) // 10)
    before = best[-tail - 1] if len(best) > tail else best[0]
    fall = float((before - best[-1]) / before)
    return fall, len(best) < budget or (len(best) > tail and fall < tol)


def _fits(db, **options) -> list[dict]:
    """Run connectivity on the tiny PINN catalog with ``options`` and read back, per pair, the stored fit curve (the
    ``fit_loss`` artifact) and the stored ``fit_converged`` / ``fit_rel_change`` of exactly that run."""
    opts = [(k.replace("_", "-"), str(v)) for k, v in {"points": 3, **options}.items()]
    report = compute(["connectivity"], opts, catalog_path=db)
    assert report.failed == 0 and report.metrics[0].done == 2
    with open_catalog(db, readonly=True) as cat:
        runs = [
            r
            for r in cat.query("SELECT id, params_json FROM metric_runs WHERE metric = 'connectivity' AND status = 'done'")
            if all(json.loads(r["params_json"])[k] == v for k, v in options.items())
        ]
        assert len(runs) == 2
        out = []
        for run in runs:
            values = {
                r["metric"]: r["value"]
                for r in cat.query(
                    "SELECT metric, value FROM pair_metrics WHERE run_id = ? AND metric LIKE 'fit_%'", (run["id"],)
                )
            }
            out.append({"curve": np.asarray(cat.run_artifact(run["id"], "fit_loss"), dtype=float), **values})
    return out


def test_sgd_fit_flag_describes_the_fits_end(pinn_catalog):
    """Oracle: the end rule by hand on each stored fit curve (tiny PINN, both pairs). SGD stops at the first window whose
    mean moved by under tol, so its stored curve ends on a settled window (flag 1); cut after two windows while its
    loss still falls by more than tol (few steps), the flag is 0."""
    for fit in _fits(pinn_catalog, optimizer="sgd", lr=0.1, steps=2000, window=20, tol=0.02):
        fall, converged = _last_window_oracle(fit["curve"], 20, 0.02)
        assert converged and len(fit["curve"]) < 2000 and len(fit["curve"]) % 20 == 0
        assert fit["fit_converged"] == 1.0 and fit["fit_rel_change"] == pytest.approx(fall, rel=1e-9, abs=1e-12)
    for fit in _fits(pinn_catalog, optimizer="sgd", lr=0.1, steps=100, window=50, tol=0.01):
        fall, converged = _last_window_oracle(fit["curve"], 50, 0.01)
        assert not converged and fall > 0.01 and len(fit["curve"]) == 100
        assert fit["fit_converged"] == 0.0 and fit["fit_rel_change"] == pytest.approx(fall, rel=1e-9, abs=1e-12)


@pytest.mark.slow
def test_adam_fit_flag_is_the_last_windows_not_any_windows(pinn_catalog):
    """The fault this guards against: Adam runs its whole budget, and the flag used to stay 1 once any window had met
    the rule. Oracle: the end rule by hand on each stored curve (tiny PINN, both pairs). With 5-step windows an early
    window meets tol (checked on the curve) while the last one does not: the flag must be 0. A high learning rate
    over 40 steps ends moving: 0. 1,000 steps at lr 0.05 end settled within tol 0.1: 1."""
    for fit in _fits(pinn_catalog, optimizer="adam-lbfgs", lbfgs_iterations=0, lr=0.01, steps=200, window=5, tol=0.01):
        curve = fit["curve"]
        fall, converged = _last_window_oracle(curve, 5, 0.01)
        assert any(_last_window_oracle(curve[:n], 5, 0.01)[1] for n in range(10, len(curve), 5))  # an early window met it
        assert len(curve) == 200 and not converged
        assert fit["fit_converged"] == 0.0 and fit["fit_rel_change"] == pytest.approx(fall, rel=1e-9, abs=1e-12)
    for fit in _fits(pinn_catalog, optimizer="adam-lbfgs", lbfgs_iterations=0, lr=0.5, steps=40, window=20, tol=0.05):
        fall, converged = _last_window_oracle(fit["curve"], 20, 0.05)
        assert not converged and fit["fit_converged"] == 0.0
        assert fit["fit_rel_change"] == pytest.approx(fall, rel=1e-9, abs=1e-12)
    for fit in _fits(pinn_catalog, optimizer="adam-lbfgs", lbfgs_iterations=0, lr=0.05, steps=1000, window=200, tol=0.1):
        fall, converged = _last_window_oracle(fit["curve"], 200, 0.1)
        assert converged and fit["fit_converged"] == 1.0
        assert fit["fit_rel_change"] == pytest.approx(fall, rel=1e-9, abs=1e-12)


@pytest.mark.slow
def test_lbfgs_fit_flag_describes_its_last_evaluations(pinn_catalog):
    """Oracle: the L-BFGS end rule by hand on the stored curve's L-BFGS part (after the Adam steps, which Adam always
    takes in full; tiny PINN, both pairs). Adam then a budget of 3 L-BFGS iterations: torch stops after 2, when its 3
    evaluations (1.25 per iteration) run out, which used to count as converged; 3 evaluations show no plateau: 0.
    L-BFGS alone (no Adam steps), 300 iterations: its best objective still falls by about 12 % over the last tenth of
    its evaluations (the untrained PINN's bend keeps finding lower loss), so a loose tol 0.2 holds there: 1."""
    for fit in _fits(pinn_catalog, optimizer="adam-lbfgs", lr=0.01, steps=50, lbfgs_iterations=3, t_points=5, tol=0.01):
        fall, converged = _lbfgs_end_oracle(fit["curve"][50:], 3, 0.01)
        assert len(fit["curve"]) == 53 and not converged and fit["fit_converged"] == 0.0
        assert fit["fit_rel_change"] == pytest.approx(fall, rel=1e-9, abs=1e-12)
    for fit in _fits(pinn_catalog, optimizer="adam-lbfgs", steps=0, lbfgs_iterations=300, t_points=5, tol=0.2):
        fall, converged = _lbfgs_end_oracle(fit["curve"], 300, 0.2)
        assert len(fit["curve"]) >= 300 and 0.01 < fall < 0.2 and converged and fit["fit_converged"] == 1.0
        assert fit["fit_rel_change"] == pytest.approx(fall, rel=1e-9, abs=1e-12)


def test_identical_endpoints_give_zero_mc(pinn_catalog):
    """Invariance: when θ0 = θ1 every untrained curve is the constant θ0, so e(t) is constant and mc = 0."""
    rec = _records(pinn_catalog)[0]
    s = load_subject(rec, torch.device("cpu"))
    evaluator = PathEvaluator(s, ConnectivityParams())
    ts = np.linspace(0, 1, 5)
    for curve in ("linear", "bezier", "polychain"):
        bends = (
            fit_bends(
                curve,
                s.params,
                s.params,
                evaluator.train_loss,
                evaluator.train_batches,
                bends=1,
                steps=0,
                lr=0.01,
                momentum=0.9,
                seed=0,
            ).bends
            if curve != "linear"
            else []
        )
        rows = profile(evaluator, curve, s.params, s.params, bends, ts)
        mc, _ = mode_connectivity([loss for _, loss, _ in rows])
        assert abs(mc) < 1e-6 * max(1.0, rows[0][1])


def test_linear_profile_equals_direct_evaluation(pinn_catalog):
    """Direct evaluation: each stored linear-path point equals the PINN loss and rel. L2 of a freshly built model
    loaded with (1−t)·θa + t·θb, and mc (on the loss) matches the closed form over those points."""
    report = compute(["connectivity"], [("curve", "linear"), ("points", "5")], catalog_path=pinn_catalog)
    assert report.failed == 0 and report.metrics[0].done == 2
    with open_catalog(pinn_catalog, readonly=True) as cat:
        pair = cat.one("SELECT * FROM pair_metrics WHERE metric = 'mc' LIMIT 1")
        rows = cat.query("SELECT * FROM curve_points WHERE run_id = ? ORDER BY t", (pair["run_id"],))
        paths = {r["sha256"]: (r["path"], r["problem_json"]) for r in cat.query(CHECKPOINT_SQL)}
    assert pair["quantity"] == "loss" and pair["curve"] == "linear" and len(rows) == 5
    (path_a, problem_json), (path_b, _) = paths[pair["checkpoint_a"]], paths[pair["checkpoint_b"]]
    sd_a, sd_b = torch.load(path_a, weights_only=True)["state_dict"], torch.load(path_b, weights_only=True)["state_dict"]
    problem = convection(**json.loads(problem_json)["kwargs"])
    direct = []
    for row in rows:
        model = pinn_mlp(**PINN_KWARGS)
        model.load_state_dict({k: (1 - row["t"]) * sd_a[k] + row["t"] * sd_b[k] for k in sd_a})
        state = dict(model.named_parameters())
        loss = float(problem.loss(model, state, problem.batch))
        direct.append(loss)
        assert row["loss"] == pytest.approx(loss, rel=1e-5)
        assert row["error"] == pytest.approx(problem.relative_l2(model, state), rel=1e-5)
    assert pair["value"] == pytest.approx(mode_connectivity(direct)[0], rel=1e-5)


def test_batch_norm_statistics_are_recomputed_along_the_curve(digits_catalog):
    """Direct computation: after re-estimation, the stem BatchNorm's running mean at θ(t) equals the average over
    training batches of the per-channel batch means of conv1's output at θ(t); the statistics differ between
    t = 0, ½, 1; the subject's own buffers are unchanged."""
    recs = [r for r in _records(digits_catalog) if r["setting_label"] == _records(digits_catalog)[0]["setting_label"]]
    a, b = (load_subject(r, torch.device("cpu")) for r in recs[:2])
    before = {k: v.clone() for k, v in a.buffers.items()}
    evaluator = PathEvaluator(a, ConnectivityParams(bn_batches=3, batch_size=64))
    means = []
    for t in (0.0, 0.5, 1.0):
        theta = point_on_curve("linear", t, a.params, b.params, [])
        buffers = evaluator.buffers_at(theta)
        batch_means = [
            F.conv2d(x, theta["conv1.weight"], padding=1).mean(dim=(0, 2, 3))
            for x, _ in a.problem.batches("train", batch_size=64, limit=3)
        ]
        assert torch.allclose(buffers["bn1.running_mean"], torch.stack(batch_means).mean(0), atol=1e-5)
        assert int(buffers["bn1.num_batches_tracked"]) == 3
        means.append(buffers["layers.4.bn2.running_var"])
    assert not torch.allclose(means[0], means[1]) and not torch.allclose(means[1], means[2])
    for k, v in a.buffers.items():
        assert torch.equal(v, before[k])


def test_bezier_run_on_batch_norm_models_fills_tables_and_stores_the_bend(digits_catalog):
    """Independent oracle for the stored curve point at t = ½: a fresh copy of the module loaded (load_state_dict)
    with the quadratic Bézier point ¼θa + ½·bend + ¼θb (the bend read from the artifact in named_parameters
    order), its BatchNorm statistics re-estimated by torch's own train-mode passes (momentum=None: the cumulative
    average) over the first 2 training batches of 32, then eval-mode cross-entropy and error counted over the
    same batches. Rows say mc is on training error (%), and mc matches the closed form over the stored profile."""
    opts = [("steps", "3"), ("points", "3"), ("bn-batches", "2"), ("eval-batches", "2"), ("batch-size", "32")]
    report = compute(["connectivity"], opts, catalog_path=digits_catalog)
    assert report.failed == 0 and report.metrics[0].done == 2
    with open_catalog(digits_catalog, readonly=True) as cat:
        pairs = cat.query("SELECT * FROM pair_metrics WHERE metric = 'mc' ORDER BY run_id, curve")
        fits = cat.query("SELECT * FROM pair_metrics WHERE metric != 'mc' ORDER BY run_id, metric")
        run_id = pairs[0]["run_id"]
        points = cat.query("SELECT * FROM curve_points WHERE run_id = ? AND curve = 'bezier' ORDER BY t", (run_id,))
        bends = cat.run_artifact(run_id, "bends")
        fit_loss = cat.run_artifact(run_id, "fit_loss")
        run = cat.one("SELECT * FROM metric_runs WHERE id = ?", (run_id,))
        records = {r["sha256"]: r for r in cat.query(CHECKPOINT_SQL)}
    assert {(p["curve"], p["quantity"]) for p in pairs} == {("bezier", "error"), ("linear", "error")}
    assert len(fit_loss) == 3 and bends.shape[0] == 1
    # 3 SGD steps are less than two windows of the plateau rule: the fit is recorded as not converged.
    assert [(f["metric"], f["value"]) for f in fits if f["run_id"] == run_id] == [
        ("fit_converged", 0.0),
        ("fit_rel_change", None),
    ]
    bezier = next(p for p in pairs if p["run_id"] == run_id and p["curve"] == "bezier")
    assert bezier["value"] == pytest.approx(mode_connectivity([100 * p["error"] for p in points])[0])
    a = load_subject(records[run["checkpoint"]], torch.device("cpu"))
    b = load_subject(records[run["checkpoint_b"]], torch.device("cpu"))
    model = copy.deepcopy(a.model)
    flat, offset, theta = torch.as_tensor(bends[0]), 0, {}
    for name, p in model.named_parameters():
        bend = flat[offset : offset + p.numel()].reshape(p.shape).to(p.dtype)
        offset += p.numel()
        theta[name] = 0.25 * a.params[name] + 0.5 * bend + 0.25 * b.params[name]
    assert offset == flat.numel()
    model.load_state_dict(theta, strict=False)
    batches = list(a.problem.batches("train", batch_size=32, limit=2))
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None
    with torch.no_grad():
        model.train()
        for x, _ in batches:
            model(x)
        model.eval()
        n = sum(len(y) for _, y in batches)
        loss = sum(float(F.cross_entropy(model(x), y, reduction="sum")) for x, y in batches) / n
        error = sum(int((model(x).argmax(-1) != y).sum()) for x, y in batches) / n
    assert points[1]["t"] == 0.5
    assert loss == pytest.approx(points[1]["loss"], rel=1e-4) and error == pytest.approx(points[1]["error"])


def test_results_are_replaced_by_force(pinn_catalog):
    """Storage invariant: --force replaces a run's rows (ON DELETE CASCADE) instead of duplicating them."""
    opts = [("curve", "linear"), ("points", "3")]
    compute(["connectivity"], opts, catalog_path=pinn_catalog)
    compute(["connectivity"], opts, catalog_path=pinn_catalog, force=True)
    conn = sqlite3.connect(pinn_catalog)
    assert conn.execute("SELECT COUNT(*) FROM curve_points").fetchone()[0] == 2 * 3
    assert conn.execute("SELECT COUNT(*) FROM pair_metrics").fetchone()[0] == 2
