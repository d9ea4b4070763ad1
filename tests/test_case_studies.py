"""The report's verdicts: each claim is the comparison of two numbers, tested on synthetic tables whose
answers are known (agree, disagree, missing value)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from losslens.case_studies import (
    Claim,
    Finding,
    StudyData,
    claims_from,
    connectivity_note,
    fit_curve_rows,
    fit_note,
    landscape_of,
    modular_claims,
    pinn_claims,
    resnet_claims,
    verdicts,
)


def _pinn_row(beta: float, rel_l2: float | None, top: float, trace: float, minima: float, mc: float | None) -> dict:
    return {
        "beta": beta,
        "rel_l2": rel_l2,
        "top": top,
        "trace": trace,
        "minima_random": minima,
        "minima_hessian": minima,
        "mc": mc,
        "mc_linear": mc,
        "train_loss": 1e-3,
        "mc_rel": None,
        "rel_persistence": 0.5,
        "fits": 3,
        "converged": 3,
    }


def _by_finding(claims: list[Claim]) -> dict[tuple[str, str, str], Claim]:
    return {(c.finding, c.measure, c.left[0]): c for c in claims}


def test_claim_verdict_is_the_inequality_and_missing_values_give_none():
    """Oracle: the inequalities by hand; None and NaN give no verdict."""
    assert Claim("f", "m", ("a", 1.0), "<", ("b", 2.0)).holds is True
    assert Claim("f", "m", ("a", 2.0), "<", ("b", 2.0)).holds is False
    assert Claim("f", "m", ("a", 2.0), "<=", ("b", 2.0)).holds is True
    assert Claim("f", "m", ("a", 3.0), ">=", ("0", 0.0)).holds is True
    assert Claim("f", "m", ("a", None), "<", ("b", 1.0)).holds is None
    assert Claim("f", "m", ("a", math.nan), ">", ("b", 1.0)).holds is None
    disagree = Claim("f", "m", ("a", 3.0), "<", ("b", 2.0), evidence="the numbers say so")
    assert "**Does not agree.**" in disagree.line() and "Evidence: the numbers say so" in disagree.line()
    assert "Evidence" not in Claim("f", "m", ("a", 1.0), "<", ("b", 2.0), evidence="x").line()
    assert "Cannot tell" in Claim("f", "m", ("a", None), "<", ("b", 2.0)).line()


def test_pinn_claims_on_a_table_that_agrees_with_the_paper():
    """Synthetic table with every finding true: error 1e-3 → 1, failing from β = 20, sharper and more rugged
    at β = 40, poor connectivity only there."""
    rows = [
        _pinn_row(1, 0.003, 10, 100, 1, 0.0),
        _pinn_row(5, 0.01, 20, 200, 1, 0.0),
        _pinn_row(10, 0.05, 30, 300, 2, -0.1),
        _pinn_row(20, 0.9, 40, 400, 3, -1.0),
        _pinn_row(40, 0.95, 50, 500, 4, -2.0),
    ]
    claims = pinn_claims(rows)
    assert all(c.holds is True for c in claims), [c.line() for c in claims if c.holds is not True]
    growth = [c for c in claims if c.finding.startswith("the error grows")]
    assert [(c.left[0], c.right[0]) for c in growth] == [("β=1", "β=5"), ("β=5", "β=10"), ("β=10", "β=20")]
    fails = [c.left[0] for c in claims if c.finding.startswith("it fails")]
    assert fails == ["β=20", "β=40"]  # no growth is asked for within the failure plateau
    assert verdicts(claims) == f"{len(claims)} of {len(claims)} comparisons agree, 0 do not"


def test_pinn_claims_on_a_table_that_disagrees_and_one_with_gaps():
    """Synthetic table: β = 1 is not well connected and the landscape is not sharper at β = 40; a missing mc gives
    'cannot tell' for exactly the connectivity claims."""
    rows = [_pinn_row(1, 0.003, 50, 500, 1, -0.5), _pinn_row(40, 0.95, 10, 100, 4, -2.0)]
    by = _by_finding(pinn_claims(rows))
    assert by[("small β is well connected (mc ≥ 0)", "mean mc", "β=1")].holds is False
    assert by[("larger β gives a sharper landscape", "median top Hessian eigenvalue", "β=1")].holds is False
    assert by[("larger β gives a more rugged landscape", "median number of persistent minima, random directions", "β=1")].holds
    gaps = [_pinn_row(1, 0.003, 10, 100, 1, None), _pinn_row(40, None, 50, 500, 4, None)]
    claims = pinn_claims(gaps)
    unknown = {c.finding for c in claims if c.holds is None}
    assert unknown == {
        "it fails at β ≥ 20–30 (rel. L2 ≈ 1)",
        "the error grows with β up to the failure",
        "larger β gives poor connectivity (mc < 0)",
        "larger β is worse connected than small β",
        "small β is well connected (mc ≥ 0)",
    }
    assert verdicts(claims).endswith(f", {sum(c.holds is None for c in claims)} cannot be told")


def _resnet_row(residual: bool, acc: float, top: float, minima: float | None, mc: float | None) -> dict:
    return {
        "residual": residual,
        "test_accuracy": acc,
        "top": top,
        "trace": top * 10,
        "minima_li": minima,
        "local_minima_li": minima,
        "minima_local": 1,
        "rel_persistence": 0.004 if residual else 0.008,
        "grid_li": 31,
        "mc": mc,
        "mc_linear": mc,
        "fits": 3,
        "converged": 2,
        "rel_change": 0.22,
    }


DEPTH_20 = (
    "at depth 20 the landscape without skips is still nearly convex at Li et al.'s scale; it turns chaotic only at depth "
    "56 and 110 (Li et al. 2018, Fig. 5)"
)


def test_resnet_claims_agree_disagree_and_missing():
    """Synthetic tables: skips better, flatter, connected, and at depth 20 one basin at Li et al.'s scale with and without
    skips (all agree, as Li et al.'s Fig. 5 draws ResNet-20); then without skips flatter (disagree) and chaotic (7
    persistent minima, as Li et al. find only at depth 56–110: disagree); then no landscape minima at all (cannot
    tell exactly the two claims on Li et al.'s scale)."""
    good = resnet_claims([_resnet_row(True, 0.9, 5, 1, 0.5), _resnet_row(False, 0.8, 20, 1, -3.0)])
    assert len(good) == 8 and all(c.holds is True for c in good), [c.line() for c in good if c.holds is not True]
    depth = next(c for c in good if c.finding == DEPTH_20)
    # The agreement itself carries its numbers: largest persistence / loss range and local minima, with the grid.
    assert "0.008 without" in depth.line() and "1 and 1 local minima" in depth.line() and "31×31" in depth.line()
    bad = _by_finding(resnet_claims([_resnet_row(True, 0.9, 30, 1, 0.5), _resnet_row(False, 0.8, 20, 7, -3.0)]))
    flatter = bad[("skips give a flatter landscape", "median top Hessian eigenvalue", "with skips")]
    assert flatter.holds is False and "top eigenvalue with skips 30 and without 20" in flatter.line()
    chaotic = bad[(DEPTH_20, "median persistent minima (filter-normalised, ±1)", "without skips")]
    assert chaotic.holds is False and (chaotic.left[1], chaotic.right[1]) == (7, 1.0)
    barrier = _by_finding(resnet_claims([_resnet_row(True, 0.9, 5, 1, -1.0), _resnet_row(False, 0.8, 20, 1, -3.0)]))
    poor = barrier[("skips give well-connected modes (mc ≥ 0)", "mean mc (training error, %)", "with skips")]
    assert poor.holds is False and "2 of 3 bend fits converged, their fit loss still falling by 0.22" in poor.line()
    assert "an unconverged fit's mc bounds the fitted curve's barrier" in poor.line()
    rising = _by_finding(
        resnet_claims([{**_resnet_row(True, 0.9, 5, 1, -1.0), "rel_change": -0.3}, _resnet_row(False, 0.8, 20, 1, -3.0)])
    )
    assert (
        "their fit loss rising by 0.3 (relative, mean)"
        in rising[("skips give well-connected modes (mc ≥ 0)", "mean mc (training error, %)", "with skips")].line()
    )
    gaps = resnet_claims([_resnet_row(True, 0.9, 5, None, 0.5), _resnet_row(False, 0.8, 20, None, -3.0)])
    assert [c.finding for c in gaps if c.holds is None] == [
        "with skips the landscape is convex at Li et al.'s scale (Li et al. 2018, Fig. 5)",
        DEPTH_20,
    ]


def test_claims_from_a_table_of_findings():
    """Oracle: the rows by hand. A side is a group's value or a fixed number (labelled by its own digits); a missing
    group or key gives a claim that cannot be told; placeholders are filled from the context."""
    findings = [
        Finding("a beats b at {n}", "score", ("a", "x"), ">", ("b", "x"), "why"),
        Finding("a is positive", "score", ("a", "x"), ">=", 0.0),
        Finding("c is small", "score", ("c", "x"), "<", 1.0),
    ]
    claims = claims_from(findings, {"a": ("A", {"x": 2.0}), "b": ("B", {"x": 3.0})}, {"why": "a is 2, b is 3"}, n=5)
    assert [(c.finding, c.left, c.right, c.holds) for c in claims] == [
        ("a beats b at 5", ("A", 2.0), ("B", 3.0), False),
        ("a is positive", ("A", 2.0), ("0", 0.0), True),
        ("c is small", ("c", None), ("1", 1.0), None),
    ]
    assert claims[0].line().endswith("Evidence: a is 2, b is 3") and "Evidence" not in claims[1].line()


def _modular_rows(test_with: list[float], test_without: list[float], norm_with: float, norm_without: float) -> list[dict]:
    rows = []
    for wd, tests, norm in ((0.0, test_without, norm_without), (2.0, test_with, norm_with)):
        for i, acc in enumerate(tests):
            rows.append(
                {"weight_decay": wd, "step": 100 * (i + 1), "train_accuracy": 1.0, "test_accuracy": acc, "theta_norm": norm}
            )
    return rows


def test_modular_claims_follow_the_trajectory():
    """Synthetic trajectories: with weight decay the test accuracy climbs after the training accuracy is 1
    (memorisation first) to 1.0 at a smaller norm; without, it stays low (all agree). If test accuracy is already
    0.95 at the first checkpoint, memorisation-first cannot be seen (disagree: both at step 100)."""
    claims = modular_claims(_modular_rows([0.3, 0.6, 1.0], [0.1, 0.2, 0.2], 20.0, 40.0))
    assert [c.holds for c in claims] == [True, True, True, True]
    first = next(c for c in claims if c.finding == "it memorises before it generalises")
    assert (first.left[1], first.right[1]) == (100.0, 300.0)
    early = _by_finding(modular_claims(_modular_rows([0.95, 1.0, 1.0], [0.1, 0.2, 0.2], 20.0, 40.0)))
    assert (
        early[("it memorises before it generalises", "first checkpoint step with weight decay 2", "train accuracy ≥ 0.99")].holds
        is False
    )
    never = _by_finding(modular_claims(_modular_rows([0.3, 0.5, 0.6], [0.1, 0.2, 0.2], 20.0, 40.0)))
    assert (
        never[("it memorises before it generalises", "first checkpoint step with weight decay 2", "train accuracy ≥ 0.99")].holds
        is None
    )
    assert (
        never[("with weight decay the network generalises", "median test accuracy at step 300", "weight decay 2")].holds is False
    )


@pytest.mark.parametrize("claims", [pinn_claims, modular_claims])
def test_empty_tables_give_no_claims(claims):
    assert claims([]) == []


def test_connectivity_note_compares_the_curve_with_the_line():
    """Oracle: the means by hand. Curve mc −1 and −3 (mean −2) against line −4 and −6 (mean −5): the bend lowered
    the barrier; swapped, it did not."""
    rows = [
        {"fits": 3, "converged": 2, "mc": -1.0, "mc_linear": -4.0},
        {"fits": 3, "converged": 3, "mc": -3.0, "mc_linear": -6.0},
    ]
    note = connectivity_note(rows)
    assert "5 of 6" in note and "mc is -2 against the straight line's -5" in note and "lowered the barrier" in note
    swapped = [{**r, "mc": r["mc_linear"], "mc_linear": r["mc"]} for r in rows]
    assert "did not lower" in connectivity_note(swapped)
    assert connectivity_note([]) == "No bend fit is in the catalog yet."


def test_connectivity_note_names_rows_whose_curve_is_worse_than_the_line():
    """Oracle: by hand. The average (curve −35 vs line −49) says the bends lowered the barrier, yet the second row's
    curve (−94.1) is below its line (−92.4) with its 3 fits 'converged': that row must be named, the first not."""
    rows = [
        {"name": "a", "fits": 3, "converged": 3, "mc": 24.0, "mc_linear": -5.6},
        {"name": "b", "fits": 3, "converged": 3, "mc": -94.1, "mc_linear": -92.4},
    ]
    note = connectivity_note(rows, lambda r: r["name"])
    assert "lowered the barrier" in note
    assert "In 1 of 2 rows" in note and "b: mc -94.1 vs -92.4, 3 of 3 converged" in note and "a: mc" not in note
    assert "In 1 of 2" not in connectivity_note(rows)


def test_fit_note_replays_the_plateau_rule_on_the_stored_curves():
    """Oracle: a hand-made fit curve, 40 steps at 4, 60 at 2, then 200 alternating 0.9/1.1 (mean 1, spread 0.1). With
    100-step windows the rule first holds at step 300 (windows 2.8 → 1 → 1), where the fit stopped; replayed with
    20-step windows it would have stopped at step 40 (4 → 4), when the loss was still 300 % above its last window."""
    trace = np.concatenate([np.full(40, 4.0), np.full(60, 2.0), np.tile([0.9, 1.1], 100)])
    params = {"optimizer": "auto", "steps": 1000, "epochs": 0, "window": 100, "tol": 0.01}
    data = StudyData("s", [], {}, {}, [], [], {}, [], fits=[{"params": params, "trace": trace}])
    note = fit_note(data)
    assert (
        "(1 of the 1 stored fit curves): SGD for at most 1000 steps, the plateau rule on 100-step windows with tol 0.01" in note
    )
    assert "steps taken 300–300 (median 300), mean fit loss over the first and last 100 steps 2.8 and 1 (medians)" in note
    assert "spreads by 0.1 of its mean" in note and "0.0224 over 20 steps and 0.01 over 100" in note
    assert "a 20-step window would have stopped 1 of 1 fits, at step 40 (median)" in note and "still 300 % above" in note
    assert fit_note(StudyData("s", [], {}, {}, [], [], {}, [])) == ""
    # A study refitted in part: one sentence per set of fit options, each counting its own curves.
    short = {**params, "window": 0, "steps": 500}
    both = fit_note(
        StudyData(
            "s",
            [],
            {},
            {},
            [],
            [],
            {},
            [],
            fits=[{"params": params, "trace": trace}] * 2 + [{"params": short, "trace": trace[:60]}],
        )
    )
    assert "(2 of the 3 stored fit curves): SGD for at most 1000 steps" in both
    assert "(1 of the 3 stored fit curves): SGD for at most 500 steps, the plateau rule on the default windows" in both


def test_fit_curve_rows_are_the_window_means():
    """Oracle: the window means by hand; a fit that used the default window is cut into 20-step windows."""
    trace = np.concatenate([np.full(100, 3.0), np.full(100, 1.0), np.full(10, 7.0)])  # a partial window is left out
    fits = [
        {"params": {"window": 100, "steps": 1000}, "subject": "a:b", "trace": trace},
        {"params": {"window": 0, "epochs": 4}, "subject": "b:c", "trace": np.arange(40.0)},
    ]
    rows = fit_curve_rows(StudyData("s", [], {}, {}, [], [], {}, [], fits=fits))
    assert [(r["pair"], r["fit"], r["step"], r["loss"]) for r in rows] == [
        ("a:b", "100-step windows, at most 1000 steps", 100, 3.0),
        ("a:b", "100-step windows, at most 1000 steps", 200, 1.0),
        ("b:c", "20-step windows, at most 4 epochs", 20, 9.5),
        ("b:c", "20-step windows, at most 4 epochs", 40, 29.5),
    ]


def test_the_report_reads_the_finest_landscape_that_has_its_topology():
    """A checkpoint with 15×15 and 21×21 landscapes (topology done) and a 31×31 one whose topology has not run: the
    report's minima and picture come from the 21×21 until the 31×31 has its merge tree."""
    row = lambda steps, minima: {  # noqa: E731
        "id": f"l{steps}",
        "checkpoint": "c",
        "directions": "random",
        "span_mode": "absolute",
        "steps": steps,
        "n_minima_above": minima,
    }
    data = StudyData("s", [], {}, {}, [row(15, 1), row(31, None), row(21, 2)], [], {}, [])
    assert landscape_of(data, "c", "random", "absolute")["id"] == "l21"
    data.landscapes[1]["n_minima_above"] = 1
    assert landscape_of(data, "c", "random", "absolute")["id"] == "l31"
    assert landscape_of(data, "c", "random", "relative") is None
