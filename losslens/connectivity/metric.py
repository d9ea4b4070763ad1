"""The ``connectivity`` metric: fit a curve between two seeds of a setting and score its barrier."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from losslens.connectivity.batchnorm import cumulative_bn_copy, recompute_bn_stats
from losslens.connectivity.curves import CurveName, Params, point_on_curve
from losslens.connectivity.fit import fit_bends
from losslens.connectivity.score import mode_connectivity
from losslens.errors import LossLensError
from losslens.jobs.context import JobContext, Subject
from losslens.jobs.pairs import PAIRS_HELP
from losslens.metrics.registry import Result, register
from losslens.params import flatten
from losslens.problems.capabilities import ClassProbabilities, LossAndError, PinnField
from losslens.store.ids import params_hash

#: The plateau rule's shortest default window. One t ~ U[0, 1] a step makes the fit loss noisy: on the modular study's
#: stored fit curves it spreads by 0.05 to 1 times its mean from step to step, so a 20-step window's mean is uncertain by
#: 1–20 %, above the 1 % tolerance, and the first runs' 20-step windows stopped every fit by step 120 while the loss was
#: still falling (refitted with 100-step windows, the weight decay 0, step 300 pair ran its whole 1,000 steps, its
#: window means falling from 1.87 to 0.105, where 20-step windows had stopped it at step 60 at 1.79); 100 steps
#: average the noise down by √5 (tests/test_connectivity.py: the rule on a synthetic noisy curve).
MIN_WINDOW = 100


@dataclass(frozen=True)
class ConnectivityParams:
    pairs: str = field(default="within-setting", metadata={"help": PAIRS_HELP})
    curve: CurveName = field(default="bezier", metadata={"help": "Path between the two modes (linear trains nothing)."})
    bends: int = field(default=1, metadata={"help": "Trainable bends; 1 with bezier is the quadratic curve of Yang et al."})
    optimizer: Literal["auto", "sgd", "adam-lbfgs"] = field(
        default="auto",
        metadata={
            "help": "Bend optimiser: SGD with momentum (Yang et al.), or Adam then L-BFGS (how PINNs are trained); "
            "auto: Adam then L-BFGS for PINNs, SGD for classifiers and language models."
        },
    )
    steps: int = field(
        default=200, metadata={"help": "SGD or Adam steps for the bends (a budget), one t ~ U[0,1] and one batch each."}
    )
    epochs: int = field(
        default=0, metadata={"help": "SGD budget in passes over the training batches (Yang et al.: 50); > 0 overrides --steps."}
    )
    lr: float | None = field(default=None, metadata={"help": "Learning rate for SGD/Adam (default: SGD 0.01, Adam 1e-3)."})
    momentum: float = field(default=0.9, metadata={"help": "SGD momentum for the bends."})
    window: int = field(
        default=0,
        metadata={
            "help": "Steps per window of the plateau rule (default: one pass over the batches, at least 100 steps: with "
            "one random t a step, the fit loss is noisy and shorter windows stop on noise)."
        },
    )
    tol: float = field(
        default=0.01,
        metadata={
            "help": "Plateau rule: a window's mean fit loss moved (up or down) by less than this fraction of the "
            "previous window's. SGD stops at the first such window; fit_converged says whether the fit's last "
            "window met it (L-BFGS: its best loss over the last tenth of its evaluations, or torch's own stopping "
            "tests). 0 runs the whole budget; then only L-BFGS's own tests call a fit converged."
        },
    )
    lbfgs_iterations: int = field(
        default=500, metadata={"help": "L-BFGS iterations after Adam (adam-lbfgs only; with --steps 0, L-BFGS alone)."}
    )
    t_points: int = field(default=10, metadata={"help": "Fixed t (midpoint rule) of the L-BFGS objective."})
    seed: int = field(default=0, metadata={"help": "Seed of the t samples."})
    points: int = field(default=11, metadata={"help": "Evaluated points t = 0, 1/(N−1), …, 1 (≥ 3)."})
    batch_size: int | None = field(
        default=None,
        metadata={"help": "Training batch size for the bends, BN statistics and evaluation (default: the problem's)."},
    )
    eval_batches: int | None = field(default=None, metadata={"help": "Training batches per evaluated point (default: all)."})
    bn_batches: int | None = field(
        default=None, metadata={"help": "Training batches to re-estimate BatchNorm statistics (default: all)."}
    )
    compare_linear: bool = field(
        default=True, metadata={"help": "Also evaluate the straight line, for the barrier the curve removes."}
    )

    def __post_init__(self) -> None:
        """Checked when the options are read, so a bad value is one line before any job runs (not a failed run
        per pair)."""
        if self.points < 3:
            raise LossLensError("--points must be at least 3", where="connectivity")
        if self.steps < 0 or self.epochs < 0 or self.lbfgs_iterations < 0 or self.t_points < 1 or self.tol < 0:
            raise LossLensError(
                "--steps, --epochs, --lbfgs-iterations and --tol must be non-negative and --t-points positive",
                where="connectivity",
            )
        if self.curve != "linear" and self.bends < 1:
            raise LossLensError("--bends must be at least 1 for a curve", where="connectivity", hint="or use --curve linear")


class PathEvaluator:
    """Evaluates training loss and error at points of a path between two subjects' parameters."""

    def __init__(self, subject: Subject, params: ConnectivityParams):
        self.subject = subject
        self.problem = subject.problem
        self.params = params
        self.twin = cumulative_bn_copy(subject.model)  # train mode: batch statistics, for BN models
        self.train_buffers = {k: v.clone() for k, v in subject.buffers.items()}  # train mode writes into these

    @property
    def quantity(self) -> str:
        """mc is on training error (%) for classifiers (Yang et al.), on the loss otherwise (PINNs, language models)."""
        return "error" if isinstance(self.problem, ClassProbabilities) else "loss"

    def train_loss(self, params: Params, batch: Any) -> torch.Tensor:
        return self.problem.loss(self.twin, {**params, **self.train_buffers}, batch)

    def train_batches(self):
        return self.problem.batches("train", batch_size=self.params.batch_size)

    def buffers_at(self, params: Params) -> dict[str, torch.Tensor]:
        if not self.subject.has_batch_norm:
            return self.subject.buffers
        batches = self.problem.batches("train", batch_size=self.params.batch_size, limit=self.params.bn_batches)
        return recompute_bn_stats(self.twin, params, self.subject.buffers, batches, self.problem.loss)

    @torch.no_grad()
    def evaluate(self, params: Params) -> tuple[float, float]:
        """(training loss, error) at θ: error fraction for problems with ``loss_and_error`` (classifiers; LMs' top-1
        next token), eval rel. L2 for a PINN field, NaN (stored as NULL) for problems with neither capability."""
        state = {**params, **self.buffers_at(params)}
        if isinstance(self.problem, LossAndError):
            return self.problem.loss_and_error(
                self.subject.model, state, "train", batch_size=self.params.batch_size, limit=self.params.eval_batches
            )
        batches = self.problem.batches("train", batch_size=self.params.batch_size, limit=self.params.eval_batches)
        losses = [float(self.problem.loss(self.subject.model, state, batch)) for batch in batches]
        loss = sum(losses) / len(losses)
        error = self.problem.relative_l2(self.subject.model, state) if isinstance(self.problem, PinnField) else math.nan
        return loss, error

    def mc_value(self, loss: float, error: float) -> float:
        return 100.0 * error if self.quantity == "error" else loss


