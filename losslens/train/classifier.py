"""Training ResNet-20 with and without skip connections: the LossLens classifier study.

SGD with momentum 0.9, weight decay 5e-4 and a cosine learning-rate schedule from 0.1 (He et al.'s
CIFAR recipe, also what Yang et al.'s taxonomy trained with). SGD rather than Adam because sharpness
and connectivity depend on the optimiser, and the paper's findings about skips are for SGD-trained
networks. The loss is the problem's own ``loss`` in train mode (batch norm updates its running
statistics through the module's buffers).

Repeatability: ``torch.manual_seed(seed)`` fixes the initial weights and a generator seeded with
``seed`` fixes the minibatch order; on CPU with a fixed thread count two runs give the same weights.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from losslens.errors import LossLensError
from losslens.models import resnet20
from losslens.problems.base import ClassificationProblem, State
from losslens.train.datasets import Dataset
from losslens.train.outputs import (
    OnEvent,
    RunRecord,
    TrainResult,
    check_out_folder,
    config_sha,
    finished_run,
    plain,
    require_number,
    save_run,
    write_spec,
)

MODEL_FACTORY = "losslens.models:resnet20"


@dataclass(frozen=True)
class ClassifierConfig:
    """Everything besides the skip switch, the dataset and the seed that determines a run."""

    epochs: int = 10
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 128
    width_mult: float = 1.0

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.width_mult <= 0 or self.lr <= 0:
            raise LossLensError("epochs, batch size, width multiplier and lr must be positive", where="resnet20 config")
        require_number(self.lr, "--lr", minimum=0, strict=True, hint="e.g. --lr 0.1")
        require_number(self.width_mult, "--width-mult", minimum=0, strict=True, hint="e.g. --width-mult 0.5")
        require_number(self.momentum, "momentum", minimum=0, hint="e.g. 0.9")
        require_number(self.weight_decay, "weight decay", minimum=0, hint="e.g. 5e-4")


def _state(model: torch.nn.Module) -> State:
    return {**dict(model.named_parameters()), **dict(model.named_buffers())}


def fit(
    model: torch.nn.Module, problem: ClassificationProblem, seed: int, config: ClassifierConfig, on_event: OnEvent
) -> tuple[int, float]:
    """Minibatch SGD over shuffled training data: (optimiser steps, wall seconds of the loop)."""
    x, y = problem.split("train")
    per_epoch = math.ceil(len(x) / config.batch_size)
    total = per_epoch * config.epochs
    sgd = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(sgd, T_max=total)
    order = torch.Generator().manual_seed(seed)
    model.train()
    start = time.perf_counter()
    for _ in range(config.epochs):
        perm = torch.randperm(len(x), generator=order).to(x.device)
        for first in range(0, len(x), config.batch_size):
            idx = perm[first : first + config.batch_size]
            sgd.zero_grad()
            loss = problem.loss(model, _state(model), (x[idx], y[idx]))
            loss.backward()
            sgd.step()
            schedule.step()
            on_event("advance", n=1, loss=float(loss.detach()))
    model.eval()
    return total, time.perf_counter() - start


def train_one(
    problem: ClassificationProblem, residual: bool, seed: int, config: ClassifierConfig, on_event: OnEvent = lambda *a, **k: None
) -> tuple[torch.nn.Module, dict[str, float], int, float]:
    """Train one ResNet-20 from ``seed``: (model, final metrics, steps, wall seconds)."""
    torch.manual_seed(seed)
    model = resnet20(residual=residual, **model_kwargs(problem, config))
    steps, wall = fit(model, problem, seed, config, on_event)
    metrics = {f"{split}_{name}": value for split, name, value in problem.performance(model, _state(model))}
    return model, metrics, steps, wall


def model_kwargs(problem: ClassificationProblem, config: ClassifierConfig) -> dict[str, Any]:
    return {
        "in_channels": int(problem.split("train")[0].shape[1]),
        "num_classes": problem.num_classes,
        "width_mult": config.width_mult,
        "batch_norm": True,
    }


def run_path(out: Path, residual: bool, seed: int) -> Path:
    return out / ("residual" if residual else "no-residual") / f"seed{seed}.pt"


def train_classifier(
    out: Path,
    dataset: Dataset,
    seeds: Sequence[int],
    residual: Sequence[bool] = (True, False),
    config: ClassifierConfig = ClassifierConfig(),
    *,
    name: str | None = None,
    on_event: OnEvent = lambda *a, **k: None,
) -> TrainResult:
    """Train ResNet-20 for every (skip switch, seed) into ``out`` (skipping runs already done with this
    config) and write ``out/spec.toml`` naming them, with settings keyed by ``residual``. The experiment
    is named ``name``, by default after the folder."""
    if not seeds or not residual:
        raise LossLensError("no runs requested", where="--seeds", hint="give at least one seed")
    out = Path(out)
    check_out_folder(out)
    runs = [(bool(r), int(s)) for r in dict.fromkeys(residual) for s in dict.fromkeys(seeds)]
    problem = dataset.load()
    steps_per_run = math.ceil(len(problem.split("train")[0]) / config.batch_size) * config.epochs
    on_event("sweep_start", total=len(runs))
    records: list[RunRecord] = []
    for skip, seed in runs:
        path = run_path(out, skip, seed)
        data = {"factory": dataset.factory, "kwargs": dataset.kwargs}
        sha = config_sha({"kind": "resnet20", "residual": skip, "seed": seed, "data": data, "config": asdict(config)})
        label = f"{'residual' if skip else 'no residual'} seed {seed}"
        record = finished_run(path, sha)
        if record is None:
            on_event("run_start", label=label, total=steps_per_run)
            model, metrics, steps, wall = train_one(problem, skip, seed, config, on_event)
            meta: dict[str, Any] = {
                "name": f"{'residual' if skip else 'no-residual'}-seed{seed}",
                "seed": seed,
                "hparams": plain(
                    {
                        "residual": skip,
                        "dataset": dataset.name,
                        "epochs": config.epochs,
                        "optimizer": "sgd",
                        "lr": config.lr,
                        "train_batch_size": config.batch_size,
                        "width_mult": config.width_mult,
                    }
                ),
                "step": steps,
                "metrics": metrics,
                "wall_time_s": round(wall, 3),
                "threads": torch.get_num_threads(),
                "config": asdict(config),
                "data": data,
            }
            record = save_run(path, model.state_dict(), meta, sha)
        records.append(record)
        on_event("run_done", record=record, label=label)
    spec = write_spec(
        out / "spec.toml",
        name=name or out.resolve().name,
        description=f"ResNet-20 with/without skip connections on {dataset.name}, {len(set(s for _, s in runs))} seed(s), "
        f"SGD {config.epochs} epochs.",
        model=(MODEL_FACTORY, model_kwargs(problem, config)),
        problem=(dataset.factory, dataset.kwargs),
        checkpoints=[r.checkpoint for r in records],
        setting_keys=["residual"],
    )
    return TrainResult(spec, records)
