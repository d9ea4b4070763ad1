"""``--params`` globs resolved at planning (``losslens/jobs/blocks.py``): what ``--dry-run`` counts per model,
and the one-line refusal of a glob that matches nothing in some model, before any job runs.

Oracles: each model built directly in the test with its factory and the kwargs of its spec, its
``named_parameters()`` filtered by hand-written string prefixes and suffixes (no glob matcher), and the
catalog's ``metric_runs`` table (no row written by a refused command)."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest
import torch
import user_models
from helpers import PINN_KWARGS, RESNET_KWARGS, save_checkpoint, write_spec
from typer.testing import CliRunner

from losslens.cli import app
from losslens.errors import LossLensError
from losslens.ingest import ingest
from losslens.jobs import compute
from losslens.jobs.blocks import ModelBlock, skeleton
from losslens.models import pinn_mlp, resnet20


def _runs(db: Path) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT id, metric, status FROM metric_runs ORDER BY id").fetchall()


def _dry_run(db: Path, options: list[tuple[str, str]], **kwargs) -> dict[str, list[ModelBlock]]:
    blocks: dict[str, list[ModelBlock]] = {}

    def on_event(event: str, **data) -> None:
        if event == "dry_run":
            blocks[data["metric"]] = data["blocks"]

    compute(["hessian"], options, catalog_path=db, device="cpu", dry_run=True, on_event=on_event, **kwargs)
    return blocks


def _count(params: dict[str, torch.Tensor], keep) -> tuple[int, int]:
    names = [n for n in params if keep(n)]
    return len(names), sum(params[n].numel() for n in names)


def test_dry_run_counts_what_each_glob_selects_in_a_pinn(pinn_catalog):
    """The PINN is one architecture shared by both settings (β is not a model kwarg): one block, 4 checkpoints.
    '2.*' is the second Linear, '*.bias' every bias; the block is their union."""
    params = dict(pinn_mlp(**PINN_KWARGS).named_parameters())
    assert list(params) == ["0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias"]
    blocks = _dry_run(pinn_catalog, [("params", "2.*,*.bias")])["hessian"]
    assert len(blocks) == 1
    (block,) = blocks
    assert block.model == "'pinn_mlp beta=1', 'pinn_mlp beta=5' (4 checkpoints)"
    assert block.checkpoints == 4 and block.unchecked is None
    second = _count(params, lambda n: n.startswith("2."))
    biases = _count(params, lambda n: n.endswith(".bias"))
    union = _count(params, lambda n: n.startswith("2.") or n.endswith(".bias"))
    assert [(g.glob, g.tensors, g.weights) for g in block.globs] == [("2.*", *second), ("*.bias", *biases)]
    assert (second, biases, union) == ((2, 72), (3, 17), (4, 81))  # 8·8 + 8; 8 + 8 + 1; 72 + 8 + 1 (2.bias once)
    assert (block.tensors, block.weights) == union
    assert (block.total_tensors, block.total_weights) == (6, sum(p.numel() for p in params.values()))
    assert _runs(pinn_catalog) == []


def test_dry_run_resolves_each_distinct_model_of_a_resnet_sweep(digits_catalog):
    """residual on/off is a model kwarg: two architectures, each resolved, with the same names (the switch adds
    no parameter). 'layers.8.*' is the last BasicBlock (two convs, two BatchNorms), 'fc.*' the head."""
    blocks = _dry_run(digits_catalog, [("params", "layers.8.*,fc.*")])["hessian"]
    assert sorted(b.model for b in blocks) == [
        "'resnet20 residual=False' (2 checkpoints)",
        "'resnet20 residual=True' (2 checkpoints)",
    ]
    for residual in (True, False):
        params = {n: p for n, p in resnet20(residual=residual, **RESNET_KWARGS).named_parameters() if p.requires_grad}
        block = next(b for b in blocks if f"residual={residual}" in b.model)
        last = _count(params, lambda n: n.startswith("layers.8."))
        head = _count(params, lambda n: n.startswith("fc."))
        assert last[0] == 6 and head[0] == 2  # conv1, bn1 (weight, bias), conv2, bn2 (weight, bias); fc weight, bias
        assert [(g.tensors, g.weights) for g in block.globs] == [last, head]
        assert (block.tensors, block.weights) == (last[0] + head[0], last[1] + head[1])
        assert block.total_weights == sum(p.numel() for p in params.values())
    assert _runs(digits_catalog) == []


def test_a_glob_matching_nothing_stops_compute_before_any_run_is_written(pinn_catalog):
    """performance is planned first and would run first: the refusal comes before it, so no run row exists;
    the line names the metric, the flag, the glob, the model and the closest globs of that model."""
    with pytest.raises(LossLensError) as err:
        compute(["performance", "hessian"], [("params", "2.*,3.*"), ("esd", "false")], catalog_path=pinn_catalog, device="cpu")
    line = err.value.line()
    assert line.startswith(
        "hessian: --params '3.*' matches no parameter of model 'pinn_mlp beta=1', 'pinn_mlp beta=5' (4 checkpoints) — closest: "
    )
    closest = re.search(r"closest: (.*?);", line)
    assert closest is not None and "'2.*'" in closest.group(1).split(", ")  # a numbered module of this model
    assert "0.weight" in line and "\n" not in line
    assert _runs(pinn_catalog) == []
    with pytest.raises(LossLensError, match="matches no parameter"):  # a dry run refuses the same way
        _dry_run(pinn_catalog, [("params", "3.*")])


def test_a_glob_is_checked_against_every_planned_model(tmp_path, pinn_experiment, digits_experiment):
    """One catalog, two experiments: '0.*' is the PINN's first Linear but nothing of a ResNet, so the whole
    catalog is refused naming a ResNet model, while --experiment tiny-pinn plans the PINN alone and passes."""
    db = tmp_path / "catalog" / "losslens.db"
    ingest(pinn_experiment, db)
    ingest(digits_experiment, db)
    with pytest.raises(LossLensError, match=r"--params '0\.\*' matches no parameter of model 'resnet20 residual=") as err:
        _dry_run(db, [("params", "0.*")])
    assert "closest: '*.0.*'" in err.value.line()  # the ResNet's blocks numbered 0 (layers.0.…)
    blocks = _dry_run(db, [("params", "0.*")], experiment="tiny-pinn")["hessian"]
    assert [(b.tensors, b.weights) for b in blocks] == [(2, 2 * 8 + 8)]
    assert _runs(db) == []


def test_a_module_path_without_its_leading_star_suggests_it(pinn_catalog):
    """'bias' alone is no name of the PINN; '*.bias' is what was meant and comes first."""
    with pytest.raises(LossLensError, match=re.escape("closest: '*.bias'")):
        _dry_run(pinn_catalog, [("params", "bias")])


def test_skeleton_is_built_without_storage_and_names_the_trainable_parameters(pinn_catalog):
    """The skeleton's tensors are on the meta device (nothing allocated, no checkpoint read), with the names and
    shapes of the model the factory builds for real; frozen parameters are left out as at run time."""
    import json

    arch = json.dumps({"factory": "losslens.models:pinn_mlp", "kwargs": PINN_KWARGS})
    params, prefix = skeleton(arch)
    real = dict(pinn_mlp(**PINN_KWARGS).named_parameters())
    assert prefix == "" and all(t.is_meta for t in params.values())
    assert {n: tuple(t.shape) for n, t in params.items()} == {n: tuple(t.shape) for n, t in real.items()}
    frozen, _ = skeleton(json.dumps({"factory": "user_models:random_features_net", "kwargs": {"width": 6}}))
    assert list(frozen) == ["head.weight", "head.bias"]  # features.* has requires_grad=False


def test_a_factory_that_computes_while_building_falls_back_to_an_ordinary_build(tmp_path):
    """A model whose constructor reads a value from its own weights cannot be built on the meta device; it is
    built on the CPU instead and counted the same (no checkpoint read either way)."""
    import json

    params, _ = skeleton(json.dumps({"factory": "user_models:normed_net", "kwargs": {"width": 5}}))
    real = dict(user_models.normed_net(width=5).named_parameters())
    assert {n: tuple(t.shape) for n, t in params.items()} == {n: tuple(t.shape) for n, t in real.items()}
    assert not any(t.is_meta for t in params.values())


def test_a_model_that_cannot_be_built_here_is_reported_not_refused(tmp_path, monkeypatch):
    """One bad model never stops the others: a factory that fails is 'not checked' in the dry run, and a real run
    fails that model's jobs with the factory's own line while the good model's jobs run."""
    for i, factory in enumerate(("user_models:aux_head_net", "user_models:random_features_net")):
        torch.manual_seed(i)
        model = getattr(user_models, factory.split(":")[1])(width=6)
        save_checkpoint(tmp_path / f"runs{i}" / "a.pt", model, 0, {"beta": 1.0})
        problem = {"n_collocation": 24, "n_x": 8, "n_t": 4}
        spec = write_spec(
            tmp_path / f"s{i}.toml",
            f"exp{i}",
            factory,
            {"width": 6},
            "losslens.problems:convection",
            problem,
            [f"runs{i}/*.pt"],
            ["beta"],
        )
        assert ingest(spec, tmp_path / "c.db").ok

    def broken(width: int = 6):
        raise RuntimeError("this factory is broken on this machine")

    monkeypatch.setattr(user_models, "aux_head_net", broken)
    blocks = _dry_run(tmp_path / "c.db", [("params", "*.weight"), ("esd", "false"), ("trace-probes", "0"), ("k", "1")])["hessian"]
    bad = next(b for b in blocks if b.unchecked is not None)
    good = next(b for b in blocks if b.unchecked is None)
    assert "this factory is broken on this machine" in bad.unchecked and bad.checkpoints == 1
    assert (good.tensors, good.weights) == (1, 6)  # head.weight only: features.* is frozen
    report = compute(
        ["hessian"],
        [("params", "*.weight"), ("esd", "false"), ("trace-probes", "0"), ("k", "1")],
        catalog_path=tmp_path / "c.db",
        device="cpu",
    )
    assert (report.metrics[0].done, report.metrics[0].failed) == (1, 1)
    assert "this factory is broken on this machine" in report.metrics[0].failures[0][1]


