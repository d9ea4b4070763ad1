"""``losslens train convection``, ``resnet20`` and ``modular``: thin shells over :mod:`losslens.train`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import torch
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from typer.core import TyperCommand

if TYPE_CHECKING:
    from typer import _click as click  # the click typer vendors (TyperCommand's base)

from losslens.cli.app import app, console, err_console, text_column, user_errors
from losslens.train import (
    ClassifierConfig,
    ConvectionConfig,
    ModularConfig,
    TrainResult,
    train_classifier,
    train_convection,
    train_modular,
)
from losslens.train.datasets import CHOICES, parse_dataset
from losslens.train.outputs import OnEvent

train_app = typer.Typer(
    help="Train the case-study models into checkpoints, sidecars and a ready experiment spec.", no_args_is_help=True
)
app.add_typer(train_app, name="train")


class ListOptionsCommand(TyperCommand):
    """Lets a list option take several values after one flag (``--beta 1 5 10``) as well as repeated flags."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        multi = {opt for p in self.params if getattr(p, "multiple", False) for opt in getattr(p, "opts", ())}
        expanded: list[str] = []
        current: str | None = None
        for token in args:
            if token.startswith("-") and not _is_number(token):
                current = token if token in multi else None
            elif current is not None and expanded[-1] != current:
                expanded.append(current)
            expanded.append(token)
        return super().parse_args(ctx, expanded)


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


SeedsOpt = Annotated[
    list[int], typer.Option("--seeds", help="Seeds (--seeds 0 1 2); each seeds the initial weights (and the batch order).")
]
OutOpt = Annotated[Path, typer.Option("--out", help="Folder for checkpoints, sidecars and spec.toml.")]
NameOpt = Annotated[
    str | None,
    typer.Option("--name", help="Experiment name written into the spec (default: the --out folder's name).", show_default=False),
]
ThreadsOpt = Annotated[
    int | None,
    typer.Option(
        "--threads",
        min=1,
        help="torch threads (default: torch's choice). Results are repeatable for a fixed seed and thread count.",
    ),
]


@contextmanager
def training_progress() -> Iterator[OnEvent]:
    """Rich bars over runs and over the iterations of the current run, fed by ``on_event``.

    The bars appear at "sweep_start", after the trainer has checked its arguments and data, so a refused
    argument prints its one error line alone."""
    progress = Progress(
        text_column(),
        BarColumn(),
        MofNCompleteColumn(),
        text_column("fields[loss]", style=""),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
    )
    runs = progress.add_task("runs", total=None, loss="")
    current: list[TaskID] = []
    started: list[bool] = []  # stopping a Progress that never started would print an empty line

    def on_event(event: str, **data: Any) -> None:
        if event == "sweep_start":
            progress.update(runs, total=data["total"])
            progress.start()
            started.append(True)
        elif event == "run_start":
            if current:
                progress.remove_task(current.pop())
            current.append(progress.add_task(f"  {data['label']}", total=data["total"], loss=""))
        elif event == "advance" and current:
            progress.update(current[0], advance=data["n"], loss=f"loss {data['loss']:.3g}")
        elif event == "run_done":
            progress.advance(runs)

    try:
        yield on_event
    finally:
        if started:
            progress.stop()


def _setting(hparams: dict) -> str:
    if "beta" in hparams:
        return f"β={hparams['beta']:g}"
    if "weight_decay" in hparams:
        return f"wd={hparams['weight_decay']:g}"
    return "residual" if hparams.get("residual") else "no residual"


