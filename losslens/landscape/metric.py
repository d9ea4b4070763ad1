"""The ``landscape`` metric: the loss on a 1-D … 4-D grid (or a random sample) of θ + Σ aᵢ dᵢ.

Spans: "relative" makes each axis reach ±span·‖θ‖ in parameter space whatever the norm of its
direction (Landscaper's r = 1% of ‖θ‖ is ``--span 0.01``); "absolute" makes the coordinate a
run over ±span in units of the direction itself (Li et al.'s plots of filter-normalised
directions over [−1, 1] are ``--span-mode absolute --span 1``). Steps must be odd so that θ is
the centre grid point. With ``--samples N`` (for 3-D and 4-D) the loss is taken at θ, at one
grid step either way along each axis, and at N uniform random points of the box; the topology
then runs on a kNN graph of them.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from losslens.errors import LossLensError
from losslens.landscape.budget import check_memory
from losslens.landscape.directions import pca_directions, random_directions
from losslens.landscape.grid import evaluate, grid_coordinates
from losslens.metrics.registry import Read, Reads, Result, Trajectory, register
from losslens.params import base_prefix, flatten, select
from losslens.store.ids import content_id, params_hash

AXES = ("a", "b", "c", "d")
INDICES = ("i", "j", "k", "l")


@dataclass(frozen=True)
class LandscapeParams:
    directions: Literal["random", "hessian", "pca"] = field(
        default="random",
        metadata={"help": "Random (normalised), top Hessian eigenvectors, or PCA of the checkpoint's training trajectory."},
    )
    dims: int = field(default=2, metadata={"help": "Number of directions, 1 to 4."})
    steps: int = field(default=41, metadata={"help": "Grid points per axis (odd, so θ is the centre)."})
    span: float = field(default=0.01, metadata={"help": "Half-width of each axis (see --span-mode)."})
    span_mode: Literal["relative", "absolute"] = field(
        default="relative",
        metadata={"help": "relative: ±span·‖θ‖ in parameter space; absolute: ±span in units of the direction."},
    )
    normalization: Literal["filter", "layer", "unit"] = field(
        default="filter",
        metadata={"help": "Random directions: Li et al. filter- or layer-wise (biases and BN zeroed), or unit vectors."},
    )
    orthogonalize: bool = field(default=True, metadata={"help": "Gram–Schmidt the random directions after normalisation."})
    seed: int = field(default=0, metadata={"help": "Seed of the random directions (and of --samples)."})
    samples: int = field(
        default=0, metadata={"help": "0: the full grid; N > 0: θ, ±1 step per axis and N random points of the box."}
    )
    batches: int = field(
        default=1,
        metadata={
            "help": "Training batches (in the problem's fixed order) the loss is averaged over. Default 1: the centre "
            "is the first batch's loss, not performance's loss over the whole split; raise it (or --batch-size) for more data."
        },
    )
    batch_size: int = field(default=0, metadata={"help": "Batch size for the landscape loss; 0 is the problem's own."})
    memory_gb: float | None = field(
        default=None,
        metadata={"help": "Refuse to start when the estimated peak exceeds this many GiB (default: the device's free memory)."},
    )

    def __post_init__(self) -> None:
        """Checked when the options are read, so a bad value is one line before any job runs (not a failed run
        per checkpoint)."""
        where = "landscape"
        if not 1 <= self.dims <= 4:
            raise LossLensError(f"--dims {self.dims} is out of range", where=where, hint="use 1, 2, 3 or 4")
        if self.steps < 3 or self.steps % 2 == 0:
            raise LossLensError(f"--steps {self.steps} must be odd and at least 3", where=where, hint="e.g. --steps 41")
        if not self.span > 0:
            raise LossLensError(f"--span {self.span} must be positive", where=where)
        if self.samples < 0 or self.batches < 1 or self.batch_size < 0:
            raise LossLensError("--samples, --batches and --batch-size must be non-negative (batches ≥ 1)", where=where)


def landscape_run_id(checkpoint: str, params: LandscapeParams) -> str:
    """The id of the landscape run (and of its ``landscapes`` row) for these parameters."""
    return content_id("run", "landscape", checkpoint, params_hash(dataclasses.asdict(params)))


def _reads(params: LandscapeParams) -> Reads:
    """Hessian directions read the checkpoint's latest Hessian eigenvectors; PCA reads its training run."""
    if params.directions == "hessian":
        return (Read("hessian", artifacts=("eigenvectors",)),)
    return (Trajectory(),) if params.directions == "pca" else ()


