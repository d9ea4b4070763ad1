"""The job runner: planning, skipping, forcing, failure recording, executors and option parsing.

Oracles: the performance metric evaluated directly on the rebuilt model, and SQLite row counts.
"""

from __future__ import annotations

import math
import sqlite3
from dataclasses import dataclass, field
from typing import Literal

import pytest
import torch

from losslens.errors import LossLensError
from losslens.jobs import compute, load_subject
from losslens.jobs.context import CHECKPOINT_SQL
from losslens.jobs.options import build_params
from losslens.metrics.registry import Metric, Result, get_metric, load_metrics
from losslens.store import open_catalog


def rows(db, sql, args=()):
    with sqlite3.connect(db) as conn:
        return conn.execute(sql, args).fetchall()


def test_performance_fills_rows_matching_direct_evaluation(pinn_catalog):
    """Oracle: the relative L2 error recomputed here from the model's prediction and sin(x − βt)."""
    report = compute(["performance"], catalog_path=pinn_catalog, device="cpu")
    assert report.failed == 0 and report.metrics[0].done == 4
    with open_catalog(pinn_catalog, readonly=True) as cat:
        rec = cat.query(CHECKPOINT_SQL + " ORDER BY c.sha256 LIMIT 1")[0]
        stored = cat.one("SELECT value FROM performance WHERE checkpoint = ? AND name = 'rel_l2'", (rec["sha256"],))["value"]
    s = load_subject(rec, torch.device("cpu"))
    u = s.problem.predict(s.model, s.state).reshape(-1)
    exact = torch.sin(s.problem.grid[:, 0] - s.problem.beta * s.problem.grid[:, 1])
    assert stored == pytest.approx(float(torch.linalg.norm(u - exact) / torch.linalg.norm(exact)), rel=1e-5)
    names = {r[0] for r in rows(pinn_catalog, "SELECT DISTINCT name FROM performance")}
    assert names == {"loss_ic", "loss_bc", "loss_residual", "loss", "rel_l2", "mean_abs", "linf"}


def test_classifier_performance_has_train_and_test_accuracy(digits_catalog):
    compute(["performance"], catalog_path=digits_catalog, device="cpu")
    got = rows(digits_catalog, "SELECT split, name, value FROM performance WHERE name IN ('accuracy', 'error')")
    assert len(got) == 4 * 2 * 2
    by = {}
    for split, name, value in got:
        by.setdefault(split, []).append((name, value))
        assert 0.0 <= value <= 1.0
    acc = dict(rows(digits_catalog, "SELECT run_id || split, value FROM performance WHERE name = 'accuracy'"))
    err = dict(rows(digits_catalog, "SELECT run_id || split, value FROM performance WHERE name = 'error'"))
    for key in acc:
        assert acc[key] + err[key] == pytest.approx(1.0)


def test_done_jobs_are_skipped_and_force_recomputes(pinn_catalog):
    first = compute(["performance"], catalog_path=pinn_catalog, device="cpu").metrics[0]
    again = compute(["performance"], catalog_path=pinn_catalog, device="cpu").metrics[0]
    assert (first.done, again.done, again.skipped) == (4, 0, 4)
    stamps = rows(pinn_catalog, "SELECT finished_at FROM metric_runs ORDER BY id")
    forced = compute(["performance"], catalog_path=pinn_catalog, device="cpu", force=True).metrics[0]
    assert forced.done == 4
    assert rows(pinn_catalog, "SELECT finished_at FROM metric_runs ORDER BY id") != stamps
    assert rows(pinn_catalog, "SELECT COUNT(*) FROM performance")[0][0] == 4 * 7


def _counts(report) -> dict[str, tuple[int, int]]:
    return {m.metric: (m.done, m.skipped) for m in report.metrics}


def test_force_recomputes_named_metrics_and_stale_dependents_follow(pinn_catalog):
    """--force redoes the named metric only; a result computed from a requirement that was redone
    since (checkpoint scope: topology from landscape; setting scope: similarity from cka) is
    recomputed the next time it is asked for, and only once."""
    opts = [("steps", "5")]
    assert _counts(compute(["landscape", "topology"], opts, catalog_path=pinn_catalog, device="cpu")) == {
        "landscape": (4, 0),
        "topology": (4, 0),
    }
    assert _counts(compute(["topology"], opts, catalog_path=pinn_catalog, device="cpu", force=True)) == {
        "landscape": (0, 4),
        "topology": (4, 0),
    }
    assert _counts(compute(["landscape"], opts, catalog_path=pinn_catalog, device="cpu", force=True)) == {"landscape": (4, 0)}
    assert _counts(compute(["topology"], opts, catalog_path=pinn_catalog, device="cpu")) == {
        "landscape": (0, 4),
        "topology": (4, 0),
    }
    assert _counts(compute(["topology"], opts, catalog_path=pinn_catalog, device="cpu")) == {
        "landscape": (0, 4),
        "topology": (0, 4),
    }

    compute(["similarity"], catalog_path=pinn_catalog, device="cpu")
    settings = rows(pinn_catalog, "SELECT COUNT(*) FROM settings")[0][0]
    compute(["cka"], catalog_path=pinn_catalog, device="cpu", force=True)
    assert _counts(compute(["similarity"], catalog_path=pinn_catalog, device="cpu"))["similarity"] == (settings, 0)


