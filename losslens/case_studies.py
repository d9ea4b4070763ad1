"""``docs/case-studies.md``: the paper's two case studies and a transformer study, run for real and written up
from the catalog.

Three studies go through the demo's pipeline (:func:`losslens.demo.run_study`) into one catalog: the PINN across β
at the papers' settings, ResNet-20 with and without skips on a stated Fashion-MNIST subset, and a 1-layer
transformer on (a + b) mod 23 with and without weight decay, with checkpoints along training. The text compares
our numbers with the papers' qualitative findings; every "agrees" or "does not agree" is the outcome of a
comparison evaluated here (:class:`Claim`), never a sentence written in advance, and each disagreement carries the
measured values that bear on it. The pictures are our own views, drawn by vl-convert at scale 1.
"""

from __future__ import annotations

import functools
import io
import math
import os
import platform
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import torch
import vl_convert as vlc
from PIL import Image

from losslens import __version__
from losslens.connectivity.fit import stopping_step
from losslens.demo import Study, catalog_path, run_study, setting_table
from losslens.errors import unknown as unknown_name
from losslens.export.chart import inline_spec, read_catalog
from losslens.store import studies as studies_store
from losslens.store.artifacts import load_artifact
from losslens.store.catalog import open_catalog
from losslens.train import (
    ClassifierConfig,
    ConvectionConfig,
    ModularConfig,
    parse_dataset,
    train_classifier,
    train_convection,
    train_modular,
)
from losslens.train.outputs import OnEvent
from losslens.views import landscape as landscape_view
from losslens.views.source import values


def _grid(steps: int, **landscape: Any) -> dict[str, Any]:
    """Landscape options given to both the landscape and its topology (topology finds its landscape by them)."""
    values = {"steps": steps, **landscape}
    return {f"{metric}__{k}": v for metric in ("landscape", "topology") for k, v in values.items()}


def _options(**values: Any) -> tuple[tuple[str, str], ...]:
    """``compute`` options from keywords: ``landscape__steps=41`` -> ("landscape.steps", "41")."""
    return tuple((k.replace("__", ".").replace("_", "-"), str(v)) for k, v in values.items())


#: PINN at the papers' settings: Krishnapriyan et al.'s β ∈ {1, 5, 10, 20, 30, 40}, 3 seeds, N_f = 1000 collocation
#: points (the runs in their README; their argparse default is 100), L-BFGS for up to 1000 iterations. Landscapes
#: 41×41 along random filter-normalised directions and, in a second pass, along the top-2 Hessian eigenvectors (as
#: Krishnapriyan et al. drew them), both ±1 % of ‖θ‖. Connectivity: the bend by 200 Adam steps then up to 150 L-BFGS
#: iterations on the midpoint rule over 5 t (``auto``), stopped by the plateau rule; the report shows whether it held.
PINN_PAPER = Study(
    "convection-paper",
    functools.partial(train_convection, betas=(1.0, 5.0, 10.0, 20.0, 30.0, 40.0), seeds=(0, 1, 2), config=ConvectionConfig()),
    _options(
        landscape__steps=41,
        topology__steps=41,
        hessian__trace_probes=50,
        hessian__esd_runs=2,
        connectivity__lbfgs_iterations=150,
        connectivity__t_points=5,
    ),
    passes=((("landscape", "topology"), _options(directions="hessian", steps=41)),),
)

#: The grokking study: weight decay 0 and 2, 3 seeds, checkpoints at 5 steps along 1,500 full-batch AdamW steps on
#: p = 23 (``ModularConfig`` defaults). Connectivity and CKA pair seeds at the same step; the bend by Adam for 1,000
#: steps (Adam runs its whole budget), the plateau rule judging the last of its 100-step windows: the first runs'
#: (SGD) 20-step windows stopped every fit by step 120 of 500 while its loss was still falling (per-step spread 0.9 of
#: the mean at weight decay 0, one random t a step), which 100 steps average down by √5 (the report replays both
#: windows on the stored fit curves). Landscapes
#: 21×21: random filter-normalised at Li et al.'s scale (±1 in direction units), trajectory PCA (±25 % of ‖θ‖,
#: enough to reach the run's earlier checkpoints) and top-2 Hessian eigenvectors (±1 % of ‖θ‖).
MODULAR = Study(
    "modular",
    functools.partial(train_modular, weight_decays=(0.0, 2.0), seeds=(0, 1, 2), config=ModularConfig()),
    _options(
        **_grid(21, span_mode="absolute", span=1),
        pairs="same-step",
        connectivity__steps=1000,
        connectivity__window=100,
        # Adam on the bend: SGD (lr 0.01 and 0.1) stalled at chance (loss ln 23) on the weight-decay-2 pairs, a
        # curve worse than the straight line (mc -95.9 % vs -92.4 % at step 1500); Adam reaches mc 0 there
        connectivity__optimizer="adam-lbfgs",
        connectivity__lr=0.01,
        connectivity__lbfgs_iterations=0,
        hessian__trace_probes=50,
        hessian__esd_runs=2,
        cka__inputs=300,
    ),
    metrics=("performance", "hessian", "landscape", "topology", "connectivity", "cka"),
    passes=(
        (("landscape", "topology"), _options(directions="pca", steps=21, span_mode="relative", span=0.25)),
        (("landscape", "topology"), _options(directions="hessian", steps=21)),
    ),
)

#: ResNet-20 ± skips on a stated subset of Fashion-MNIST (28×28): the first 1,000 training and 500 test images,
#: 3 seeds, 8 epochs of SGD (sized to a shared 2-core CPU). Hessian on one batch of 200 (Yang et al.), top-3 and 10
#: trace probes. Connectivity between adjacent seeds: SGD lr 0.01 momentum 0.9 for up to 4 epochs, the plateau rule on
#: 16-step (2-epoch) windows, BatchNorm re-estimated on 4 batches, the error on 4, at 5 points as Yang et al. Their 50
#: epochs did not fit the session: on the shared machine (load ≈ 7) a 4-epoch pair took about 70 s and a Hessian
#: 150–200 s. CKA over every seed pair (the MDS layout needs them all). Landscapes on one batch of 64: 31×31 at Li
#: et al.'s scale (filter-normalised, ±1 in direction units; 0.14 s an evaluation there, about 2 minutes a
#: checkpoint) and, in a second pass, 15×15 at ±1 % of ‖θ‖. The metrics run cheapest-first, the landscapes last.
FASHION_LIMITS = (1000, 500)
RESNET_FASHION_CONFIG = ClassifierConfig(epochs=8)
RESNET_FASHION = Study(
    "resnet20-fashion",
    functools.partial(
        train_classifier,
        dataset=parse_dataset("fashion-mnist", *FASHION_LIMITS),
        seeds=(0, 1, 2),
        residual=(True, False),
        config=RESNET_FASHION_CONFIG,
    ),
    _options(
        **_grid(31, span_mode="absolute", span=1, batch_size=64),
        connectivity__pairs="adjacent",
        cka__pairs="within-setting",  # the MDS layout (similarity) needs every seed pair's CKA
        hessian__batch_size=200,
        hessian__k=3,
        hessian__trace_probes=10,
        hessian__esd_runs=1,
        hessian__esd_steps=20,
        connectivity__epochs=4,
        connectivity__window=16,
        connectivity__points=5,
        connectivity__bn_batches=4,
        connectivity__eval_batches=4,
        cka__inputs=300,
    ),
    metrics=("performance", "hessian", "connectivity", "cka", "similarity", "taxonomy", "landscape", "topology"),
    passes=((("landscape", "topology"), _options(steps=15, span_mode="relative", span=0.01, batch_size=64)),),
)

STUDIES = (PINN_PAPER, MODULAR, RESNET_FASHION)
STUDY_NAMES = tuple(s.name for s in STUDIES)


