"""What a metric sees: rebuilt models with their weights, problems, and read access to the catalog."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from torch import nn

from losslens.checkpoints import checkpoint_sha256, fit_state_dict, read_checkpoint
from losslens.errors import LossLensError
from losslens.numerics import cast_inputs_to_model, check_finite_weights
from losslens.problems.base import Problem, State
from losslens.spec import FactorySpec
from losslens.store.catalog import Catalog

CHECKPOINT_SQL = """
SELECT c.*, m.name AS model_name, m.setting_id, m.experiment_id, m.architecture_json, m.problem_json,
       m.hparams_json, s.label AS setting_label
FROM checkpoints c JOIN models m ON m.id = c.model_id JOIN settings s ON s.id = m.setting_id
"""


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


@lru_cache(maxsize=8)
def _problem(problem_json: str, device: str) -> Problem:
    spec = FactorySpec(**json.loads(problem_json))
    return spec.build("problem").to(torch.device(device))


def load_subject(record: dict[str, Any], device: torch.device, verify: bool = True) -> Subject:
    """Rebuild a checkpoint's model from its catalog record and load the weights."""
    path = Path(record["path"])
    if verify and path.exists() and checkpoint_sha256(path) != record["sha256"]:
        raise LossLensError("file changed since it was ingested", where=str(path), hint="re-ingest it (losslens ingest SPEC)")
    how = json.loads(record.get("meta_json") or "{}").get("losslens", {})  # how ingest read it
    ckpt = read_checkpoint(path, allow_globals=tuple(how.get("allow_globals", ())), ema=bool(how.get("ema", False)))
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
    """Passed to a metric function. Read-only: results go back in the metric's ``Result``."""

    catalog: Catalog
    device: torch.device
    checkpoints: list[dict[str, Any]]
    setting_id: str | None
    experiment_id: str
    _subjects: dict[str, Subject] = field(default_factory=dict, repr=False)

    @property
    def shas(self) -> list[str]:
        return [c["sha256"] for c in self.checkpoints]

    def subject(self, sha256: str | None = None) -> Subject:
        """The job's checkpoint (or the named one of its group), loaded once."""
        if sha256 is None:
            if len(self.checkpoints) != 1:
                raise ValueError("this job covers several checkpoints; name one")
            sha256 = self.checkpoints[0]["sha256"]
        if sha256 not in self._subjects:
            record = next((c for c in self.checkpoints if c["sha256"] == sha256), None)
            if record is None:
                record = self.catalog.one(CHECKPOINT_SQL + " WHERE c.sha256 = ?", (sha256,))
            if record is None:
                raise LossLensError(f"checkpoint {sha256} is not in the catalog", where=str(self.catalog.path))
            self._subjects[sha256] = load_subject(record, self.device)
        return self._subjects[sha256]
