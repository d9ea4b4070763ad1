"""Numerics of real models: unused and frozen parameters, another dtype, non-finite weights.

Oracles: a dense ``torch.func.hessian`` over *all* trainable parameters in float64 (unused ones
included, so their zero rows and columns are in it), each endpoint's own loss computed by a fresh
model loaded with the saved weights, and the exact one-line message.
"""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path

import numpy as np
import torch
from helpers import write_spec
from user_models import aux_head_net, double_mlp, random_features_net

from losslens.jobs import compute
from losslens.params import flatten, unflatten
from losslens.problems.convection import convection

PROBLEM = {"n_collocation": 24, "n_x": 8, "n_t": 4}


def catalog(tmp_path: Path, factory: str, states: list[dict[str, torch.Tensor]]) -> Path:
    """A real catalog with one checkpoint per state (seed = index), on the convection problem at β = 1."""
    runs = tmp_path / "runs"
    runs.mkdir()
    for seed, sd in enumerate(states):
        torch.save({"state_dict": sd, "meta": {"seed": seed, "hparams": {"beta": 1.0}}}, runs / f"s{seed}.pt")
    spec = write_spec(tmp_path / "exp.toml", "exp", factory, {}, "losslens.problems:convection", PROBLEM, ["runs/*.pt"], ["beta"])
    db = tmp_path / "c.db"
    from losslens.ingest import ingest

    report = ingest(spec, db)
    assert report.ok, report.outcomes
    return db


def query(db: Path, sql: str, args: tuple = ()) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql, args).fetchall()


def own_loss(model: torch.nn.Module, sd: dict[str, torch.Tensor]) -> float:
    """The oracle: a fresh model with the saved weights, on the problem's own training batch."""
    model.load_state_dict(sd)
    model.eval()
    problem = convection(beta=1.0, **PROBLEM)
    state = {**dict(model.named_parameters()), **dict(model.named_buffers())}
    batch = next(iter(problem.batches("train")))
    if next(model.parameters()).dtype == torch.float64:
        batch = type(batch)(*(getattr(batch, f).double() for f in batch.__dataclass_fields__))
    return float(problem.loss(model, state, batch))


