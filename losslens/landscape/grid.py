"""Loss on θ + Σ aᵢ dᵢ at many points at once: ``functional_call`` under ``vmap``, in chunks.

Every point of a chunk is one row of a (chunk, n) matrix θ + A D; the loss is vmapped over
the rows, so one call evaluates the whole chunk with batched matrix products instead of a
Python loop of clone/perturb/evaluate. The chunk size comes from a budget of 64 MiB: one
unbatched loss evaluation runs under a global module forward hook that adds up the bytes of
every module output, which is times ``ACTIVATION_FACTOR`` (tangents of the PINN's jvp, and
temporaries inside modules) an upper bound on what one point keeps alive, plus the point's
parameter row. The budget is about speed, not only memory: per point, a chunk is fastest while
its activations stay near the caches, and past that the element-wise ops (tanh and the jvp's
tangent) slow down (measured on the 1-16-16-1 MLP: 0.056 ms per point at 128 points per chunk,
0.072 ms at 2000; the PINN is flat from 4 to 64 points, 4.1 ms, and 8.6 ms at 256). Models
whose one point already exceeds the budget (ResNet-20 with a batch of 128) get chunks of one,
evaluated without vmap: there the per-point work dwarfs the per-call overhead, and vmapped
convolutions were 15% slower per point than a plain forward.
The PINN works inside vmap because its residual is a forward-mode ``jvp``.
Models are in eval mode (BatchNorm uses running statistics). Non-finite losses are returned
as they are.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.func import vmap
from torch.nn.modules.module import register_module_forward_hook
from torch.utils._pytree import tree_leaves

from losslens.params import flatten, unflatten

MEMORY_BUDGET_BYTES = 64 * 1024**2
ACTIVATION_FACTOR = 4


def grid_coordinates(half_widths: list[float], steps: int) -> tuple[list[np.ndarray], np.ndarray]:
    """Per-axis coordinates (linspace over ±half width) and all grid points (C order), (steps^k, k)."""
    axes = [np.linspace(-h, h, steps) for h in half_widths]
    mesh = np.meshgrid(*axes, indexing="ij")
    return axes, np.stack([m.ravel() for m in mesh], axis=1)


def bytes_per_point(loss: Callable[[Tensor], Tensor], theta: Tensor) -> int:
    """Upper bound on the memory one grid point needs (see the module docstring)."""
    total = 0

    def count(module: Any, inputs: Any, output: Any) -> None:
        nonlocal total
        total += sum(t.numel() * t.element_size() for t in tree_leaves(output) if isinstance(t, Tensor))

    handle = register_module_forward_hook(count)
    try:
        with torch.no_grad():
            loss(theta)
    finally:
        handle.remove()
    return ACTIVATION_FACTOR * total + 2 * theta.numel() * theta.element_size()


def batched_loss(subject: Any, batches: list[Any]) -> Callable[[Tensor], Tensor]:
    """The mean loss over ``batches`` as a function of one flat parameter vector."""

    def loss(vector: Tensor) -> Tensor:
        params = unflatten(vector, subject.params)
        return torch.stack([subject.loss_at(params, b) for b in batches]).mean()

    return loss


def evaluate(subject: Any, directions: Tensor, coords: np.ndarray, batches: list[Any],
             budget_bytes: int = MEMORY_BUDGET_BYTES) -> tuple[np.ndarray, int]:
    """Loss at θ + coords @ directions for every row of ``coords``; returns (losses, chunk size)."""
    theta = flatten(subject.params)
    loss = batched_loss(subject, batches)
    chunk = int(max(1, min(len(coords), budget_bytes // bytes_per_point(loss, theta))))
    many = vmap(loss) if chunk > 1 else lambda rows: loss(rows[0])[None]
    a = torch.as_tensor(coords, dtype=theta.dtype, device=theta.device)
    d = directions.to(theta)
    out = np.empty(len(coords), dtype=np.float64)
    with torch.no_grad():
        for start in range(0, len(coords), chunk):
            rows = theta + a[start : start + chunk] @ d
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
            for weight, direction in zip(point, d):
                for name in params:
                    params[name].add_(direction[name], alpha=float(weight))
            out[i] = float(torch.stack([subject.loss_at(params, b) for b in batches]).mean())
    return out


def unflat_rows(directions: Tensor, like: dict[str, Tensor]) -> list[dict[str, Tensor]]:
    return [unflatten(row, like) for row in directions]
