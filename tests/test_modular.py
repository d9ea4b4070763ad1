"""The grokking study's pieces: the (a + b) mod p problem, the transformer, its trainer and CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from losslens.cli import app
from losslens.errors import LossLensError
from losslens.jobs.context import Subject
from losslens.landscape.directions import random_directions
from losslens.landscape.grid import evaluate, evaluate_loop
from losslens.models import modular_transformer
from losslens.problems import modular_addition
from losslens.spec import load_spec
from losslens.train import ModularConfig, train_modular
from losslens.train import modular as modular_training

runner = CliRunner()
TINY = ModularConfig(p=7, train_fraction=0.5, steps=30, d_model=8, heads=2, d_mlp=16, checkpoints=3)


def test_problem_enumerates_every_sum_once_with_a_seeded_split():
    """Oracle: arithmetic. Train and test together are all p² pairs exactly once, labels are (a + b) mod p, the
    third token is '=' (= p), and the split is the given fraction, fixed by the data seed."""
    problem = modular_addition(p=11, train_fraction=0.3, data_seed=4)
    (x_tr, y_tr), (x_te, y_te) = problem.split("train"), problem.split("test")
    x, y = torch.cat([x_tr, x_te]), torch.cat([y_tr, y_te])
    assert len(x_tr) == round(0.3 * 121) and len(x) == 121
    assert sorted(map(tuple, x[:, :2].tolist())) == [(a, b) for a in range(11) for b in range(11)]
    assert torch.equal(y, (x[:, 0] + x[:, 1]) % 11) and bool((x[:, 2] == 11).all())
    assert torch.equal(modular_addition(p=11, train_fraction=0.3, data_seed=4).split("train")[0], x_tr)
    assert not torch.equal(modular_addition(p=11, train_fraction=0.3, data_seed=5).split("train")[0], x_tr)
    assert next(problem.batches())[0].shape == x_tr.shape  # full batch by default


def test_transformer_logits_and_parameter_count():
    """Oracle: counting by hand. One block at d=8, 2 heads, d_mlp=16, p=7: embeddings (8+3)·8, four 8×8
    projections with biases, two LayerNorms in the block and one final (2·8 each), MLP 8·16+16+16·8+8, unembedding
    8·7+7; the output is one row of p logits per example and does not depend on other examples."""
    model = modular_transformer(p=7, d_model=8, heads=2, d_mlp=16)
    expected = 11 * 8 + 4 * (64 + 8) + 3 * 16 + (128 + 16 + 128 + 8) + (56 + 7)
    assert sum(p.numel() for p in model.parameters()) == expected
    x = modular_addition(p=7).split("train")[0]
    out = model(x)
    assert out.shape == (len(x), 7)
    assert torch.allclose(model(x[:3]), out[:3], atol=1e-6)
    with pytest.raises(ValueError, match="divisible"):
        modular_transformer(d_model=10, heads=4)


def test_filter_normalisation_rescales_embedding_and_attention_rows():
    """Oracle: row norms (Li et al.'s filter = slice along the first axis). Each row of the token embedding, of
    W_Q/W_K/W_V/W_O and of the unembedding in a random direction has the norm of the same row of θ; LayerNorm gains
    and biases are zero."""
    model = modular_transformer(p=7, d_model=8, heads=2, d_mlp=16)
    theta = {k: v.detach() for k, v in model.named_parameters()}
    flat = random_directions(theta, 1, seed=3, normalization="filter", orthogonalize=False)[0]
    offset = 0
    for name, w in theta.items():
        d = flat[offset : offset + w.numel()].reshape(w.shape)
        offset += w.numel()
        if w.dim() == 1:
            assert bool((d == 0).all()), name
        else:
            assert torch.allclose(d.norm(dim=1), w.norm(dim=1), rtol=1e-5), name
    assert {"embed.weight", "blocks.0.attn.q.weight", "blocks.0.attn.o.weight"} <= set(theta)


def test_landscape_grid_of_the_transformer_equals_point_by_point_evaluation():
    """Oracle: the per-point loop (clone, perturb, evaluate) against the vmapped, kernel-routed grid, through
    embeddings, attention, LayerNorm and the MLP."""
    torch.manual_seed(0)
    model = modular_transformer(p=7, d_model=8, heads=2, d_mlp=16).eval()
    problem = modular_addition(p=7)
    params = {k: v.detach() for k, v in model.named_parameters()}
    subject = Subject("x", "x", model, params, {}, problem, {})
    directions = random_directions(params, 2, seed=0, normalization="filter", orthogonalize=True)
    coords = np.array([[a, b] for a in (-1.0, 0.0, 0.5) for b in (-0.5, 0.0, 1.0)])
    batches = list(problem.batches())
    grid, _ = evaluate(subject, directions, coords, batches, chunk=4)
    assert np.allclose(grid, evaluate_loop(subject, directions, coords, batches), rtol=1e-5)


def _weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_training_is_deterministic_per_seed():
    """Oracle: invariance. The same seed gives the same loss after N steps and the same weights, twice; another
    seed gives other weights."""
    losses: list[list[float]] = [[], []]
    runs = []
    for trace in losses:
        on_event = lambda event, trace=trace, **data: trace.append(data["loss"]) if event == "advance" else None  # noqa: E731
        runs.append(_weights(modular_training.train_one(1.0, 0, TINY, on_event)[0]))
    other = _weights(modular_training.train_one(1.0, 1, TINY)[0])
    assert len(losses[0]) == 30 and losses[0] == losses[1]
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])
    assert not all(torch.equal(runs[0][k], other[k]) for k in other)


@pytest.mark.slow
def test_weight_decay_run_generalises_on_p23():
    """Oracle: chance is 1/23 ≈ 4 %. The documented test-sized grokking run (p = 23, 70 % of the sums for training,
    1 layer of width 32, AdamW lr 3e-3 with weight decay 2, 900 full-batch steps, seed 0) fits the training set
    and predicts at least 90 % of the 159 held-out sums (measured: 100 % from step 800)."""
    config = ModularConfig(steps=900, checkpoints=1)
    _, metrics, _ = modular_training.train_one(2.0, 0, config)
    assert metrics["train_accuracy"] == 1.0
    assert metrics["test_accuracy"] >= 0.9


def test_sweep_writes_checkpoints_along_training_and_a_spec(tmp_path: Path):
    """Oracle: the sweep requested. One checkpoint per (weight decay, seed, save step) with its step in the file
    and sidecar; the spec names them all with settings keyed by weight decay; a rerun trains nothing."""
    result = train_modular(tmp_path / "mod", [0.0, 1.0], [0, 1], TINY)
    assert result.trained == 12 and TINY.save_steps() == [10, 20, 30]
    sidecar = json.loads((tmp_path / "mod" / "wd1" / "seed1" / "step20.pt.json").read_text())
    assert sidecar["step"] == 20 and sidecar["hparams"]["weight_decay"] == 1.0 and sidecar["name"] == "wd1-seed1-step20"
    spec = load_spec(result.spec)
    assert spec.setting_keys == ("weight_decay",) and len(spec.checkpoint_globs) == 12
    assert train_modular(tmp_path / "mod", [0.0, 1.0], [0, 1], TINY).trained == 0


@pytest.mark.parametrize(
    "args, field",
    [
        (["--weight-decay", "-1"], "--weight-decay"),
        (["--train-fraction", "1.5"], "modular addition"),
        (["--d-model", "30", "--heads", "4"], "--d-model"),
        (["--checkpoints", "9", "--steps", "5"], "--checkpoints"),
        (["--layers", "3"], "--layers"),
        (["--p", "1"], "p = 1"),
        (["--steps", "0"], "steps"),
        (["--heads", "0"], "--heads 0"),
    ],
)
def test_cli_refuses_bad_arguments_in_one_line(tmp_path: Path, args: list[str], field: str):
    """Oracle: the error contract. Exit code non-zero, one line naming the field, nothing written."""
    result = runner.invoke(app, ["train", "modular", "--out", str(tmp_path / "o"), *args])
    assert result.exit_code != 0
    assert field in result.output and len(result.output.strip().splitlines()) <= 4
    assert not (tmp_path / "o").exists()


def test_config_errors_are_loss_lens_errors():
    with pytest.raises(LossLensError, match="steps"):
        ModularConfig(steps=0)


def test_demo_refuses_an_unknown_study_in_one_line(tmp_path: Path):
    """Oracle: the error contract of ``demo --study``: one line naming the option and the known studies."""
    result = runner.invoke(app, ["demo", "--study", "lm-huge", "--out", str(tmp_path / "d")])
    assert result.exit_code != 0
    assert "--study" in result.output and "choose from: convection, lm, modular, resnet20" in result.output
    assert not (tmp_path / "d").exists()
