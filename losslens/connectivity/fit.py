"""Training a curve's bend: minimise the expected loss along the curve, E_{t~U[0,1]} L(θ(t))."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch

from losslens.connectivity.curves import CurveName, Params, initial_bends, point_on_curve
from losslens.errors import LossLensError


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
) -> tuple[list[Params], list[float]]:
    """The bends after ``steps`` SGD steps from the straight line, and the loss seen at each step.

    Each step samples t ~ U[0, 1] (from a generator seeded with ``seed``), takes the next training
    batch (``batches()`` is restarted when it runs out) and moves the bends along −∇ L(θ(t); batch).
    The endpoints stay fixed; ``loss(params, batch)`` must be pure in ``params``.
    """
    trainable = [{k: v.requires_grad_(True) for k, v in b.items()} for b in initial_bends(start, end, bends)]
    optimizer = torch.optim.SGD([v for b in trainable for v in b.values()], lr=lr, momentum=momentum)
    generator = torch.Generator().manual_seed(seed)
    trace: list[float] = []
    stream = batches()
    for step in range(steps):
        try:
            batch = next(stream)
        except StopIteration:
            stream = batches()
            batch = next(stream)
        t = float(torch.rand((), generator=generator))
        value = loss(point_on_curve(curve, t, start, end, trainable), batch)
        if not torch.isfinite(value):
            raise LossLensError(
                f"the loss along the {curve} curve became {float(value)} at step {step} (t={t:.3f})",
                where="connectivity",
                hint="lower --lr",
            )
        optimizer.zero_grad(set_to_none=True)
        value.backward()
        optimizer.step()
        trace.append(float(value.detach()))
    return [{k: v.detach() for k, v in b.items()} for b in trainable], trace
