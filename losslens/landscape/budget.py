"""The landscape metric's memory check: the points per call that fit the budget, or a refusal that says
which setting of the options fits.

The estimate is :func:`losslens.memory.landscape_estimate`: weights, the directions while they are drawn,
and per point of a call one parameter row plus the forward's module outputs (measured by
:func:`~losslens.landscape.grid.footprint`, one forward without a graph). The points per call are the
fewer of :func:`~losslens.landscape.grid.chunk_for`'s choice and the most that fit, so a grid that fits
one point at a time is never refused. Otherwise the options a user controls are searched with the same
estimate, so that re-running with the suggestion passes this check:

1. less data: ``--batches 1``, then the largest ``--batch-size`` that fits (bisection, one measured
   forward per try);
2. fewer ``--dims``, with the most data that fits.

When nothing fits, the line gives the least that any tried setting needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from losslens.landscape.grid import batched_loss, chunk_for, footprint
from losslens.memory import Setting, budget_bytes, landscape_estimate, largest_passing, refuse
from losslens.params import flatten

if TYPE_CHECKING:
    from losslens.landscape.metric import LandscapeParams


@dataclass(frozen=True)
class _Try:
    batches: int
    batch_size: int | None
    dims: int


def points_of(params: LandscapeParams, dims: int) -> int:
    """How many points the landscape evaluates with ``dims`` directions."""
    return params.samples + 1 + 2 * dims if params.samples else params.steps**dims


def check_memory(subject: Any, params: LandscapeParams, device: torch.device) -> tuple[int, list[Any]]:
    """The points per vmapped call and the loss's batches, after refusing a landscape whose estimated peak
    exceeds the budget at one point per call (see the module docstring).

    :raises LossLensError: even one point at a time exceeds ``--memory-gb`` (or the device's free memory);
        the line names a setting of the options that fits, or the least any tried setting needs.
    """
    theta = flatten(subject.params)
    n, element = theta.numel(), theta.element_size()
    budget = budget_bytes(params.memory_gb, device)
    first = _Try(params.batches, params.batch_size or getattr(subject.problem, "batch_size", None), params.dims)
    least: list[Setting] = []
    measured: dict[tuple[int, int | None], tuple[int, int]] = {}

    def data(t: _Try) -> list[Any]:
        return list(subject.problem.batches("train", batch_size=t.batch_size, limit=t.batches))

    def attempt(t: _Try) -> tuple[Setting, int]:
        """The setting at the most points per call that fit (at least 1), and that number (0: none fits)."""
        key = (t.batches, t.batch_size)
        if key not in measured:  # one forward per data setting, whatever the dims
            measured[key] = footprint(batched_loss(subject, data(t)), theta)
        total, largest = measured[key]
        chunk = chunk_for(total, largest, points_of(params, t.dims))
        forward = total - 2 * n * element
        if budget:
            fixed = landscape_estimate(n, element, t.dims, forward, 0).total
            chunk = min(chunk, max(0, (budget - fixed) // (n * element + forward)))
        options: list[tuple[str, str | None]] = []
        if t.batches != first.batches:
            options.append(("batches", str(t.batches)))
        if t.batch_size is not None and t.batch_size != first.batch_size:
            options.append(("batch-size", str(t.batch_size)))
        if t.dims != first.dims:
            options.append(("dims", str(t.dims)))
        found = Setting(tuple(options), landscape_estimate(n, element, t.dims, forward, max(chunk, 1)))
        if not least or found.estimate.total < least[0].estimate.total:
            least[:] = [found]
        return found, int(chunk)

    start, chunk = attempt(first)
    if chunk >= 1:
        return chunk, data(first)

    def most_data(dims: int) -> Setting | None:
        """For ``dims`` directions: the asked data if it fits, else one batch of the largest size that fits."""
        if dims != first.dims:
            asked, fits = attempt(_Try(first.batches, first.batch_size, dims))
            if fits:
                return asked
        size = first.batch_size
        if size is None:  # a problem without batches of examples: only fewer batches
            if first.batches == 1:
                return None
            one, fits = attempt(_Try(1, None, dims))
            return one if fits else None
        found: dict[int, Setting] = {}

        def passes(b: int) -> bool:
            found[b], fits = attempt(_Try(1, b, dims))
            return fits >= 1

        best = largest_passing(1, size if first.batches > 1 else size - 1, passes)
        return None if best is None else found[best]

    fit = None
    for dims in range(first.dims, 0, -1):
        fit = most_data(dims)
        if fit is not None:
            break
    where = f"landscape {subject.name}"
    refuse(
        start.estimate,
        budget,
        params.memory_gb,
        device,
        where,
        fit,
        least[0],
        "--batches, --batch-size and --dims",
        half_precision=device.type == "cuda" and element == 4,
    )
