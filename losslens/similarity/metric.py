"""Two metrics: ``cka`` (per pair: model-level and layer-by-layer CKA) and ``similarity`` (per setting: the
classical-MDS layout of 1 − CKA between its seeds)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from losslens.errors import LossLensError
from losslens.jobs.context import JobContext, Subject
from losslens.jobs.pairs import PAIRS_HELP
from losslens.metrics.registry import Read, Result, register
from losslens.similarity.cka import Representation, cka
from losslens.similarity.features import (
    default_layers,
    input_set,
    is_language_model,
    layer_outputs,
    model_outputs,
    output_name,
)
from losslens.similarity.mds import classical_mds
from losslens.store.ids import params_hash


@dataclass(frozen=True)
class CKAParams:
    pairs: str = field(default="within-setting", metadata={"help": PAIRS_HELP})
    inputs: int = field(
        default=768,
        metadata={
            "help": "Classifiers: how many mixup training inputs; LMs: how many training sequences, every token one "
            "example (the PINN uses its evaluation grid)."
        },
    )
    mixup_alpha: float = field(default=16.0, metadata={"help": "Classifiers: mixup λ ~ Beta(α, α)."})
    input_seed: int = field(default=0, metadata={"help": "Seed of the mixup input set."})
    layers: tuple[str, ...] = field(
        default=(), metadata={"help": "Comma-separated module names for layer CKA (default: every conv/linear)."}
    )
    layer_cka: bool = field(default=True, metadata={"help": "Also compute the layer-by-layer CKA matrix."})
    debiased: bool = field(default=False, metadata={"help": "Debiased HSIC for the layer matrix (model-level rows store both)."})


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


@register("cka", scope="pair", params=CKAParams, tables=("pair_metrics", "layer_cka"))
def cka_metric(ctx: JobContext, params: CKAParams) -> Result:
    """Linear CKA between two models' outputs (softmax, PINN u, LM final hidden states) on fixed inputs, and layer by layer."""
    sha_a, sha_b = ctx.shas
    a, b = ctx.subject(sha_a), ctx.subject(sha_b)
    if a.problem.kind != b.problem.kind:
        raise LossLensError("CKA needs two models of the same kind of problem", where="cka")
    result = Result()
    x, recipe = input_set(a, params.inputs, params.mixup_alpha, params.input_seed)
    result.artifact("inputs", "cka_input_set", recipe.cpu().numpy())
    ra, rb = Representation(model_outputs(a, x)), Representation(model_outputs(b, x))
    phash = params_hash(dataclasses.asdict(params))
    for name, debiased in (("cka", False), ("cka_debiased", True)):
        result.add(
            "pair_metrics",
            checkpoint_a=sha_a,
            checkpoint_b=sha_b,
            metric=name,
            curve=None,
            quantity=output_name(a),
            value=_finite(cka(ra, rb, debiased)),
            params_hash=phash,
        )
    if params.layer_cka:
        result.extend("layer_cka", layer_matrix(a, b, x, list(params.layers), params.debiased))
    return result


def layer_matrix(a: Subject, b: Subject, x: torch.Tensor, layers: list[str], debiased: bool) -> list[dict[str, Any]]:
    """CKA between every named layer of model a and every named layer of model b on inputs ``x``."""
    names_a = layers or default_layers(a)
    names_b = layers or default_layers(b)
    try:
        feats_a = {k: Representation(v) for k, v in layer_outputs(a, x, names_a, skip_unused=not layers).items()}
        feats_b = {k: Representation(v) for k, v in layer_outputs(b, x, names_b, skip_unused=not layers).items()}
    except KeyError as exc:
        raise LossLensError(
            f"no layer named {exc.args[0]}",
            where="cka --layers",
            hint=f"layers of {a.name}: {', '.join(default_layers(a) if is_language_model(a) else (n for n, _ in a.model.named_modules() if n))}",
        ) from None
    names_a, names_b = [n for n in names_a if n in feats_a], [n for n in names_b if n in feats_b]
    return [
        {
            "checkpoint_a": a.sha256,
            "checkpoint_b": b.sha256,
            "layer_a": la,
            "layer_b": lb,
            "index_a": i,
            "index_b": j,
            "value": _finite(cka(feats_a[la], feats_b[lb], debiased)),
        }
        for i, la in enumerate(names_a)
        for j, lb in enumerate(names_b)
    ]


@dataclass(frozen=True)
class SimilarityParams:
    debiased: bool = field(default=False, metadata={"help": "Lay out 1 − debiased CKA instead of 1 − CKA."})


def cka_matrix(runs: list[Any], shas: list[str], which: str) -> np.ndarray:
    """Model-level CKA between the given checkpoints from ``cka`` runs, oldest first so that later runs
    win (1 on the diagonal).

    :raises LossLensError: when some pair of ``shas`` has no CKA.
    """
    index = {s: i for i, s in enumerate(shas)}
    matrix = np.eye(len(shas))
    seen = np.eye(len(shas), dtype=bool)
    for run in runs:
        for row in run.rows["pair_metrics"]:
            i, j = index.get(row["checkpoint_a"]), index.get(row["checkpoint_b"])
            if row["metric"] != which or i is None or j is None:
                continue
            value = math.nan if row["value"] is None else row["value"]
            matrix[i, j] = matrix[j, i] = value
            seen[i, j] = seen[j, i] = True
    if not seen.all():
        raise LossLensError(
            "some seed pairs have no CKA", where="similarity", hint="run `losslens compute cka --pairs within-setting` first"
        )
    return matrix


@register(
    "similarity",
    scope="setting",
    params=SimilarityParams,
    tables=("mds_coords",),
    requires=("cka",),
    reads=(Read("cka", tables=("pair_metrics",)),),
)
def similarity(ctx: JobContext, params: SimilarityParams) -> Result:
    """Classical MDS of 1 − CKA between the seeds of a setting: the semi-global layout of its modes."""
    matrix = cka_matrix(ctx.results("cka"), ctx.shas, "cka_debiased" if params.debiased else "cka")
    if not np.isfinite(matrix).all():
        raise LossLensError(
            "CKA is undefined (NaN) for some seed pair",
            where="similarity",
            hint="a model with constant outputs has no CKA; check its performance",
        )
    distance = np.clip(1.0 - matrix, 0.0, None)
    coords, eigenvalues = classical_mds(distance)
    result = Result()
    result.artifact("dissimilarity", "mds_dissimilarity", distance)
    result.artifact("eigenvalues", "mds_eigenvalues", eigenvalues)
    for sha, (x, y) in zip(ctx.shas, coords, strict=True):
        result.add("mds_coords", setting_id=ctx.setting_id, checkpoint=sha, x=float(x), y=float(y))
    return result