def _summary(result: TrainResult, columns: list[tuple[str, str]]) -> None:
    table = Table(title=str(result.spec.parent), title_justify="left")
    for title in ["setting", "seed", "step", *(c for c, _ in columns), "wall s", "status"]:
        table.add_column(title, no_wrap=True)
    for r in result.runs:
        values = [f"{r.metrics[key]:.3g}" for _, key in columns]
        table.add_row(
            _setting(r.hparams),
            str(r.seed),
            str(r.steps),
            *values,
            f"{r.wall_time_s:.1f}",
            "done before" if r.skipped else "trained",
        )
    console.print(table)
    console.print(
        f"trained {result.trained}, done before {len(result.runs) - result.trained}; next: losslens ingest {result.spec}",
        soft_wrap=True,
    )


@train_app.command("convection", cls=ListOptionsCommand)
@user_errors
def convection_cmd(
    beta: Annotated[list[float], typer.Option("--beta", help="Wave speeds β (--beta 1 5 10); one setting each.")] = [
        1.0,
        5.0,
        10.0,
        20.0,
        30.0,
        40.0,
    ],
    seeds: SeedsOpt = [0, 1, 2],
    out: OutOpt = Path("runs/convection"),
    iterations: Annotated[
        int, typer.Option("--iterations", min=0, help="L-BFGS iterations (it may stop earlier on its tolerances).")
    ] = 1000,
    adam_iterations: Annotated[int, typer.Option("--adam-iterations", min=0, help="Adam warm-up steps before L-BFGS.")] = 0,
    adam_lr: Annotated[float, typer.Option("--adam-lr", help="Adam warm-up learning rate.")] = 1e-3,
    n_collocation: Annotated[
        int, typer.Option("--n-collocation", min=1, help="Residual points N_f, drawn from the 256×100 grid.")
    ] = 1000,
    data_seed: Annotated[int, typer.Option("--data-seed", help="Seed of the collocation points (shared by all runs).")] = 0,
    width: Annotated[int, typer.Option("--width", min=1, help="Hidden units per layer.")] = 50,
    depth: Annotated[int, typer.Option("--depth", min=1, help="Hidden layers.")] = 4,
    name: NameOpt = None,
    threads: ThreadsOpt = None,
) -> None:
    """The convection PINN across β (Krishnapriyan et al. 2021).

    Loss: IC + BC + residual MSE. Optimiser: optional Adam warm-up, then L-BFGS (lr 1, history 50, strong Wolfe).
    Runs already trained with the same options are skipped, so reruns are incremental.
    """
    if threads:
        torch.set_num_threads(threads)
    config = ConvectionConfig(
        iterations=iterations,
        adam_iterations=adam_iterations,
        adam_lr=adam_lr,
        n_collocation=n_collocation,
        data_seed=data_seed,
        width=width,
        depth=depth,
    )
    with training_progress() as on_event:
        result = train_convection(out, beta, seeds, config, name=name, on_event=on_event)
    _summary(result, [("rel L2", "rel_l2"), ("loss", "loss")])


@train_app.command("resnet20", cls=ListOptionsCommand)
@user_errors
def resnet20_cmd(
    residual: Annotated[
        bool | None,
        typer.Option(
            "--residual/--no-residual",
            help="Only with skips, or only without; default both, as in the study.",
            show_default=False,
        ),
    ] = None,
    dataset: Annotated[str, typer.Option("--dataset", help=f"One of {CHOICES}. Local data only.")] = "digits",
    seeds: SeedsOpt = [0, 1, 2],
    epochs: Annotated[int, typer.Option("--epochs", min=1, help="Passes over the training set.")] = 10,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Folder for checkpoints, sidecars and spec.toml (default: resnet20-DATASET in the runs folder).",
            show_default=False,
        ),
    ] = None,
    lr: Annotated[float, typer.Option("--lr", help="Peak SGD learning rate (cosine schedule to 0).")] = 0.1,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Training minibatch size.")] = 128,
    width_mult: Annotated[float, typer.Option("--width-mult", help="Multiplies the widths 16/32/64.")] = 1.0,
    limit_train: Annotated[
        int | None, typer.Option("--limit-train", min=1, help="Keep the first N training images (fashion-mnist, cifar10).")
    ] = None,
    limit_test: Annotated[
        int | None, typer.Option("--limit-test", min=1, help="Keep the first N test images (fashion-mnist, cifar10).")
    ] = None,
    name: NameOpt = None,
    threads: ThreadsOpt = None,
) -> None:
    """ResNet-20 with and without skip connections, on local data.

    SGD (momentum 0.9, weight decay 5e-4, cosine lr), batch norm. Runs already trained with the same options are
    skipped, so reruns are incremental.
    """
    if threads:
        torch.set_num_threads(threads)
    data = parse_dataset(dataset, limit_train, limit_test)
    config = ClassifierConfig(epochs=epochs, lr=lr, batch_size=batch_size, width_mult=width_mult)
    switches = (True, False) if residual is None else (residual,)
    with training_progress() as on_event:
        result = train_classifier(
            out or Path(f"runs/resnet20-{data.name}"), data, seeds, switches, config, name=name, on_event=on_event
        )
    _summary(result, [("train acc", "train_accuracy"), ("test acc", "test_accuracy"), ("train loss", "train_loss")])


