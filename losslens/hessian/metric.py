"""The ``hessian`` metric: top-k eigenpairs, trace and spectral density of each checkpoint's loss."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from losslens.errors import LossLensError
from losslens.hessian.budget import check_memory
from losslens.hessian.eigen import DEFAULT_MAX_ITER, lanczos_eigenpairs
from losslens.hessian.esd import min_grid_points, spectral_density
from losslens.hessian.hvp import hvp_operator
from losslens.hessian.pyhessian_backend import PyHessianBackend
from losslens.hessian.trace import hutchinson_trace
from losslens.jobs.context import JobContext
from losslens.metrics.registry import Result, register
from losslens.numerics import check_finite_loss
from losslens.params import base_prefix, select
from losslens.store.ids import params_hash

#: Backend defaults when ``--tol`` / ``--max-iter`` are not given: ours, and PyHessian's own.
DEFAULT_TOL = {"lanczos": 1e-6, "pyhessian": 1e-3}
DEFAULT_ITER = {"lanczos": DEFAULT_MAX_ITER, "pyhessian": 100}
EIGEN_METHOD = {"lanczos": "lanczos-full-reorthogonalisation", "pyhessian": "power-iteration-deflation"}


@dataclass(frozen=True)
class HessianParams:
    k: int = field(default=10, metadata={"help": "How many of the largest eigenpairs (signed, sorted descending)."})
    batches: int = field(
        default=1,
        metadata={
            "help": "Average the Hessian over the first N training batches (the problem's fixed order). Default 1: one "
            "batch, unlike performance's loss over the whole split; raise it (or --batch-size) for more data."
        },
    )
    batch_size: int | None = field(
        default=None, metadata={"help": "Examples per batch; default: the problem's own (Yang et al. use 200)."}
    )
    backend: Literal["lanczos", "pyhessian"] = field(
        default="lanczos", metadata={"help": "Eigenpairs and trace by our Lanczos/Hutchinson, or by PyHessian 0.1."}
    )
    tol: float | None = field(
        default=None,
        metadata={"help": "Lanczos: residual ≤ tol·‖H‖ (default 1e-6); pyhessian: its relative change (default 1e-3)."},
    )
    max_iter: int | None = field(
        default=None, metadata={"help": "Lanczos: most Krylov steps (default 300); pyhessian: maxIter per eigenvalue (100)."}
    )
    smallest: bool = field(default=False, metadata={"help": "Also the most negative eigenvalue and its eigenvector."})
    trace_probes: int = field(default=100, metadata={"help": "Rademacher probes for the Hutchinson trace (0: no trace)."})
    esd: bool = field(default=True, metadata={"help": "Also the spectral density by stochastic Lanczos quadrature."})
    esd_runs: int = field(default=5, metadata={"help": "SLQ runs (independent start vectors) averaged."})
    esd_steps: int = field(default=50, metadata={"help": "Lanczos steps per SLQ run."})
    esd_points: int = field(default=256, metadata={"help": "Grid points of the density."})
    esd_sigma: float = field(default=0.01, metadata={"help": "Gaussian broadening width, as a fraction of the spectrum's range."})
    seed: int = field(default=0, metadata={"help": "Seed of the start vectors and probes."})
    params: tuple[str, ...] = field(
        default=(),
        metadata={
            "help": "Only the parameters matching these comma-separated globs: a diagonal block of the Hessian, the "
            "rest held fixed. Default: all. fnmatch from the start of the dotted name (* crosses dots), or for a "
            "transformers model after its base-model prefix: 'layers.11.*' is gpt_neox.layers.11.…, 'h.0.*' "
            "transformer.h.0.…, '*.bias' every bias; '0.*' is 0.weight and 0.bias, never 2.0.weight. Each glob must "
            "match in every model of the plan (else compute stops before any job); --dry-run counts what each selects."
        },
    )
    memory_gb: float | None = field(
        default=None,
        metadata={"help": "Refuse to start when the estimated peak exceeds this many GiB (default: the device's free memory)."},
    )

    def __post_init__(self) -> None:
        if self.k < 1 or self.batches < 1:
            raise ValueError("k and batches must be ≥ 1")
        if self.trace_probes == 1 or self.trace_probes < 0:
            raise ValueError("trace_probes must be 0 (no trace) or ≥ 2 (for a standard error)")
        if self.esd_runs < 1 or self.esd_steps < 2 or self.esd_sigma <= 0:
            raise ValueError("esd_runs ≥ 1, esd_steps ≥ 2 and esd_sigma > 0 are required")
        if self.esd_points < min_grid_points(self.esd_sigma):
            raise ValueError(f"esd_points must be ≥ {min_grid_points(self.esd_sigma)} to resolve esd_sigma={self.esd_sigma}")
        if self.backend == "pyhessian" and self.smallest:
            raise ValueError("--smallest needs --backend lanczos: PyHessian's power iteration finds the largest |λ| only")
        if self.backend == "pyhessian" and self.params:
            raise ValueError("--params needs --backend lanczos: PyHessian differentiates every parameter")

    def check_block(self, n: int, model: str | None = None) -> None:
        """Whether a block of ``n`` weights has room for the eigenpairs asked for: called per job on the
        loaded block, and at planning on each model's ``--params`` block (:mod:`losslens.jobs.blocks`), so
        a block too small is one line before any job runs.

        :raises LossLensError: ``k`` (plus one with ``smallest``) exceeds ``n``.
        """
        wanted = self.k + int(self.smallest)
        if wanted <= n:
            return
        block = f"--params {','.join(self.params)} selects" if self.params else "the model has"
        of = f" of model {model}" if model else ""
        fixes = [f"lower --k to at most {n - int(self.smallest)}" if n > int(self.smallest) else "leave --smallest out"]
        fixes += ["widen --params"] if self.params else []
        raise LossLensError(
            f"--k {self.k}{' with --smallest' if self.smallest else ''} asks for {wanted} eigenpairs, but {block} "
            f"{n} weight{'s' if n != 1 else ''}{of}",
            where="hessian",
            hint=", or ".join(fixes),
        )


@register(
    "hessian",
    scope="checkpoint",
    params=HessianParams,
    tables=("hessian_eigenvalues", "hessian_trace", "hessian_esd", "hessian_summaries"),
)
def hessian(ctx: JobContext, params: HessianParams) -> Result:
    """Top-k Hessian eigenpairs (Lanczos), Hutchinson trace and SLQ spectral density of the training loss."""
    s = ctx.subject()
    phash = params_hash(dataclasses.asdict(params))
    seeds = np.random.SeedSequence(params.seed).generate_state(3)
    tol = params.tol if params.tol is not None else DEFAULT_TOL[params.backend]
    max_iter = params.max_iter if params.max_iter is not None else DEFAULT_ITER[params.backend]
    names = select(s.params, params.params, base_prefix(s.model))
    hvp = hvp_operator(s, params.batches, params.batch_size, names=names if params.params else None)
    check_memory(s, hvp, params, max_iter, ctx.device)
    loss = hvp.value()
    check_finite_loss(s.name, loss)
    params.check_block(hvp.n)
    result = Result()
    row = {"checkpoint": s.sha256, "params_hash": phash}
    summary = {
        **row,
        "backend": params.backend,
        "eigen_method": EIGEN_METHOD[params.backend],
        "hvp_method": "double-backward" if params.backend == "lanczos" else "pyhessian-double-backward",
        "tolerance": tol,
        "max_iter": max_iter,
        "n_params": hvp.n,
        "batches": hvp.batches,
        "batch_size": params.batch_size if params.batch_size is not None else getattr(s.problem, "batch_size", None),
        "bn_mode": "eval" if s.has_batch_norm else None,
        "loss": loss,
    }

    t0 = time.perf_counter()
    backend = PyHessianBackend(s, params.batches, params.batch_size) if params.backend == "pyhessian" else None
    if backend is None:
        pairs = lanczos_eigenpairs(hvp, params.k, int(params.smallest), tol, max_iter, int(seeds[0]))
        largest, vectors, residuals = pairs.largest, pairs.largest_vectors, list(pairs.residuals)
        summary.update(converged=int(pairs.converged), lanczos_steps=pairs.steps, eigen_hvps=hvp.count)
        if params.smallest:
            result.add(
                "hessian_eigenvalues", **row, which="smallest", rank=0, value=float(pairs.smallest[0]), residual=residuals[-1]
            )
            result.artifact("smallest_eigenvector", "hessian_eigenvectors", _unit_rows(pairs.smallest_vectors))
    else:
        largest, vectors = backend.eigenpairs(params.k, tol, max_iter, int(seeds[0]))
        residuals = [None] * params.k
        summary.update(converged=None, lanczos_steps=None, eigen_hvps=backend.count)
    summary["eigen_seconds"] = time.perf_counter() - t0
    for rank, value in enumerate(largest):
        result.add("hessian_eigenvalues", **row, which="largest", rank=rank, value=float(value), residual=residuals[rank])
    result.artifact("eigenvectors", "hessian_eigenvectors", _unit_rows(vectors))

    if params.trace_probes:
        t0, before = time.perf_counter(), (hvp.count if backend is None else backend.count)
        if backend is None:
            trace = hutchinson_trace(hvp, params.trace_probes, int(seeds[1]))
        else:
            trace = backend.trace(params.trace_probes, int(seeds[1]))
        after = hvp.count if backend is None else backend.count
        summary.update(trace_hvps=after - before, trace_seconds=time.perf_counter() - t0)
        result.add("hessian_trace", **row, estimate=trace.estimate, std_error=trace.std_error, probes=trace.probes)
    if backend is not None:
        backend.close()

    if params.esd:
        t0, before = time.perf_counter(), hvp.count
        slq = spectral_density(hvp, params.esd_runs, params.esd_steps, int(seeds[2]))
        x, density = slq.density(params.esd_points, params.esd_sigma)
        result.extend("hessian_esd", [{**row, "x": float(a), "density": float(d)} for a, d in zip(x, density, strict=True)])
        result.artifact("esd_nodes", "hessian_esd_nodes", slq.nodes)
        result.artifact("esd_weights", "hessian_esd_weights", slq.weights)
        summary.update(
            esd_method="slq",
            esd_runs=params.esd_runs,
            esd_steps=slq.nodes.shape[1],
            esd_sigma=slq.width(params.esd_sigma),
            esd_hvps=hvp.count - before,
            esd_seconds=time.perf_counter() - t0,
        )
    result.add("hessian_summaries", **summary)
    return result


def _unit_rows(vectors: np.ndarray) -> np.ndarray:
    """float32 rows of unit norm (renormalised after the cast)."""
    out = vectors.astype(np.float32)
    return out / np.linalg.norm(out, axis=1, keepdims=True)