def dense_eigenvalues(model: torch.nn.Module, sd: dict[str, torch.Tensor]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Eigenvalues and eigenvectors of the dense float64 Hessian over every trainable parameter."""
    model.load_state_dict(sd)
    model = model.double().eval()
    problem = convection(beta=1.0, **PROBLEM)
    batch = next(iter(problem.batches("train")))
    batch = type(batch)(*(getattr(batch, f).double() for f in batch.__dataclass_fields__))
    params = {k: v.detach() for k, v in model.named_parameters() if v.requires_grad}
    fixed = {k: v.detach() for k, v in model.named_parameters() if not v.requires_grad}

    def loss(flat: torch.Tensor) -> torch.Tensor:
        return problem.loss(model, {**fixed, **unflatten(flat, params)}, batch)

    values, vectors = np.linalg.eigh(torch.autograd.functional.hessian(loss, flatten(params)).numpy())
    return values, vectors, list(params)


def errors(db: Path) -> list[tuple]:
    return query(db, "SELECT metric, error FROM metric_runs WHERE status = 'failed'")


def hessian_run(db: Path, seed: int = 0) -> tuple[np.ndarray, str]:
    rows = query(
        db,
        "SELECT e.value, r.id FROM hessian_eigenvalues e JOIN metric_runs r ON r.id = e.run_id JOIN checkpoints c "
        "ON c.sha256 = r.subject WHERE c.seed = ? AND e.which = 'largest' ORDER BY e.rank",
        (seed,),
    )
    return np.array([r[0] for r in rows]), rows[0][1]


def test_unused_parameter_adds_zero_rows_to_the_hessian_lanczos_and_pyhessian(tmp_path):
    torch.manual_seed(0)
    model = aux_head_net()
    sd = {k: v.clone() for k, v in model.state_dict().items()}
    db = catalog(tmp_path, "user_models:aux_head_net", [sd])
    exact, _, names = dense_eigenvalues(aux_head_net(), sd)
    assert sum("aux" in n for n in names) == 2  # the oracle's Hessian covers the unused head too
    report = compute(["hessian"], [("k", "3"), ("no-esd", None), ("trace-probes", "4")], catalog_path=db, device="cpu")
    assert report.failed == 0, errors(db)
    largest, _ = hessian_run(db)
    top = exact[::-1][:3]
    assert np.max(np.abs(largest - top) / np.abs(top)) <= 1e-4
    (tmp_path / "p").mkdir()
    db2 = catalog(tmp_path / "p", "user_models:aux_head_net", [sd])
    report = compute(["hessian"], [("k", "1"), ("backend", "pyhessian"), ("no-esd", None)], catalog_path=db2, device="cpu")
    assert report.failed == 0, errors(db2)
    largest, _ = hessian_run(db2)
    biggest = exact[np.argmax(np.abs(exact))]
    assert abs(largest[0] - biggest) / abs(biggest) <= 1e-2  # PyHessian's power iteration stops at tol 1e-3


def test_unused_parameter_connectivity_fit_runs_and_keeps_endpoints(tmp_path):
    """Fitting a Bezier bend (which differentiates the loss) with an unused head: the fit runs, and the
    path's ends are each checkpoint's own loss."""
    states = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        states.append({k: v.clone() for k, v in aux_head_net().state_dict().items()})
    db = catalog(tmp_path, "user_models:aux_head_net", states)
    opts = [("curve", "bezier"), ("points", "3"), ("steps", "5"), ("lbfgs-iterations", "3"), ("no-compare-linear", None)]
    assert compute(["connectivity"], opts, catalog_path=db, device="cpu").failed == 0, errors(db)
    rows = query(db, "SELECT t, loss FROM curve_points ORDER BY t")
    a, b = (own_loss(aux_head_net(), sd) for sd in states)
    assert math.isclose(rows[0][1], a, rel_tol=1e-5) and math.isclose(rows[-1][1], b, rel_tol=1e-5)


def _linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    x, y = x - x.mean(0), y - y.mean(0)
    return float(np.linalg.norm(y.T @ x) ** 2 / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)))


def test_unused_layer_is_left_out_of_layer_cka_and_naming_it_is_one_line(tmp_path):
    """The auxiliary head ``forward`` skips has no output, so layer CKA covers the layers that run; each
    value equals a numpy linear CKA of the fresh models' layer outputs on the grid. Naming the unused
    layer is one line."""
    states = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        states.append({k: v.clone() for k, v in aux_head_net().state_dict().items()})
    db = catalog(tmp_path, "user_models:aux_head_net", states)
    assert compute(["cka"], [], catalog_path=db, device="cpu").failed == 0, errors(db)
    grid = convection(beta=1.0, **PROBLEM).grid
    hidden = []
    for sd in states:
        model = aux_head_net().eval()
        model.load_state_dict(sd)
        with torch.no_grad():
            hidden.append({"body.0": model.body[0](grid).double().numpy(), "body.2": model(grid).double().numpy()})
    rows = query(db, "SELECT layer_a, layer_b, value FROM layer_cka ORDER BY index_a, index_b")
    assert [(a, b) for a, b, _ in rows] == [
        ("body.0", "body.0"),
        ("body.0", "body.2"),
        ("body.2", "body.0"),
        ("body.2", "body.2"),
    ]
    for a, b, value in rows:
        assert math.isclose(value, _linear_cka(hidden[0][a], hidden[1][b]), rel_tol=1e-5)
    report = compute(["cka"], [("layers", "aux")], catalog_path=db, device="cpu", force=True)
    assert report.failed == 1
    assert {e for _, e in errors(db)} == {
        "cka --layers (s0): layer aux is called 0 times per forward, so it has no single output to compare"
        " — name layers that forward calls once each, or leave --layers out"
    }


def test_unused_parameter_gets_zero_entries_in_stored_eigenvectors(tmp_path):
    """The stored top eigenvector is zero (to round-off) at the unused head and matches the dense one."""
    torch.manual_seed(1)
    sd = {k: v.clone() for k, v in aux_head_net().state_dict().items()}
    db = catalog(tmp_path, "user_models:aux_head_net", [sd])
    assert compute(["hessian"], [("k", "1"), ("no-esd", None), ("trace-probes", "0")], catalog_path=db, device="cpu").failed == 0
    from losslens.store.catalog import open_catalog

    _, run_id = hessian_run(db)
    with open_catalog(db, readonly=True) as cat:
        stored = cat.run_artifact(run_id, "eigenvectors")[0].astype(np.float64)
    _, vectors, names = dense_eigenvalues(aux_head_net(), sd)
    sizes = [aux_head_net().get_parameter(n).numel() for n in names]
    aux = np.concatenate([np.full(n, "aux" in name) for name, n in zip(names, sizes, strict=True)])
    assert np.max(np.abs(stored[aux])) <= 1e-6  # zero up to the random start vector's round-off
    top = vectors[:, -1]
    assert abs(abs(float(stored @ top)) - 1) <= 1e-4


def test_frozen_parameters_interpolate_along_the_path_so_endpoints_are_the_checkpoints(tmp_path):
    """Two seeds whose frozen random features differ: the path's loss at t = 0, ½, 1 is the loss of a
    fresh model holding a's weights, the average of all weights (frozen too), and b's weights."""
    states = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        states.append({k: v.clone() for k, v in random_features_net().state_dict().items()})
    assert not torch.equal(states[0]["features.weight"], states[1]["features.weight"])
    db = catalog(tmp_path, "user_models:random_features_net", states)
    for curve in ("linear", "bezier"):
        opts = [("curve", curve), ("points", "3"), ("no-compare-linear", None), ("steps", "3"), ("lbfgs-iterations", "0")]
        report = compute(["connectivity"], opts, catalog_path=db, device="cpu")
        assert report.failed == 0, errors(db)
        rows = query(db, "SELECT t, loss FROM curve_points WHERE curve = ? ORDER BY t", (curve,))
        a, b = (own_loss(random_features_net(), sd) for sd in states)
        assert math.isclose(rows[0][1], a, rel_tol=1e-5) and math.isclose(rows[-1][1], b, rel_tol=1e-5)
        if curve == "linear":
            middle = {k: (states[0][k] + states[1][k]) / 2 for k in states[0]}
            assert math.isclose(rows[1][1], own_loss(random_features_net(), middle), rel_tol=1e-5)


def test_frozen_parameters_landscape_hessian_and_cka_use_the_checkpoints_own_values(tmp_path):
    """Landscape centre = seed 1's own loss; Hessian = dense Hessian over the trainable head, features fixed;
    CKA = linear CKA (numpy) of the two fresh models' outputs on the evaluation grid."""
    states = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        states.append({k: v.clone() for k, v in random_features_net().state_dict().items()})
    db = catalog(tmp_path, "user_models:random_features_net", states)
    report = compute(
        ["landscape", "hessian", "cka"], [("steps", "3"), ("k", "2"), ("no-esd", None), ("trace-probes", "0")], catalog_path=db
    )
    assert report.failed == 0, errors(db)
    grid = convection(beta=1.0, **PROBLEM).grid
    outputs = []
    for sd in states:
        model = random_features_net().eval()
        model.load_state_dict(sd)
        with torch.no_grad():
            outputs.append(model(grid).double().numpy() - model(grid).double().numpy().mean(0))
    x, y = outputs
    expected = np.linalg.norm(y.T @ x) ** 2 / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y))
    stored = query(db, "SELECT value FROM pair_metrics WHERE metric = 'cka'")[0][0]
    assert math.isclose(stored, expected, rel_tol=1e-5)
    centre = query(db, "SELECT l.centre_loss FROM landscapes l JOIN checkpoints c ON c.sha256 = l.checkpoint WHERE c.seed = 1")
    assert math.isclose(centre[0][0], own_loss(random_features_net(), states[1]), rel_tol=1e-5)
    exact, _, names = dense_eigenvalues(random_features_net(), states[1])
    assert names == ["head.weight", "head.bias"]
    largest, _ = hessian_run(db, seed=1)
    assert np.max(np.abs(largest - exact[::-1][:2]) / np.abs(exact[::-1][:2])) <= 1e-4


