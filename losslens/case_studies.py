"""``docs/case-studies.md``: the paper's two case studies, run for real and written up from the catalog.

Both studies go through the demo's pipeline (:func:`losslens.demo.run_study`) into one catalog: the
PINN across β at the demo's default scale, and ResNet-20 on scikit-learn's digits with and without
skip connections. The text compares our numbers with the papers' qualitative findings, and every
"agrees" or "does not agree" is the outcome of a comparison evaluated here (:class:`Claim`), never
a sentence written in advance. The pictures are our own views (the export code's inline specs,
drawn by vl-convert at scale 1 to keep the repository small).
"""

from __future__ import annotations

import functools
import itertools
import math
import platform
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import torch
import vl_convert as vlc

from losslens import __version__
from losslens.demo import DEFAULT as PINN
from losslens.demo import Study, StudyResult, run_study
from losslens.errors import LossLensError
from losslens.export.chart import inline_spec, read_catalog, resolve_checkpoint
from losslens.train import ClassifierConfig, parse_dataset, train_classifier
from losslens.train.outputs import OnEvent

#: ResNet-20 with and without skips on digits at laptop scale: 2 seeds × 10 epochs (≈ 2–3 s an epoch).
#: Landscapes are 21×21 (each point is a forward pass over a batch); the Hessian is on one batch of 200,
#: as in Yang et al.; connectivity keeps its defaults (200 SGD steps, BatchNorm re-estimated at each point).
RESNET = Study(
    "resnet20-digits",
    functools.partial(
        train_classifier,
        dataset=parse_dataset("digits"),
        seeds=(0, 1),
        residual=(True, False),
        config=ClassifierConfig(epochs=10),
    ),
    (
        ("landscape.steps", "21"),
        ("topology.steps", "21"),
        ("hessian.batch-size", "200"),
        ("hessian.trace-probes", "50"),
        ("hessian.esd-runs", "2"),
    ),
)


def known_error(beta: float) -> str:
    """What the relative L2 error is known to be at ``beta`` (Krishnapriyan et al. 2021)."""
    if beta <= 1:
        return "≈ 1e-2 (learns)"
    if beta >= 20:
        return "≈ 1 (fails)"
    return "between the two regimes"


@dataclass(frozen=True)
class Claim:
    """A finding of the papers as a comparison of two of our numbers: ``left`` ``relation`` ``right``."""

    finding: str  # the paper's qualitative finding, in words
    measure: str  # what we compare
    left: tuple[str, float | None]  # (label, value)
    relation: str  # "<", ">", "<=", ">="
    right: tuple[str, float | None]

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
        return (
            f"- {verdict} {self.finding}. Expected {self.measure}: {self.left[0]} {relation} {self.right[0]}; "
            f"measured {measured}."
        )


def fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def _by(rows: Sequence[dict[str, Any]], key: str) -> dict[Any, dict[str, Any]]:
    return {r["values"][key]: r for r in rows}


