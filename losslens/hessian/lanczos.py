"""The Lanczos iteration with full reorthogonalisation, shared by eigenpairs and the ESD.

The Krylov basis is kept (in float64) and every new vector is orthogonalised against all of
it twice ("twice is enough"), so Ritz values do not repeat and no restart discards work.
The basis costs ``steps × n × 8`` bytes, a few MB at the sizes LossLens handles.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from losslens.hessian.hvp import HVP

#: Relative size of a new Lanczos vector below which the Krylov space is taken as invariant.
BREAKDOWN = 1e-12


@dataclass
class Tridiagonal:
    """The Lanczos matrix T (``alpha`` on the diagonal, ``beta`` off it), the basis Q with
    ``Qᵀ H Q = T``, and ``beta_next``, the norm of the residual that the next step would normalise."""

    alpha: np.ndarray
    beta: np.ndarray
    basis: Tensor
    beta_next: float


def lanczos(
    hvp: HVP,
    start: Tensor,
    steps: int,
    stop: Callable[[np.ndarray, np.ndarray, float], bool] | None = None,
    generator: torch.Generator | None = None,
) -> Tridiagonal:
    """Up to ``steps`` Lanczos steps from ``start``; ``stop(alpha, beta, beta_next)`` may end it early.

    On breakdown (an invariant subspace) the iteration continues from a random vector
    orthogonal to the basis with a zero coupling, so T stays exact for ``H`` on the basis.
    """
    if steps < 1:
        raise ValueError("steps must be ≥ 1")
    steps = min(steps, hvp.n)
    basis = torch.empty(min(steps, 64), hvp.n, dtype=torch.float64, device=hvp.device)
    q = start.to(torch.float64)
    q = q / torch.linalg.vector_norm(q)
    alpha: list[float] = []
    beta: list[float] = []
    scale = 0.0
    for j in range(steps):
        if j == len(basis):
            basis = torch.cat([basis, torch.empty_like(basis)])[: min(2 * len(basis), steps)]
        basis[j] = q
        w = hvp(q).to(torch.float64)
        alpha.append(float(w @ q))
        w -= alpha[-1] * q
        if j > 0:
            w -= beta[-1] * basis[j - 1]
        for _ in range(2):
            w -= basis[: j + 1].T @ (basis[: j + 1] @ w)
        b = float(torch.linalg.vector_norm(w))
        scale = max(scale, abs(alpha[-1]), b)
        if j + 1 == steps or (stop is not None and stop(np.array(alpha), np.array(beta), b)):
            break
        if b <= BREAKDOWN * max(scale, 1e-300):
            w = torch.randn(hvp.n, dtype=torch.float64, device=hvp.device, generator=generator)
            for _ in range(2):
                w -= basis[: j + 1].T @ (basis[: j + 1] @ w)
            q, b = w / torch.linalg.vector_norm(w), 0.0
        else:
            q = w / b
        beta.append(b)
    return Tridiagonal(np.array(alpha), np.array(beta), basis[: len(alpha)], b)