#: Krishnapriyan et al.: the PINN fails (rel. L2 ≈ 1) from β ≈ 20–30 on; below, the error grows with β.
FAILS_FROM = 20.0


def known_error(beta: float) -> str:
    """What the relative L2 error is known to be at ``beta`` (Krishnapriyan et al. 2021)."""
    if beta <= 1:
        return "≈ 1e-2 (learns)"
    if beta >= 20:
        return "≈ 1 (fails)"
    return "between the two regimes"


# ---------------------------------------------------------------------------------------------
# Verdicts: a paper's finding as a comparison of two of our numbers.


@dataclass(frozen=True)
class Claim:
    """A finding of the papers as a comparison of two of our numbers: ``left`` ``relation`` ``right``.

    ``evidence`` is a sentence built from the measured values that bears on the finding (printed under a
    disagreement or a missing value, so each has its numbers beside it); ``note`` is printed under every verdict
    (for a finding whose agreement itself needs its numbers and source)."""

    finding: str  # the paper's qualitative finding, in words
    measure: str  # what we compare
    left: tuple[str, float | None]  # (label, value)
    relation: str  # "<", ">", "<=", ">="
    right: tuple[str, float | None]
    evidence: str = ""
    note: str = ""

    @property
    def holds(self) -> bool | None:
        """True or False; None when a value is missing, so nothing can be said."""
        a, b = self.left[1], self.right[1]
        if a is None or b is None or not (math.isfinite(a) and math.isfinite(b)):
            return None
        return {"<": a < b, ">": a > b, "<=": a <= b, ">=": a >= b}[self.relation]

    def line(self) -> str:
        side = lambda label, value: label if label == fmt(value) else f"{label} = {fmt(value)}"  # noqa: E731
        measured = f"{side(*self.left)}, {side(*self.right)}" if self.right[0] != fmt(self.right[1]) else side(*self.left)
        verdict = {True: "**Agrees.**", False: "**Does not agree.**", None: "**Cannot tell** (a value is missing)."}[self.holds]
        relation = {"<=": "≤", ">=": "≥"}.get(self.relation, self.relation)
        text = f"- {verdict} {self.finding}. Expected {self.measure}: {self.left[0]} {relation} {self.right[0]}; measured {measured}."
        if self.note:
            text += f" {self.note}"
        if self.holds is not True and self.evidence and self.evidence != self.note:
            text += f" Evidence: {self.evidence}"
        return text


#: One side of a finding: ``(group, key)``, the value ``key`` of a group's row (a group is a labelled row of the
#: study's table, e.g. the smallest β), or a fixed number.
Side = tuple[str, str] | float


@dataclass(frozen=True)
class Finding:
    """A row of a study's table of findings: ``left relation right``. ``evidence`` and ``note`` name sentences
    the study builds from its measured values (see :class:`Claim`); ``finding`` and ``measure`` may hold
    ``{placeholders}`` filled from the study's context (e.g. the last training step)."""

    finding: str
    measure: str
    left: Side
    relation: str
    right: Side
    evidence: str = ""
    note: str = ""


def claims_from(
    findings: Sequence[Finding],
    groups: dict[str, tuple[str, dict[str, Any]]],
    sentences: dict[str, str] | None = None,
    **context: Any,
) -> list[Claim]:
    """Each finding as a :class:`Claim` on the study's values: ``groups`` maps a group name to (label, row); a
    value missing from a row (or a group missing) gives a claim that cannot be told."""
    sentences = sentences or {}

    def side(s: Side) -> tuple[str, float | None]:
        if isinstance(s, tuple):
            label, row = groups.get(s[0], (s[0], {}))
            return label, row.get(s[1])
        return fmt(float(s)), float(s)

    return [
        Claim(
            f.finding.format(**context),
            f.measure.format(**context),
            side(f.left),
            f.relation,
            side(f.right),
            sentences.get(f.evidence, ""),
            sentences.get(f.note, ""),
        )
        for f in findings
    ]


def fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return "–" if not math.isfinite(value) else f"{value:.3g}"
    return str(value)


def _by(rows: Sequence[dict[str, Any]], key: str) -> dict[Any, dict[str, Any]]:
    return {r[key]: r for r in rows}


def _series(rows: Sequence[dict[str, Any]], key: str, value: str, label: Callable[[Any], str]) -> str:
    return ", ".join(f"{label(r[key])}: {fmt(r.get(value))}" for r in sorted(rows, key=lambda r: r[key]))


def _fits(row: dict[str, Any]) -> str:
    """How many bend fits ended converged (``fit_converged``: their last window met the plateau rule), and by how much
    their fit loss still moved at the end (``fit_rel_change``: the last window's relative fall for SGD/Adam, L-BFGS's
    best loss over its last tenth of evaluations): a fit that ended still falling fast gives a bound on the curve's mc,
    not its value."""
    text = f"{row.get('converged', 0)} of {row.get('fits', 0)} bend fits converged"
    change = row.get("rel_change")
    if change is not None:
        moving = "still falling" if change >= 0 else "rising"
        text += f", their fit loss {moving} by {fmt(abs(change))} (relative, mean) at the end"
    if row.get("fits") and row.get("converged", 0) < row["fits"]:
        text += ": an unconverged fit's mc bounds the fitted curve's barrier, it does not measure it"
    return text


#: Krishnapriyan et al. and LossLens on the PINN, smallest β ("small") against largest ("large"). The error's growth
#: across β and its failure are rows made per β by :func:`pinn_claims`.
PINN_LEARNS = Finding("the PINN learns at β = 1 (rel. L2 ≈ 1e-2)", "median rel. L2", ("small", "rel_l2"), "<", 0.05)
PINN_FINDINGS = (
    Finding(
        "larger β gives a sharper landscape", "median top Hessian eigenvalue", ("small", "top"), "<", ("large", "top"), "eig"
    ),
    Finding("larger β gives a sharper landscape", "median Hessian trace", ("small", "trace"), "<", ("large", "trace"), "eig"),
    Finding(
        "larger β gives a more rugged landscape",
        "median number of persistent minima, random directions",
        ("small", "minima_random"),
        "<",
        ("large", "minima_random"),
        "rugged",
    ),
    Finding(
        "larger β gives a more rugged landscape",
        "median number of persistent minima, top-2 Hessian directions",
        ("small", "minima_hessian"),
        "<",
        ("large", "minima_hessian"),
        "rugged",
    ),
    Finding("larger β gives poor connectivity (mc < 0)", "mean mc", ("large", "mc"), "<", 0.0, "mc_large"),
    Finding("larger β is worse connected than small β", "mean mc", ("large", "mc"), "<", ("small", "mc"), "mc_both"),
    Finding("small β is well connected (mc ≥ 0)", "mean mc", ("small", "mc"), ">=", 0.0, "mc_small"),
)


