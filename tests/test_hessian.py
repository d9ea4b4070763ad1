"""Tests for losslens.hessian: HVPs, Lanczos eigenpairs, Hutchinson trace, SLQ density, PyHessian backend, metric."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from losslens.errors import LossLensError
from losslens.hessian import (
    HVP,
    HVP_METHODS,
    flatten,
    hutchinson_trace,
    hvp_operator,
    lanczos_eigenpairs,
    spectral_density,
    top_eigenpairs,
    unflatten,
)
from losslens.hessian.pyhessian_backend import PyHessianBackend
from losslens.jobs import compute
from losslens.jobs.context import CHECKPOINT_SQL, Subject, load_subject
from losslens.models import mlp, pinn_mlp
from losslens.problems.base import ClassificationProblem
from losslens.problems.convection import convection
from losslens.store.catalog import open_catalog


def small_cnn() -> nn.Sequential:
    """Two conv + BatchNorm blocks and a linear head: 470 parameters."""
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Conv2d(4, 4, 3, padding=1, bias=False),
        nn.BatchNorm2d(4),
        nn.Tanh(),
        nn.Flatten(),
        nn.Linear(4 * 4 * 4, 6),
    )


def make_subject(model: nn.Module, problem, name: str = "test") -> Subject:
    model.eval()
    return Subject(
        sha256=name,
        name=name,
        model=model,
        params={k: v.detach() for k, v in model.named_parameters()},
        buffers={k: v.detach() for k, v in model.named_buffers()},
        problem=problem,
        record={},
    )


def classifier_subject(model: nn.Module, x: torch.Tensor, classes: int, seed: int = 0) -> Subject:
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, classes, (len(x),), generator=g)
    problem = ClassificationProblem("random", x, y, x[:8], y[:8], batch_size=len(x) // 2, num_classes=classes)
    return make_subject(model, problem)


def mlp_subject() -> Subject:
    torch.manual_seed(0)
    return classifier_subject(mlp(5, 3, width=12, depth=2), torch.randn(64, 5), 3)


def cnn_subject() -> Subject:
    """BatchNorm with non-trivial running statistics, so eval mode is visible in the Hessian."""
    torch.manual_seed(1)
    model = small_cnn()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    return classifier_subject(model, torch.randn(48, 1, 4, 4), 6)


def pinn_subject() -> Subject:
    torch.manual_seed(2)
    return make_subject(pinn_mlp(width=6, depth=2), convection(beta=5.0, n_collocation=40, n_x=16, n_t=8))


def dense_hessian(subject: Subject, batches: int = 1, batch_size: int | None = None) -> np.ndarray:
    """The oracle: torch.func.hessian of the same loss in float64 (model, data and weights cast)."""
    model = copy.deepcopy(subject.model).double().eval()
    params = {k: v.double() for k, v in subject.params.items()}
    buffers = {k: (v.double() if v.is_floating_point() else v) for k, v in subject.buffers.items()}
    data = [_double_batch(b) for b in subject.problem.batches("train", batch_size=batch_size, limit=batches)]
    sizes = [len(b[0]) if isinstance(b, tuple) else 1 for b in data]

    def loss(flat: torch.Tensor) -> torch.Tensor:
        state = {**unflatten(flat, params), **buffers}
        return sum(s / sum(sizes) * subject.problem.loss(model, state, b) for s, b in zip(sizes, data, strict=True))

    return torch.func.hessian(loss)(flatten(params)).numpy()


def _double_batch(batch):
    if isinstance(batch, tuple):
        x, y = batch
        return x.double(), y
    return type(batch)(*(getattr(batch, f).double() for f in batch.__dataclass_fields__))


def relerr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b) / np.abs(b)))


@pytest.mark.parametrize("make", [mlp_subject, cnn_subject, pinn_subject], ids=["mlp", "cnn-bn", "pinn"])
def test_hvp_methods_match_dense(make):
    """Oracle: the dense float64 Hessian times v. All three HVP methods (and the batched form) agree with it,
    including through the PINN's forward-mode residual and BatchNorm in eval mode."""
    subject = make()
    h = dense_hessian(subject)
    n = h.shape[0]
    v = torch.randn(3, n, generator=torch.Generator().manual_seed(3))
    expected = v.double().numpy() @ h
    for method in HVP_METHODS:
        op = hvp_operator(subject, method=method)
        assert op.n == n
        got = torch.stack([op(row) for row in v]).double().numpy()
        assert np.abs(got - expected).max() <= 1e-4 * np.abs(expected).max(), method
        assert np.allclose(op.many(v).double().numpy(), got, rtol=1e-4, atol=1e-5 * np.abs(got).max())
        assert op.count == 6
    assert all(p.grad is None for p in subject.model.parameters())