def pinn_claims(rows: Sequence[dict[str, Any]]) -> list[Claim]:
    """Krishnapriyan et al. and LossLens on the PINN: the error trend, and larger β giving sharper, more
    rugged landscapes with poor connectivity (smallest β against largest β)."""
    by = _by(rows, "beta")
    lo, hi = min(by), max(by)
    small, large = f"β={lo:g}", f"β={hi:g}"
    get = lambda beta, key: by[beta][key]  # noqa: E731
    claims = [
        Claim("the PINN learns at β = 1 (rel. L2 ≈ 1e-2)", "median rel. L2", (small, get(lo, "rel_l2")), "<", ("0.05", 0.05)),
        Claim("it fails at β ≥ 20–30 (rel. L2 ≈ 1)", "median rel. L2", (large, get(hi, "rel_l2")), ">", ("0.5", 0.5)),
    ]
    for a, b in itertools.pairwise(sorted(by)):
        claims.append(
            Claim("the error grows with β", "median rel. L2", (f"β={a:g}", get(a, "rel_l2")), "<", (f"β={b:g}", get(b, "rel_l2")))
        )
    claims += [
        Claim(
            "larger β gives a sharper landscape",
            "median top Hessian eigenvalue",
            (small, get(lo, "top_eigenvalue")),
            "<",
            (large, get(hi, "top_eigenvalue")),
        ),
        Claim(
            "larger β gives a sharper landscape",
            "median Hessian trace",
            (small, get(lo, "trace")),
            "<",
            (large, get(hi, "trace")),
        ),
        Claim(
            "larger β gives a more rugged landscape",
            "median number of local minima of the landscape grid",
            (small, get(lo, "n_local_minima")),
            "<",
            (large, get(hi, "n_local_minima")),
        ),
        Claim(
            "larger β gives a more rugged landscape",
            "median number of persistent minima (merge tree pruned at 1% of the loss range)",
            (small, get(lo, "n_minima")),
            "<",
            (large, get(hi, "n_minima")),
        ),
        Claim("larger β gives poor connectivity (mc < 0)", "mean mc", (large, get(hi, "mc")), "<", ("0", 0.0)),
        Claim("larger β is worse connected than small β", "mean mc", (large, get(hi, "mc")), "<", (small, get(lo, "mc"))),
        Claim("small β is well connected (mc ≥ 0)", "mean mc", (small, get(lo, "mc")), ">=", ("0", 0.0)),
    ]
    return claims


def resnet_claims(rows: Sequence[dict[str, Any]]) -> list[Claim]:
    """LossLens (after Li et al. 2018): skip connections give flatter, better-connected landscapes and
    better models."""
    by = _by(rows, "residual")
    skip, plain = by.get(True, {}), by.get(False, {})
    s, p = "with skips", "without skips"
    return [
        Claim(
            "skips give better models",
            "median test accuracy",
            (s, skip.get("test_accuracy")),
            ">",
            (p, plain.get("test_accuracy")),
        ),
        Claim(
            "skips give a flatter landscape",
            "median top Hessian eigenvalue",
            (s, skip.get("top_eigenvalue")),
            "<",
            (p, plain.get("top_eigenvalue")),
        ),
        Claim("skips give a flatter landscape", "median Hessian trace", (s, skip.get("trace")), "<", (p, plain.get("trace"))),
        Claim(
            "skips give a smoother landscape",
            "median number of local minima of the landscape grid",
            (s, skip.get("n_local_minima")),
            "<",
            (p, plain.get("n_local_minima")),
        ),
        Claim(
            "skips give a smoother landscape",
            "median number of persistent minima (merge tree pruned at 1% of the loss range)",
            (s, skip.get("n_minima")),
            "<",
            (p, plain.get("n_minima")),
        ),
        Claim("skips give better-connected modes", "mean mc (training error, %)", (s, skip.get("mc")), ">", (p, plain.get("mc"))),
        Claim("skips give well-connected modes (mc ≥ 0)", "mean mc (training error, %)", (s, skip.get("mc")), ">=", ("0", 0.0)),
    ]


def table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, Callable[[dict[str, Any]], Any]]]) -> list[str]:
    lines = ["| " + " | ".join(h for h, _ in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(get(r)) for _, get in columns) + " |" for r in rows]
    return lines


def verdicts(claims: Sequence[Claim]) -> str:
    agree = sum(c.holds is True for c in claims)
    disagree = sum(c.holds is False for c in claims)
    return f"{agree} of {len(claims)} comparisons agree, {disagree} {'does' if disagree == 1 else 'do'} not"


# ---------------------------------------------------------------------------------------------
# Pictures: a few views, drawn from the same inline specs as `losslens export chart`.


