"""Shared fixtures: real SQLite catalogs filled through the real ingest path with small real models."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

# The machines are 2-core; tests run torch single-threaded so parallel work never oversubscribes.
torch.set_num_threads(1)
os.environ.setdefault("OMP_NUM_THREADS", "1")

from helpers import ARGS, CHROMIUM, PINN_KWARGS, RESNET_KWARGS, save_checkpoint, write_spec  # noqa: E402
from playwright.sync_api import Browser, sync_playwright  # noqa: E402

from losslens.ingest import ingest  # noqa: E402
from losslens.metrics.registry import register, unregister  # noqa: E402
from losslens.models import pinn_mlp, resnet20  # noqa: E402


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


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless Debian Chromium, one per test module."""
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def register_metric() -> Iterator[Callable[..., Any]]:
    """``register_metric(name, fn, scope=..., params=..., tables=...)`` registers a test's own metric for
    that test only: it is unregistered afterwards, so no other test (or the CLI's options) sees it."""
    names: list[str] = []

    def add(name: str, fn: Callable[..., Any], **kwargs: Any) -> Callable[..., Any]:
        register(name, **kwargs)(fn)
        names.append(name)
        return fn

    yield add
    for name in names:
        unregister(name)
