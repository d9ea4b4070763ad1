"""Memory on purpose: estimate a metric's peak memory before it starts, and refuse what cannot fit.

Large models (a 70M-parameter language model and up) make the Hessian and landscape metrics
memory-bound long before they are slow. The rules, per term (bytes; ``n`` all parameters, ``m``
the differentiated ones (``--params``), ``e`` the model's bytes per element):

- weights: ``n·e`` (the checkpoint's parameters, loaded once);
- Hessian: the double-backward graph of one loss evaluation, measured by counting the bytes autograd
  saves during one forward of its batches (``saved_tensors_hooks``), times :data:`GRAPH_FACTOR`
  for the gradient's own graph (``create_graph=True``) and the transients of one product; the gradient,
  ``v`` and ``Hv``: ``3·m·e``; the Lanczos basis kept in float64 for full reorthogonalisation:
  ``min(steps, m)·m·8`` with ``steps`` the larger of ``--max-iter`` and ``--esd-steps`` (the two runs do
  not overlap; the basis grows in blocks that are never copied, :mod:`losslens.hessian.lanczos`);
- landscape: the directions ``3·dims·n·e`` (drawn, stacked and orthogonalised; Gram–Schmidt accumulates
  its inner products in float64 block by block instead of copying the rows to float64), and per point
  of a call (grids of large models run one point at a time, see :mod:`losslens.landscape.grid`) one
  parameter row ``n·e`` plus the forward's module outputs (no graph: the loss is evaluated under ``no_grad``).

The budget is ``--memory-gb`` when given, else the memory available on the device now
(``MemAvailable`` of /proc/meminfo on CPU, ``torch.cuda.mem_get_info`` on a GPU). A run whose
estimate exceeds it is refused in one line that names a setting of the metric's own options that
the same estimate says fits (:mod:`losslens.hessian.budget`, :mod:`losslens.landscape.budget` search
them), or, when none does, the least budget any tried setting needs. Peaks measured against these
estimates are in docs/benchmarks.md (bench/lm.py).
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

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
    """A byte count for a refusal line, in GiB, MiB or KiB, whichever keeps it above 1."""
    if size >= GIB:
        return f"{size / GIB:.2f} GiB"
    return f"{size / 1024**2:.1f} MiB" if size >= 1024**2 else f"{size / 1024:.0f} KiB"


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
    """The Hessian metric's peak by the rules of the module docstring (a Lanczos run never takes more
    than ``m`` steps, so the basis holds at most ``min(steps, m)`` vectors)."""
    return Estimate(
        {
            "weights": n * element,
            "double-backward graph": GRAPH_FACTOR * graph_bytes,
            "gradient and vectors": 3 * m * element,
            "Lanczos basis": min(basis_steps, m) * m * 8,
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


def budget_bytes(budget_gb: float | None, device: torch.device) -> int:
    """``--memory-gb`` in bytes, else the memory available on ``device`` now (0 when unknown: no check)."""
    return int(budget_gb * GIB) if budget_gb else (available_bytes(device) or 0)


@dataclass(frozen=True)
class Setting:
    """Options to change (``("batch-size", "2")``; a flag has the value None) and the estimate under them."""

    options: tuple[tuple[str, str | None], ...]
    estimate: Estimate

    def flags(self) -> str:
        return " ".join(f"--{k}" if v is None else f"--{k} {shlex.quote(v)}" for k, v in self.options)


def refuse(
    estimate: Estimate,
    budget: int,
    budget_gb: float | None,
    device: torch.device,
    where: str,
    fit: Setting | None,
    least: Setting | None,
    knobs: str,
    half_precision: bool = False,
) -> NoReturn:
    """Raise the one-line refusal: the estimate and its terms, and either a setting that fits (``fit``,
    searched with the same estimate) or, when none does, the least any searched setting needs (``least``).

    :param knobs: the options that were searched, named in the line when nothing fits.
    :param half_precision: a float32 model on a GPU: nothing fitting also suggests a bfloat16 model.
    :raises LossLensError: always.
    """
    source = f"--memory-gb {budget_gb:g}" if budget_gb else f"the {gib(budget)} available on {device}"
    if fit is not None:
        hint = f"use {fit.flags()} (about {gib(fit.estimate.total)})"
    else:
        hint = f"no setting of {knobs} fits"
        weights = estimate.terms.get("weights", 0)
        if weights > budget:
            hint += f": the weights alone need {gib(weights)}"
        if least is not None:
            flags = f" with {least.flags()}" if least.options else ""
            hint += f"; the least found is about {gib(least.estimate.total)}: --memory-gb {gb_up(least.estimate.total)}{flags}"
        if half_precision:
            hint += '; or build the model in bfloat16 ([model] kwargs dtype = "bfloat16"; ingest again), halving weights and activations'
        if not budget_gb:
            hint += ", or use a machine with more memory"
    raise LossLensError(f"needs about {gib(estimate.total)} ({estimate.describe()}), more than {source}", where=where, hint=hint)


def gb_up(size: int) -> str:
    """``size`` bytes as GiB, rounded up to 3 significant digits (a ``--memory-gb`` that holds it)."""
    value = size / GIB
    digits = 2 - math.floor(math.log10(value)) if value > 0 else 0
    return f"{math.ceil(value * 10**digits) / 10**digits:.{max(digits, 0)}f}"


def largest_passing(low: int, high: int, passes: Callable[[int], bool]) -> int | None:
    """The largest ``x`` in ``[low, high]`` with ``passes(x)``, for a ``passes`` that is true up to some
    point and false after it (bisection: about log2(high − low) calls); None when ``passes(low)`` is false."""
    if high < low or not passes(low):
        return None
    while low < high:
        mid = (low + high + 1) // 2
        if passes(mid):
            low = mid
        else:
            high = mid - 1
    return low
