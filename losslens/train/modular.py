"""Training the modular-addition transformer with and without weight decay: the grokking study.

The recipe is Nanda et al. (2023) and Power et al. (2022): full-batch AdamW with betas (0.9, 0.98),
constant learning rate, cross-entropy on the last position, weight decay as the setting that is varied
(with it the network first memorises, then generalises; without it it memorises only). Checkpoints are
written along training at evenly spaced steps, so the catalog holds each run's trajectory (the
landscape's ``--directions pca`` reads it) and the change from memorisation to generalisation can be
measured step by step; connectivity pairs seeds at the same step (``--connectivity.pairs same-step``).

Repeatability: ``torch.manual_seed(seed)`` fixes the initial weights; the data split is fixed by the
problem's ``data_seed`` (shared by all runs) and training is full-batch, so no other randomness enters.
On CPU with a fixed thread count two runs from one seed give the same weights.
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
from losslens.ingest import format_value
from losslens.models import modular_transformer
from losslens.problems.base import State
from losslens.problems.modular import ModularAdditionProblem, modular_addition
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

MODEL_FACTORY = "losslens.models:modular_transformer"
PROBLEM_FACTORY = "losslens.problems:modular_addition"


@dataclass(frozen=True)
class ModularConfig:
    """Everything besides the weight decay and the seed that determines a run.

    Defaults are the test-sized grokking run documented in ``docs/case-studies.md``: p = 23, 70 % of the
    529 sums for training, a 1-layer transformer of width 32, AdamW lr 3e-3 for 1,500 full-batch steps.
    """

    p: int = 23
    train_fraction: float = 0.7
    data_seed: int = 0
    steps: int = 1500
    lr: float = 3e-3
    beta2: float = 0.98
    d_model: int = 32
    heads: int = 4
    d_mlp: int = 128
    layers: int = 1
    checkpoints: int = 5  # written at steps/checkpoints, 2·steps/checkpoints, …, steps

    def __post_init__(self) -> None:
        where = "modular config"
        require_number(self.lr, "--lr", minimum=0, strict=True, hint="e.g. --lr 3e-3")
        require_number(self.train_fraction, "--train-fraction", minimum=0, strict=True, hint="e.g. --train-fraction 0.5")
        if self.p >= 2 and any(self.p % d == 0 for d in range(2, math.isqrt(self.p) + 1)):
            raise LossLensError(
                f"--p {self.p} is not prime", where=where, hint="the grokking task uses a prime modulus, e.g. --p 23 or --p 113"
            )
        if self.steps < 1 or self.lr <= 0 or not 0 <= self.beta2 < 1:
            raise LossLensError(
                "steps and lr must be positive and beta2 in [0, 1)", where=where, hint="e.g. --steps 1500 --lr 3e-3"
            )
        if not 1 <= self.checkpoints <= self.steps:
            raise LossLensError(
                f"--checkpoints {self.checkpoints} must be between 1 and --steps {self.steps}",
                where=where,
                hint="e.g. --checkpoints 5",
            )
        if self.layers not in (1, 2):
            raise LossLensError(f"--layers {self.layers} is not 1 or 2", where=where, hint="the grokking model has 1 or 2 layers")
        if self.d_model < 1 or self.heads < 1 or self.d_mlp < 1 or self.d_model % self.heads:
            raise LossLensError(
                f"--d-model {self.d_model} must be a positive multiple of --heads {self.heads} (and --d-mlp positive)",
                where=where,
                hint="e.g. --d-model 32 --heads 4",
            )
        modular_addition(self.p, self.train_fraction, self.data_seed)  # raises on a bad p or fraction

    def save_steps(self) -> list[int]:
        """The steps at which checkpoints are written, the last one included."""
        return sorted({round(self.steps * i / self.checkpoints) for i in range(1, self.checkpoints + 1)})

    def model_kwargs(self) -> dict[str, Any]:
        return {"p": self.p, "d_model": self.d_model, "heads": self.heads, "d_mlp": self.d_mlp, "layers": self.layers}

    def problem_kwargs(self) -> dict[str, Any]:
        return {"p": self.p, "train_fraction": self.train_fraction, "data_seed": self.data_seed}


def _state(model: torch.nn.Module) -> State:
    return {**dict(model.named_parameters()), **dict(model.named_buffers())}


def train_one(
    weight_decay: float,
    seed: int,
    config: ModularConfig,
    on_event: OnEvent = lambda *a, **k: None,
    on_checkpoint: Any = None,
) -> tuple[torch.nn.Module, dict[str, float], float]:
    """Train from ``seed`` with AdamW at ``weight_decay``: (model, final metrics, wall seconds of the loop).

    ``on_checkpoint(step, model, metrics, wall)`` is called at each of ``config.save_steps()``.
    """
    require_number(weight_decay, "--weight-decay", minimum=0, hint="use 0 or more, e.g. --weight-decay 0 2")
    problem: ModularAdditionProblem = modular_addition(**config.problem_kwargs())
    torch.manual_seed(seed)
    model = modular_transformer(**config.model_kwargs())
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=weight_decay, betas=(0.9, config.beta2))
    batch = problem.split("train")
    save_at = set(config.save_steps())
    metrics: dict[str, float] = {}
    wall = 0.0
    start = time.perf_counter()
    for step in range(1, config.steps + 1):
        opt.zero_grad()
        loss = problem.loss(model, _state(model), batch)
        loss.backward()
        opt.step()
        on_event("advance", n=1, loss=float(loss.detach()))
        if step in save_at:
            wall += time.perf_counter() - start
            metrics = {f"{split}_{name}": value for split, name, value in problem.performance(model, _state(model))}
            if on_checkpoint is not None:
                on_checkpoint(step, model, metrics, wall)
            start = time.perf_counter()
    return model, metrics, wall


def run_path(out: Path, weight_decay: float, seed: int, step: int) -> Path:
    return out / f"wd{format_value(float(weight_decay))}" / f"seed{seed}" / f"step{step}.pt"


def _saver(
    out: Path,
    wd: float,
    seed: int,
    hparams: dict[str, Any],
    shas: dict[int, str],
    config: ModularConfig,
    records: list[RunRecord],
) -> Any:
    """The ``on_checkpoint`` callback of one run: write the checkpoint and sidecar of each save step."""

    def save(step: int, model: torch.nn.Module, metrics: dict[str, float], wall: float) -> None:
        meta = {
            "name": f"wd{format_value(wd)}-seed{seed}-step{step}",
            "seed": seed,
            "hparams": hparams,
            "step": step,
            "metrics": metrics,
            "wall_time_s": round(wall, 3),
            "threads": torch.get_num_threads(),
            "config": asdict(config),
        }
        records.append(save_run(run_path(out, wd, seed, step), model.state_dict(), meta, shas[step]))

    return save


def train_modular(
    out: Path,
    weight_decays: Sequence[float],
    seeds: Sequence[int],
    config: ModularConfig = ModularConfig(),
    *,
    name: str | None = None,
    on_event: OnEvent = lambda *a, **k: None,
) -> TrainResult:
    """Train every (weight decay, seed) into ``out`` with checkpoints along training (a run whose last
    checkpoint is there with this config is skipped) and write ``out/spec.toml`` naming them all, with
    settings keyed by ``weight_decay``; a checkpoint's step is its ``step``."""
    if not weight_decays or not seeds:
        raise LossLensError(
            "no runs requested", where="--weight-decay/--seeds", hint="give at least one weight decay and one seed"
        )
    for wd in weight_decays:
        require_number(wd, "--weight-decay", minimum=0, hint="use 0 or more, e.g. --weight-decay 0 2")
    out = Path(out)
    check_out_folder(out)
    runs = [(float(w), int(s)) for w in dict.fromkeys(weight_decays) for s in dict.fromkeys(seeds)]
    steps = config.save_steps()
    on_event("sweep_start", total=len(runs))
    records: list[RunRecord] = []
    for wd, seed in runs:
        hparams = plain({"weight_decay": wd, "optimizer": "adamw", "lr": config.lr, "steps": config.steps, "p": config.p})
        shas = {
            s: config_sha({"kind": "modular", "weight_decay": wd, "seed": seed, "step": s, "config": asdict(config)})
            for s in steps
        }
        label = f"wd={format_value(wd)} seed {seed}"
        found = [finished_run(run_path(out, wd, seed, s), shas[s]) for s in steps]
        if all(r is not None for r in found):
            records += [r for r in found if r is not None]
        else:
            on_event("run_start", label=label, total=config.steps)

            train_one(wd, seed, config, on_event, _saver(out, wd, seed, hparams, shas, config, records))
        on_event("run_done", record=records[-1], label=label)
    spec = write_spec(
        out / "spec.toml",
        name=name or out.resolve().name,
        description=f"1–2 layer transformer on (a + b) mod {config.p} (grokking), weight decay ∈ "
        f"{sorted({w for w, _ in runs})}, {len({s for _, s in runs})} seed(s), AdamW {config.steps} full-batch steps, "
        f"checkpoints at steps {steps}.",
        model=(MODEL_FACTORY, config.model_kwargs()),
        problem=(PROBLEM_FACTORY, config.problem_kwargs()),
        checkpoints=[r.checkpoint for r in records],
        setting_keys=["weight_decay"],
    )
    return TrainResult(spec, records)