def pinn_claims(rows: Sequence[dict[str, Any]]) -> list[Claim]:
    """Krishnapriyan et al. and LossLens on the PINN: the error trend across β, and larger β giving sharper, more
    rugged landscapes with poor connectivity (smallest β against largest β). ``rows``: :func:`pinn_rows`."""
    if not rows:
        return []
    by = _by(rows, "beta")
    lo, hi = min(by), max(by)
    beta = lambda b: f"β={b:g}"  # noqa: E731
    get = lambda b, key: by[b].get(key)  # noqa: E731
    mc = lambda b: (  # noqa: E731
        f"at {beta(b)} mc = {fmt(get(b, 'mc'))} on a training loss of {fmt(get(b, 'train_loss'))} (mc/loss = "
        f"{fmt(get(b, 'mc_rel'))}); {_fits(by[b])}; the straight line's mc is {fmt(get(b, 'mc_linear'))}."
    )
    sentences = {
        "errors": f"rel. L2 by β: {_series(rows, 'beta', 'rel_l2', beta)}.",
        "eig": f"top eigenvalue by β: {_series(rows, 'beta', 'top', beta)}; trace: {_series(rows, 'beta', 'trace', beta)}.",
        "rugged": (
            f"the largest merge-tree persistence as a fraction of the grid's loss range is {fmt(get(lo, 'rel_persistence'))} "
            f"at {beta(lo)} and {fmt(get(hi, 'rel_persistence'))} at {beta(hi)} (random directions, ±1 % of ‖θ‖); below the "
            "1 % threshold a landscape is one basin at this span."
        ),
        "mc_large": mc(hi),
        "mc_small": mc(lo),
        "mc_both": mc(lo) + " " + mc(hi),
    }
    groups = {"small": (beta(lo), by[lo]), "large": (beta(hi), by[hi]), **{beta(b): (beta(b), by[b]) for b in by}}
    below = [b for b in sorted(by) if b < FAILS_FROM]
    failing = [b for b in sorted(by) if b >= FAILS_FROM]
    growth = [
        Finding(
            "the error grows with β up to the failure", "median rel. L2", (beta(a), "rel_l2"), "<", (beta(b), "rel_l2"), "errors"
        )
        for a, b in zip(below, [*below[1:], *failing[:1]], strict=False)
    ]
    fails = [
        Finding("it fails at β ≥ 20–30 (rel. L2 ≈ 1)", "median rel. L2", (beta(b), "rel_l2"), ">", 0.5, "errors") for b in failing
    ]
    return claims_from([PINN_LEARNS, *growth, *fails, *PINN_FINDINGS], groups, sentences)


#: LossLens and Li et al. 2018 on ResNet-20 with skips ("skip") and without ("plain"). Li et al.'s Fig. 5 draws
#: ResNet-20/56/110 with and without skips at their scale (filter-normalised, ±1): without skips the landscape of
#: ResNet-20 is still nearly convex, and the transition to chaos comes at depth 56 and 110; with skips all stay convex.
RESNET_FINDINGS = (
    Finding("skips give better models", "median test accuracy", ("skip", "test_accuracy"), ">", ("plain", "test_accuracy")),
    Finding("skips give a flatter landscape", "median top Hessian eigenvalue", ("skip", "top"), "<", ("plain", "top"), "eig"),
    Finding("skips give a flatter landscape", "median Hessian trace", ("skip", "trace"), "<", ("plain", "trace"), "eig"),
    Finding(
        "with skips the landscape is convex at Li et al.'s scale (Li et al. 2018, Fig. 5)",
        "median persistent minima (filter-normalised, ±1)",
        ("skip", "minima_li"),
        "<=",
        1.0,
        "rugged",
    ),
    Finding(
        "at depth 20 the landscape without skips is still nearly convex at Li et al.'s scale; it turns chaotic only at "
        "depth 56 and 110 (Li et al. 2018, Fig. 5)",
        "median persistent minima (filter-normalised, ±1)",
        ("plain", "minima_li"),
        "<=",
        1.0,
        note="rugged",
    ),
    Finding(
        "skips give a smoother landscape near θ",
        "median persistent minima (±1 % of ‖θ‖)",
        ("skip", "minima_local"),
        "<=",
        ("plain", "minima_local"),
        "rugged",
    ),
    Finding("skips give better-connected modes", "mean mc (training error, %)", ("skip", "mc"), ">", ("plain", "mc"), "mc"),
    Finding("skips give well-connected modes (mc ≥ 0)", "mean mc (training error, %)", ("skip", "mc"), ">=", 0.0, "mc"),
)


def resnet_claims(rows: Sequence[dict[str, Any]]) -> list[Claim]:
    """:data:`RESNET_FINDINGS` on the study's table: skip connections give better models and flatter, smoother,
    better-connected landscapes; at depth 20 both landscapes are (nearly) convex at Li et al.'s scale.
    ``rows``: :func:`resnet_rows`."""
    by = _by(rows, "residual")
    skip, plain = by.get(True, {}), by.get(False, {})
    grid = lambda r: f"{r['grid_li']}×{r['grid_li']}" if r.get("grid_li") else "–"  # noqa: E731
    sentences = {
        "eig": (
            f"top eigenvalue with skips {fmt(skip.get('top'))} and without {fmt(plain.get('top'))}; trace "
            f"{fmt(skip.get('trace'))} and {fmt(plain.get('trace'))}."
        ),
        "rugged": (
            f"At Li et al.'s scale the largest merge-tree persistence is {fmt(skip.get('rel_persistence'))} of the grid's "
            f"loss range with skips and {fmt(plain.get('rel_persistence'))} without (the 1 % threshold separates basins), "
            f"and the grid has {fmt(skip.get('local_minima_li'))} and {fmt(plain.get('local_minima_li'))} local minima "
            f"(medians over seeds; {grid(skip)} and {grid(plain)} grids)."
        ),
        "mc": (
            f"with skips mc = {fmt(skip.get('mc'))} % ({_fits(skip)}; straight line {fmt(skip.get('mc_linear'))} %), without "
            f"mc = {fmt(plain.get('mc'))} % ({_fits(plain)}; straight line {fmt(plain.get('mc_linear'))} %)."
        ),
    }
    return claims_from(RESNET_FINDINGS, {"skip": ("with skips", skip), "plain": ("without skips", plain)}, sentences)


#: Power et al. 2022 and Nanda et al. 2023 (grokking), and Liu et al. 2022 ("Omnigrok") for the weight norm: the largest
#: weight decay ("final_hi", at the last step) against the smallest ("final_lo").
MODULAR_FINDINGS = (
    Finding(
        "with weight decay the network generalises",
        "median test accuracy at step {last}",
        ("final_hi", "test_accuracy"),
        ">",
        0.9,
        "test_hi",
    ),
    Finding(
        "weight decay is what makes it generalise",
        "median test accuracy at step {last}",
        ("final_lo", "test_accuracy"),
        "<",
        ("final_hi", "test_accuracy"),
        "test_lo",
    ),
    Finding(
        "it memorises before it generalises",
        "first checkpoint step with {wd_hi}",
        ("memorised", "step"),
        "<",
        ("generalised", "step"),
        "trajectory",
    ),
    Finding(
        "the generalising solution has a smaller weight norm",
        "median ‖θ‖ at step {last}",
        ("final_hi", "theta_norm"),
        "<",
        ("final_lo", "theta_norm"),
    ),
)


def modular_claims(rows: Sequence[dict[str, Any]]) -> list[Claim]:
    """:data:`MODULAR_FINDINGS`: with weight decay the network memorises first and generalises later; without it, it
    generalises less; generalisation comes with a smaller weight norm. ``rows``: :func:`modular_rows`, one per
    (weight decay, step)."""
    if not rows:
        return []
    decays = sorted({r["weight_decay"] for r in rows})
    lo, hi = decays[0], decays[-1]
    last = max(r["step"] for r in rows)
    final = {r["weight_decay"]: r for r in rows if r["step"] == last}
    wd = lambda w: f"weight decay {w:g}"  # noqa: E731
    trail = lambda w, key: ", ".join(  # noqa: E731
        f"step {r['step']}: {fmt(r.get(key))}" for r in sorted(rows, key=lambda r: r["step"]) if r["weight_decay"] == w
    )

    def first(w: float, key: str, at_least: float) -> float | None:
        steps = [r["step"] for r in rows if r["weight_decay"] == w and (r.get(key) or 0) >= at_least]
        return float(min(steps)) if steps else None

    groups = {
        "final_hi": (wd(hi), final.get(hi, {})),
        "final_lo": (wd(lo), final.get(lo, {})),
        "memorised": ("train accuracy ≥ 0.99", {"step": first(hi, "train_accuracy", 0.99)}),
        "generalised": ("test accuracy ≥ 0.9", {"step": first(hi, "test_accuracy", 0.9)}),
    }
    sentences = {
        "test_hi": f"test accuracy along training with {wd(hi)}: {trail(hi, 'test_accuracy')}.",
        "test_lo": f"test accuracy along training with {wd(lo)}: {trail(lo, 'test_accuracy')}.",
        "trajectory": (
            f"train accuracy: {trail(hi, 'train_accuracy')}; test accuracy: {trail(hi, 'test_accuracy')}. The first "
            "checkpoint may come after both."
        ),
    }
    return claims_from(MODULAR_FINDINGS, groups, sentences, last=last, wd_hi=wd(hi))


