"""The Hessian trace by Hutchinson's estimator, tr H = E[zᵀ H z] for Rademacher z.

A fixed number of probes, with the standard error of their mean: adaptive stopping on the
running mean (as in PyHessian) can stop at a 15% error, and its test fails for negative traces.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from losslens.errors import LossLensError
from losslens.hessian.hvp import HVP


@dataclass(frozen=True)
class TraceEstimate:
    estimate: float
    std_error: float
    probes: int
    samples: np.ndarray  # zᵀ H z per probe


def rademacher(rows: int, n: int, generator: torch.Generator, device: torch.device) -> Tensor:
    """``rows`` vectors with independent ±1 entries."""
    return torch.randint(0, 2, (rows, n), generator=generator, device=device, dtype=torch.int8).mul_(2).sub_(1)


def from_samples(samples: np.ndarray) -> TraceEstimate:
    """Mean and standard error of per-probe estimates."""
    samples = np.asarray(samples, dtype=np.float64)
    if len(samples) < 2:
        raise LossLensError("the trace needs at least 2 probes for a standard error", where="hessian", hint="--trace-probes 100")
    return TraceEstimate(float(samples.mean()), float(samples.std(ddof=1) / math.sqrt(len(samples))), len(samples), samples)


def default_block(hvp: HVP) -> int:
    """Probes per vectorised product: on CPU a batch was no faster than a loop (bench/hessian.py),
    so one at a time; on a GPU a batch of 16 keeps the device busy."""
    return 16 if hvp.device.type == "cuda" else 1


def hutchinson_trace(hvp: HVP, probes: int = 100, seed: int = 0, block: int | None = None) -> TraceEstimate:
    """tr H from ``probes`` Rademacher probes, ``block`` of them per vectorised product (vmap)."""
    block = block or default_block(hvp)
    generator = torch.Generator(device=hvp.device).manual_seed(seed)
    samples = []
    for start in range(0, probes, block):
        z = rademacher(min(block, probes - start), hvp.n, generator, hvp.device).to(hvp.dtype)
        hz = hvp.many(z) if len(z) > 1 else hvp(z[0])[None]
        samples.append((z.double() * hz.double()).sum(dim=1).cpu().numpy())
    return from_samples(np.concatenate(samples))
