"""How well a checkpoint does: losses, accuracy and error, or the PINN's errors against the exact solution."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from losslens.metrics.registry import Result, register

if TYPE_CHECKING:
    from losslens.jobs.context import JobContext


@dataclass(frozen=True)
class PerformanceParams:
    """No options: performance is evaluated on the problem's full train and test (or evaluation) sets."""


@register("performance", scope="checkpoint", params=PerformanceParams, tables=("performance",))
def performance(ctx: JobContext, params: PerformanceParams) -> Result:
    """Train/test loss, accuracy and error (classifiers); loss terms and rel. L2, mean-abs, L∞ errors (PINN)."""
    subject = ctx.subject()
    result = Result()
    for split, name, value in subject.problem.performance(subject.model, subject.state):
        finite = math.isfinite(value)
        result.add(
            "performance",
            checkpoint=subject.sha256,
            split=split,
            name=name,
            value=value if finite else None,
            is_finite=int(finite),
        )
    return result