@pytest.mark.parametrize("make", [mlp_subject, cnn_subject, pinn_subject], ids=["mlp", "cnn-bn", "pinn"])
def test_top_k_matches_dense_eigh(make):
    """Oracle: numpy.linalg.eigh of the dense float64 Hessian. Top-10 and the most negative eigenvalue match
    to ≤ 1e-4 relative error, and each eigenvector satisfies H v ≈ λ v."""
    subject = make()
    h = dense_hessian(subject)
    exact = np.linalg.eigvalsh(h)
    pairs = lanczos_eigenpairs(hvp_operator(subject), largest=10, smallest=1)
    assert pairs.converged
    assert relerr(pairs.largest, exact[::-1][:10]) <= 1e-4
    assert relerr(pairs.smallest, exact[:1]) <= 1e-4
    assert exact[0] < 0 and pairs.smallest[0] < 0  # these untrained networks are indefinite
    assert np.all(np.diff(pairs.largest) <= 0)
    for value, vector in zip(pairs.largest, pairs.largest_vectors, strict=True):
        assert np.linalg.norm(h @ vector - value * vector) <= 1e-3 * np.abs(exact).max()
    assert np.allclose(np.linalg.norm(pairs.largest_vectors, axis=1), 1.0)


def test_indefinite_quadratic_signs():
    """Oracle: closed form. For L(θ) = ½ θᵀAθ with A = Q diag(λ) Qᵀ, H = A, so the eigenvalues are λ exactly,
    negative ones with their sign, in the requested order."""
    g = torch.Generator().manual_seed(4)
    n = 60
    lam = torch.cat([torch.tensor([-7.0, -2.5]), torch.linspace(-1.0, 1.0, n - 4), torch.tensor([3.0, 11.0])]).double()
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    a = q @ torch.diag(lam) @ q.T
    op = HVP(lambda p: 0.5 * p["theta"] @ a @ p["theta"], {"theta": torch.randn(n, dtype=torch.float64, generator=g)})
    values, vectors = top_eigenpairs(op, k=2, which="smallest")
    assert np.allclose(values, [-7.0, -2.5], rtol=1e-8)
    assert abs(abs(vectors[0] @ q[:, 0].numpy()) - 1) < 1e-8
    values, _ = top_eigenpairs(op, k=2, which="largest")
    assert np.allclose(values, [11.0, 3.0], rtol=1e-8)


def test_flatten_roundtrip():
    """Invariance: unflatten(flatten(p), p) returns p, in the iteration order of the dict."""
    subject = cnn_subject()
    flat = flatten(subject.params)
    back = unflatten(flat, subject.params)
    assert list(back) == list(subject.params)
    assert all(torch.equal(back[k], subject.params[k]) for k in back)
    with pytest.raises(ValueError):
        unflatten(flat[:-1], subject.params)


@pytest.mark.parametrize("make", [cnn_subject, pinn_subject], ids=["cnn-bn", "pinn"])
def test_hutchinson_within_four_standard_errors(make):
    """Oracle: the trace of the dense Hessian. The fixed-probe Hutchinson estimate lies within 4 standard errors."""
    subject = make()
    exact = float(np.trace(dense_hessian(subject)))
    op = hvp_operator(subject)
    est = hutchinson_trace(op, probes=200, seed=5, block=8)
    assert est.probes == 200 and op.count == 200
    assert abs(est.estimate - exact) <= 4 * est.std_error
    assert est.std_error < abs(exact)


def test_esd_integrates_to_one_and_first_moment_is_trace_over_n():
    """Oracle: the dense Hessian's trace / n. The broadened SLQ density integrates to 1 (trapezoid), its
    mean equals the quadrature's first moment, which lies within 4 standard errors (over runs) of tr H / n."""
    subject = mlp_subject()
    h = dense_hessian(subject)
    n = h.shape[0]
    slq = spectral_density(hvp_operator(subject), runs=20, steps=30, seed=6)
    assert slq.nodes.shape == (20, 30)
    assert np.allclose(slq.weights.sum(axis=1), 1.0)
    x, density = slq.density(points=512, sigma=0.01)
    assert np.trapezoid(density, x) == pytest.approx(1.0, abs=1e-4)
    moments = slq.moments(1)
    assert np.trapezoid(x * density, x) == pytest.approx(moments.mean(), rel=1e-4, abs=1e-6)
    se = moments.std(ddof=1) / np.sqrt(len(moments))
    assert abs(moments.mean() - np.trace(h) / n) <= 4 * se
    # The extreme nodes are Ritz values, which lie inside [λ_min, λ_max].
    exact = np.linalg.eigvalsh(h)
    assert exact[0] - 1e-5 <= slq.nodes.min() and slq.nodes.max() <= exact[-1] + 1e-5