@pytest.mark.slow
def test_process_pool_matches_serial(pinn_catalog, tmp_path):
    """Workers return results; the driver writes. Same values as the serial executor."""
    compute(["performance"], catalog_path=pinn_catalog, device="cpu", jobs=1)
    serial = rows(pinn_catalog, "SELECT checkpoint, name, value FROM performance ORDER BY 1, 2")
    compute(["performance"], catalog_path=pinn_catalog, device="cpu", jobs=2, force=True)
    pooled = rows(pinn_catalog, "SELECT checkpoint, name, value FROM performance ORDER BY 1, 2")
    assert [r[:2] for r in serial] == [r[:2] for r in pooled]
    for a, b in zip(serial, pooled, strict=True):
        assert a[2] == pytest.approx(b[2], rel=1e-6)


@dataclass(frozen=True)
class _FlakyParams:
    fail_seed: int = field(default=1, metadata={"help": "seed whose job fails"})


def _flaky(ctx, params: _FlakyParams) -> Result:
    """Fails on one seed, to exercise failure recording."""
    rec = ctx.checkpoints[0]
    if rec["seed"] == params.fail_seed:
        raise LossLensError("loss is NaN", where=rec["path"], hint="check the checkpoint")
    return Result()


def test_failure_is_recorded_and_others_go_on(pinn_catalog, register_metric):
    register_metric("test_flaky", _flaky, scope="checkpoint", params=_FlakyParams, tables=("performance",))
    report = compute(["test_flaky"], catalog_path=pinn_catalog, device="cpu").metrics[0]
    assert (report.done, report.failed) == (2, 2)
    failed = rows(pinn_catalog, "SELECT error FROM metric_runs WHERE metric = 'test_flaky' AND status = 'failed'")
    assert len(failed) == 2 and all("loss is NaN" in e and "seed1" in e for (e,) in failed)
    # failed jobs are retried on the next run, done ones skipped
    again = compute(["test_flaky"], catalog_path=pinn_catalog, device="cpu").metrics[0]
    assert (again.skipped, again.failed) == (2, 2)


@dataclass(frozen=True)
class _Opts:
    k: int = 10
    span: float = 0.01
    backend: Literal["a", "b"] = "a"
    smallest: bool = False
    names: tuple[str, ...] = ()


def _metric(name: str) -> Metric:
    return Metric(name, "checkpoint", _Opts, lambda ctx, p: Result(), ())


def test_option_values_route_convert_and_reject():
    """Oracle: the dataclass built directly with the intended values."""
    opts = [("k", "5"), ("span", 0.1), ("smallest", True), ("landscape.backend", "b"), ("names", "x,y")]
    params = build_params([_metric("hessian"), _metric("landscape")], opts)
    assert params["hessian"] == _Opts(k=5, span=0.1, backend="a", smallest=True, names=("x", "y"))
    assert params["landscape"] == _Opts(k=5, span=0.1, backend="b", smallest=True, names=("x", "y"))
    # the qualified option wins over the bare one whichever comes first
    assert build_params([_metric("h")], [("h.k", 3), ("k", 4)])["h"].k == 3
    assert build_params([_metric("h")], [("k", 4), ("h.k", 3)])["h"].k == 3
    assert build_params([_metric("h")], [("smallest", "off")])["h"].smallest is False
    # library callers name flags the command line's way: ("flag", None) is on, ("no-flag", None) off
    assert build_params([_metric("h")], [("smallest", None)])["h"].smallest is True
    assert build_params([_metric("h")], [("smallest", True), ("h.no-smallest", None)])["h"].smallest is False
    with pytest.raises(LossLensError, match="--k needs a value"):
        build_params([_metric("h")], [("k", None)])
    with pytest.raises(LossLensError, match="--kk is not an option"):
        build_params([_metric("h")], [("kk", "1")])
    with pytest.raises(LossLensError, match="not a valid int"):
        build_params([_metric("h")], [("k", "ten")])
    with pytest.raises(LossLensError, match="unknown value 'c'"):
        build_params([_metric("h")], [("backend", "c")])