def _hessian_directions(ctx: Any, subject: Any, k: int) -> tuple[torch.Tensor, str]:
    runs = ctx.results("hessian")
    if runs and "eigenvectors" in runs[-1].artifacts:
        run = runs[-1].run
        vectors = runs[-1].artifacts["eigenvectors"]
        n = sum(p.numel() for p in subject.params.values())
        if vectors.shape[0] >= k and vectors.shape[1] == n:
            return torch.as_tensor(vectors[:k]), f"hessian run {run['id']}"
        globs = tuple(json.loads(run["params_json"] or "{}").get("params") or ())
        if vectors.shape[0] >= k and globs:
            block = _embed_block(subject.params, select(subject.params, globs, base_prefix(subject.model)), vectors[:k])
            if block is not None:
                return block, f"hessian run {run['id']} over --params {','.join(globs)} (zero elsewhere)"
    from losslens.hessian import hvp_operator, top_eigenpairs

    _, vectors = top_eigenpairs(hvp_operator(subject), k=k)
    return torch.as_tensor(np.asarray(vectors))[:k].to(torch.float32), "top eigenvectors computed on demand"


def _embed_block(params: dict[str, torch.Tensor], names: list[str], vectors: np.ndarray) -> torch.Tensor | None:
    """Eigenvectors of a Hessian block (over ``names``) as full-length directions, zero on the other parameters;
    None when the sizes do not agree."""
    sizes = {k: v.numel() for k, v in params.items()}
    if sum(sizes[k] for k in names) != vectors.shape[1]:
        return None
    out = torch.zeros(len(vectors), sum(sizes.values()), dtype=torch.float32)
    offsets, start = {}, 0
    for k, size in sizes.items():
        offsets[k] = start
        start += size
    col = 0
    for k in names:
        out[:, offsets[k] : offsets[k] + sizes[k]] = torch.as_tensor(vectors[:, col : col + sizes[k]])
        col += sizes[k]
    return out


def _pca(ctx: Any, subject: Any, k: int) -> tuple[torch.Tensor, str]:
    others = ctx.trajectory()
    if len(others) < k + 1:
        raise LossLensError(
            f"PCA directions need at least {k + 1} other checkpoints of this run (same model and seed, with a step); found {len(others)}",
            where=subject.name,
            hint="ingest the run's intermediate checkpoints, or use --directions random",
        )
    theta = flatten(subject.params)
    trajectory = torch.stack([flatten(ctx.subject(o["sha256"]).params).to(theta) for o in others])
    directions, ratio = pca_directions(theta, trajectory, k)
    return (
        directions,
        f"PCA of {len(others)} trajectory checkpoints (steps {others[0]['step']}…{others[-1]['step']}), explained variance {np.round(ratio, 4).tolist()}",
    )


def _points(params: LandscapeParams, half: list[float]) -> tuple[np.ndarray, np.ndarray | None]:
    """Coordinates of all points, and grid indices (None for a sampled landscape)."""
    if params.samples == 0:
        _, coords = grid_coordinates(half, params.steps)
        shape = (params.steps,) * params.dims
        return coords, np.stack(np.unravel_index(np.arange(len(coords)), shape), axis=1)
    step = np.array(half) * 2 / (params.steps - 1)
    probes = [np.zeros(params.dims)]
    for axis in range(params.dims):
        for sign in (-1, 1):
            p = np.zeros(params.dims)
            p[axis] = sign * step[axis]
            probes.append(p)
    rng = np.random.default_rng(params.seed)
    box = rng.uniform(-1, 1, size=(params.samples, params.dims)) * np.array(half)
    return np.concatenate([np.stack(probes), box]), None


