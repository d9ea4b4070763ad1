"""Loss on θ + Σ aᵢ dᵢ at many points at once: ``functional_call`` under ``vmap``, in chunks.

Every point of a chunk is one row of a (chunk, n) matrix θ + A D; the loss is vmapped over
the rows, so one call evaluates the whole chunk with batched matrix products instead of a
Python loop of clone/perturb/evaluate. While it runs, :class:`~losslens.landscape.kernels.GridKernels`
gives ``linear`` and ``tanh`` faster batched and forward-mode rules.

The chunk size comes from one unbatched loss evaluation under a global module forward hook
that records the bytes of every module output (:func:`footprint`):

- speed: the largest output of a chunk should fit in ``CACHE_BYTES``, so that the element-wise
  passes over it stay in the last-level cache. Measured with bench/landscape.py's models, per
  point: the convection PINN 5.1 ms at 7 points per chunk (per-call overhead), 1.8 ms at 56 and
  113, 2.7 ms at 227 (45 MB outputs); the 1-16-16-1 MLP 0.055 ms at 64, 0.031 ms at 256 to
  1,024, 0.060 ms at 2,048 (32 MB outputs);
- memory: the sum of the outputs, times ``ACTIVATION_FACTOR`` (tangents of the PINN's jvp and
  temporaries inside modules) plus the point's parameter row, bounds what one point keeps
  alive; a chunk stays under ``MEMORY_BUDGET_BYTES`` (measured: the PINN's chunk of 113 raised
  peak RSS by 250 MB against an estimate of 1 GB);
- a point that needs more than ``ALONE_BYTES`` (ResNet-20 with a batch of 128) is evaluated
  alone, without vmap: there the per-point work dwarfs the per-call overhead, and vmapped
  convolutions were 15% slower per point than a plain forward. Its parameter row θ + Σ aᵢdᵢ is
  written into one buffer reused for every point (one axpy per direction; a (1, k) @ (k, n)
  GEMM took ~0.015 s per 1M parameters): a fresh row per point is above glibc's largest mmap
  threshold for a 10M-parameter model (40 MB), so every point paid ~10,000 page faults and the
  kernel's zeroing of new pages, which made a point of bench/lm.py's 10M model slower than a
  clone-perturb loop whose per-tensor copies reuse the heap.

The PINN works inside vmap because its residual is a forward-mode ``jvp``.
Models are in eval mode (BatchNorm uses running statistics). Non-finite losses are returned
as they are.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.func import vmap
from torch.nn.modules.module import register_module_forward_hook
from torch.utils._pytree import tree_leaves

from losslens.landscape.kernels import GridKernels
from losslens.params import flatten, unflatten

CACHE_BYTES = 16 * 1024**2
MEMORY_BUDGET_BYTES = 1024**3
ALONE_BYTES = 64 * 1024**2
ACTIVATION_FACTOR = 4


def grid_coordinates(half_widths: list[float], steps: int) -> tuple[list[np.ndarray], np.ndarray]:
    """Per-axis coordinates (linspace over ±half width) and all grid points (C order), (steps^k, k)."""
    axes = [np.linspace(-h, h, steps) for h in half_widths]
    mesh = np.meshgrid(*axes, indexing="ij")
    return axes, np.stack([m.ravel() for m in mesh], axis=1)


def footprint(loss: Callable[[Tensor], Tensor], theta: Tensor) -> tuple[int, int]:
    """(upper bound on the bytes one point keeps alive, bytes of its largest module output)."""
    sizes = [0]

    def record(module: Any, inputs: Any, output: Any) -> None:
        sizes.append(sum(t.numel() * t.element_size() for t in tree_leaves(output) if isinstance(t, Tensor)))

    handle = register_module_forward_hook(record)
    try:
        with torch.no_grad():
            loss(theta)
    finally:
        handle.remove()
    return ACTIVATION_FACTOR * sum(sizes) + 2 * theta.numel() * theta.element_size(), max(sizes)


def chunk_size(loss: Callable[[Tensor], Tensor], theta: Tensor, points: int) -> int:
    """Points per vmapped call, by the rules of the module docstring; 1 means no vmap."""
    return chunk_for(*footprint(loss, theta), points)


def chunk_for(total: int, largest: int, points: int) -> int:
    """:func:`chunk_size` from a measured :func:`footprint`."""
    if total > ALONE_BYTES:
        return 1
    return int(max(1, min(points, CACHE_BYTES // max(largest, 1), MEMORY_BUDGET_BYTES // total)))


def batched_loss(subject: Any, batches: list[Any]) -> Callable[[Tensor], Tensor]:
    """The mean loss over ``batches`` as a function of one flat parameter vector."""

    def loss(vector: Tensor) -> Tensor:
        params = unflatten(vector, subject.params)
        return torch.stack([subject.loss_at(params, b) for b in batches]).mean()

    return loss


def evaluate(
    subject: Any, directions: Tensor, coords: np.ndarray, batches: list[Any], chunk: int | None = None
) -> tuple[np.ndarray, int]:
    """Loss at θ + coords @ directions for every row of ``coords``; returns (losses, chunk size).
    ``chunk`` overrides :func:`chunk_size`."""
    theta = flatten(subject.params)
    loss = batched_loss(subject, batches)
    chunk = chunk or chunk_size(loss, theta, len(coords))
    many = vmap(loss) if chunk > 1 else lambda rows: loss(rows[0])[None]
    a = torch.as_tensor(coords, dtype=theta.dtype, device=theta.device)
    d = directions.to(theta)
    out = np.empty(len(coords), dtype=np.float64)
    row = torch.empty_like(theta)[None] if chunk == 1 else None
    with torch.no_grad(), GridKernels() if chunk > 1 else contextlib.nullcontext():
        for start in range(0, len(coords), chunk):
            if row is None:
                rows = theta + a[start : start + chunk] @ d
            else:  # one point of a large model: axpy per direction into one reused row (see the module docstring)
                weights = a[start].tolist()
                torch.add(theta, d[0], alpha=weights[0], out=row[0])
                for k in range(1, len(weights)):
                    row[0].add_(d[k], alpha=weights[k])
                rows = row
            out[start : start + chunk] = many(rows).double().cpu().numpy()
    return out, chunk


def evaluate_loop(subject: Any, directions: Tensor, coords: np.ndarray, batches: list[Any]) -> np.ndarray:
    """The same losses one point at a time, the way per-point tools do it (clone, perturb,
    evaluate): the reference for tests and benchmarks."""
    out = np.empty(len(coords), dtype=np.float64)
    d = unflat_rows(directions, subject.params)
    with torch.no_grad():
        for i, point in enumerate(coords):
            params = {name: p.clone() for name, p in subject.params.items()}
            for weight, direction in zip(point, d, strict=True):
                for name in params:
                    params[name].add_(direction[name], alpha=float(weight))
            out[i] = float(torch.stack([subject.loss_at(params, b) for b in batches]).mean())
    return out


def unflat_rows(directions: Tensor, like: dict[str, Tensor]) -> list[dict[str, Tensor]]:
    return [unflatten(row, like) for row in directions]