@train_app.command("modular", cls=ListOptionsCommand)
@user_errors
def modular_cmd(
    weight_decay: Annotated[
        list[float], typer.Option("--weight-decay", help="AdamW weight decays (--weight-decay 0 2); one setting each.")
    ] = [0.0, 2.0],
    seeds: SeedsOpt = [0, 1, 2],
    out: OutOpt = Path("runs/modular"),
    p: Annotated[int, typer.Option("--p", help="The modulus, a prime: inputs a, b < p, label (a + b) mod p.")] = ModularConfig.p,
    train_fraction: Annotated[
        float, typer.Option("--train-fraction", help="Share of the p² sums used for training (the rest is the test set).")
    ] = ModularConfig.train_fraction,
    data_seed: Annotated[int, typer.Option("--data-seed", help="Seed of the train/test split (shared by all runs).")] = 0,
    steps: Annotated[int, typer.Option("--steps", help="Full-batch AdamW steps.")] = ModularConfig.steps,
    lr: Annotated[float, typer.Option("--lr", help="AdamW learning rate (constant).")] = ModularConfig.lr,
    d_model: Annotated[int, typer.Option("--d-model", help="Residual width.")] = ModularConfig.d_model,
    heads: Annotated[int, typer.Option("--heads", help="Attention heads (must divide --d-model).")] = ModularConfig.heads,
    d_mlp: Annotated[int, typer.Option("--d-mlp", help="MLP hidden width.")] = ModularConfig.d_mlp,
    layers: Annotated[int, typer.Option("--layers", help="Transformer blocks (1 or 2).")] = ModularConfig.layers,
    checkpoints: Annotated[
        int, typer.Option("--checkpoints", help="Checkpoints per run, evenly spaced in steps, the last at --steps.")
    ] = ModularConfig.checkpoints,
    name: NameOpt = None,
    threads: ThreadsOpt = None,
) -> None:
    """A 1–2 layer transformer on (a + b) mod p, with and without weight decay: the grokking setting.

    Full-batch AdamW (betas 0.9, 0.98), cross-entropy at the last token; checkpoints along training for trajectory
    PCA and for following the change from memorisation to generalisation. Runs already trained with the same options
    are skipped, so reruns are incremental.
    """
    if threads:
        torch.set_num_threads(threads)
    config = ModularConfig(
        p=p,
        train_fraction=train_fraction,
        data_seed=data_seed,
        steps=steps,
        lr=lr,
        d_model=d_model,
        heads=heads,
        d_mlp=d_mlp,
        layers=layers,
        checkpoints=checkpoints,
    )
    with training_progress() as on_event:
        result = train_modular(out, weight_decay, seeds, config, name=name, on_event=on_event)
    _summary(result, [("train acc", "train_accuracy"), ("test acc", "test_accuracy"), ("train loss", "train_loss")])
