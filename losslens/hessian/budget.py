"""The Hessian metric's memory check: refuse a run whose estimated peak exceeds the budget, and say which
setting of its options fits.

The estimate is :func:`losslens.memory.hessian_estimate`; a refusal searches the options a user controls
with that same estimate, so that re-running with the suggested options passes this check:

1. fewer Lanczos steps (``--max-iter``, ``--esd-steps``; solved in closed form, never below the 2k + 1
   steps the eigensolver needs);
2. less data: ``--batches 1``, then the largest ``--batch-size`` that fits (bisection, one measured
   forward per try);
3. a smaller block of the Hessian (``--params``, within the current selection): the largest module or
   tensor of the model that fits at one example, then the most data that fits with it.

Each measured try is one forward with autograd on (:func:`~losslens.memory.saved_tensor_bytes`); at most
:data:`MAX_BLOCK_TRIES` blocks are measured. When nothing fits, up to as many blocks with the least floor
(weights, vectors and the shortest basis, no graph) are measured at one example too, and the line gives
the least that any tried setting needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from losslens.memory import (
    Estimate,
    Setting,
    budget_bytes,
    hessian_estimate,
    largest_passing,
    refuse,
    saved_tensor_bytes,
)
from losslens.params import base_prefix, module_globs, select

if TYPE_CHECKING:
    from losslens.hessian.hvp import HVP
    from losslens.hessian.metric import HessianParams
    from losslens.jobs.context import Subject

#: Blocks whose graph is measured before the search gives up.
MAX_BLOCK_TRIES = 12


@dataclass(frozen=True)
class _Data:
    batches: int
    batch_size: int | None


def check_memory(s: Subject, hvp: HVP, params: HessianParams, max_iter: int, device: torch.device) -> None:
    """Refuse, before any HVP, a run whose estimated peak exceeds the budget (see the module docstring).

    :raises LossLensError: the estimate exceeds ``--memory-gb`` (or the device's free memory); the line
        names a setting of the options that fits, or the least any tried setting needs.
    """
    budget = budget_bytes(params.memory_gb, device)
    if not budget:
        return
    search = _Search(s, hvp, params, max_iter, budget)
    start = search.measure(search.first, list(hvp.params))
    if start.total <= budget:
        return
    fit = search.first_fit(list(hvp.params))
    knobs = (
        "--batches and --batch-size"
        if params.backend != "lanczos"
        else "--batches, --batch-size, --params, --max-iter and --esd-steps"
    )
    refuse(
        start,
        budget,
        params.memory_gb,
        device,
        f"hessian {s.name}",
        fit,
        None if fit else search.least,
        knobs,
        half_precision=device.type == "cuda" and search.element == 4,
    )


class _Search:
    """The search of the module docstring over (data, block, steps), keeping the least estimate seen."""

    def __init__(self, s: Subject, hvp: HVP, params: HessianParams, max_iter: int, budget: int):
        self.subject, self.hvp, self.params, self.budget = s, hvp, params, budget
        self.lanczos = params.backend == "lanczos"
        self.steps = max(max_iter, params.esd_steps if params.esd else 0) if self.lanczos else 0
        self.needed = params.k + int(params.smallest)
        self.sizes = {k: v.numel() for k, v in s.params.items()}
        self.n = sum(self.sizes.values())
        self.element = hvp.dtype.itemsize
        self.prefix = base_prefix(s.model)
        self.first = _Data(params.batches, params.batch_size or getattr(s.problem, "batch_size", None))
        self.least: Setting | None = None

    def measure(self, data: _Data, block: list[str]) -> Estimate:
        """The estimate with the asked steps, from one measured forward of this data and block."""
        op = self.hvp
        if data != self.first or block != list(self.hvp.params):
            from losslens.hessian.hvp import hvp_operator

            op = hvp_operator(self.subject, data.batches, data.batch_size, names=block)
        leaves = {k: v.detach().requires_grad_(True) for k, v in op.params.items()}
        return hessian_estimate(self.n, op.n, self.element, saved_tensor_bytes(lambda: op.loss(leaves)), self.steps)

    def shortest(self, m: int) -> int:
        """The fewest Lanczos steps the eigensolver takes for ``m`` parameters (2k + 1, at most m)."""
        return min(2 * self.needed + 1, m) if self.lanczos else 0

    def steps_that_fit(self, est: Estimate, m: int) -> int | None:
        """The most Lanczos steps (≤ the asked ones) that fit beside the rest of ``est``; None if too few."""
        if not self.lanczos:
            return self.steps if est.total <= self.budget else None
        room = self.budget - (est.total - est.terms["Lanczos basis"])
        if min(self.steps, m) * m * 8 <= room:
            return self.steps
        fitting = room // (m * 8)
        return int(fitting) if fitting >= self.shortest(m) else None

    def setting(self, data: _Data, block: list[str], glob: str | None) -> tuple[Setting, bool]:
        """The setting (the options that differ from the asked ones, and its estimate) and whether it fits."""
        est = self.measure(data, block)
        m = sum(self.sizes[k] for k in block)
        steps = self.steps_that_fit(est, m)
        use = steps if steps is not None else self.shortest(m)
        if self.lanczos:
            est = Estimate({**est.terms, "Lanczos basis": min(use, m) * m * 8})
        options: list[tuple[str, str | None]] = []
        if data.batches != self.first.batches:
            options.append(("batches", str(data.batches)))
        if data.batch_size is not None and data.batch_size != self.first.batch_size:
            options.append(("batch-size", str(data.batch_size)))
        if glob is not None:
            options.append(("params", glob))
        if self.lanczos and use < self.steps:
            max_iter = self.params.max_iter if self.params.max_iter is not None else self.steps
            if max_iter > use:
                options.append(("max-iter", str(use)))
            if self.params.esd and self.params.esd_steps > use:
                options.append(("esd-steps", str(use)))
        found = Setting(tuple(options), est)
        if self.least is None or est.total < self.least.estimate.total:
            self.least = found
        return found, steps is not None

    def most_data(self, block: list[str], glob: str | None) -> Setting | None:
        """The setting with the most data that fits for ``block``: as asked, else one batch of the largest size."""
        asked, fits = self.setting(self.first, block, glob)
        if fits:
            return asked
        size = self.first.batch_size
        if size is None:  # a problem without batches of examples (a PINN): only fewer batches
            if self.first.batches == 1:
                return None
            one, fits = self.setting(_Data(1, None), block, glob)
            return one if fits else None
        found: dict[int, Setting] = {}

        def passes(b: int) -> bool:
            found[b], fits = self.setting(_Data(1, b), block, glob)
            return fits

        best = largest_passing(1, size if self.first.batches > 1 else size - 1, passes)
        return None if best is None else found[best]

    def first_fit(self, names: list[str]) -> Setting | None:
        """Steps and data for the asked parameters, then the largest block that fits (module docstring)."""
        fit = self.most_data(names, None)
        if fit is not None or not self.lanczos:
            return fit
        least_data = _Data(1, 1 if self.first.batch_size is not None else None)
        for glob, block in self.blocks(names, fitting=True)[:MAX_BLOCK_TRIES]:
            _, fits = self.setting(least_data, block, glob)
            if fits:
                return self.most_data(block, glob)
        for glob, block in self.blocks(names, fitting=False)[:MAX_BLOCK_TRIES]:  # for the least any setting needs
            self.setting(least_data, block, glob)
        return None

    def blocks(self, names: list[str], fitting: bool) -> list[tuple[str, list[str]]]:
        """Each module or tensor inside the asked selection (fewer parameters than it). ``fitting``: largest first,
        without those that cannot fit even with no graph at all (weights, vectors and the shortest basis); else
        all, least of that floor first."""
        inside = set(names)
        out: dict[frozenset[str], tuple[str, list[str]]] = {}
        for glob in module_globs(names, self.prefix):
            block = select(self.subject.params, [glob], self.prefix)
            key = frozenset(block)
            if key < inside and key not in out:
                out[key] = (glob, block)
        ranked = []
        for glob, block in out.values():
            m = sum(self.sizes[k] for k in block)
            floor = self.n * self.element + 3 * m * self.element + self.shortest(m) * m * 8
            if floor <= self.budget or not fitting:
                ranked.append((-m if fitting else floor, glob, block))
        ranked.sort(key=lambda r: r[0])
        return [(glob, block) for _, glob, block in ranked]
