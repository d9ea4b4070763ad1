"""The Lanczos iteration with full reorthogonalisation, shared by eigenpairs and the ESD.

The Krylov basis is kept (in float64) and every new vector is orthogonalised against all of
it twice ("twice is enough"), so Ritz values do not repeat and no restart discards work.
The basis costs ``steps × n × 8`` bytes (kept in blocks of :data:`BLOCK_ROWS` rows that are added, never
copied); the Hessian metric's memory check counts it.
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
#: Rows per block of the basis: blocks are added as the iteration goes, never copied, so a run that
#: stops early holds little and the peak is the ``steps × n × 8`` bytes of the estimate
#: (:mod:`losslens.memory`), not the 2.5× that doubling a single array by concatenation reached.
BLOCK_ROWS = 64


@dataclass
class Tridiagonal:
    """The Lanczos matrix T (``alpha`` on the diagonal, ``beta`` off it), the basis Q with
    ``Qᵀ H Q = T``, and ``beta_next``, the norm of the residual that the next step would normalise."""

    alpha: np.ndarray
    beta: np.ndarray
    blocks: list[Tensor]  # the basis Q, by rows, in blocks of at most BLOCK_ROWS
    beta_next: float

    def combine(self, coefficients: np.ndarray) -> Tensor:
        """``Qᵀ C`` for a (steps, k) coefficient matrix ``C``: (n, k) float64, e.g. Ritz vectors from
        eigenvectors of T."""
        c = torch.as_tensor(coefficients, dtype=torch.float64, device=self.blocks[0].device)
        return sum(block.T @ c[i * BLOCK_ROWS : i * BLOCK_ROWS + len(block)] for i, block in enumerate(self.blocks))  # type: ignore[return-value]


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
    blocks: list[Tensor] = []

    def orthogonalise(w: Tensor, rows: int) -> Tensor:
        """``w − Qᵀ(Q w)`` over the first ``rows`` basis vectors (classical Gram–Schmidt, one pass)."""
        used = [block[: rows - i * BLOCK_ROWS] for i, block in enumerate(blocks) if i * BLOCK_ROWS < rows]
        coefficients = [block @ w for block in used]
        for block, c in zip(used, coefficients, strict=True):
            w -= block.T @ c
        return w

    q = start.to(torch.float64)
    q = q / torch.linalg.vector_norm(q)
    alpha: list[float] = []
    beta: list[float] = []
    scale = 0.0
    for j in range(steps):
        if j % BLOCK_ROWS == 0:
            blocks.append(torch.empty(min(BLOCK_ROWS, steps - j), hvp.n, dtype=torch.float64, device=hvp.device))
        blocks[-1][j % BLOCK_ROWS] = q
        w = hvp(q).to(torch.float64)
        alpha.append(float(w @ q))
        w -= alpha[-1] * q
        if j > 0:
            w -= beta[-1] * (blocks[(j - 1) // BLOCK_ROWS][(j - 1) % BLOCK_ROWS])
        for _ in range(2):
            w = orthogonalise(w, j + 1)
        b = float(torch.linalg.vector_norm(w))
        scale = max(scale, abs(alpha[-1]), b)
        if j + 1 == steps or (stop is not None and stop(np.array(alpha), np.array(beta), b)):
            break
        if b <= BREAKDOWN * max(scale, 1e-300):
            w = torch.randn(hvp.n, dtype=torch.float64, device=hvp.device, generator=generator)
            for _ in range(2):
                w = orthogonalise(w, j + 1)
            q, b = w / torch.linalg.vector_norm(w), 0.0
        else:
            q = w / b
        beta.append(b)
    last = len(alpha) - (len(blocks) - 1) * BLOCK_ROWS
    blocks[-1] = blocks[-1][:last]
    return Tridiagonal(np.array(alpha), np.array(beta), blocks, b)