def draw(catalog: Path, view: str, args: dict[str, str], out: Path) -> Path:
    with read_catalog(catalog) as conn:
        spec, n_rows = inline_spec(conn, view, args)
    if n_rows == 0:
        raise LossLensError(
            f"the {view} view has nothing to draw",
            where=", ".join(args.values()),
            hint="the study's metrics failed; see `losslens status`",
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(vlc.vegalite_to_png(spec, scale=1.0, allowed_base_urls=[]))
    return out


def _sha(catalog: Path, name: str) -> str:
    with read_catalog(catalog) as conn:
        return resolve_checkpoint(conn, name)


def pictures(catalog: Path, folder: Path, pinn: Sequence[float], skips: Sequence[bool]) -> dict[str, Path]:
    """The landscape of seed 0 and the curve from seed 0 to seed 1, for the given settings of both studies."""
    prefixes = [f"beta{b:g}" for b in pinn] + ["residual" if r else "no-residual" for r in skips]
    drawn: dict[str, Path] = {}
    for prefix in prefixes:  # checkpoint names as training writes them, e.g. beta1-seed0, no-residual-seed1
        a, b = _sha(catalog, f"{prefix}-seed0"), _sha(catalog, f"{prefix}-seed1")
        drawn[f"{prefix}-landscape"] = draw(catalog, "landscape", {"checkpoint": a}, folder / f"{prefix}-landscape.png")
        drawn[f"{prefix}-curve"] = draw(catalog, "curve", {"a": a, "b": b}, folder / f"{prefix}-curve.png")
    return drawn


# ---------------------------------------------------------------------------------------------
# The report.


def render_markdown(
    pinn: StudyResult, resnet: StudyResult, images: dict[str, Path], out: Path, pinn_betas: Sequence[float]
) -> str:
    """The whole report from the two studies' setting tables."""
    rel = lambda p: p.relative_to(out.parent).as_posix()  # noqa: E731
    p_claims, r_claims = pinn_claims(pinn.settings), resnet_claims(resnet.settings)
    lo, hi = min(pinn_betas), max(pinn_betas)
    lines = [
        "# Case studies: the two LossLens studies, reproduced on a CPU",
        "",
        f"_Generated by `losslens report case-studies` on {date.today().isoformat()} (losslens {__version__}, "
        f"torch {torch.__version__}, Python {platform.python_version()}). "
        "Do not edit by hand: rerun the command. Every number below is read from the catalog it builds, and every "
        "verdict is a comparison evaluated by `losslens/case_studies.py`._",
        "",
        "Values are medians over seeds (rel. L2 error, accuracy, top Hessian eigenvalue, Hutchinson trace, and the "
        "minima of the 2-D landscape: every local minimum of the grid, and those whose merge-tree branch persists "
        "above 1% of the loss range); mc and CKA are the taxonomy's means over seed pairs, and the phase is Yang et "
        "al.'s, with sharpness and CKA thresholds at the median over the settings compared.",
        "",
        "## PINN: 1-D convection across β (Krishnapriyan et al. 2021)",
        "",
        f"Setup: `{pinn.study}`, the demo's default plan (`losslens demo`): β ∈ {{{', '.join(f'{b:g}' for b in pinn_betas)}}}, "
        f"{pinn.settings[0]['seeds']} seeds each, L-BFGS, 2-50-50-50-50-1 tanh. mc is measured on the training loss.",
        "",
        *table(
            pinn.settings,
            [
                ("β", lambda r: f"{r['values']['beta']:g}"),
                ("seeds", lambda r: r["seeds"]),
                ("rel. L2 error", lambda r: r["rel_l2"]),
                ("known", lambda r: known_error(r["values"]["beta"])),
                ("top eigenvalue", lambda r: r["top_eigenvalue"]),
                ("trace", lambda r: r["trace"]),
                ("local minima", lambda r: r["n_local_minima"]),
                ("persistent minima", lambda r: r["n_minima"]),
                ("mc", lambda r: r["mc"]),
                ("CKA", lambda r: r["cka"]),
                ("phase", lambda r: r["phase"]),
            ],
        ),
        "",
        f"Against the papers ({verdicts(p_claims)}):",
        "",
        *(c.line() for c in p_claims),
        "",
        f"| β = {lo:g} | β = {hi:g} |",
        "|---|---|",
        f"| ![landscape, β={lo:g}]({rel(images[f'beta{lo:g}-landscape'])}) | ![landscape, β={hi:g}]({rel(images[f'beta{hi:g}-landscape'])}) |",
        f"| ![mode connectivity, β={lo:g}]({rel(images[f'beta{lo:g}-curve'])}) | ![mode connectivity, β={hi:g}]({rel(images[f'beta{hi:g}-curve'])}) |",
        "",
        "Loss landscapes of seed 0 (random filter-normalised directions) and the loss along the fitted Bezier curve "
        "and the straight line between seeds 0 and 1.",
        "",
        "## ResNet-20 on digits, with and without skip connections (LossLens; Li et al. 2018)",
        "",
        f"Setup: `{resnet.study}`: scikit-learn's 8×8 digits, {resnet.settings[0]['seeds']} seeds × "
        f"{RESNET.train.keywords['config'].epochs} epochs of SGD per setting, batch norm. "
        "mc is measured on the training error in %, with BatchNorm statistics "
        "re-estimated along the curve. The paper used CIFAR-10, which cannot be downloaded here; digits is the offline "
        "stand-in, so absolute values are not comparable with the paper's, only the direction of each difference.",
        "",
        *table(
            resnet.settings,
            [
                ("skips", lambda r: "yes" if r["values"]["residual"] else "no"),
                ("seeds", lambda r: r["seeds"]),
                ("train accuracy", lambda r: r["train_accuracy"]),
                ("test accuracy", lambda r: r["test_accuracy"]),
                ("top eigenvalue", lambda r: r["top_eigenvalue"]),
                ("trace", lambda r: r["trace"]),
                ("local minima", lambda r: r["n_local_minima"]),
                ("persistent minima", lambda r: r["n_minima"]),
                ("mc (%)", lambda r: r["mc"]),
                ("CKA", lambda r: r["cka"]),
                ("phase", lambda r: r["phase"]),
            ],
        ),
        "",
        f"Against the paper ({verdicts(r_claims)}):",
        "",
        *(c.line() for c in r_claims),
        "",
        "| with skips | without skips |",
        "|---|---|",
        f"| ![landscape, with skips]({rel(images['residual-landscape'])}) | ![landscape, without skips]({rel(images['no-residual-landscape'])}) |",
        f"| ![mode connectivity, with skips]({rel(images['residual-curve'])}) | ![mode connectivity, without skips]({rel(images['no-residual-curve'])}) |",
        "",
        "## Reproduce",
        "",
        "```bash",
        "losslens report case-studies --work runs/case-studies --out docs/case-studies.md",
        "losslens serve --catalog runs/case-studies/catalog/losslens.db   # browse both studies",
        "```",
        "",
        "The command trains, ingests and computes incrementally, so a rerun only rewrites this page and its pictures. "
        "Metric options: "
        + "; ".join(
            f"{s.study}: " + (" ".join(f"--{k} {v}" for k, v in opts) or "defaults")
            for s, opts in ((pinn, PINN.options), (resnet, RESNET.options))
        )
        + ".",
        "",
    ]
    return "\n".join(lines)


def write_case_studies(
    work: Path, out: Path, on_event: OnEvent = lambda *a, **k: None, *, jobs: int = 1
) -> tuple[Path, StudyResult, StudyResult]:
    """Run both studies under ``work`` (incrementally) and write ``out`` with its pictures in ``out``'s
    sibling folder named after it (``docs/case-studies/``)."""
    work, out = Path(work), Path(out)
    pinn = run_study(PINN, work, on_event, jobs=jobs)
    resnet = run_study(RESNET, work, on_event, jobs=jobs)
    betas = sorted(r["values"]["beta"] for r in pinn.settings)
    images = pictures(pinn.catalog, out.parent / out.stem, (betas[0], betas[-1]), (True, False))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_markdown(pinn, resnet, images, out, betas))
    return out, pinn, resnet
