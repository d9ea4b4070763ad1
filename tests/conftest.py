"""Shared fixtures: real SQLite catalogs filled through the real ingest path with small real models."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

# The machines are 2-core; tests run torch single-threaded so parallel work never oversubscribes.
torch.set_num_threads(1)
os.environ.setdefault("OMP_NUM_THREADS", "1")

from losslens.ingest import ingest  # noqa: E402
from losslens.models import pinn_mlp, resnet20  # noqa: E402


def write_spec(
    path: Path, name: str, model: str, model_kwargs: dict, problem: str, problem_kwargs: dict, globs: list[str], keys: list[str]
) -> Path:
    def kw(d: dict) -> str:
        return "{ " + ", ".join(f"{k} = {json.dumps(v)}" for k, v in d.items()) + " }"

    path.write_text(
        f'name = "{name}"\n\n[model]\nfactory = "{model}"\nkwargs = {kw(model_kwargs)}\n\n'
        f'[problem]\nfactory = "{problem}"\nkwargs = {kw(problem_kwargs)}\n\n'
        f"[checkpoints]\npaths = {json.dumps(globs)}\n\n[settings]\nkeys = {json.dumps(keys)}\n"
    )
    return path


def save_checkpoint(path: Path, model: torch.nn.Module, seed: int, hparams: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": model.state_dict(), "meta": {"seed": seed, "hparams": hparams}}, path)
    return path


PINN_KWARGS = {"width": 8, "depth": 2}


@pytest.fixture
def pinn_experiment(tmp_path: Path) -> Path:
    """Spec for a tiny PINN sweep: β ∈ {1, 5} × seeds {0, 1}, untrained (random init by seed)."""
    for beta in (1.0, 5.0):
        for seed in (0, 1):
            torch.manual_seed(seed)
            save_checkpoint(tmp_path / "runs" / f"beta{int(beta)}_seed{seed}.pt", pinn_mlp(**PINN_KWARGS), seed, {"beta": beta})
    return write_spec(
        tmp_path / "pinn.toml",
        "tiny-pinn",
        "losslens.models:pinn_mlp",
        PINN_KWARGS,
        "losslens.problems:convection",
        {"n_collocation": 64, "n_x": 32, "n_t": 16},
        ["runs/*.pt"],
        ["beta"],
    )


@pytest.fixture
def pinn_catalog(tmp_path: Path, pinn_experiment: Path) -> Path:
    """A real catalog file with the tiny PINN sweep ingested."""
    db = tmp_path / "catalog" / "losslens.db"
    report = ingest(pinn_experiment, db)
    assert report.count("added") == 4
    return db


RESNET_KWARGS = {"in_channels": 1, "num_classes": 10, "width_mult": 0.25}


@pytest.fixture
def digits_experiment(tmp_path: Path) -> Path:
    """Spec for a tiny ResNet-20 (BatchNorm) on digits: residual on/off × seeds {0, 1}, untrained."""
    for residual in (True, False):
        for seed in (0, 1):
            torch.manual_seed(seed)
            model = resnet20(residual=residual, **RESNET_KWARGS)
            save_checkpoint(tmp_path / "runs" / f"res{int(residual)}_seed{seed}.pt", model, seed, {"residual": residual})
    return write_spec(
        tmp_path / "digits.toml",
        "tiny-digits",
        "losslens.models:resnet20",
        RESNET_KWARGS,
        "losslens.problems:digits",
        {"batch_size": 64},
        ["runs/*.pt"],
        ["residual"],
    )


@pytest.fixture
def digits_catalog(tmp_path: Path, digits_experiment: Path) -> Path:
    db = tmp_path / "catalog" / "losslens.db"
    report = ingest(digits_experiment, db)
    assert report.count("added") == 4
    return db