def test_cli_refusal_is_one_error_line_and_dry_run_prints_the_counts(pinn_catalog):
    """Oracle: the exact error line (exit 1, nothing stored); the dry run's count lines, with the numbers of
    test_dry_run_counts_what_each_glob_selects_in_a_pinn."""
    runner = CliRunner()
    bad = runner.invoke(app, ["compute", "hessian", "--params", "9.*", "--catalog", str(pinn_catalog)], env={"COLUMNS": "400"})
    assert bad.exit_code == 1
    lines = bad.output.strip().splitlines()
    assert len(lines) == 1, bad.output
    assert lines[0].startswith(
        "error: hessian: --params '9.*' matches no parameter of model 'pinn_mlp beta=1', 'pinn_mlp beta=5' (4 checkpoints) — closest: "
    )
    assert _runs(pinn_catalog) == []
    ok = runner.invoke(
        app, ["compute", "hessian", "--params", "2.*,*.bias", "--dry-run", "--catalog", str(pinn_catalog)], env={"COLUMNS": "400"}
    )
    assert ok.exit_code == 0, ok.output
    assert "hessian: 4 jobs, 0 done before, 4 to run" in ok.output
    assert (
        "--params on model 'pinn_mlp beta=1', 'pinn_mlp beta=5' (4 checkpoints): 4 of 6 parameter tensors, 81 of 105 weights"
        in ok.output
    )
    assert "'2.*': 2 tensors, 72 weights" in ok.output and "'*.bias': 3 tensors, 17 weights" in ok.output
    assert _runs(pinn_catalog) == []