def _check_compatible(a: Subject, b: Subject) -> None:
    shapes_a = {k: tuple(v.shape) for k, v in {**a.params, **a.frozen}.items()}
    shapes_b = {k: tuple(v.shape) for k, v in {**b.params, **b.frozen}.items()}
    if shapes_a != shapes_b or set(a.frozen) != set(b.frozen):
        raise LossLensError(
            f"{a.name} and {b.name} have different parameters",
            where="connectivity",
            hint="connect checkpoints of one architecture (use --pairs within-setting)",
        )


def profile(
    evaluator: PathEvaluator, curve: CurveName, start: Params, end: Params, bends: list[Params], ts: np.ndarray
) -> list[tuple[float, float, float]]:
    """(t, loss, error) at each t along the curve."""
    return [(float(t), *evaluator.evaluate(point_on_curve(curve, float(t), start, end, bends))) for t in ts]


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


@register("connectivity", scope="pair", params=ConnectivityParams, tables=("pair_metrics", "curve_points"))
def connectivity(ctx: JobContext, params: ConnectivityParams) -> Result:
    """Mode connectivity mc of a Bezier/polychain curve fitted between two seeds (training error or PINN loss);
    also stores the bend fit's loss curve (artifact ``fit_loss``) and where the fit ended: ``fit_rel_change``, the
    relative fall of the mean fit loss over its last window from the window before (SGD, Adam; the window is
    ``--window`` steps), or of L-BFGS's best objective over its last max(5, n/10) of n evaluations, and
    ``fit_converged`` (1/0), whether that end met the plateau rule with ``--tol`` (|fall| < tol), or L-BFGS stopped
    on torch's own tests before its iteration and evaluation budgets. An earlier window that met the rule does not
    count (the rule in full: :mod:`losslens.connectivity.fit`)."""
    sha_a, sha_b = ctx.shas
    a, b = ctx.subject(sha_a), ctx.subject(sha_b)
    _check_compatible(a, b)
    evaluator = PathEvaluator(a, params)
    result = Result()
    # Every point of the path is a whole model: frozen parameters (requires_grad=False) are path
    # coordinates too, interpolated linearly from a's to b's and never trained, so t = 1 is b itself.
    start, end = {**a.params, **a.frozen}, {**b.params, **b.frozen}
    bends: list[Params] = []
    phash = params_hash(dataclasses.asdict(params))
    if params.curve != "linear":
        optimizer = (
            params.optimizer if params.optimizer != "auto" else ("adam-lbfgs" if evaluator.problem.kind == "pinn" else "sgd")
        )
        per_epoch = sum(1 for _ in evaluator.train_batches())
        steps = params.epochs * per_epoch if params.epochs > 0 and optimizer == "sgd" else params.steps
        fitted = fit_bends(
            params.curve,
            start,
            end,
            evaluator.train_loss,
            evaluator.train_batches,
            bends=params.bends,
            steps=steps,
            lr=params.lr if params.lr is not None else (0.01 if optimizer == "sgd" else 1e-3),
            momentum=params.momentum,
            seed=params.seed,
            optimizer=optimizer,
            window=params.window or max(per_epoch, MIN_WINDOW),
            tol=params.tol,
            lbfgs_iterations=params.lbfgs_iterations,
            t_points=params.t_points,
            fixed=frozenset(a.frozen),
        )
        bends = fitted.bends
        trained = [{k: p[k] for k in a.params} for p in bends]
        result.artifact("bends", "curve_bends", torch.stack([flatten(p) for p in trained]).detach().cpu().numpy())
        result.artifact("fit_loss", "curve_fit_loss", np.asarray(fitted.trace, dtype=np.float64))
        for metric, value in (("fit_converged", float(fitted.converged)), ("fit_rel_change", fitted.rel_change)):
            result.add(
                "pair_metrics",
                checkpoint_a=sha_a,
                checkpoint_b=sha_b,
                metric=metric,
                curve=params.curve,
                quantity="loss",
                value=_finite(value),
                params_hash=phash,
            )
    ts = np.linspace(0.0, 1.0, params.points)
    curves = [params.curve] + (["linear"] if params.compare_linear and params.curve != "linear" else [])
    for curve in curves:
        rows = profile(evaluator, curve, start, end, bends, ts)
        for t, loss, error in rows:
            result.add(
                "curve_points", checkpoint_a=sha_a, checkpoint_b=sha_b, curve=curve, t=t, loss=_finite(loss), error=_finite(error)
            )
        values = [evaluator.mc_value(loss, error) for _, loss, error in rows]
        mc, _ = mode_connectivity(values)
        result.add(
            "pair_metrics",
            checkpoint_a=sha_a,
            checkpoint_b=sha_b,
            metric="mc",
            curve=curve,
            quantity=evaluator.quantity,
            value=_finite(mc),
            params_hash=phash,
        )
    return result