def table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, Callable[[dict[str, Any]], Any]]]) -> list[str]:
    lines = ["| " + " | ".join(h for h, _ in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(get(r)) for _, get in columns) + " |" for r in rows]
    return lines


def verdicts(claims: Sequence[Claim]) -> str:
    agree = sum(c.holds is True for c in claims)
    disagree = sum(c.holds is False for c in claims)
    missing = len(claims) - agree - disagree
    text = f"{agree} of {len(claims)} comparisons agree, {disagree} {'does' if disagree == 1 else 'do'} not"
    return text + (f", {missing} cannot be told" if missing else "")


# ---------------------------------------------------------------------------------------------
# Tables from the catalog: one row per setting (PINN, ResNet) or per (setting, step) (modular).


def _median(values: Sequence[float | None]) -> float | None:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return statistics.median(finite) if finite else None


def _mean(values: Sequence[float | None]) -> float | None:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return statistics.fmean(finite) if finite else None


@dataclass
class StudyData:
    """What the report reads of one study from the catalog."""

    name: str
    checkpoints: list[dict[str, Any]]
    performance: dict[tuple[str, str, str], float | None]
    hessian: dict[str, dict[str, float | None]]
    landscapes: list[dict[str, Any]]
    pairs: list[dict[str, Any]]
    compute_seconds: dict[str, float]
    settings: list[dict[str, Any]]  # :func:`losslens.demo.setting_table` (taxonomy's mc, CKA and phase)
    #: Each pair's latest bend fit: ``params`` (the connectivity options) and ``trace`` (the stored fit loss per step).
    fits: list[dict[str, Any]] = field(default_factory=list)
    record: dict[str, Any] = field(default_factory=dict)  # :func:`losslens.store.studies.run_record`

    @property
    def train_seconds(self) -> float:
        return sum(c["train_seconds"] or 0.0 for c in self.checkpoints if c["step"] == max_step(self, c))


def max_step(data: StudyData, checkpoint: dict[str, Any]) -> Any:
    """The last step of ``checkpoint``'s run (its sidecar's wall time covers the run up to that step)."""
    return max(
        (c["step"] for c in data.checkpoints if c["seed"] == checkpoint["seed"] and c["setting"] == checkpoint["setting"]),
        key=lambda s: -1 if s is None else s,
    )


def load_study(catalog: Path, name: str) -> StudyData | None:
    """The study's values from ``catalog``, or None when the catalog does not hold it."""
    if not Path(catalog).is_file():
        return None
    with open_catalog(catalog, readonly=True) as cat:
        found = studies_store.checkpoints(cat, name)
        if not found:
            return None
        data = StudyData(
            name,
            found,
            studies_store.performance(cat, name),
            studies_store.hessian(cat, name),
            studies_store.landscapes(cat, name),
            studies_store.pair_metrics(cat, name),
            studies_store.compute_seconds(cat, name),
            [],
            [
                {"params": f["params"], "subject": f["subject"], "trace": load_artifact(Path(catalog).parent, f["path"])}
                for f in studies_store.fit_curves(cat, name)
            ],
            studies_store.run_record(cat, name),
        )
    data.settings = setting_table(catalog, name)
    return data


def landscape_of(data: StudyData, sha: str, directions: str, span_mode: str | None = None) -> dict[str, Any] | None:
    """The checkpoint's landscape along ``directions`` (at ``span_mode``) on the finest grid the catalog holds with its
    topology computed: a study that recomputed a landscape on a larger grid reports that one once its merge tree is
    in (before, the grid that has one, so the picture and the minima always come from the same landscape)."""
    found = [
        row
        for row in data.landscapes
        if row["checkpoint"] == sha and row["directions"] == directions and (span_mode is None or row["span_mode"] == span_mode)
    ]
    return max(found, key=lambda row: (row.get("n_minima_above") is not None, row["steps"])) if found else None


def _rel_persistence(row: dict[str, Any] | None) -> float | None:
    if not row or row.get("max_persistence") is None or row.get("grid_max") is None or row.get("grid_min") is None:
        return None
    spread = row["grid_max"] - row["grid_min"]
    return row["max_persistence"] / spread if spread > 0 else None


def _pair_summary(data: StudyData, shas: set[str]) -> dict[str, Any]:
    """Mean mc (fitted curve and straight line) and fit convergence over the pairs within ``shas``."""
    inside = [p for p in data.pairs if p["checkpoint_a"] in shas and p["checkpoint_b"] in shas]
    curve = [p["value"] for p in inside if p["metric"] == "mc" and p["curve"] != "linear"]
    linear = [p["value"] for p in inside if p["metric"] == "mc" and p["curve"] == "linear"]
    flags = [p["value"] for p in inside if p["metric"] == "fit_converged"]
    return {
        "mc": _mean(curve),
        "mc_linear": _mean(linear),
        "fits": len(flags),
        "converged": sum(1 for f in flags if f == 1.0),
        "rel_change": _mean([p["value"] for p in inside if p["metric"] == "fit_rel_change"]),
        "cka": _mean([p["value"] for p in inside if p["metric"] == "cka"]),
    }


def _checkpoint_values(data: StudyData, shas: list[str], loss_split: str = "train") -> dict[str, Any]:
    perf = data.performance
    return {
        "seeds": len(shas),
        "rel_l2": _median([perf.get((s, "eval", "rel_l2")) for s in shas]),
        "train_loss": _median([perf.get((s, loss_split, "loss")) for s in shas]),
        "train_accuracy": _median([perf.get((s, "train", "accuracy")) for s in shas]),
        "test_accuracy": _median([perf.get((s, "test", "accuracy")) for s in shas]),
        "top": _median([data.hessian.get(s, {}).get("top") for s in shas]),
        "trace": _median([data.hessian.get(s, {}).get("trace") for s in shas]),
    }


def _minima(
    data: StudyData, shas: list[str], directions: str, span_mode: str | None, key: str = "n_minima_above"
) -> float | None:
    return _median([(landscape_of(data, s, directions, span_mode) or {}).get(key) for s in shas])


def _groups(data: StudyData, key: Callable[[dict[str, Any]], Any]) -> dict[Any, list[str]]:
    out: dict[Any, list[str]] = {}
    for c in data.checkpoints:
        out.setdefault(key(c), []).append(c["sha256"])
    return out


def _phase(data: StudyData, setting: str) -> dict[str, Any]:
    return next((r for r in data.settings if r["setting"] == setting), {})


def pinn_rows(data: StudyData) -> list[dict[str, Any]]:
    rows = []
    for (setting, beta), shas in _groups(data, lambda c: (c["setting"], c["values"]["beta"])).items():
        row = {"beta": beta, **_checkpoint_values(data, shas), **_pair_summary(data, set(shas))}
        row["minima_random"] = _minima(data, shas, "random", None)
        row["minima_hessian"] = _minima(data, shas, "hessian", None)
        row["rel_persistence"] = _median([_rel_persistence(landscape_of(data, s, "random")) for s in shas])
        row["mc_rel"] = row["mc"] / row["train_loss"] if row["mc"] is not None and row["train_loss"] else None
        row["phase"] = _phase(data, setting).get("phase")
        rows.append(row)
    return sorted(rows, key=lambda r: r["beta"])


