"""What a metric sees: rebuilt models with their weights, problems, and the results of the metrics it reads.

Everything here comes with the job from the driver (records, requirement results, checkpoint bytes where
the worker cannot see the file): a worker never opens the catalog, so it may run on a node where the
SQLite file is not reachable.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol, TypedDict

import numpy as np
import torch
from torch import nn

from losslens.checkpoints import checkpoint_sha256, fit_state_dict, read_checkpoint
from losslens.errors import LossLensError
from losslens.numerics import cast_inputs_to_model, check_finite_weights
from losslens.problems.base import Problem, State
from losslens.spec import FactorySpec
from losslens.store.jobs import CHECKPOINT_SQL

__all__ = ["CHECKPOINT_SQL", "Blob", "JobContext", "RunResult", "Subject", "load_subject"]


class Blob(Protocol):
    """A checkpoint file's bytes held by an executor (e.g. in Ray's object store), fetched on demand."""

    def read(self) -> bytes: ...


@dataclass
class Subject:
    """One checkpoint, ready to evaluate: model in eval mode, detached parameters and buffers, problem.

    ``params`` are the trainable parameters (``requires_grad=True``), the ones metrics differentiate
    and move along; ``frozen`` are the parameters with ``requires_grad=False`` (fixed random features,
    a frozen backbone), which belong to this checkpoint and are always passed explicitly, never taken
    from the module, so two subjects never share them by accident.
    """

    sha256: str
    name: str
    model: nn.Module
    params: dict[str, torch.Tensor]
    buffers: dict[str, torch.Tensor]
    problem: Problem
    record: dict[str, Any]
    frozen: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def state(self) -> State:
        return {**self.params, **self.frozen, **self.buffers}

    def loss_at(self, params: dict[str, torch.Tensor], batch: Any) -> torch.Tensor:
        """The loss of one batch as a function of the trainable parameters alone."""
        return self.problem.loss(self.model, {**self.frozen, **params, **self.buffers}, batch)

    @property
    def has_batch_norm(self) -> bool:
        return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in self.model.modules())


@dataclass
class RunResult:
    """One done run of another metric, as shipped to a job: its ``metric_runs`` row, its parameters,
    the rows of the tables the reader asked for and the arrays of the artifacts it named."""

    run: dict[str, Any]
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    artifacts: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def params(self) -> dict[str, Any]:
        return json.loads(self.run["params_json"])


@lru_cache(maxsize=8)
def _problem(problem_json: str, device: str) -> Problem:
    spec = FactorySpec(**json.loads(problem_json))
    return spec.build("problem").to(torch.device(device))


class CheckpointOptions(TypedDict):
    """How ingest read a checkpoint (``read_checkpoint``'s keyword arguments), replayed on load."""

    allow_globals: tuple[str, ...]
    ema: bool


def _read_shipped(record: dict[str, Any], blob: Blob, options: CheckpointOptions) -> Any:
    """Read a checkpoint from bytes the driver shipped, after checking they are the ingested file."""
    data = blob.read()
    if hashlib.sha256(data).hexdigest() != record["sha256"]:
        raise LossLensError("shipped checkpoint bytes do not match the catalog", where=record["path"], hint="re-ingest it")
    with tempfile.TemporaryDirectory(prefix="losslens-ckpt-") as tmp:
        path = Path(tmp) / Path(record["path"]).name
        path.write_bytes(data)
        return read_checkpoint(path, **options)


def load_subject(record: dict[str, Any], device: torch.device, verify: bool = True, blob: Blob | None = None) -> Subject:
    """Rebuild a checkpoint's model from its catalog record and load the weights.

    The file is read at ``record["path"]`` when this machine sees it, otherwise from ``blob``.

    :raises LossLensError: when the file changed since ingestion, or it is not visible here and no bytes
        were shipped, or the state dict does not fit the model.
    """
    path = Path(record["path"])
    how = json.loads(record.get("meta_json") or "{}").get("losslens", {})  # how ingest read it
    options = CheckpointOptions(allow_globals=tuple(how.get("allow_globals", ())), ema=bool(how.get("ema", False)))
    if path.exists():
        if verify and checkpoint_sha256(path) != record["sha256"]:
            raise LossLensError("file changed since it was ingested", where=str(path), hint="re-ingest it (losslens ingest SPEC)")
        ckpt = read_checkpoint(path, **options)
    elif blob is not None:
        ckpt = _read_shipped(record, blob, options)
    else:
        raise LossLensError(
            "checkpoint file is not visible on this worker",
            where=str(path),
            hint="put the checkpoints on a filesystem every node mounts, or let the Ray executor ship them "
            "(-X ship_checkpoints=always)",
        )
    model = FactorySpec(**json.loads(record["architecture_json"])).build("model")
    state, _, _ = fit_state_dict(model, ckpt.state_dict, str(path), how.get("prefix"))
    model.load_state_dict(state)
    model.to(device).eval()
    cast_inputs_to_model(model)
    params = {k: v.detach() for k, v in model.named_parameters() if v.requires_grad}
    frozen = {k: v.detach() for k, v in model.named_parameters() if not v.requires_grad}
    buffers = {k: v.detach() for k, v in model.named_buffers()}
    check_finite_weights(record["name"], {**params, **frozen})  # one line from every metric, before any work
    return Subject(
        sha256=record["sha256"],
        name=record["name"],
        model=model,
        params=params,
        buffers=buffers,
        problem=_problem(record["problem_json"], str(device)),
        record=record,
        frozen=frozen,
    )


@dataclass
class JobContext:
    """Passed to a metric function. Read-only: results go back in the metric's ``Result``.

    ``checkpoints`` are the job's own records (one, a pair, a setting's seeds, or an experiment's);
    ``inputs`` holds, per metric named in the metric's ``reads``, the runs the driver shipped.
    """

    device: torch.device
    checkpoints: list[dict[str, Any]]
    setting_id: str | None
    experiment_id: str
    inputs: dict[str, list[RunResult]] = field(default_factory=dict)
    trajectory_records: list[dict[str, Any]] = field(default_factory=list)
    blobs: dict[str, Blob] = field(default_factory=dict, repr=False)
    _subjects: dict[str, Subject] = field(default_factory=dict, repr=False)

    @property
    def shas(self) -> list[str]:
        return [c["sha256"] for c in self.checkpoints]

    def subject(self, sha256: str | None = None) -> Subject:
        """The job's checkpoint (or the named one of its group or trajectory), loaded once.

        :raises ValueError: when the job covers several checkpoints and none is named.
        :raises LossLensError: when the named checkpoint did not come with the job.
        """
        if sha256 is None:
            if len(self.checkpoints) != 1:
                raise ValueError("this job covers several checkpoints; name one")
            sha256 = self.checkpoints[0]["sha256"]
        if sha256 not in self._subjects:
            record = next((c for c in [*self.checkpoints, *self.trajectory_records] if c["sha256"] == sha256), None)
            if record is None:
                raise LossLensError(f"checkpoint {sha256[:12]} did not come with this job", where="job")
            self._subjects[sha256] = load_subject(record, self.device, blob=self.blobs.get(sha256))
        return self._subjects[sha256]

    def results(self, metric: str) -> list[RunResult]:
        """The shipped runs of ``metric`` (latest per subject, oldest first).

        :raises RuntimeError: when the metric does not declare ``Read(metric)`` (a bug in the metric).
        """
        if metric not in self.inputs:
            raise RuntimeError(f"this metric reads {metric!r} results without declaring Read({metric!r}) in register(reads=...)")
        return self.inputs[metric]

    def trajectory(self) -> list[dict[str, Any]]:
        """Records of the other checkpoints of this checkpoint's training run, by step (needs ``Trajectory()``)."""
        return self.trajectory_records
