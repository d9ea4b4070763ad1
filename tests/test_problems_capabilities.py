"""Problems as users write them: capabilities as protocols, the README's own-model example, a toy problem
with exactly the documented interface, several outputs, dropout and BatchNorm.

Oracles: fresh models loaded with the saved weights (their own loss and error), linear CKA computed here
with numpy from the stored input recipe, and the exact one-line messages.
"""

from __future__ import annotations

import math
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import write_spec

from losslens.jobs import compute
from losslens.store.catalog import open_catalog

ROOT = Path(__file__).parents[1]


def readme_examples() -> dict[str, str]:
    text = (ROOT / "README.md").read_text()
    return dict(re.findall(r"<!-- example: (\S+) -->\n```\w+\n(.*?)```", text, flags=re.S))


def query(db: Path, sql: str, args: tuple = ()) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql, args).fetchall()


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Kornblith et al. (2019): ‖YᵀX‖²_F / (‖XᵀX‖_F ‖YᵀY‖_F) on centred features."""
    x, y = x - x.mean(0), y - y.mean(0)
    return float(np.linalg.norm(y.T @ x) ** 2 / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)))


@pytest.mark.slow
def test_readme_own_model_example_runs_and_gives_the_right_values(tmp_path):
    examples = readme_examples()
    assert set(examples) == {"mymodels.py", "spec.toml", "commands"}
    (tmp_path / "mymodels.py").write_text(examples["mymodels.py"])
    (tmp_path / "spec.toml").write_text(examples["spec.toml"])
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, command in (("losslens", f'{sys.executable} -m losslens "$@"'), ("python", f'{sys.executable} "$@"')):
        (bin_dir / name).write_text(f'#!/bin/sh\nPYTHONPATH="{ROOT}:$PYTHONPATH" exec {command}\n')
        (bin_dir / name).chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "LOSSLENS_CATALOG": str(tmp_path / "c.db"), "COLUMNS": "200"}
    proc = subprocess.run(["bash", "-e", "-c", examples["commands"]], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("training-loop") == 6  # three files, in the dry run and the real ingest
    db = tmp_path / "c.db"
    assert query(db, "SELECT COUNT(*) FROM metric_runs WHERE status = 'failed'") == [(0,)]

    sys.path.insert(0, str(tmp_path))
    try:
        import mymodels
    finally:
        sys.path.remove(str(tmp_path))
    x, y = mymodels.moons().tensors
    models = {}
    for seed in (0, 1, 2):
        model = mymodels.moons_net().eval()
        model.load_state_dict(torch.load(tmp_path / "runs" / f"moons_{seed}.pt", weights_only=True)["model_state_dict"])
        models[seed] = model
    by_sha = dict(query(db, "SELECT sha256, seed FROM checkpoints"))
    for sha_a, sha_b, t, error in query(db, "SELECT checkpoint_a, checkpoint_b, t, error FROM curve_points WHERE t IN (0, 1)"):
        model = models[by_sha[sha_a] if t == 0 else by_sha[sha_b]]
        with torch.no_grad():
            own = float((model(x).argmax(1) != y).float().mean())
        assert math.isclose(error, own, abs_tol=1e-9)
    with open_catalog(db, readonly=True) as cat:
        runs = cat.query("SELECT id, checkpoint, checkpoint_b FROM metric_runs WHERE metric = 'cka' AND status = 'done'")
        assert len(runs) == 3
        for run in runs:
            recipe = cat.run_artifact(run["id"], "inputs")
            i, j, lam = recipe[:, 0].astype(int), recipe[:, 1].astype(int), torch.as_tensor(recipe[:, 2:3], dtype=torch.float32)
            inputs = lam * x[i] + (1 - lam) * x[j]
            with torch.no_grad():
                pa, pb = (
                    torch.softmax(models[by_sha[s]](inputs), -1).double().numpy()
                    for s in (run["checkpoint"], run["checkpoint_b"])
                )
            stored = cat.one("SELECT value FROM pair_metrics WHERE run_id = ? AND metric = 'cka'", (run["id"],))["value"]
            assert math.isclose(stored, linear_cka(pa, pb), rel_tol=1e-5)


def toy_catalog(
    tmp_path: Path, factory: str, problem: str, problem_kwargs: dict, states: list[dict], model_kwargs: dict | None = None
) -> Path:
    runs = tmp_path / "runs"
    runs.mkdir()
    for seed, sd in enumerate(states):
        torch.save({"state_dict": sd, "meta": {"seed": seed}}, runs / f"s{seed}.pt")
    spec = write_spec(tmp_path / "exp.toml", "toy", factory, model_kwargs or {}, problem, problem_kwargs, ["runs/*.pt"], [])
    from losslens.ingest import ingest

    assert ingest(spec, tmp_path / "c.db").ok
    return tmp_path / "c.db"


def test_toy_problem_with_only_the_documented_interface_works_with_connectivity_and_cka(tmp_path):
    from user_models import double_well, tiny_net

    states = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        states.append({k: v.clone() for k, v in tiny_net().state_dict().items()})
    db = toy_catalog(tmp_path, "user_models:tiny_net", "user_models:double_well", {"n": 64}, states)
    report = compute(
        ["connectivity", "cka", "predictions"], [("curve", "linear"), ("points", "3"), ("inputs", "50")], catalog_path=db
    )
    failed = query(db, "SELECT metric, error FROM metric_runs WHERE status = 'failed'")
    assert report.failed == 2 and {m for m, _ in failed} == {"predictions"}
    assert {e for _, e in failed} == {
        "predictions: problem DoubleWell lacks the ClassProbabilities capability (missing: logits, loss_and_error, "
        "mixup_inputs, num_classes, probabilities) — implement them (losslens.problems.capabilities.ClassProbabilities), "
        "or compute another metric"
    }
    problem = double_well(64)
    fresh = []
    for sd in states:
        model = tiny_net().eval()
        model.load_state_dict(sd)
        fresh.append(model)
    own = [float(sum(problem.loss(m, dict(m.named_parameters()), b) * len(b) for b in problem.batches()) / 64) for m in fresh]
    points = query(db, "SELECT t, loss, error FROM curve_points ORDER BY t")
    assert math.isclose(points[0][1], own[0], rel_tol=1e-5) and math.isclose(points[-1][1], own[1], rel_tol=1e-5)
    assert all(error is None for _, _, error in points)  # no error measure without a capability
    with torch.no_grad():
        outputs = [m(problem.x[:50]).double().numpy() for m in fresh]
    stored = query(db, "SELECT value FROM pair_metrics WHERE metric = 'cka'")[0][0]
    assert math.isclose(stored, linear_cka(*outputs), rel_tol=1e-5)


def test_several_outputs_dropout_and_batchnorm_follow_the_eval_mode_rule(tmp_path):
    """mse on output 0 of a two-headed model with dropout and BatchNorm (with and without running
    statistics): the stored training loss is the eval-mode loss of a fresh model on the same data."""
    from user_models import regression_set, two_heads

    for track in (True, False):
        torch.manual_seed(0)
        model = two_heads(track)
        model.train()
        model(torch.randn(16, 3))  # move the running statistics away from their initial values
        sd = {k: v.clone() for k, v in model.state_dict().items()}
        root = tmp_path / str(track)
        root.mkdir()
        kwargs = {"train": "user_models:regression_set", "loss": "mse", "output": 0, "batch_size": 16}
        db = toy_catalog(
            root, "user_models:two_heads", "losslens.problems:from_dataset", kwargs, [sd], {"track_running_stats": track}
        )
        compute(["performance"], catalog_path=db)
        stored = query(db, "SELECT value FROM performance WHERE split = 'train' AND name = 'loss'")
        fresh = two_heads(track).eval()
        fresh.load_state_dict(sd)
        x, y = regression_set().tensors
        with torch.no_grad():
            own = float(
                sum(((fresh(x[s : s + 16])[0] - y[s : s + 16]) ** 2).mean() * len(x[s : s + 16]) for s in range(0, 40, 16)) / 40
            )
        assert math.isclose(stored[0][0], own, rel_tol=1e-5), track


def test_several_outputs_without_a_choice_is_one_line(tmp_path):
    from user_models import two_heads

    torch.manual_seed(0)
    sd = two_heads().state_dict()
    db = toy_catalog(
        tmp_path,
        "user_models:two_heads",
        "losslens.problems:from_dataset",
        {"train": "user_models:regression_set", "loss": "mse"},
        [sd],
    )
    compute(["performance"], catalog_path=db)
    assert query(db, "SELECT error FROM metric_runs") == [
        (
            "[problem]: the model returns 2 outputs (tuple) — choose the one the loss uses with output = 0 (or a key) in "
            "[problem].kwargs, or give a loss by import path",
        )
    ]


def test_dataset_items_that_are_not_input_target_pairs_are_one_line():
    """A dict item used to fail inside torch.cat ("expected Tensor ... got str"); a third field had no fix."""
    from losslens.errors import LossLensError
    from losslens.problems.from_dataset import load_dataset

    fix = " — make the Dataset's __getitem__ return (input, target) tensors or numbers"
    for path, shape in [
        ("user_models:three_field_items", "each item has 3 fields (Tensor, Tensor, Tensor)"),
        ("user_models:dict_items", "each item is a dict with keys x, y"),
    ]:
        with pytest.raises(LossLensError) as exc:
            load_dataset(path, {}, "train")
        assert exc.value.line() == f"[problem].kwargs.train: items of {path} are not (input, target) pairs ({shape}){fix}"
