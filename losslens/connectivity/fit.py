"""Training a curve's bends: minimise the expected loss along the curve, E_{t~U[0,1]} L(θ(t)).

Two optimisers, as the papers trained their networks:

- ``sgd``: SGD with momentum, one t ~ U[0, 1] and one training batch per step (Garipov et al. 2018;
  Yang et al. 2021 train the bend with lr 0.01, momentum 0.9 for 50 epochs). For classifiers.
- ``adam-lbfgs``: Adam steps with t ~ U[0, 1], then L-BFGS (strong Wolfe) on the expectation
  approximated by the midpoint rule over ``t_points`` fixed t, a deterministic objective as L-BFGS
  needs. For PINNs, whose loss reaches its floor only with L-BFGS (Krishnapriyan et al. train the
  network itself that way), so an SGD-fitted curve is still far above the endpoints' loss.

Stopping rule (``window`` > 0 and ``tol`` > 0): the SGD/Adam steps are cut into windows of ``window``
steps; when the mean fit loss of a window has fallen by less than ``tol`` (relative) from the window
before, the loss has reached its plateau and the fit is *converged*; SGD stops there. L-BFGS is
converged when it stops on torch's tolerances (loss or step change below ``tolerance_change``, gradient
below ``tolerance_grad``) before its iteration budget, or when the best objective so far improved by
less than ``tol`` (relative) over the last tenth of its evaluations (at least 5): the same plateau rule
on a deterministic objective. A fit that ran out of budget still improving is reported as not
converged, and its mc is a bound on the curve's barrier, not a measurement of it.
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
    converged: bool
    rel_change: float  # last window's relative decrease (SGD/Adam), or L-BFGS's last relative change; nan if unknown
    steps: int  # SGD/Adam steps taken plus L-BFGS iterations


def plateau(trace: Sequence[float], window: int) -> float:
    """Relative decrease of the mean of the last ``window`` values from the mean of the ``window`` before
    (nan while fewer than 2·window values exist)."""
    if window < 1 or len(trace) < 2 * window:
        return math.nan
    last = sum(trace[-window:]) / window
    before = sum(trace[-2 * window : -window]) / window
    return (before - last) / abs(before) if before != 0 else 0.0


def stopping_step(trace: Sequence[float], window: int, tol: float) -> int | None:
    """Where the plateau rule first stops on ``trace``: the smallest n, a multiple of ``window`` and at least
    2·``window``, with ``plateau(trace[:n], window) < tol``; None when it never does (or the rule is off:
    ``window`` < 1 or ``tol`` ≤ 0). :func:`fit_bends` applies the same rule step by step, so replaying it on a
    stored fit curve (the ``fit_loss`` artifact) shows where another window would have stopped."""
    if window < 1 or tol <= 0:
        return None
    return next((n for n in range(2 * window, len(trace) + 1, window) if plateau(trace[:n], window) < tol), None)


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
    """Fit the bends from the straight line; see the module docstring for the optimisers and stopping rule.

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
    converged, change, taken = False, math.nan, 0

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
        if window > 0 and tol > 0 and taken % window == 0 and taken >= 2 * window:
            change = plateau(trace, window)
            if change < tol:  # the rule of stopping_step, applied as the trace grows
                converged = True
                if optimizer == "sgd":
                    break
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
        iterations = int(state.get("n_iter", 0))
        taken += iterations
        best = list(itertools.accumulate(trace[before:], min))
        tail = max(5, len(best) // 10)
        change = (best[-tail - 1] - best[-1]) / abs(best[-tail - 1]) if len(best) > tail and best[-tail - 1] != 0 else math.nan
        converged = iterations < lbfgs_iterations or (tol > 0 and change < tol)
    return BendFit([{k: v.detach() for k, v in b.items()} for b in trainable], trace, converged, change, taken)