@pytest.mark.parametrize("make", [mlp_subject, pinn_subject], ids=["mlp", "pinn"])
def test_pyhessian_backend_agrees(make):
    """Oracle: our Lanczos top-1 (checked against dense above) and the dense trace. PyHessian's power iteration
    agrees on the top eigenvalue within a few times its tolerance, and its trace samples within 4 standard errors.
    The PINN goes through PyHessian via ProblemLoss; the original module is never touched."""
    subject = make()
    h = dense_hessian(subject, batches=2)
    ours, _ = top_eigenpairs(hvp_operator(subject, batches=2), k=1)
    backend = PyHessianBackend(subject, batches=2)
    tol = 1e-5
    values, vectors = backend.eigenpairs(k=1, tol=tol, max_iter=2000, seed=0)
    assert abs(values[0] - ours[0]) <= 10 * tol * abs(ours[0])
    assert vectors.shape == (1, h.shape[0])
    assert backend.count >= 2
    trace = backend.trace(probes=100, seed=1)
    assert trace.probes == 100
    assert abs(trace.estimate - np.trace(h)) <= 4 * trace.std_error
    backend.close()
    assert all(p.grad is None for p in subject.model.parameters())


def test_pyhessian_averages_batches_like_ours():
    """Oracle: the dense Hessian of the size-weighted mean loss over two batches (the last one smaller);
    PyHessian's dataloader mode and our operator both reproduce its top eigenvalue."""
    torch.manual_seed(0)
    subject = classifier_subject(mlp(5, 3, width=12, depth=2), torch.randn(50, 5), 3)
    exact = np.linalg.eigvalsh(dense_hessian(subject, batches=2, batch_size=32))[-1]
    ours, _ = top_eigenpairs(hvp_operator(subject, batches=2, batch_size=32), k=1)
    backend = PyHessianBackend(subject, batches=2, batch_size=32)
    theirs, _ = backend.eigenpairs(k=1, tol=1e-6, max_iter=2000)
    backend.close()
    assert backend.batches == 2
    assert ours[0] == pytest.approx(exact, rel=1e-5)
    assert theirs[0] == pytest.approx(exact, rel=1e-4)


LATEST_RUN = (
    "SELECT id FROM metric_runs WHERE metric='hessian' AND checkpoint=? AND status='done' ORDER BY finished_at DESC LIMIT 1"
)


def test_compute_fills_tables_for_every_checkpoint(pinn_catalog):
    """Oracle: numpy eigh of each stored checkpoint's dense Hessian (rebuilt from the catalog record).
    Every checkpoint gets its eigenvalues (top-3 and the most negative), unit eigenvectors loadable by the
    landscape metric's query, a trace row, an ESD grid that integrates to 1 and a summary row."""
    opts = [("k", "3"), ("smallest", None), ("trace-probes", "20"), ("esd-runs", "2"), ("esd-steps", "10"), ("esd-sigma", "0.05")]
    report = compute(["hessian"], opts, catalog_path=pinn_catalog, device="cpu")
    assert report.failed == 0 and report.metrics[0].done == 4
    with open_catalog(pinn_catalog, readonly=True) as cat:
        records = cat.query(CHECKPOINT_SQL)
        assert len(records) == 4
        for record in records:
            run = cat.one(LATEST_RUN, (record["sha256"],))
            vectors = cat.run_artifact(run["id"], "eigenvectors")
            n = record["n_params"]
            assert vectors.shape == (3, n) and vectors.dtype == np.float32
            assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)
            rows = cat.query(
                "SELECT which, rank, value FROM hessian_eigenvalues WHERE run_id=? ORDER BY which, rank", (run["id"],)
            )
            largest = np.array([r["value"] for r in rows if r["which"] == "largest"])
            smallest = np.array([r["value"] for r in rows if r["which"] == "smallest"])
            exact = np.linalg.eigvalsh(dense_hessian(load_subject(record, torch.device("cpu"))))
            assert relerr(largest, exact[::-1][:3]) <= 1e-4
            assert relerr(smallest, exact[:1]) <= 1e-4
            trace = cat.one("SELECT * FROM hessian_trace WHERE run_id=?", (run["id"],))
            assert trace["probes"] == 20 and abs(trace["estimate"] - exact.sum()) <= 4 * trace["std_error"]
            esd = cat.query("SELECT x, density FROM hessian_esd WHERE run_id=? ORDER BY x", (run["id"],))
            assert len(esd) == 256
            assert np.trapezoid([r["density"] for r in esd], [r["x"] for r in esd]) == pytest.approx(1.0, abs=1e-3)
            summary = cat.one("SELECT * FROM hessian_summaries WHERE run_id=?", (run["id"],))
            assert summary["backend"] == "lanczos" and summary["converged"] == 1 and summary["bn_mode"] is None
            assert summary["tolerance"] == 1e-6 and summary["eigen_hvps"] == summary["lanczos_steps"] > 3
            assert summary["trace_hvps"] == 20 and summary["esd_hvps"] == 20 and summary["n_params"] == n