def test_a_block_too_small_for_k_is_refused_at_planning(pinn_catalog):
    """'4.bias' is the PINN's output bias, one weight (out_dim 1): --k 10 (the default) cannot fit it, so the
    command stops at planning with the largest k that fits; --k 1 fits; --k 1 with --smallest needs two."""
    params = dict(pinn_mlp(**PINN_KWARGS).named_parameters())
    assert params["4.bias"].numel() == 1
    model = "'pinn_mlp beta=1', 'pinn_mlp beta=5' (4 checkpoints)"
    with pytest.raises(LossLensError) as err:
        compute(["hessian"], [("params", "4.bias")], catalog_path=pinn_catalog, device="cpu")
    assert err.value.line() == (
        f"hessian: --k 10 asks for 10 eigenpairs, but --params 4.bias selects 1 weight of model {model} — lower --k to at "
        "most 1, or widen --params"
    )
    assert _runs(pinn_catalog) == []
    (block,) = _dry_run(pinn_catalog, [("params", "4.bias"), ("k", "1")])["hessian"]
    assert (block.tensors, block.weights) == (1, 1)
    with pytest.raises(LossLensError, match=re.escape("asks for 2 eigenpairs, but --params 4.bias selects 1 weight")) as err:
        _dry_run(pinn_catalog, [("params", "4.bias"), ("k", "1"), ("smallest", None)])
    assert err.value.hint == "leave --smallest out, or widen --params"