def resnet_rows(data: StudyData) -> list[dict[str, Any]]:
    rows = []
    for (setting, residual), shas in _groups(data, lambda c: (c["setting"], bool(c["values"]["residual"]))).items():
        row = {"residual": residual, **_checkpoint_values(data, shas), **_pair_summary(data, set(shas))}
        row["minima_li"] = _minima(data, shas, "random", "absolute")
        row["local_minima_li"] = _minima(data, shas, "random", "absolute", "n_minima")
        row["minima_local"] = _minima(data, shas, "random", "relative")
        row["grid_li"] = _median([(landscape_of(data, s, "random", "absolute") or {}).get("steps") for s in shas])
        row["grid_local"] = _median([(landscape_of(data, s, "random", "relative") or {}).get("steps") for s in shas])
        row["rel_persistence"] = _median([_rel_persistence(landscape_of(data, s, "random", "absolute")) for s in shas])
        row["phase"] = _phase(data, setting).get("phase")
        rows.append(row)
    return sorted(rows, key=lambda r: not r["residual"])


def modular_rows(data: StudyData) -> list[dict[str, Any]]:
    rows = []
    for (wd, step), shas in _groups(data, lambda c: (c["values"]["weight_decay"], c["step"])).items():
        row = {"weight_decay": wd, "step": step, **_checkpoint_values(data, shas), **_pair_summary(data, set(shas))}
        row["minima_random"] = _minima(data, shas, "random", None)
        row["minima_pca"] = _minima(data, shas, "pca", None)
        row["theta_norm"] = _median([(landscape_of(data, s, "random") or {}).get("theta_norm") for s in shas])
        rows.append(row)
    return sorted(rows, key=lambda r: (r["weight_decay"], r["step"]))


# ---------------------------------------------------------------------------------------------
# Pictures: our own views, drawn by vl-convert at scale 1 to keep the repository small.


def _png(spec: dict[str, Any], out: Path) -> Path:
    """The chart as a PNG of at most 256 colours (Pillow's median-cut palette, no dithering): the pictures are
    committed with the report, and a palette keeps each to about a third of its true-colour size."""
    out.parent.mkdir(parents=True, exist_ok=True)
    image = Image.open(io.BytesIO(vlc.vegalite_to_png(spec, scale=1.0, allowed_base_urls=[])))
    image.convert("RGB").quantize(256, dither=Image.Dither.NONE).save(out, optimize=True)
    return out


def draw(catalog: Path, view: str, args: dict[str, str], out: Path) -> Path | None:
    """A registered view as PNG, or None when it has nothing to draw (the metric did not run)."""
    with read_catalog(catalog) as conn:
        spec, n_rows = inline_spec(conn, view, args)
    return _png(spec, out) if n_rows else None


def draw_landscape(catalog: Path, landscape_id: str, title: str, out: Path) -> Path:
    """One stored landscape (by id, so a checkpoint's random and Hessian landscapes can be drawn side by side)."""
    with read_catalog(catalog) as conn:
        cells = landscape_view.grid_rows(conn, landscape_id)
        spec = landscape_view.landscape_spec(
            values(cells),
            values(landscape_view.isoline_rows(conn, landscape_id)),
            values(landscape_view.minima_rows(conn, landscape_id)),
        )
    spec["title"] = title
    return _png(spec, out)


def _experiment_id(catalog: Path, name: str) -> str | None:
    with open_catalog(catalog, readonly=True) as cat:
        return studies_store.experiment_id(cat, name)


def _first(data: StudyData, where: Callable[..., bool]) -> dict[str, Any] | None:
    """The earliest (seed, step) checkpoint for which ``where(record)`` holds (loop values bound as lambda defaults)."""
    found = sorted((c for c in data.checkpoints if where(c)), key=lambda c: (c["seed"], c["step"] or 0))
    return found[0] if found else None


def connectivity_note(rows: Sequence[dict[str, Any]], label: Callable[[dict[str, Any]], str] | None = None) -> str:
    """How far the fitted bends moved from the straight line, from the table's own numbers: a curve whose mc is no
    better than the line's did not find a lower path (whatever its convergence flag says). With ``label`` (a row's
    name), each row whose fitted curve is worse than its straight line is named, so that an average over the rows
    cannot hide it: such a fit either stalled on a flat loss (which the plateau rule calls converged, whatever its
    height) or ended still moving (not converged)."""
    fits, converged = sum(r.get("fits", 0) for r in rows), sum(r.get("converged", 0) for r in rows)
    curve, line = _mean([r.get("mc") for r in rows]), _mean([r.get("mc_linear") for r in rows])
    if not fits or curve is None or line is None:
        return "No bend fit is in the catalog yet."
    verdict = "lowered the barrier" if curve > line else "did not lower the barrier below the straight line's"
    text = (
        f"Bend fits: {converged} of {fits} ended converged (their last window met the plateau rule); averaged over the "
        f"rows the fitted curve's mc is "
        f"{fmt(curve)} against the straight line's {fmt(line)}, so the fitted bends {verdict}."
    )
    worse = [r for r in rows if r.get("mc") is not None and r.get("mc_linear") is not None and r["mc"] < r["mc_linear"]]
    if label and worse:
        named = "; ".join(
            f"{label(r)}: mc {fmt(r['mc'])} vs {fmt(r['mc_linear'])}, {r.get('converged', 0)} of {r.get('fits', 0)} converged"
            for r in worse
        )
        text += (
            f" In {len(worse)} of {len(rows)} rows the fitted curve is worse than its straight line ({named}): a fit "
            "there that converged stalled on a flat fit loss (the plateau rule calls a flat loss converged, whatever its "
            "height), one that did not was still moving, so their mc measures neither path's barrier and says nothing "
            "about how connected these modes are."
        )
    return text


#: The plateau window the earlier runs used (one pass over the batches, at least 20 steps): the report replays the rule
#: with it on the stored fit curves to show what a longer window changes.
SHORT_WINDOW = 20


def _optimizer(p: dict[str, Any]) -> str:
    """The bend's optimiser as its connectivity run recorded it: ``auto`` fits these classifiers by SGD."""
    if p.get("optimizer") != "adam-lbfgs":
        return "SGD"
    lr = p.get("lr") if p.get("lr") is not None else 1e-3
    return f"Adam (lr {lr:g})" + (f" then {p['lbfgs_iterations']} L-BFGS iterations" if p.get("lbfgs_iterations") else "")


def fit_note(data: StudyData, compare: int = SHORT_WINDOW) -> str:
    """What the stored fit curves of a study whose bends are fitted by SGD say about the fits, one sentence per set of
    fit options (a study refitted in part has two): the plateau window and budget, the steps taken, the per-step
    noise of the fit loss, and where the rule (:func:`losslens.connectivity.fit.stopping_step`) would have stopped on
    the same curves with a ``compare``-step window, and how far above the fit's last window that was."""
    groups: dict[tuple[str, int, str, float], list[np.ndarray]] = {}
    for f in data.fits:
        if len(f["trace"]):
            p = f["params"]
            budget = f"{p['epochs']} epochs" if p.get("epochs") else f"{p.get('steps')} steps"
            key = (_optimizer(p), int(p.get("window") or 0), budget, float(p.get("tol") or 0.0))
            groups.setdefault(key, []).append(f["trace"])
    total = sum(len(t) for t in groups.values())
    return " ".join(_fit_group(traces, *key, total, compare) for key, traces in groups.items())