@register("landscape", scope="checkpoint", params=LandscapeParams, tables=("landscapes", "landscape_points"), reads=_reads)
def landscape(ctx: Any, params: LandscapeParams) -> Result:
    """Loss over a grid of θ + Σ aᵢ dᵢ (random, Hessian or PCA directions), batched with vmap."""
    subject = ctx.subject()
    chunk, batches = check_memory(subject, params, ctx.device)  # before the directions take their memory
    if params.directions == "random":
        directions = random_directions(subject.params, params.dims, params.seed, params.normalization, params.orthogonalize)
        source = f"random, seed {params.seed}, {params.normalization}-normalised" + (
            ", Gram–Schmidt in order" if params.orthogonalize else ""
        )
    elif params.directions == "hessian":
        directions, source = _hessian_directions(ctx, subject, params.dims)
    else:
        directions, source = _pca(ctx, subject, params.dims)
    directions = directions.to(flatten(subject.params))
    theta_norm = float(flatten(subject.params).norm())
    norms = [float(n) for n in directions.norm(dim=1)]
    half = [params.span * theta_norm / n if params.span_mode == "relative" else params.span for n in norms]
    coords, index = _points(params, half)
    t0 = time.perf_counter()
    losses, chunk = evaluate(subject, directions, coords, batches, chunk=chunk)
    seconds = time.perf_counter() - t0

    result = Result()
    grid = losses.reshape((params.steps,) * params.dims) if index is not None else losses
    grid_sha = result.artifact("grid", "landscape_grid", grid.astype(np.float64))
    dir_sha = result.artifact("directions", "landscape_directions", directions.cpu().numpy().astype(np.float32))
    coord_sha = result.artifact("coordinates", "landscape_coordinates", coords) if index is None else None
    centre = 0 if index is None else len(coords) // 2
    finite = np.isfinite(losses)
    notes = []
    if subject.has_batch_norm:
        notes.append("BatchNorm in eval mode (running statistics)")
    result.add(
        "landscapes",
        id=landscape_run_id(subject.sha256, params),
        checkpoint=subject.sha256,
        directions=params.directions,
        direction_source=source,
        normalization=params.normalization if params.directions == "random" else "unit",
        orthogonalized=int(params.orthogonalize or params.directions != "random"),
        seed=params.seed,
        dims=params.dims,
        steps=params.steps,
        samples=params.samples,
        span=params.span,
        span_mode=params.span_mode,
        theta_norm=theta_norm,
        direction_norms_json=json.dumps(norms),
        half_widths_json=json.dumps(half),
        n_points=len(coords),
        n_nonfinite=int((~finite).sum()),
        centre_loss=float(losses[centre]) if finite[centre] else None,
        loss_batches=len(batches),
        chunk_size=chunk,
        eval_seconds=seconds,
        batch_norm_eval=int(subject.has_batch_norm),
        notes="; ".join(notes) or None,
        params_hash=params_hash(dataclasses.asdict(params)),
        grid_artifact=grid_sha,
        directions_artifact=dir_sha,
        coordinates_artifact=coord_sha,
    )
    rows = []
    for p in range(len(coords)):
        row: dict[str, Any] = {"point": p, "loss": float(losses[p]) if finite[p] else None, "is_finite": int(finite[p])}
        for axis in range(4):
            row[AXES[axis]] = float(coords[p, axis]) if axis < params.dims else None
            row[INDICES[axis]] = int(index[p, axis]) if (index is not None and axis < params.dims) else None
        rows.append(row)
    result.extend("landscape_points", rows)
    return result