def test_float64_model_computes_in_float64(tmp_path):
    """A float64 model and checkpoint: landscape centre and Hessian equal the float64 oracles."""
    torch.manual_seed(0)
    sd = {k: v.clone() for k, v in double_mlp().state_dict().items()}
    assert sd["0.weight"].dtype == torch.float64
    db = catalog(tmp_path, "user_models:double_mlp", [sd])
    report = compute(
        ["landscape", "hessian"], [("steps", "3"), ("k", "2"), ("no-esd", None), ("trace-probes", "0")], catalog_path=db
    )
    assert report.failed == 0, errors(db)
    centre = query(db, "SELECT centre_loss FROM landscapes")[0][0]
    assert math.isclose(centre, own_loss(double_mlp(), sd), rel_tol=1e-12)
    exact, _, _ = dense_eigenvalues(double_mlp(), sd)
    largest, _ = hessian_run(db)
    assert np.max(np.abs(largest - exact[::-1][:2]) / np.abs(exact[::-1][:2])) <= 1e-8


def test_diverged_seed_every_metric_gives_one_line_and_taxonomy_names_it(tmp_path):
    """One of three seeds has a NaN weight: each metric touching it fails with the same line, the other
    seeds' results are stored, and the taxonomy leaves the setting's phase empty with a note naming the seed."""
    states = []
    for seed in range(3):
        torch.manual_seed(seed)
        states.append({k: v.clone() for k, v in double_mlp().float().state_dict().items()})
    states[2]["0.weight"][0, 0] = math.nan
    runs = tmp_path / "runs"
    runs.mkdir()
    for seed, sd in enumerate(states):
        torch.save({"state_dict": sd, "meta": {"seed": seed, "hparams": {"beta": 1.0}}}, runs / f"s{seed}.pt")
    spec = write_spec(
        tmp_path / "exp.toml",
        "exp",
        "losslens.models:pinn_mlp",
        {"width": 6, "depth": 1},
        "losslens.problems:convection",
        PROBLEM,
        ["runs/*.pt"],
        ["beta"],
    )
    from losslens.ingest import ingest

    report = ingest(spec, tmp_path / "c.db")
    assert report.ok
    assert "weights not finite (a diverged run): metrics will refuse it, the taxonomy names it" in report.outcomes[2].notes
    db = tmp_path / "c.db"
    opts = [("k", "1"), ("no-esd", None), ("trace-probes", "4"), ("steps", "3"), ("curve", "linear"), ("points", "3")]
    compute(["taxonomy", "topology"], opts, catalog_path=db, device="cpu")
    failed = query(db, "SELECT metric, error FROM metric_runs WHERE status = 'failed' ORDER BY metric")
    line = "checkpoint s2: weights not finite — the run diverged; exclude this seed or ingest an earlier checkpoint"
    assert {m for m, _ in failed} >= {"performance", "hessian", "landscape", "topology", "connectivity", "cka", "similarity"}
    assert {e for _, e in failed} == {line}
    done = query(db, "SELECT metric, COUNT(*) FROM metric_runs WHERE status = 'done' GROUP BY metric")
    assert dict(done)["hessian"] == 2 and dict(done)["connectivity"] == 1
    phase, note = query(db, "SELECT phase, note FROM taxonomy")[0]
    assert phase is None and note == "phase left empty: seed 2 (s2) has weights that are not finite"