def _fit_group(traces: list[np.ndarray], optimizer: str, window: int, budget: str, tol: float, total: int, compare: int) -> str:
    taken = [len(tr) for tr in traces]
    span = window or compare
    last = lambda tr, w: float(tr[-w:].mean())  # noqa: E731
    spread = _median([float(tr[-span:].std()) / last(tr, span) for tr in traces])
    se = lambda w: fmt(spread / math.sqrt(w) if spread else None)  # noqa: E731
    text = (
        f"Bend fits ({len(traces)} of the {total} stored fit curves): {optimizer} for at most {budget}, the plateau rule on "
        f"{f'{window}-step windows' if window else 'the default windows (at least 20 steps in the code they ran with)'} "
        f"with tol {tol:g}; steps taken {min(taken)}–{max(taken)} (median "
        f"{fmt(_median([float(n) for n in taken]))}), mean fit loss over the first and last {span} steps "
        f"{fmt(_median([float(tr[:span].mean()) for tr in traces]))} and {fmt(_median([last(tr, span) for tr in traces]))} "
        f"(medians). The per-step fit loss (one t ~ U[0, 1] a step) spreads by {fmt(spread)} of its mean over the last "
        f"window (median), so a window's mean has a relative standard error of about {se(compare)} over {compare} steps"
        + (f" and {se(window)} over {window}" if window and window != compare else "")
    )
    early = [(n, tr) for tr in traces if (n := stopping_step(tr.tolist(), compare, tol)) is not None]
    if early and window and window != compare:
        above = _median([(float(tr[n - compare : n].mean()) - last(tr, window)) / last(tr, window) for n, tr in early])
        text += (
            f". Replayed on these curves, a {compare}-step window would have stopped {len(early)} of {len(traces)} fits, "
            f"at step {fmt(_median([float(n) for n, _ in early]))} (median), where the window's mean loss was still "
            f"{fmt(100 * above if above is not None else None)} % above the fit's last {window}-step window"
        )
    return text + "."


def fit_curve_rows(data: StudyData, window: int = SHORT_WINDOW) -> list[dict[str, Any]]:
    """The stored bend-fit curves as window means (each fit's own plateau window, or ``window`` steps where it used
    the default): one row per (pair, window) with the fit options as ``fit`` and the window's last step as ``step``."""
    rows = []
    for f in data.fits:
        w = int(f["params"].get("window") or window)
        budget = f"{f['params']['epochs']} epochs" if f["params"].get("epochs") else f"{f['params'].get('steps')} steps"
        trace = np.asarray(f["trace"], dtype=float)
        for end in range(w, len(trace) + 1, w):
            rows.append(
                {
                    "pair": f.get("subject", ""),
                    "fit": f"{w}-step windows, at most {budget}",
                    "step": end,
                    "loss": float(trace[end - w : end].mean()),
                }
            )
    return rows


def draw_fit_curves(data: StudyData, title: str, out: Path) -> Path | None:
    """:func:`fit_curve_rows` as lines, one per pair, coloured by the fit options, on a log scale: where each fit
    stopped and whether its loss was still falling; None without fits."""
    rows = fit_curve_rows(data)
    if not rows:
        return None
    spec = {
        "$schema": "https://vega.github.io/schema/vega-lite/v5.json",
        "title": title,
        "width": 360,
        "height": 220,
        "data": {"values": rows},
        "mark": {"type": "line", "point": True},
        "encoding": {
            "x": {"field": "step", "type": "quantitative", "title": "bend-fit step (end of window)"},
            "y": {"field": "loss", "type": "quantitative", "scale": {"type": "log"}, "title": "mean fit loss over the window"},
            "color": {"field": "fit", "type": "nominal", "title": "fit options", "legend": {"labelLimit": 400}},
            "detail": {"field": "pair", "type": "nominal"},
        },
    }
    return _png(spec, out)


def _images(pairs: list[tuple[str, Path | None]], rel: Callable[[Path], str]) -> str:
    return " | ".join(f"![{alt}]({rel(p)})" if p else f"({alt}: not computed)" for alt, p in pairs)


# ---------------------------------------------------------------------------------------------
# The report.


def machine() -> str:
    return (
        f"{platform.machine()} Linux, {os.cpu_count()} cores shared with other jobs (load varied), torch {torch.__version__} "
        f"on 1 thread per worker, Python {platform.python_version()}"
    )


def _timing(data: StudyData) -> str:
    """The study's wall time (training from the sidecars, metrics from the catalog's runs) and where it ran."""
    compute = sum(data.compute_seconds.values())
    parts = ", ".join(f"{m} {s:.0f} s" for m, s in sorted(data.compute_seconds.items(), key=lambda kv: -kv[1]))
    record = data.record or {}
    devices = ", ".join(f"{d} ({n} runs)" for d, n in sorted((record.get("devices") or {}).items()))
    stamp = lambda iso: iso[:16].replace("T", " ")  # noqa: E731
    when = f", from {stamp(record['first'])} to {stamp(record['last'])} UTC" if record.get("first") and record.get("last") else ""
    return (
        f"Wall time: training {data.train_seconds:.0f} s (summed over runs), metrics {compute:.0f} s summed over every "
        f"metric run in the catalog ({parts}). Metrics ran on {devices or 'an unrecorded device'}{when}, on the machine "
        "named at the top."
    )


def pinn_section(data: StudyData, catalog: Path, folder: Path, rel: Callable[[Path], str]) -> list[str]:
    rows = pinn_rows(data)
    claims = pinn_claims(rows)
    lo, hi = rows[0]["beta"], rows[-1]["beta"]
    lines = [
        "## PINN: 1-D convection across β (Krishnapriyan et al. 2021)",
        "",
        f"Setup: `{data.name}`: β ∈ {{{', '.join(format(r['beta'], 'g') for r in rows)}}}, {rows[0]['seeds']} seeds each, the "
        "2-50-50-50-50-1 tanh network, N_f = 1000 collocation points, L-BFGS (lr 1, history 50, strong Wolfe) for up to "
        "1000 iterations. mc is on the training loss; the bend is fitted by Adam then L-BFGS with the plateau rule "
        "(`losslens/connectivity/fit.py`). Landscapes 41×41 at ±1 % of ‖θ‖ along random filter-normalised directions "
        "and along the top-2 Hessian eigenvectors; minima are counted above 1 % of the grid's loss range. " + _timing(data),
        "",
        *table(
            rows,
            [
                ("β", lambda r: f"{r['beta']:g}"),
                ("seeds", lambda r: r["seeds"]),
                ("rel. L2", lambda r: r["rel_l2"]),
                ("known", lambda r: known_error(r["beta"])),
                ("train loss", lambda r: r["train_loss"]),
                ("λmax", lambda r: r["top"]),
                ("trace", lambda r: r["trace"]),
                ("minima (random)", lambda r: r["minima_random"]),
                ("minima (Hessian)", lambda r: r["minima_hessian"]),
                ("mc", lambda r: r["mc"]),
                ("mc line", lambda r: r["mc_linear"]),
                ("fits converged", lambda r: f"{r['converged']}/{r['fits']}"),
                ("CKA", lambda r: r["cka"]),
                ("phase", lambda r: r["phase"]),
            ],
        ),
        "",
        connectivity_note(rows),
        "",
        f"Against the papers ({verdicts(claims)}):",
        "",
        *(c.line() for c in claims),
        "",
    ]
    grid = []
    for beta in (lo, hi):
        ckpt = _first(data, lambda c, b=beta: c["values"]["beta"] == b)
        if ckpt is None:
            continue
        cells = []
        for directions in ("random", "hessian"):
            found = landscape_of(data, ckpt["sha256"], directions)
            path = folder / f"beta{beta:g}-{directions}.png"
            cells.append(
                (
                    f"β={beta:g}, {directions} directions",
                    draw_landscape(catalog, found["id"], f"β={beta:g}, {directions}", path) if found else None,
                )
            )
        other = _first(data, lambda c, b=beta, s=ckpt["seed"]: c["values"]["beta"] == b and c["seed"] != s)
        curve = (
            draw(catalog, "curve", {"a": ckpt["sha256"], "b": other["sha256"]}, folder / f"beta{beta:g}-curve.png")
            if other
            else None
        )
        spectrum = draw(catalog, "hessian", {"checkpoint": ckpt["sha256"]}, folder / f"beta{beta:g}-spectrum.png")
        grid.append((beta, cells, curve, spectrum))
    if grid:
        lines += [
            "| " + " | ".join(f"β = {b:g}" for b, *_ in grid) + " |",
            "|" + "---|" * len(grid),
            "| " + " | ".join(_images([cells[0]], rel) for _, cells, *_ in grid) + " |",
            "| " + " | ".join(_images([cells[1]], rel) for _, cells, *_ in grid) + " |",
            "| " + " | ".join(_images([("mode connectivity", c)], rel) for _, _, c, _ in grid) + " |",
            "| " + " | ".join(_images([("Hessian spectrum", s)], rel) for *_, s in grid) + " |",
            "",
            "Rows: landscape along random filter-normalised directions, along the top-2 Hessian eigenvectors (seed 0, "
            "±1 % of ‖θ‖), the loss along the fitted Bezier curve and the straight line between seeds 0 and 1, the top "
            "Hessian eigenvalues and spectral density.",
            "",
        ]
    return lines + _phase_plot(data, catalog, folder / "pinn-phase.png", rel)


