"""Training the convection PINN across β: the recipe of Krishnapriyan et al. (2021).

The model is ``losslens.models:pinn_mlp`` (2-50-50-50-50-1 tanh) and the loss is the problem's own
``loss`` (initial + boundary + residual MSE), so training and every metric see one definition.
An optional Adam warm-up is followed by L-BFGS (lr 1.0, history 50, strong Wolfe line search).

Repeatability: ``torch.manual_seed(seed)`` fixes the initial weights; the collocation points are
fixed by the problem's ``data_seed``, shared by all seeds so every mode minimises the same loss.
L-BFGS and Adam on CPU are deterministic for a fixed seed and a fixed torch thread count. torch does
not promise the same bits across thread counts (parallel reductions may reorder sums); for this
network 1 and 2 threads gave bit-identical weights in our measurements.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NamedTuple

import torch

from losslens.errors import LossLensError
from losslens.ingest import format_value
from losslens.models import pinn_mlp
from losslens.problems import convection
from losslens.problems.base import State
from losslens.problems.convection import ConvectionProblem
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

MODEL_FACTORY = "losslens.models:pinn_mlp"
PROBLEM_FACTORY = "losslens.problems:convection"


@dataclass(frozen=True)
class ConvectionConfig:
    """Everything besides β and the seed that determines a run."""

    iterations: int = 1000  # L-BFGS iterations (an upper bound: it stops early on its tolerances)
    adam_iterations: int = 0
    adam_lr: float = 1e-3
    lr: float = 1.0
    history_size: int = 50
    n_collocation: int = 1000
    data_seed: int = 0
    width: int = 50
    depth: int = 4

    def __post_init__(self) -> None:
        if self.iterations < 0 or self.adam_iterations < 0 or self.iterations + self.adam_iterations == 0:
            raise LossLensError("nothing to train", where="iterations", hint="give --iterations and/or --adam-iterations > 0")
        if self.n_collocation < 1 or self.width < 1 or self.depth < 1:
            raise LossLensError("n_collocation, width and depth must be positive", where="convection config")
        require_number(self.adam_lr, "--adam-lr", minimum=0, strict=True, hint="e.g. --adam-lr 1e-3")
        require_number(self.lr, "lr", minimum=0, strict=True, hint="L-BFGS's lr, e.g. 1")


def _state(model: torch.nn.Module) -> State:
    return {**dict(model.named_parameters()), **dict(model.named_buffers())}


class Fit(NamedTuple):
    iterations: int
    evaluations: int  # loss (and gradient) evaluations, line-search ones included
    wall_s: float  # the optimisation itself; building the optimisers (torch's one-off lazy imports) is excluded


def fit(model: torch.nn.Module, problem: ConvectionProblem, config: ConvectionConfig, on_event: OnEvent) -> Fit:
    """Adam warm-up, then L-BFGS, on ``problem.loss``.

    L-BFGS is one ``step`` with ``max_iter=config.iterations`` and torch's other defaults (at most
    1.25 × iterations loss evaluations; gradient and change tolerances); progress is reported from
    the closure as iterations start.
    """
    batch = problem.batch
    params = list(model.parameters())
    adam = torch.optim.Adam(params, lr=config.adam_lr)
    lbfgs = torch.optim.LBFGS(
        params, lr=config.lr, max_iter=max(config.iterations, 1), history_size=config.history_size, line_search_fn="strong_wolfe"
    )
    state = lbfgs.state[params[0]]
    shown = 0

    def objective() -> torch.Tensor:
        return problem.loss(model, _state(model), batch)

    def closure() -> torch.Tensor:
        nonlocal shown
        lbfgs.zero_grad()
        loss = objective()
        loss.backward()
        if (n_iter := state.get("n_iter", 0)) > shown:
            on_event("advance", n=n_iter - shown, loss=float(loss.detach()))
            shown = n_iter
        return loss

    start = time.perf_counter()
    for _ in range(config.adam_iterations):
        adam.zero_grad()
        loss = objective()
        loss.backward()
        adam.step()
        on_event("advance", n=1, loss=float(loss.detach()))
    if config.iterations > 0:
        lbfgs.step(closure)
    wall = time.perf_counter() - start
    return Fit(config.adam_iterations + state.get("n_iter", 0), config.adam_iterations + state.get("func_evals", 0), wall)


def train_one(
    beta: float,
    seed: int,
    config: ConvectionConfig,
    on_event: OnEvent = lambda *a, **k: None,
) -> tuple[torch.nn.Module, dict[str, float], Fit]:
    """Train one PINN at ``beta`` from ``seed``: (model in eval mode, final metrics, fit statistics)."""
    problem = convection(beta=beta, n_collocation=config.n_collocation, data_seed=config.data_seed)
    torch.manual_seed(seed)
    model = pinn_mlp(width=config.width, depth=config.depth)
    done = fit(model, problem, config, on_event)
    model.eval()
    metrics = {name: value for _, name, value in problem.performance(model, _state(model))}
    return model, metrics, done


def run_path(out: Path, beta: float, seed: int) -> Path:
    return out / f"beta{format_value(float(beta))}" / f"seed{seed}.pt"


def train_convection(
    out: Path,
    betas: Sequence[float],
    seeds: Sequence[int],
    config: ConvectionConfig = ConvectionConfig(),
    *,
    name: str | None = None,
    on_event: OnEvent = lambda *a, **k: None,
) -> TrainResult:
    """Train every (β, seed) into ``out`` (skipping runs already done with this config) and write
    ``out/spec.toml`` naming them, with settings keyed by β. The experiment is named ``name``, by default
    after the folder, so two sweeps in two folders ingest as two experiments."""
    if not betas or not seeds:
        raise LossLensError("no runs requested", where="--beta/--seeds", hint="give at least one β and one seed")
    for b in betas:
        require_number(b, "--beta", hint="wave speeds such as --beta 1 10 30")
    out = Path(out)
    check_out_folder(out)
    runs = [(float(b), int(s)) for b in dict.fromkeys(betas) for s in dict.fromkeys(seeds)]
    on_event("sweep_start", total=len(runs))
    records: list[RunRecord] = []
    for beta, seed in runs:
        path = run_path(out, beta, seed)
        hparams = plain(
            {
                "beta": beta,
                "n_collocation": config.n_collocation,
                "optimizer": "lbfgs",
                "iterations": config.iterations,
                "adam_iterations": config.adam_iterations,
            }
        )
        sha = config_sha({"kind": "convection", "beta": beta, "seed": seed, "config": asdict(config)})
        label = f"β={format_value(beta)} seed {seed}"
        record = finished_run(path, sha)
        if record is None:
            on_event("run_start", label=label, total=config.adam_iterations + config.iterations)
            model, metrics, done = train_one(beta, seed, config, on_event)
            meta: dict[str, Any] = {
                "name": f"beta{format_value(beta)}-seed{seed}",
                "seed": seed,
                "hparams": hparams,
                "step": done.iterations,
                "loss_evaluations": done.evaluations,
                "metrics": metrics,
                "wall_time_s": round(done.wall_s, 3),
                "threads": torch.get_num_threads(),
                "config": asdict(config),
            }
            record = save_run(path, model.state_dict(), meta, sha)
        records.append(record)
        on_event("run_done", record=record, label=label)
    spec = write_spec(
        out / "spec.toml",
        name=name or out.resolve().name,
        description=f"Convection PINN (Krishnapriyan et al. 2021), β ∈ {sorted({b for b, _ in runs})}, "
        f"{len(set(s for _, s in runs))} seed(s), L-BFGS {config.iterations} iterations.",
        model=(MODEL_FACTORY, {"width": config.width, "depth": config.depth}),
        problem=(PROBLEM_FACTORY, {"n_collocation": config.n_collocation, "data_seed": config.data_seed}),
        checkpoints=[r.checkpoint for r in records],
        setting_keys=["beta"],
    )
    return TrainResult(spec, records)