def test_compute_pyhessian_backend_from_options(pinn_catalog):
    """Oracle: the dense Hessian's top eigenvalue. `--backend pyhessian --batches 2` is routed from the
    command-line options and stores PyHessian's top-2 (within its default tolerance) and trace."""
    opts = [("backend", "pyhessian"), ("k", "2"), ("batches", "2"), ("trace-probes", "10"), ("no-esd", None)]
    report = compute(["hessian"], opts, catalog_path=pinn_catalog, device="cpu")
    assert report.failed == 0 and report.metrics[0].done == 4
    with open_catalog(pinn_catalog, readonly=True) as cat:
        record = cat.query(CHECKPOINT_SQL)[0]
        run = cat.one(LATEST_RUN, (record["sha256"],))
        top = cat.one("SELECT value FROM hessian_eigenvalues WHERE run_id=? AND rank=0", (run["id"],))["value"]
        exact = np.linalg.eigvalsh(dense_hessian(load_subject(record, torch.device("cpu"))))[-1]
        assert top == pytest.approx(exact, rel=1e-2)
        summary = cat.one("SELECT * FROM hessian_summaries WHERE run_id=?", (run["id"],))
        assert summary["backend"] == "pyhessian" and summary["tolerance"] == 1e-3 and summary["max_iter"] == 100
        assert summary["trace_hvps"] == 10 and summary["esd_method"] is None and summary["batches"] == 1
        assert cat.one("SELECT count(*) AS n FROM hessian_esd WHERE run_id=?", (run["id"],))["n"] == 0


def test_compute_on_batchnorm_records_eval_mode(digits_catalog):
    """Oracle: the stored summary and the model's own BatchNorm buffers. Every ResNet checkpoint records
    bn_mode 'eval', the problem's batch size, and a converged top-2."""
    opts = [("k", "2"), ("trace-probes", "4"), ("no-esd", None)]
    report = compute(["hessian"], opts, catalog_path=digits_catalog, device="cpu")
    assert report.failed == 0 and report.metrics[0].done == 4
    with open_catalog(digits_catalog, readonly=True) as cat:
        rows = cat.query("SELECT * FROM hessian_summaries")
        assert len(rows) == 4
        assert all(r["bn_mode"] == "eval" and r["batch_size"] == 64 and r["converged"] == 1 for r in rows)
        assert cat.one("SELECT count(*) AS n FROM hessian_eigenvalues")["n"] == 8


def test_bad_options_are_user_errors(pinn_catalog):
    """Oracle: the error contract. Impossible options fail with a LossLensError naming the problem."""
    with pytest.raises(LossLensError, match="smallest"):
        compute(["hessian"], [("backend", "pyhessian"), ("smallest", None)], catalog_path=pinn_catalog)
    with pytest.raises(LossLensError, match="trace_probes"):
        compute(["hessian"], [("trace-probes", "1")], catalog_path=pinn_catalog)
    with pytest.raises(LossLensError, match="esd_points"):
        compute(["hessian"], [("esd-points", "64")], catalog_path=pinn_catalog)