def _fit_picture(data: StudyData, out: Path, rel: Callable[[Path], str]) -> list[str]:
    drawn = draw_fit_curves(data, f"{data.name}: bend-fit loss", out)
    caption = "The bend fits' loss as read back from the catalog (window means, one line per seed pair)."
    return [f"![bend-fit curves]({rel(drawn)})", "", caption, ""] if drawn else []


def _phase_plot(data: StudyData, catalog: Path, out: Path, rel: Callable[[Path], str]) -> list[str]:
    experiment = _experiment_id(catalog, data.name)
    drawn = draw(catalog, "taxonomy", {"experiment": experiment}, out) if experiment and data.settings else None
    return [f"![phase plot]({rel(drawn)})", "", "Yang et al.'s phase plot of the settings.", ""] if drawn else []


def modular_section(data: StudyData, catalog: Path, folder: Path, rel: Callable[[Path], str]) -> list[str]:
    rows = modular_rows(data)
    claims = modular_claims(rows)
    steps = sorted({r["step"] for r in rows})
    lines = [
        "## A transformer on (a + b) mod p: memorisation to generalisation (grokking; Power et al. 2022, Nanda et al. 2023)",
        "",
        f"Setup: `{data.name}`: a 1-layer transformer (d_model 32, 4 heads, d_mlp 128, LayerNorm, token and position "
        "embeddings) on all sums mod 23, 70 % of the 529 pairs for training, full-batch AdamW (lr 3e-3, betas 0.9/0.98) "
        f"with weight decay 0 or 2, {rows[0]['seeds']} seeds, checkpoints at steps {', '.join(map(str, steps))}. "
        f"Connectivity ({_bend_setup(data)}; mc on the training error in %) and CKA pair seeds at the same step. "
        "Landscapes "
        "21×21: random filter-normalised (each row of every weight matrix, including the token embedding and W_Q, W_K, "
        "W_V, W_O, rescaled to that row's norm; Li et al. 2018) at ±1 direction units, and the run's trajectory PCA at "
        "±25 % of ‖θ‖. " + _timing(data),
        "",
        *table(
            rows,
            [
                ("weight decay", lambda r: f"{r['weight_decay']:g}"),
                ("step", lambda r: r["step"]),
                ("train acc", lambda r: r["train_accuracy"]),
                ("test acc", lambda r: r["test_accuracy"]),
                ("‖θ‖", lambda r: r["theta_norm"]),
                ("λmax", lambda r: r["top"]),
                ("trace", lambda r: r["trace"]),
                ("minima (random)", lambda r: r["minima_random"]),
                ("minima (PCA)", lambda r: r["minima_pca"]),
                ("mc (%)", lambda r: r["mc"]),
                ("mc line (%)", lambda r: r["mc_linear"]),
                ("fits converged", lambda r: f"{r['converged']}/{r['fits']}"),
                ("CKA", lambda r: r["cka"]),
            ],
        ),
        "",
        connectivity_note(rows, lambda r: f"wd {r['weight_decay']:g}, step {r['step']}"),
        "",
        fit_note(data),
        "",
        f"Against the papers ({verdicts(claims)}):",
        "",
        *(c.line() for c in claims),
        "",
    ]
    decays = sorted({r["weight_decay"] for r in rows})
    header, cells = [], []
    for wd in decays:
        for step in (steps[0], steps[-1]):
            ckpt = _first(data, lambda c, w=wd, s=step: c["values"]["weight_decay"] == w and c["step"] == s)
            if ckpt is None:
                continue
            header.append(f"wd {wd:g}, step {step}")
            col = []
            for directions in ("random", "pca"):
                found = landscape_of(data, ckpt["sha256"], directions)
                path = folder / f"modular-wd{wd:g}-step{step}-{directions}.png"
                col.append(
                    (
                        f"{directions}",
                        draw_landscape(catalog, found["id"], f"wd {wd:g}, step {step}, {directions}", path) if found else None,
                    )
                )
            col.append(
                (
                    "Hessian spectrum",
                    draw(
                        catalog, "hessian", {"checkpoint": ckpt["sha256"]}, folder / f"modular-wd{wd:g}-step{step}-spectrum.png"
                    ),
                )
            )
            other = _first(
                data,
                lambda c, w=wd, s=step, k=ckpt["seed"]: c["values"]["weight_decay"] == w and c["step"] == s and c["seed"] != k,
            )
            col.append(
                (
                    "mode connectivity",
                    draw(
                        catalog,
                        "curve",
                        {"a": ckpt["sha256"], "b": other["sha256"]},
                        folder / f"modular-wd{wd:g}-step{step}-curve.png",
                    )
                    if other
                    else None,
                )
            )
            cells.append(col)
    if cells:
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(_images([col[i]], rel) for col in cells) + " |" for i in range(4)]
        lines += [
            "",
            "Rows: landscape along random filter-normalised directions (±1), along the trajectory's top-2 principal "
            "components (±25 % of ‖θ‖), the Hessian spectrum, and the fitted curve between seeds 0 and 1 at the same step.",
            "",
        ]
    return lines + _fit_picture(data, folder / "modular-fits.png", rel)


def _grid_size(rows: Sequence[dict[str, Any]], key: str) -> str:
    sizes = sorted({int(r[key]) for r in rows if r.get(key)})
    return " and ".join(f"{n}×{n}" for n in sizes) or "(none yet)"


def _bend_setup(data: StudyData) -> str:
    """The bend training as the catalog's connectivity runs record it."""
    if not data.fits:
        return "no bend fitted yet"
    p = data.fits[0]["params"]
    budget = f"{p['epochs']} epochs" if p.get("epochs") else f"{p.get('steps')} steps"
    pairs = {"adjacent": "each seed with the next", "within-setting": "every seed pair", "same-step": "seeds at one step"}
    lr = p.get("lr") if p.get("lr") is not None else 0.01
    how = _optimizer(p)
    if how == "SGD":
        how = f"SGD (lr {lr:g}, momentum {p.get('momentum', 0.9):g})"
    return (
        f"connectivity pairs {pairs.get(p.get('pairs'), p.get('pairs'))}, the bend by {how} for at most {budget} with "
        f"the plateau rule, mc from {p.get('points')} points of t"
    )


