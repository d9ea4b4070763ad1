"""Directions spanning a loss landscape: random (filter- or layer-normalised), top Hessian
eigenvectors, or principal components of a training trajectory.

A direction set is a (k, n) tensor over the flattened trainable parameters, in the iteration
order of ``Subject.params``.

Random directions follow Li et al. (2018): draw d ~ N(0, I), then rescale each filter (a
slice along the weight's first, output axis: one conv filter, one row of a linear layer) to
the norm of the same filter of θ ("filter"), or each weight tensor to the norm of the same
tensor of θ ("layer"). One-dimensional parameters, biases and BatchNorm scales and shifts,
are set to zero in d, as Li et al.'s ``ignore="biasbn"``: the landscape moves only weights.
"unit" skips all that and makes each direction a unit vector over every parameter.

Orthogonalisation (on by default) is Gram–Schmidt *after* normalisation, in direction order:
d1 is kept, d2 loses its component along d1, d3 along d1 and d2, … Each result is rescaled to
the norm it had before the projection, so filter-normalised directions keep their overall
scale (their per-filter norms then hold up to that small projection; in high dimension
random directions are nearly orthogonal already), and "unit" directions come out orthonormal.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from losslens.params import Params, flatten


def normalized(d: Params, theta: Params, normalization: str) -> Params:
    """Li et al.'s filter or layer normalisation (biases and BN zeroed), or a unit vector."""
    if normalization == "unit":
        norm = flatten(d).norm()
        return {k: v / norm for k, v in d.items()}
    out = {}
    for name, v in d.items():
        w = theta[name]
        if w.dim() <= 1:
            out[name] = torch.zeros_like(v)
        elif normalization == "filter":
            axes = tuple(range(1, w.dim()))
            norm = torch.linalg.vector_norm
            out[name] = v * (norm(w, dim=axes, keepdim=True) / norm(v, dim=axes, keepdim=True).clamp_min(1e-12))
        elif normalization == "layer":
            out[name] = v * (w.norm() / v.norm().clamp_min(1e-12))
        else:
            raise ValueError(f"unknown normalization {normalization!r}")
    return out


def _dot(a: Tensor, b: Tensor, block: int = 1 << 20) -> float:
    """⟨a, b⟩ accumulated in float64 over blocks, so a large model's vectors are never copied whole."""
    return sum(float(a[i : i + block].double() @ b[i : i + block].double()) for i in range(0, len(a), block))


def gram_schmidt(directions: Tensor) -> Tensor:
    """Orthogonalise rows in order (modified Gram–Schmidt), each rescaled to its former norm.

    Inner products and norms are accumulated in float64 block by block; the rows stay in their own
    dtype, so the extra memory is one row, not a float64 copy of all of them (bounded memory for
    large models; :mod:`losslens.memory`)."""
    out = directions.clone()
    units: list[Tensor] = []
    for row in out:
        norm = _dot(row, row) ** 0.5
        for q in units:
            row -= _dot(row, q) * q
        unit = row / _dot(row, row) ** 0.5
        if units:  # the first row is kept exactly as drawn
            row.copy_(unit * norm)
        units.append(unit)
    return out


def random_directions(theta: Params, k: int, seed: int, normalization: str, orthogonalize: bool) -> Tensor:
    """k seeded Gaussian directions, normalised, optionally orthogonalised: shape (k, n)."""
    gen = torch.Generator().manual_seed(seed)
    rows = []
    for _ in range(k):
        d = {name: torch.randn(p.shape, generator=gen, dtype=torch.float32).to(p) for name, p in theta.items()}
        rows.append(flatten(normalized(d, theta, normalization)))
    directions = torch.stack(rows)
    return gram_schmidt(directions) if orthogonalize else directions


def pca_directions(theta: Tensor, trajectory: Tensor, k: int) -> tuple[Tensor, np.ndarray]:
    """Li et al.'s trajectory PCA: principal axes of (θ_t − θ) over the other checkpoints of the
    run, centred. Returns unit, orthonormal directions (k, n) and their explained-variance ratios."""
    diffs = (trajectory - theta).to(torch.float64)
    diffs = diffs - diffs.mean(dim=0, keepdim=True)
    _, s, vh = torch.linalg.svd(diffs, full_matrices=False)
    var = (s**2).cpu().numpy()
    return vh[:k].to(theta.dtype), var[:k] / var.sum()