def test_finite_weights_with_a_landscape_that_is_nowhere_finite_give_the_loss_line_in_topology(tmp_path):
    """Weights scaled by 1e30 are finite but u² overflows float32, so every landscape point is inf:
    performance stores the loss as not finite, and topology (which used to fail inside its filtration
    with a raw ValueError) gives the same line as the Hessian."""
    torch.manual_seed(0)
    sd = {k: v.clone() for k, v in double_mlp().float().state_dict().items()}
    sd["2.weight"] *= 1e30
    sd["2.bias"] += 1e30
    assert all(torch.isfinite(v).all() for v in sd.values())
    assert not math.isfinite(own_loss(double_mlp().float(), sd))  # the oracle: the fresh model's own loss
    db = catalog(tmp_path, "user_models:single_mlp", [sd])
    compute(
        ["performance", "landscape", "topology", "hessian"],
        [("steps", "3"), ("k", "1"), ("no-esd", None), ("trace-probes", "0")],
        catalog_path=db,
        device="cpu",
    )
    assert query(db, "SELECT n_points, n_nonfinite FROM landscapes") == [(9, 9)]
    assert query(db, "SELECT is_finite FROM performance WHERE name = 'loss'") == [(0,)]
    line = "checkpoint s0: loss not finite — the run diverged; exclude this seed or ingest an earlier checkpoint"
    assert dict(errors(db)) == {"topology": line, "hessian": line}
