"""Memory on purpose: estimate a metric's peak memory before it starts, and refuse what cannot fit.

Large models (a 70M-parameter language model and up) make the Hessian and landscape metrics
memory-bound long before they are slow. The rules, per term (bytes; ``n`` all parameters, ``m``
the differentiated ones (``--params``), ``e`` the model's bytes per element):

- weights: ``n·e`` (the checkpoint's parameters, loaded once);
- Hessian: the double-backward graph of one loss evaluation, measured by counting the bytes autograd
  saves during one forward of the first batch (``saved_tensors_hooks``), times :data:`GRAPH_FACTOR`
  for the gradient's own graph (``create_graph=True``) and the transients of one product; the gradient, ``v`` and ``Hv``: ``3·m·e``; the Lanczos basis
  kept in float64 for full reorthogonalisation: ``steps·m·8`` with ``steps`` the larger of
  ``--max-iter`` and ``--esd-steps`` (the two runs do not overlap);
- landscape: the directions ``3·dims·n·e`` (drawn, stacked and orthogonalised; Gram–Schmidt accumulates
  its inner products in float64 block by block instead of copying the rows to float64), and per point (grids run one point at a time for large
  models, see :mod:`losslens.landscape.grid`) one parameter row ``n·e`` plus the forward's module
  outputs (no graph: the loss is evaluated under ``no_grad``).

The budget is ``--memory-gb`` when given, else the memory available on the device now
(``MemAvailable`` of /proc/meminfo on CPU, ``torch.cuda.mem_get_info`` on a GPU). A run whose
estimate exceeds it is refused in one line naming the largest term and the option that would
make it fit. Peaks measured against these estimates are in docs/benchmarks.md (bench/lm.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from losslens.errors import LossLensError

GIB = 1024**3
#: Peak of a double-backward HVP over the bytes one forward saves, from bench/lm.py's GPT-NeoX models
#: (measured 2.4× at 70M, 3.7× at 10M, 4.7× at 1M parameters, where fixed overheads weigh more).
GRAPH_FACTOR = 4


@dataclass(frozen=True)
class Estimate:
    """Estimated peak bytes, by the term that holds them."""

    terms: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.terms.values())

    def largest(self) -> str:
        return max(self.terms, key=lambda k: self.terms[k])

    def describe(self) -> str:
        parts = sorted(self.terms.items(), key=lambda kv: -kv[1])
        return ", ".join(f"{name} {gib(size)}" for name, size in parts if size)


def gib(size: float) -> str:
    return f"{size / GIB:.2f} GiB" if size >= GIB / 100 else f"{size / 1024**2:.1f} MiB"


def available_bytes(device: torch.device) -> int | None:
    """Memory free for this process on ``device`` now, or None where it cannot be read."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def saved_tensor_bytes(loss: Callable[[], Tensor]) -> int:
    """Bytes autograd saves for the backward of ``loss()`` (one forward, graph freed after); parameters
    that the graph merely references are not counted."""
    seen: set[tuple[int, int]] = set()
    total = 0

    def pack(t: Tensor) -> Tensor:
        nonlocal total
        if not isinstance(t, torch.nn.Parameter) and not (t.is_leaf and t.requires_grad):
            try:
                key = (t.untyped_storage().data_ptr(), t.untyped_storage().nbytes())
            except (RuntimeError, NotImplementedError):  # a functorch wrapper (jvp, vmap) has no plain storage
                key = (id(t), t.numel() * t.element_size())
            if key not in seen:
                seen.add(key)
                total += key[1]
        return t

    with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss()
    return total


def hessian_estimate(n: int, m: int, element: int, graph_bytes: int, basis_steps: int) -> Estimate:
    """The Hessian metric's peak by the rules of the module docstring."""
    return Estimate(
        {
            "weights": n * element,
            "double-backward graph": GRAPH_FACTOR * graph_bytes,
            "gradient and vectors": 3 * m * element,
            "Lanczos basis": basis_steps * m * 8,
        }
    )


def landscape_estimate(n: int, element: int, dims: int, forward_bytes: int, chunk: int) -> Estimate:
    """The landscape metric's peak by the rules of the module docstring (``chunk`` points at a time)."""
    return Estimate(
        {
            "weights": n * element,
            "directions": 3 * dims * n * element,
            "parameter rows": chunk * n * element,
            "forward activations": chunk * forward_bytes,
        }
    )


def check_budget(estimate: Estimate, budget_gb: float | None, device: torch.device, where: str, fixes: dict[str, str]) -> int:
    """Raise unless ``estimate`` fits the budget (``budget_gb``, else the device's available memory).

    :param fixes: for each term, the option that shrinks it (shown when that term is the largest).
    :returns: the budget in bytes (0 when it could not be determined and none was given).
    :raises LossLensError: the estimate exceeds the budget.
    """
    budget = int(budget_gb * GIB) if budget_gb else available_bytes(device)
    if not budget:
        return 0
    if estimate.total > budget:
        largest = estimate.largest()
        source = f"--memory-gb {budget_gb:g}" if budget_gb else f"the {gib(budget)} available on {device}"
        raise LossLensError(
            f"needs about {gib(estimate.total)} ({estimate.describe()}), more than {source}",
            where=where,
            hint=fixes.get(largest, "raise --memory-gb if the machine has the memory"),
        )
    return budget


def largest_fitting(budget: float, fixed: int, per_unit: int) -> int:
    """How many units of ``per_unit`` bytes fit in ``budget`` beside ``fixed`` bytes (0 if none)."""
    return max(0, math.floor((budget - fixed) / per_unit)) if per_unit > 0 else 0