def resnet_section(data: StudyData, catalog: Path, folder: Path, rel: Callable[[Path], str]) -> list[str]:
    rows = resnet_rows(data)
    claims = resnet_claims(rows)
    n_train, n_test = FASHION_LIMITS
    lines = [
        "## ResNet-20 with and without skip connections on Fashion-MNIST (LossLens; Li et al. 2018)",
        "",
        f"Setup: `{data.name}`: the first {n_train:,} training and {n_test:,} test images of Fashion-MNIST (28×28, Debian's "
        f"`dataset-fashion-mnist`), {rows[0]['seeds']} seeds per architecture, "
        f"{RESNET_FASHION_CONFIG.epochs} epochs of SGD (lr 0.1 cosine, momentum 0.9, weight decay 5e-4), "
        f"batch norm. mc on the training error in %, BatchNorm re-estimated at each evaluated point; {_bend_setup(data)} "
        "(Yang et al. train the bend for 50 epochs: this is the longest that fit the session's CPU time). Landscapes on "
        f"one batch of {dict(RESNET_FASHION.options).get('landscape.batch-size', '–')}: {_grid_size(rows, 'grid_li')} "
        f"filter-normalised at Li et al.'s scale (±1 in direction units) and {_grid_size(rows, 'grid_local')} at ±1 % of "
        "‖θ‖. " + _timing(data),
        "",
        *table(
            rows,
            [
                ("skips", lambda r: "yes" if r["residual"] else "no"),
                ("seeds", lambda r: r["seeds"]),
                ("train acc", lambda r: r["train_accuracy"]),
                ("test acc", lambda r: r["test_accuracy"]),
                ("λmax", lambda r: r["top"]),
                ("trace", lambda r: r["trace"]),
                ("minima (±1)", lambda r: r["minima_li"]),
                ("local minima (±1)", lambda r: r["local_minima_li"]),
                ("minima (±1 %)", lambda r: r["minima_local"]),
                ("mc (%)", lambda r: r["mc"]),
                ("mc line (%)", lambda r: r["mc_linear"]),
                ("fits converged", lambda r: f"{r['converged']}/{r['fits']}"),
                ("CKA", lambda r: r["cka"]),
                ("phase", lambda r: r["phase"]),
            ],
        ),
        "",
        connectivity_note(rows),
        "",
        fit_note(data),
        "",
        f"Against the papers ({verdicts(claims)}):",
        "",
        *(c.line() for c in claims),
        "",
    ]
    header, cells = [], []
    for residual in (True, False):
        ckpt = _first(data, lambda c, r=residual: bool(c["values"]["residual"]) == r)
        if ckpt is None:
            continue
        name = "residual" if residual else "no-residual"
        header.append("with skips" if residual else "without skips")
        col = []
        for mode, label in (("absolute", "±1 (Li et al.)"), ("relative", "±1 % of ‖θ‖")):
            found = landscape_of(data, ckpt["sha256"], "random", mode)
            col.append(
                (
                    label,
                    draw_landscape(catalog, found["id"], f"{header[-1]}, {label}", folder / f"{name}-{mode}.png")
                    if found
                    else None,
                )
            )
        other = _first(data, lambda c, r=residual, s=ckpt["seed"]: bool(c["values"]["residual"]) == r and c["seed"] != s)
        col.append(
            (
                "mode connectivity",
                draw(catalog, "curve", {"a": ckpt["sha256"], "b": other["sha256"]}, folder / f"{name}-curve.png")
                if other
                else None,
            )
        )
        col.append(
            ("Hessian spectrum", draw(catalog, "hessian", {"checkpoint": ckpt["sha256"]}, folder / f"{name}-spectrum.png"))
        )
        cells.append(col)
    if cells:
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(_images([col[i]], rel) for col in cells) + " |" for i in range(4)]
        lines += [
            "",
            "Rows: landscape at Li et al.'s scale and at ±1 % of ‖θ‖ (seed 0, same random directions), the fitted curve "
            "between seeds 0 and 1, the Hessian spectrum.",
            "",
        ]
    return (
        lines + _fit_picture(data, folder / "resnet-fits.png", rel) + _phase_plot(data, catalog, folder / "resnet-phase.png", rel)
    )


SECTIONS: tuple[tuple[Study, Callable[..., list[str]]], ...] = (
    (PINN_PAPER, pinn_section),
    (MODULAR, modular_section),
    (RESNET_FASHION, resnet_section),
)


def render_markdown(work: Path, out: Path, studies: Sequence[str]) -> str:
    """The whole report from the studies' catalogs (``work/<study>/catalog/losslens.db``): one section per study in
    ``studies`` found there, a note for the others."""
    folder = out.parent / out.stem
    rel = lambda p: p.relative_to(out.parent).as_posix()  # noqa: E731
    lines = [
        "# Case studies: the LossLens studies and a transformer, reproduced on a CPU",
        "",
        f"_Generated by `losslens report case-studies` on {date.today().isoformat()} (losslens {__version__}). Do not edit "
        "by hand: rerun the command. Every number below is read from the catalog, and every verdict is a comparison "
        "evaluated by `losslens/case_studies.py`; a disagreement is followed by the measured values that bear on it._",
        "",
        f"Machine: {machine()}. Medians over seeds; mc and CKA are means over seed pairs; minima are the merge tree's "
        "branches persisting above 1 % of the grid's loss range (the threshold that separates the numerical ripples of a "
        "single basin, whose largest persistence is reported below, from separate basins).",
        "",
    ]
    missing = []
    for study, section in SECTIONS:
        if study.name not in studies:
            continue
        catalog = catalog_path(Path(work) / study.name)
        data = load_study(catalog, study.name)
        if data is None:
            missing.append(study.name)
            continue
        lines += section(data, catalog, folder, rel)
    if missing:
        lines += ["## Not run", "", f"Not in the catalog (did not fit the session's time): {', '.join(missing)}.", ""]
    lines += [
        "## Reproduce",
        "",
        "```bash",
        "losslens report case-studies --work runs/case-studies --out docs/case-studies.md   # every study, then this page",
        f"losslens report case-studies --study {RESNET_FASHION.name} --work runs/case-studies   # one study (the page then shows it alone)",
        "losslens serve --catalog runs/case-studies/modular/catalog/losslens.db   # browse one study (each has its catalog)",
        "```",
        "",
        "The command trains, ingests and computes incrementally (a rerun only rewrites this page and its pictures); "
        "`--no-run` writes the report from what the catalog holds. Each study ran in its own background process through "
        "`losslens.demo.run_study`, what `--study NAME` calls (one process per study, so they can run at once); this page "
        f"was then written by `losslens report case-studies --no-run --work {work} --out {out}`. Each study's passes "
        "(`losslens compute` options; a second pass recomputes only its metrics with other directions or span): "
        + "; ".join(
            f"{s.name}: "
            + " then ".join(
                f"`{' '.join(metrics)}` with " + " ".join(f"--{k} {v}" for k, v in options)
                for metrics, options in ((s.metrics, s.options), *s.passes)
            )
            for s, _ in SECTIONS
            if s.name in studies
        )
        + ".",
        "",
    ]
    return "\n".join(lines)


def write_case_studies(
    work: Path,
    out: Path,
    on_event: OnEvent = lambda *a, **k: None,
    *,
    jobs: int = 1,
    run: bool = True,
    studies: Sequence[str] = STUDY_NAMES,
) -> Path:
    """Run the named studies, each in its own folder ``work/<study>`` with its own catalog (incrementally; skipped
    with ``run=False``), and write ``out`` with its pictures in the sibling folder named after it
    (``docs/case-studies/``). One catalog per study lets the studies run as separate processes at once."""
    work, out = Path(work), Path(out)
    missing = [s for s in studies if s not in {x.name for x in STUDIES}]
    if missing:
        raise unknown_name("study", missing[0], [s.name for s in STUDIES], where="--study")
    if run:
        for study in STUDIES:
            if study.name in studies:
                run_study(study, work / study.name, on_event, jobs=jobs)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_markdown(work, out, studies))
    return out