def test_params_glob_is_a_block_of_the_dense_hessian(pinn_catalog):
    """Oracle: the dense Hessian's diagonal block over the matched parameters (numpy eigh). `--params '2.*'`
    differentiates only the middle layer; its eigenvalues are that block's, and the landscape embeds the
    block's eigenvectors with zeros elsewhere."""
    report = compute(
        ["hessian"], [("k", "2"), ("params", "2.*"), ("trace-probes", "0"), ("esd", "false")], catalog_path=pinn_catalog
    )
    assert report.failed == 0
    with open_catalog(pinn_catalog, readonly=True) as cat:
        record = cat.query(CHECKPOINT_SQL)[0]
        run = cat.one(LATEST_RUN, (record["sha256"],))
        values = [
            r["value"] for r in cat.query("SELECT value FROM hessian_eigenvalues WHERE run_id=? ORDER BY rank", (run["id"],))
        ]
        summary = cat.one("SELECT n_params FROM hessian_summaries WHERE run_id=?", (run["id"],))
    subject = load_subject(record, torch.device("cpu"))
    sizes = [p.numel() for p in subject.params.values()]
    start = sum(sizes[:2])  # '0.weight', '0.bias' come first; '2.weight', '2.bias' are the block
    block = slice(start, start + sizes[2] + sizes[3])
    assert summary["n_params"] == sizes[2] + sizes[3] == 72
    exact = np.linalg.eigvalsh(dense_hessian(subject)[block, block])[::-1][:2]
    assert relerr(np.array(values), exact) <= 1e-4
    report = compute(["landscape"], [("directions", "hessian"), ("steps", "3")], catalog_path=pinn_catalog)
    assert report.failed == 0
    with open_catalog(pinn_catalog, readonly=True) as cat:
        row = cat.one("SELECT direction_source, directions_artifact FROM landscapes WHERE checkpoint=?", (record["sha256"],))
        directions = cat.artifact(row["directions_artifact"])
    assert "--params 2.*" in row["direction_source"]
    assert np.all(directions[:, : block.start] == 0) and np.all(directions[:, block.stop :] == 0)


def test_params_glob_that_matches_nothing_is_refused(pinn_catalog):
    """A glob matching no parameter stops compute at planning (tests/test_blocks.py), in one line listing names
    to choose from; no job runs, so no run is stored."""
    with pytest.raises(LossLensError) as err:
        compute(["hessian"], [("params", "layers.11.*"), ("esd", "false")], catalog_path=pinn_catalog)
    error = err.value.line()
    assert "'layers.11.*' matches no parameter" in error and "0.weight" in error
    with open_catalog(pinn_catalog, readonly=True) as cat:
        assert cat.query("SELECT id FROM metric_runs") == []


def test_k_above_the_parameter_count_fails_each_job_in_one_line(pinn_catalog):
    """Without --params the whole model is the block, checked per job (planning checks --params blocks,
    tests/test_blocks.py): the tiny PINN 2-8-8-1 has 2·8 + 8 + 8·8 + 8 + 8 + 1 = 105 weights."""
    report = compute(["hessian"], [("k", "200"), ("esd", "false"), ("trace-probes", "0")], catalog_path=pinn_catalog)
    assert report.failed == 4
    assert report.metrics[0].failures[0][1] == (
        "hessian: --k 200 asks for 200 eigenpairs, but the model has 105 weights — lower --k to at most 105"
    )


def test_memory_budget_refuses_with_the_option_that_fits(pinn_catalog):
    """A budget below the estimate refuses before any HVP, naming the largest term and a setting that fits, and
    re-running with that setting is not refused (tests/test_memory.py does this over a grid of budgets).
    Closed form for the basis term: min(steps, n) × n × 8 bytes (a run takes at most n steps)."""
    import shlex

    from losslens.memory import GIB

    n = 8 * 2 + 8 + 8 * 8 + 8 + 8 + 1
    basis = min(300, n) * n * 8  # --max-iter 300 (the default) dominates the tiny PINN's estimate
    opts = [("k", "2"), ("trace-probes", "0"), ("esd", "false"), ("memory-gb", str(basis / 2 / GIB))]
    report = compute(["hessian"], opts, catalog_path=pinn_catalog)
    assert report.failed == 4
    error = report.metrics[0].failures[0][1]
    assert "more than --memory-gb" in error and "Lanczos basis" in error and " — use " in error
    words = shlex.split(error.split(" — use ", 1)[1].rsplit(" (about ", 1)[0])
    changes = dict(zip(words[::2], words[1::2], strict=True))
    assert set(changes) <= {"--max-iter", "--params"}, error  # the PINN is one full batch: no data option
    report = compute(["hessian"], [*opts, *((k[2:], v) for k, v in changes.items())], catalog_path=pinn_catalog)
    assert report.failed == 0
