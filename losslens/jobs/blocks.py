"""The ``--params`` blocks of planned jobs, resolved before any job runs.

A metric with a ``params`` field (the Hessian's ``--params GLOBS``) differentiates only the parameters
its globs select. ``compute`` resolves every glob against each distinct model (architecture) of the
planned jobs at planning, so a glob that selects nothing in some model stops the command in one line
before any job runs (instead of failing every job of that model), and ``--dry-run`` shows what each
glob selects; a metric's parameters may also refuse a block by its size (``check_block``: the
Hessian's ``--k`` above the block's weights). The rule is the run-time one
(:func:`losslens.params.select` over the trainable parameters, with
:func:`losslens.params.base_prefix`); the names and shapes come from a skeleton of the model built
from its catalog record on torch's ``meta`` device (no storage, no checkpoint read, no random
initialisation). Nothing is stored.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch

from losslens.errors import LossLensError
from losslens.jobs.plan import Job
from losslens.params import Params, base_prefix, select
from losslens.spec import FactorySpec


@dataclass(frozen=True)
class GlobCount:
    """What one glob selects in one model: ``tensors`` parameter tensors holding ``weights`` scalars."""

    glob: str
    tensors: int
    weights: int


@dataclass(frozen=True)
class ModelBlock:
    """What a metric's ``--params`` globs select in one model (one architecture) of the planned jobs.

    ``tensors``/``weights`` count the block (the union of the globs, a tied tensor once) out of the
    model's ``total_tensors``/``total_weights`` trainable ones. ``unchecked`` says why the model's
    skeleton could not be built here (its jobs then report the same fault themselves, one by one).
    """

    model: str
    checkpoints: int
    globs: tuple[GlobCount, ...] = ()
    tensors: int = 0
    weights: int = 0
    total_tensors: int = 0
    total_weights: int = 0
    unchecked: str | None = None


def param_globs(params: Any) -> tuple[str, ...]:
    """The ``--params`` globs of a metric's parameters (a ``params`` field of strings), or ``()``."""
    globs = getattr(params, "params", ())
    if isinstance(globs, (tuple, list)) and all(isinstance(g, str) for g in globs):
        return tuple(globs)
    return ()


def skeleton(architecture_json: str) -> tuple[Params, str]:
    """A model's trainable parameters (the names, order and shapes of ``Subject.params``) and its
    :func:`~losslens.params.base_prefix`, from a catalog model record's ``architecture_json``.

    The factory runs under ``torch.device("meta")``: tensors get shapes and no storage, so even a large
    transformers model is built in well under a second and reads no weights. A factory that computes on
    its tensors while building (meta tensors have no values) is built again on the CPU, still without
    reading a checkpoint.

    :raises LossLensError: the factory is unknown or refuses its kwargs (the error of a real build).
    """
    spec = FactorySpec(**json.loads(architecture_json))
    try:
        with torch.device("meta"):
            model = spec.build("model")
    except Exception:  # e.g. "Cannot copy out of meta tensor"; a real fault is raised again by this build
        model = spec.build("model")
    params = {name: p for name, p in model.named_parameters() if p.requires_grad}
    return params, base_prefix(model)


def _label(records: list[dict[str, Any]]) -> str:
    names = list(dict.fromkeys(str(r["model_name"]) for r in records))
    shown = ", ".join(repr(n) for n in names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    count = len(records)
    return f"{shown} ({count} checkpoint{'s' if count != 1 else ''})"


def resolve_blocks(metric: str, params: Any, jobs: Iterable[Job]) -> list[ModelBlock]:
    """Resolve a metric's ``--params`` globs against each distinct model of its planned ``jobs``.

    :param metric: the metric's name, for the refusal's ``where``.
    :param params: the metric's parameters (``param_globs`` finds the globs; none: no blocks).
    :returns: one :class:`ModelBlock` per distinct architecture, in first-planned order.
    :raises LossLensError: a glob matches no parameter of some model: one line naming the metric,
        ``--params``, the glob, the model and its planned checkpoints, and the closest globs of that
        model (:func:`losslens.params.no_match`); or the metric's parameters refuse the block's size
        (their ``check_block(weights, model)``, when they have one: the Hessian's ``--k``).
    """
    globs = param_globs(params)
    if not globs:
        return []
    by_architecture: dict[str, dict[str, dict[str, Any]]] = {}
    for job in jobs:
        for record in job.records:
            by_architecture.setdefault(record["architecture_json"], {})[record["sha256"]] = record
    blocks = []
    for architecture, records in by_architecture.items():
        label = _label(list(records.values()))
        try:
            tensors, prefix = skeleton(architecture)
        except Exception as exc:  # one model that cannot be built never stops the others
            reason = exc.line() if isinstance(exc, LossLensError) else f"{type(exc).__name__}: {exc}"
            blocks.append(ModelBlock(label, len(records), unchecked=" ".join(reason.split())))
            continue
        counts = []
        for glob in globs:
            hit = select(tensors, [glob], prefix, where=metric, model=label)
            counts.append(GlobCount(glob, len(hit), sum(tensors[n].numel() for n in hit)))
        block = select(tensors, globs, prefix)
        weights = sum(tensors[n].numel() for n in block)
        check = getattr(params, "check_block", None)  # the metric's own test of a block's size (the Hessian's k)
        if check is not None:
            check(weights, label)
        blocks.append(
            ModelBlock(
                label,
                len(records),
                tuple(counts),
                tensors=len(block),
                weights=weights,
                total_tensors=len(tensors),
                total_weights=sum(t.numel() for t in tensors.values()),
            )
        )
    return blocks


def describe_blocks(blocks: list[ModelBlock]) -> list[str]:
    """``--dry-run`` lines: per model, the block out of the model's parameters, then each glob's share."""
    lines = []
    for b in blocks:
        if b.unchecked is not None:
            lines.append(f"  --params on model {b.model}: not checked (the model cannot be built here: {b.unchecked})")
            continue
        lines.append(
            f"  --params on model {b.model}: {b.tensors:,} of {b.total_tensors:,} parameter tensors, "
            f"{b.weights:,} of {b.total_weights:,} weights"
        )
        lines += [f"    {g.glob!r}: {g.tensors:,} tensors, {g.weights:,} weights" for g in b.globs]
    return lines