def test_unknown_metric_lists_choices(pinn_catalog):
    with pytest.raises(LossLensError) as info:
        compute(["perfromance"], catalog_path=pinn_catalog)
    assert "performance" in info.value.line()


def test_unknown_experiment_is_a_clear_error(pinn_catalog):
    with pytest.raises(LossLensError, match="no experiment named"):
        compute(["performance"], catalog_path=pinn_catalog, experiment="nope")


def test_registry_has_performance():
    load_metrics()
    metric = get_metric("performance")
    assert metric.scope == "checkpoint" and "performance" in metric.tables


def test_non_finite_values_are_flagged(pinn_catalog):
    """Finite weights whose loss overflows store NULL values with is_finite = 0, never a fake number; NaN
    weights are refused with the one line every metric gives (losslens.numerics)."""
    with open_catalog(pinn_catalog, readonly=True) as cat:
        first, second = cat.query(CHECKPOINT_SQL + " ORDER BY c.path LIMIT 2")
    for rec, value in ((first, 1e30), (second, math.nan)):
        sd = torch.load(rec["path"], weights_only=True)
        last = sorted(k for k in sd["state_dict"] if k.endswith("weight"))[-1 if value == 1e30 else 0]
        sd["state_dict"][last].view(-1)[0] = value
        torch.save(sd, rec["path"])
        with sqlite3.connect(pinn_catalog) as conn:  # keep the catalog's hash in step with the edited file
            from losslens.store.ids import sha256_file

            conn.execute("PRAGMA foreign_keys = OFF")
            conn.execute("UPDATE checkpoints SET sha256 = ? WHERE sha256 = ?", (sha256_file(rec["path"]), rec["sha256"]))
    compute(["performance"], catalog_path=pinn_catalog, device="cpu")
    flagged = rows(pinn_catalog, "SELECT COUNT(*) FROM performance WHERE is_finite = 0 AND value IS NULL")[0][0]
    assert flagged >= 1
    errors = rows(pinn_catalog, "SELECT error FROM metric_runs WHERE status = 'failed'")
    assert errors == [
        (
            f"checkpoint {second['name']}: weights not finite — the run diverged; exclude this seed or ingest an earlier checkpoint",
        )
    ]


def test_changed_checkpoint_file_fails_with_reingest_hint(pinn_catalog):
    with open_catalog(pinn_catalog, readonly=True) as cat:
        rec = cat.query(CHECKPOINT_SQL + " LIMIT 1")[0]
    with open(rec["path"], "ab") as fh:
        fh.write(b"\0")
    report = compute(["performance"], catalog_path=pinn_catalog, device="cpu").metrics[0]
    assert report.failed == 1
    assert "re-ingest" in report.failures[0][1]


@dataclass(frozen=True)
class _CountParams:
    pass


def _setting_size(ctx, params: _CountParams) -> Result:
    """Records how many checkpoints its setting had, to exercise group invalidation."""
    result = Result()
    result.add("performance", checkpoint=ctx.shas[0], split="group", name="members", value=len(ctx.shas), is_finite=1)
    return result


def test_adding_a_seed_reruns_setting_jobs_and_replaces_the_stale_row(pinn_catalog, pinn_experiment, register_metric):
    """Oracle: the member count stored by a setting-scope metric after a new seed is ingested."""
    register_metric("test_setting_size", _setting_size, scope="setting", params=_CountParams, tables=("performance",))
    compute(["test_setting_size"], catalog_path=pinn_catalog, device="cpu")
    assert sorted(v for (v,) in rows(pinn_catalog, "SELECT value FROM performance WHERE name = 'members'")) == [2, 2]
    from helpers import PINN_KWARGS, save_checkpoint

    from losslens.ingest import ingest
    from losslens.models import pinn_mlp

    torch.manual_seed(2)
    save_checkpoint(pinn_experiment.parent / "runs" / "beta1_seed2.pt", pinn_mlp(**PINN_KWARGS), 2, {"beta": 1.0})
    assert ingest(pinn_experiment, pinn_catalog).count("added") == 1
    again = compute(["test_setting_size"], catalog_path=pinn_catalog, device="cpu").metrics[0]
    assert (again.done, again.skipped) == (1, 1)
    assert sorted(v for (v,) in rows(pinn_catalog, "SELECT value FROM performance WHERE name = 'members'")) == [2, 3]
    assert rows(pinn_catalog, "SELECT COUNT(*) FROM metric_runs WHERE metric = 'test_setting_size'")[0][0] == 2
