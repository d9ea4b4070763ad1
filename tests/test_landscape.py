"""Tests for losslens.landscape: batched grids against a per-point loop, direction invariants,
trajectory PCA, and the landscape + topology metrics end to end on real catalogs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import PINN_KWARGS, save_checkpoint, write_spec

from losslens.ingest import ingest
from losslens.jobs import compute
from losslens.jobs.context import Subject
from losslens.landscape.directions import random_directions
from losslens.landscape.grid import evaluate, evaluate_loop, grid_coordinates
from losslens.models import mlp, pinn_mlp, resnet20
from losslens.params import flatten, unflatten
from losslens.problems.base import ClassificationProblem
from losslens.problems.convection import convection
from losslens.problems.digits import digits
from losslens.store.catalog import open_catalog

TABLES = ("landscapes", "landscape_points", "persistence_pairs", "merge_tree_nodes", "merge_tree_edges", "landscape_summaries")


def _subject(model: torch.nn.Module, problem) -> Subject:
    model.eval()
    return Subject(
        "sha",
        "name",
        model,
        {k: v.detach() for k, v in model.named_parameters()},
        {k: v.detach() for k, v in model.named_buffers()},
        problem,
        {},
    )


def _mlp_problem() -> ClassificationProblem:
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(96, 6, generator=g), torch.randint(0, 3, (96,), generator=g)
    return ClassificationProblem("blobs", x[:64], y[:64], x[64:], y[64:], batch_size=32)


@pytest.mark.parametrize("chunk", [1, 4])
@pytest.mark.parametrize("case", ["mlp", "pinn", "bn_cnn"])
def test_batched_grid_equals_per_point_loop(case: str, chunk: int) -> None:
    """Oracle: a plain clone/perturb/evaluate loop, one point at a time (allclose). Chunks of 4
    (vmap with the grid kernels, and a last partial chunk) and of 1 (no vmap)."""
    torch.manual_seed(0)
    if case == "mlp":
        subject = _subject(mlp(6, 3, width=16, depth=2), _mlp_problem())
    elif case == "pinn":
        subject = _subject(pinn_mlp(**PINN_KWARGS), convection(n_collocation=64, n_x=32, n_t=16))
    else:
        subject = _subject(resnet20(in_channels=1, width_mult=0.25), digits(batch_size=32))
    directions = random_directions(subject.params, 2, seed=1, normalization="filter", orthogonalize=True)
    _, coords = grid_coordinates([0.5, 0.5], 5)
    batches = list(subject.problem.batches("train", limit=2))
    batched, used = evaluate(subject, directions, coords, batches, chunk=chunk)
    assert used == chunk
    assert np.allclose(batched, evaluate_loop(subject, directions, coords, batches), rtol=1e-5, atol=1e-6)


def test_filter_normalisation_matches_theta_filter_norms() -> None:
    """Invariant (Li et al.): every filter of d has the norm of the same filter of θ; biases and
    BatchNorm parameters are zero in d."""
    model = resnet20(in_channels=1, width_mult=0.25)
    theta = {k: v.detach() for k, v in model.named_parameters()}
    (d,) = random_directions(theta, 1, seed=3, normalization="filter", orthogonalize=False)
    parts = unflatten(d, theta)
    for name, w in theta.items():
        if w.dim() <= 1:
            assert torch.count_nonzero(parts[name]) == 0
        else:
            axes = tuple(range(1, w.dim()))
            assert torch.allclose(
                torch.linalg.vector_norm(parts[name], dim=axes), torch.linalg.vector_norm(w, dim=axes), rtol=1e-5
            )


def test_directions_are_orthonormal_when_asked() -> None:
    """Gram matrix oracle: "unit" + orthogonalize gives D Dᵀ = I; filter-normalised directions
    come out mutually orthogonal with their norms kept."""
    model = pinn_mlp(width=20, depth=3)
    theta = {k: v.detach() for k, v in model.named_parameters()}
    unit = random_directions(theta, 4, seed=0, normalization="unit", orthogonalize=True).double()
    assert torch.allclose(unit @ unit.T, torch.eye(4, dtype=torch.float64), atol=1e-6)
    raw = random_directions(theta, 3, seed=0, normalization="filter", orthogonalize=False).double()
    ortho = random_directions(theta, 3, seed=0, normalization="filter", orthogonalize=True).double()
    gram = ortho @ ortho.T
    assert torch.allclose(gram - torch.diag(torch.diag(gram)), torch.zeros(3, 3, dtype=torch.float64), atol=1e-6 * gram.max())
    assert torch.allclose(ortho.norm(dim=1), raw.norm(dim=1), rtol=1e-6)
    assert torch.equal(ortho[0], raw[0])  # Gram–Schmidt keeps the first direction as drawn


def _catalog_counts(db: Path) -> dict[str, int]:
    with open_catalog(db) as cat:
        return {t: cat.one(f"SELECT count(*) AS n FROM {t}")["n"] for t in TABLES}


def test_compute_landscape_topology_fills_every_table(pinn_catalog: Path) -> None:
    """End to end on the real runner: one landscape (11×11) and one topology per checkpoint; the
    points table equals the grid artifact, and a rerun with --force replaces rows cleanly."""
    report = compute(["landscape", "topology"], [("steps", "11")], catalog_path=pinn_catalog, device="cpu")
    assert [(m.metric, m.done, m.failed) for m in report.metrics] == [("landscape", 4, 0), ("topology", 4, 0)]
    counts = _catalog_counts(pinn_catalog)
    assert counts["landscapes"] == 4 and counts["landscape_points"] == 4 * 121 and counts["landscape_summaries"] == 4
    assert min(counts.values()) > 0
    with open_catalog(pinn_catalog) as cat:
        for land in cat.query("SELECT * FROM landscapes"):
            grid = cat.artifact(land["grid_artifact"])
            points = cat.query("SELECT i, j, loss FROM landscape_points WHERE run_id = ? ORDER BY point", (land["id"],))
            assert grid.shape == (11, 11)
            assert np.allclose([grid[p["i"], p["j"]] for p in points], [p["loss"] for p in points])
            assert land["centre_loss"] == pytest.approx(grid[5, 5])
        per_ckpt = cat.query("SELECT checkpoint, count(*) AS n FROM landscape_summaries GROUP BY checkpoint")
        assert len(per_ckpt) == 4
        nodes = cat.query("SELECT kind, count(*) AS n FROM merge_tree_nodes GROUP BY kind")
        assert {r["kind"] for r in nodes} >= {"minimum", "root"}
    compute(["landscape", "topology"], [("steps", "11")], catalog_path=pinn_catalog, device="cpu", force=True)
    assert _catalog_counts(pinn_catalog) == counts


def test_bn_model_landscape_says_eval_mode(digits_catalog: Path) -> None:
    """The BatchNorm ResNet's landscape rows record eval mode; a sampled 3-D landscape runs its
    topology on a kNN graph (θ and the ±1-step probes are its first points)."""
    report = compute(
        ["landscape", "topology"], [("steps", "3"), ("dims", "3"), ("samples", "20")], catalog_path=digits_catalog, device="cpu"
    )
    assert all(m.failed == 0 for m in report.metrics), [m.failures for m in report.metrics]
    with open_catalog(digits_catalog) as cat:
        rows = cat.query("SELECT batch_norm_eval, notes, n_points FROM landscapes")
        assert len(rows) == 4 and all(r["batch_norm_eval"] == 1 and "eval mode" in r["notes"] for r in rows)
        assert all(r["n_points"] == 1 + 6 + 20 for r in rows)
        assert cat.one("SELECT count(*) AS n FROM landscape_summaries WHERE curvature_3 IS NOT NULL")["n"] == 4


def test_pca_directions_span_the_trajectory(tmp_path: Path) -> None:
    """Oracle: with 3 other checkpoints, the centred trajectory has rank 2, so it lies in the span
    of the 2 PCA directions (projection residual ≈ 0), and the directions are orthonormal."""
    torch.manual_seed(0)
    model = pinn_mlp(**PINN_KWARGS)
    base = {k: v.detach().clone() for k, v in model.state_dict().items()}
    for step in range(4):
        with torch.no_grad():
            for k, p in model.state_dict().items():
                p.copy_(base[k] + 0.01 * step * torch.randn_like(p))
        path = save_checkpoint(tmp_path / "runs" / f"step{step}.pt", model, 0, {"beta": 1.0})
        ckpt = torch.load(path, weights_only=True)
        ckpt["meta"]["step"] = step
        torch.save(ckpt, path)
    spec = write_spec(
        tmp_path / "traj.toml",
        "traj",
        "losslens.models:pinn_mlp",
        PINN_KWARGS,
        "losslens.problems:convection",
        {"n_collocation": 32, "n_x": 16, "n_t": 8},
        ["runs/*.pt"],
        ["beta"],
    )
    db = tmp_path / "catalog" / "losslens.db"
    ingest(spec, db)
    report = compute(["landscape"], [("directions", "pca"), ("steps", "3")], catalog_path=db, device="cpu")
    assert report.metrics[0].done == 4, report.metrics[0].failures
    with open_catalog(db) as cat:
        land = cat.one("SELECT l.*, c.step FROM landscapes l JOIN checkpoints c ON c.sha256 = l.checkpoint WHERE c.step = 3")
        directions = torch.as_tensor(cat.artifact(land["directions_artifact"]), dtype=torch.float64)
        others = [flatten(_params(cat, r["path"])) for r in cat.query("SELECT path FROM checkpoints WHERE step != 3")]
        centre = flatten(_params(cat, cat.one("SELECT path FROM checkpoints WHERE step = 3")["path"]))
    diffs = torch.stack(others).double() - centre.double()
    diffs = diffs - diffs.mean(0)
    residual = diffs - diffs @ directions.T @ directions
    assert torch.allclose(directions @ directions.T, torch.eye(2, dtype=torch.float64), atol=1e-5)
    assert residual.norm() < 1e-4 * diffs.norm()


def _params(cat, path: str) -> dict[str, torch.Tensor]:
    state = torch.load(path, weights_only=True)["state_dict"]
    model = pinn_mlp(**PINN_KWARGS)
    return {k: state[k].to(torch.float64) for k, _ in model.named_parameters()}


def test_hessian_directions_read_or_computed_and_curvature_matches_eigenvalue(tmp_path: Path) -> None:
    """Oracles: the eigenvectors computed on demand equal (up to sign) those the `hessian` metric
    stores and the landscape then reads; along a unit eigenvector the landscape's second
    difference is the eigenvalue (to O(h²)). One PINN checkpoint."""
    torch.manual_seed(0)
    save_checkpoint(tmp_path / "runs" / "beta1_seed0.pt", pinn_mlp(**PINN_KWARGS), 0, {"beta": 1.0})
    spec = write_spec(
        tmp_path / "one.toml",
        "one-pinn",
        "losslens.models:pinn_mlp",
        PINN_KWARGS,
        "losslens.problems:convection",
        {"n_collocation": 64, "n_x": 32, "n_t": 16},
        ["runs/*.pt"],
        ["beta"],
    )
    pinn_catalog = tmp_path / "catalog" / "losslens.db"
    ingest(spec, pinn_catalog)
    opts = [("directions", "hessian"), ("steps", "3"), ("span", "0.01")]
    compute(["landscape"], opts, catalog_path=pinn_catalog, device="cpu")
    with open_catalog(pinn_catalog) as cat:
        on_demand = {
            r["checkpoint"]: (r["direction_source"], cat.artifact(r["directions_artifact"]))
            for r in cat.query("SELECT * FROM landscapes")
        }
    report = compute(
        ["hessian", "landscape", "topology"],
        [("k", "2"), ("no-esd", None), ("trace-probes", "0"), *opts],
        catalog_path=pinn_catalog,
        device="cpu",
        force=True,
    )
    assert all(m.failed == 0 for m in report.metrics), [m.failures for m in report.metrics]
    with open_catalog(pinn_catalog) as cat:
        rows = cat.query(
            "SELECT l.checkpoint, l.direction_source, l.directions_artifact, s.curvature_1, s.curvature_2 "
            "FROM landscapes l JOIN landscape_summaries s ON s.landscape_id = l.id"
        )
        assert len(rows) == 1
        for r in rows:
            source, vectors = on_demand[r["checkpoint"]]
            assert "computed on demand" in source and r["direction_source"].startswith("hessian run ")
            stored = cat.artifact(r["directions_artifact"]).astype(np.float64)
            assert np.allclose(np.abs(stored @ vectors.astype(np.float64).T), np.eye(2), atol=1e-3)
            eig = [
                e["value"]
                for e in cat.query(
                    "SELECT e.value FROM hessian_eigenvalues e JOIN metric_runs m ON m.id = e.run_id "
                    "WHERE m.checkpoint = ? AND e.which = 'largest' ORDER BY e.rank",
                    (r["checkpoint"],),
                )
            ][:2]
            assert np.allclose([r["curvature_1"], r["curvature_2"]], eig, rtol=0.05, atol=1e-3)


def test_landscape_memory_budget_refuses(pinn_catalog):
    """A grid whose weights, directions and activations exceed --memory-gb is refused in one line naming the budget."""
    from losslens.jobs import compute

    report = compute(["landscape"], [("steps", "3"), ("memory-gb", "1e-9")], catalog_path=pinn_catalog)
    assert report.failed == 4
    error = report.metrics[0].failures[0][1]
    assert "more than --memory-gb 1e-09" in error and "—" in error
