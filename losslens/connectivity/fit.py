"""Training a curve's bends: minimise the expected loss along the curve, E_{t~U[0,1]} L(θ(t)).

Two optimisers, as the papers trained their networks:

- ``sgd``: SGD with momentum, one t ~ U[0, 1] and one training batch per step (Garipov et al. 2018;
  Yang et al. 2021 train the bend with lr 0.01, momentum 0.9 for 50 epochs). For classifiers.
- ``adam-lbfgs``: Adam steps with t ~ U[0, 1], then L-BFGS (strong Wolfe) on the expectation
  approximated by the midpoint rule over ``t_points`` fixed t, a deterministic objective as L-BFGS
  needs. For PINNs, whose loss reaches its floor only with L-BFGS (Krishnapriyan et al. train the
  network itself that way), so an SGD-fitted curve is still far above the endpoints' loss.

Stopping rule (SGD) and convergence (every optimiser), with ``window`` W ≥ 1 and ``tol`` > 0. The
plateau change of a fit-loss trace is the relative fall of the mean of its last W values from the mean of
the W values before them, (m_prev − m_last) / |m_prev| (positive: still falling; negative: rising).
SGD stops at the first multiple of W steps (at least 2·W) where |change| < tol: the window mean moved by
less than ``tol`` of itself, in either direction. Adam runs its whole budget.

The stored ``fit_converged`` flag and ``fit_rel_change`` describe where the fit *ended*, not any window
on the way (a rule once met at step 300 says nothing about a loss that moved again by step 1000):

- SGD or Adam (no L-BFGS after it): ``rel_change`` is the plateau change of the fit's last W steps
  against the W before them (the last two windows of the trace, whatever multiple of W the budget is);
  converged iff |rel_change| < tol. Fewer than 2·W steps: nan, not converged.
- Adam then L-BFGS, or L-BFGS alone (``steps`` 0): only L-BFGS counts (Adam's end is where it starts).
  With b_i the best objective among its first i evaluations (line-search trials included, so b never
  rises) and n evaluations, the window is the last w = max(5, ⌊n/10⌋): ``rel_change`` =
  (b_(n−w) − b_n) / |b_(n−w)|, or against the first evaluation when n ≤ w. Converged iff L-BFGS stopped
  on one of torch's own tests at its last iterate (gradient max-norm ≤ 1e-7, or a step or loss change
  below 1e-9) *before* both of its budgets, ``lbfgs_iterations`` iterations and ⌊1.25·lbfgs_iterations⌋
  evaluations (torch's ``max_eval``), or n > w and rel_change < tol (a handful of evaluations, the first
  and smallest steps, shows no plateau). Stopping short of the iteration budget alone
  does not count: torch also stops there when it runs out of evaluations. From a stored curve: fewer
  than ``lbfgs_iterations`` evaluations means neither budget was reached (each iteration evaluates at
  least once).

``tol`` 0 calls no SGD/Adam fit converged (SGD then runs its whole budget), and L-BFGS only when it
stopped on its own tests; ``rel_change`` still says how much the end moved. A fit that is not converged
has an mc that bounds the curve's barrier rather than measuring it.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Literal, NamedTuple

import torch

from losslens.connectivity.curves import CurveName, Params, initial_bends, point_on_curve
from losslens.errors import LossLensError

BendOptimizer = Literal["sgd", "adam-lbfgs"]


class BendFit(NamedTuple):
    bends: list[Params]
    trace: list[float]  # the fit loss at each SGD/Adam step, then at each L-BFGS objective evaluation
    converged: bool  # the fit's end met the rule (module docstring), not any earlier window
    rel_change: float  # the end's relative fall: last window (SGD/Adam) or last tenth of L-BFGS's evaluations; nan if unknown
    steps: int  # SGD/Adam steps taken plus L-BFGS iterations


def plateau(trace: Sequence[float], window: int) -> float:
    """Relative fall of the mean of the last ``window`` values from the mean of the ``window`` before:
    (before − last) / |before|, positive while the loss falls (nan while fewer than 2·window values exist)."""
    if window < 1 or len(trace) < 2 * window:
        return math.nan
    last = sum(trace[-window:]) / window
    before = sum(trace[-2 * window : -window]) / window
    return (before - last) / abs(before) if before != 0 else 0.0


def settled(change: float, tol: float) -> bool:
    """The plateau rule on one window: the loss moved by less than ``tol`` of itself, either way (False for nan,
    and always with ``tol`` ≤ 0)."""
    return abs(change) < tol


def lbfgs_fall(evaluations: Sequence[float]) -> float:
    """Relative fall of the best objective over L-BFGS's last max(5, ⌊n/10⌋) of n ``evaluations`` (against the
    first evaluation when there are no more than that): ≥ 0, as the best so far never rises; nan without any."""
    if not evaluations:
        return math.nan
    best = list(itertools.accumulate(evaluations, min))
    reference = best[max(0, len(best) - 1 - max(5, len(best) // 10))]
    if reference == 0:
        return 0.0 if best[-1] == 0 else math.inf
    return (reference - best[-1]) / abs(reference)


def stopping_step(trace: Sequence[float], window: int, tol: float) -> int | None:
    """Where the plateau rule first stops on ``trace``: the smallest n, a multiple of ``window`` and at least
    2·``window``, with |``plateau(trace[:n], window)``| < tol; None when it never does (or the rule is off:
    ``window`` < 1 or ``tol`` ≤ 0). SGD in :func:`fit_bends` stops by the same rule step by step, so replaying it on
    a stored fit curve (the ``fit_loss`` artifact) shows where another window would have stopped."""
    if window < 1 or tol <= 0:
        return None
    return next((n for n in range(2 * window, len(trace) + 1, window) if settled(plateau(trace[:n], window), tol)), None)


def fit_bends(
    curve: CurveName,
    start: Params,
    end: Params,
    loss: Callable[[Params, Any], torch.Tensor],
    batches: Callable[[], Iterator[Any]],
    *,
    bends: int,
    steps: int,
    lr: float,
    momentum: float,
    seed: int,
    optimizer: BendOptimizer = "sgd",
    window: int = 0,
    tol: float = 0.0,
    lbfgs_iterations: int = 0,
    t_points: int = 10,
    fixed: frozenset[str] = frozenset(),
) -> BendFit:
    """Fit the bends from the straight line; see the module docstring for the optimisers, SGD's stopping rule and
    the rule behind the returned ``converged`` and ``rel_change``, which describe the fit's end.

    Each SGD/Adam step samples t ~ U[0, 1] (from a generator seeded with ``seed``), takes the next training
    batch (``batches()`` is restarted when it runs out) and moves the bends along −∇ L(θ(t); batch). The
    endpoints stay fixed; ``loss(params, batch)`` must be pure in ``params``. L-BFGS uses the first batch of
    ``batches()`` (the PINN's one full batch). Raises LossLensError when the loss becomes non-finite.
    Entries named in ``fixed`` (frozen parameters) keep their bends on the straight line, so along any
    curve they interpolate linearly between the endpoints and are never trained.
    """
    trainable = [{k: v.requires_grad_(k not in fixed) for k, v in b.items()} for b in initial_bends(start, end, bends)]
    variables = [v for b in trainable for k, v in b.items() if k not in fixed]
    first = torch.optim.SGD(variables, lr=lr, momentum=momentum) if optimizer == "sgd" else torch.optim.Adam(variables, lr=lr)
    generator = torch.Generator().manual_seed(seed)
    trace: list[float] = []
    stream = batches()
    taken = 0

    def checked(value: torch.Tensor, what: str) -> torch.Tensor:
        if not torch.isfinite(value):
            raise LossLensError(
                f"the loss along the {curve} curve became {float(value)} at {what}", where="connectivity", hint="lower --lr"
            )
        return value

    for step in range(steps):
        try:
            batch = next(stream)
        except StopIteration:
            stream = batches()
            batch = next(stream)
        t = float(torch.rand((), generator=generator))
        value = checked(loss(point_on_curve(curve, t, start, end, trainable), batch), f"step {step} (t={t:.3f})")
        first.zero_grad(set_to_none=True)
        value.backward()
        first.step()
        trace.append(float(value.detach()))
        taken += 1
        if optimizer == "sgd" and window > 0 and taken % window == 0 and settled(plateau(trace, window), tol):
            break  # the rule of stopping_step, applied as the trace grows
    change = plateau(trace, window)  # where SGD/Adam ended
    if optimizer == "adam-lbfgs" and lbfgs_iterations > 0:
        batch = next(batches())
        ts = [(i + 0.5) / t_points for i in range(t_points)]
        lbfgs = torch.optim.LBFGS(variables, lr=1.0, max_iter=lbfgs_iterations, history_size=50, line_search_fn="strong_wolfe")

        def closure() -> torch.Tensor:
            lbfgs.zero_grad(set_to_none=True)
            value = (
                functools.reduce(torch.add, [loss(point_on_curve(curve, t, start, end, trainable), batch) for t in ts]) / t_points
            )
            checked(value, "an L-BFGS step")
            value.backward()
            trace.append(float(value.detach()))
            return value

        before = len(trace)
        lbfgs.step(closure)
        state = lbfgs.state[variables[0]]
        iterations, budget = int(state.get("n_iter", 0)), lbfgs.param_groups[0]["max_eval"]
        taken += iterations
        change = lbfgs_fall(trace[before:])
        # Short of both budgets, torch stopped on its own tests (gradient, step, loss change) at the last iterate.
        own_tests = iterations < lbfgs_iterations and int(state.get("func_evals", 0)) < budget
        evaluations = len(trace) - before
        plateaued = evaluations > max(5, evaluations // 10) and settled(change, tol)
        return BendFit(_detached(trainable), trace, own_tests or plateaued, change, taken)
    return BendFit(_detached(trainable), trace, settled(change, tol), change, taken)


def _detached(bends: list[Params]) -> list[Params]:
    return [{k: v.detach() for k, v in b.items()} for b in bends]
