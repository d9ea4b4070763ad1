"""Checkpoint layouts people have: each read into exactly the weights that were saved, or refused in one line.

Oracles: the state dict each test saved itself (``torch.equal`` on every tensor after the catalog
record is loaded back as a model), the file system (no sentinel, no catalog rows for bad files)
and the exact refusal lines. The Lightning and timm files are built with the keys those libraries
write (Lightning 2.x: ``state_dict``/``hyper_parameters``/``global_step``/``optimizer_states``/
``loops``; timm: ``state_dict``/``state_dict_ema``/``args``/``arch``), since neither is installed.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import PINN_KWARGS, write_spec
from safetensors.torch import save_file

from losslens.checkpoints import read_checkpoint
from losslens.ingest import ingest
from losslens.jobs.context import load_subject
from losslens.models import pinn_mlp

RECORD_SQL = (
    "SELECT c.*, m.name AS model_name, m.setting_id, m.experiment_id, m.architecture_json, m.problem_json, "
    "m.hparams_json FROM checkpoints c JOIN models m ON m.id = c.model_id WHERE c.path = ?"
)


def spec_for(tmp_path: Path, globs: list[str], extra: str = "") -> Path:
    spec = write_spec(
        tmp_path / "exp.toml",
        "exp",
        "losslens.models:pinn_mlp",
        PINN_KWARGS,
        "losslens.problems:convection",
        {"n_collocation": 16, "n_x": 8, "n_t": 4},
        globs,
        [],
    )
    if extra:
        spec.write_text(spec.read_text().replace("[settings]", extra + "\n[settings]"))
    return spec


def model_and_state(seed: int = 0) -> tuple[torch.nn.Module, dict[str, torch.Tensor]]:
    torch.manual_seed(seed)
    model = pinn_mlp(**PINN_KWARGS)
    return model, {k: v.clone() for k, v in model.state_dict().items()}


def record(db: Path, path: Path) -> dict:
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        row = conn.execute(RECORD_SQL, (str(path.resolve()),)).fetchone()
    assert row is not None, path
    return dict(row)


def assert_loads_as(db: Path, path: Path, state: dict[str, torch.Tensor]) -> dict:
    """The catalog record rebuilds a model whose every tensor equals ``state``; returns the record."""
    rec = record(db, path)
    subject = load_subject(rec, torch.device("cpu"))
    loaded = subject.model.state_dict()
    assert set(loaded) == set(state)
    for key, tensor in state.items():
        assert torch.equal(loaded[key], tensor.to(loaded[key].dtype)), key
    return rec


def outcome(report, name: str):
    return next(o for o in report.outcomes if o.path.name == name)


def test_plain_state_dict(tmp_path):
    _, sd = model_and_state()
    path = tmp_path / "runs" / "plain.pt"
    path.parent.mkdir()
    torch.save(sd, path)
    db = tmp_path / "c.db"
    report = ingest(spec_for(tmp_path, ["runs/*"]), db)
    assert report.ok and outcome(report, "plain.pt").layout == "state-dict"
    assert_loads_as(db, path, sd)


def test_training_loop_bundle_keeps_json_metadata_and_bad_file_does_not_stop_batch(tmp_path):
    """The tutorials' bundle: epoch -> step, loss tensor -> number, optimizer state dropped with a note.
    A truncated file sorted before it fails alone; the bundle and a file after it land."""
    model, sd = model_and_state()
    opt = torch.optim.Adam(model.parameters())
    model(torch.ones(3, 2)).sum().backward()
    opt.step()
    sd = {k: v.clone() for k, v in model.state_dict().items()}
    runs = tmp_path / "runs"
    runs.mkdir()
    bundle = {"epoch": 7, "model_state_dict": sd, "optimizer_state_dict": opt.state_dict(), "loss": torch.tensor(0.25)}
    torch.save(bundle, runs / "b_bundle.pt")
    (runs / "a_truncated.pt").write_bytes((runs / "b_bundle.pt").read_bytes()[:200])
    torch.save(model_and_state(1)[1], runs / "c_after.pt")
    db = tmp_path / "c.db"
    report = ingest(spec_for(tmp_path, ["runs/*.pt"]), db)
    assert [o.status for o in report.outcomes] == ["failed", "added", "added"]
    assert outcome(report, "b_bundle.pt").layout == "training-loop"
    assert "optimizer_state_dict dropped (not part of the model)" in outcome(report, "b_bundle.pt").notes
    rec = assert_loads_as(db, runs / "b_bundle.pt", sd)
    meta = json.loads(rec["meta_json"])
    assert rec["step"] == 7 and meta["loss"] == 0.25 and "optimizer_state_dict" not in meta
    assert meta["losslens"]["layout"] == "training-loop"


@pytest.mark.parametrize("wrap", ["dataparallel", "compile"])
def test_dataparallel_and_compile_prefixes_are_removed(tmp_path, wrap):
    model, sd = model_and_state()
    wrapped = torch.nn.DataParallel(model) if wrap == "dataparallel" else torch.compile(model)
    saved = wrapped.state_dict()
    prefix = "module." if wrap == "dataparallel" else "_orig_mod."
    assert all(k.startswith(prefix) for k in saved)
    path = tmp_path / "runs" / "w.pt"
    path.parent.mkdir()
    torch.save(saved, path)
    db = tmp_path / "c.db"
    report = ingest(spec_for(tmp_path, ["runs/*"]), db)
    assert report.ok, report.outcomes
    assert outcome(report, "w.pt").notes == (f"prefix {prefix!r} removed",)
    assert_loads_as(db, path, sd)


def test_batchnorm_without_num_batches_tracked_loads_as_torch_loads_it(tmp_path):
    """Checkpoints from before torch 0.4.1 (and many converted ones) lack BatchNorm's num_batches_tracked;
    torch's own load_state_dict accepts them, so LossLens does too, also under a DataParallel prefix.
    Oracle: a fresh model loaded by torch's load_state_dict from the same dict."""
    from user_models import bn_mlp

    torch.manual_seed(0)
    model = bn_mlp()
    model[1].running_mean.uniform_(-1, 1)
    model[1].running_var.uniform_(0.5, 2)
    old = {k: v.clone() for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    oracle = bn_mlp()
    oracle.load_state_dict(old)
    runs = tmp_path / "runs"
    runs.mkdir()
    torch.save(old, runs / "old.pt")
    torch.save({f"module.{k}": v for k, v in old.items()}, runs / "old_dp.pt")
    spec = write_spec(
        tmp_path / "exp.toml",
        "exp",
        "user_models:bn_mlp",
        {},
        "losslens.problems:convection",
        {"n_collocation": 16, "n_x": 8, "n_t": 4},
        ["runs/*.pt"],
        [],
    )
    db = tmp_path / "c.db"
    report = ingest(spec, db)
    assert report.ok, report.outcomes
    note = "1 BatchNorm num_batches_tracked absent, set to 0 as torch's load_state_dict does"
    assert outcome(report, "old.pt").notes == (note,)
    assert outcome(report, "old_dp.pt").notes == ("prefix 'module.' removed", note)
    for name in ("old.pt", "old_dp.pt"):
        assert_loads_as(db, runs / name, oracle.state_dict())


def lightning_ckpt(sd: dict[str, torch.Tensor], extra: dict[str, torch.Tensor] | None = None) -> dict:
    return {
        "epoch": 3,
        "global_step": 120,
        "pytorch-lightning_version": "2.4.0",
        "state_dict": {**{f"model.{k}": v for k, v in sd.items()}, **(extra or {})},
        "hyper_parameters": {"args": argparse.Namespace(lr=0.1, width=8), "beta": np.float64(2.5)},
        "optimizer_states": [{"state": {}, "param_groups": [{"lr": 0.1}]}],
        "lr_schedulers": [],
        "callbacks": {},
        "loops": {"fit_loop": {}},
    }


def test_lightning_needs_an_explicit_allow_list_then_reads_prefix_hparams_and_step(tmp_path):
    _, sd = model_and_state()
    path = tmp_path / "runs" / "last.ckpt"
    path.parent.mkdir()
    torch.save(lightning_ckpt(sd, {"criterion.pos_weight": torch.ones(1)}), path)
    spec = spec_for(tmp_path, ["runs/*.ckpt"])
    db = tmp_path / "c.db"
    refused = ingest(spec, db)
    assert refused.outcomes[0].error == (
        f"{path}: refused: the file needs globals that are not weights (argparse.Namespace, numpy._core.multiarray.scalar, "
        "numpy.dtype) — if you trust the file, ingest with --allow-global argparse.Namespace --allow-global "
        "numpy._core.multiarray.scalar --allow-global numpy.dtype ([checkpoints] allow_globals in the spec); "
        "or save model.state_dict()"
    )
    report = ingest(spec, db, allow_globals=("argparse.Namespace", "numpy"))
    o = outcome(report, "last.ckpt")
    assert report.ok and o.layout == "lightning"
    assert "prefix 'model.' removed; 1 tensors outside it dropped" in o.notes
    assert "optimizer_states dropped (training state, not the model)" in o.notes
    rec = assert_loads_as(db, path, sd)
    assert rec["step"] == 120
    hparams = json.loads(rec["hparams_json"])
    assert hparams == {"args": {"lr": 0.1, "width": 8}, "beta": 2.5}
    assert json.loads(rec["problem_json"])["kwargs"]["beta"] == 2.5  # merged into the problem's kwargs


def test_lightning_prefix_from_the_spec_and_ambiguous_prefixes(tmp_path):
    _, sd = model_and_state()
    runs = tmp_path / "runs"
    runs.mkdir()
    twins = {**{f"teacher.{k}": v for k, v in sd.items()}, **{f"student.{k}": v + 1 for k, v in sd.items()}}
    torch.save(twins, runs / "distill.pt")
    db = tmp_path / "c.db"
    report = ingest(spec_for(tmp_path, ["runs/*.pt"]), db)
    assert report.outcomes[0].error == (
        f"{runs / 'distill.pt'}: the keys match the model under several prefixes ('student.', 'teacher.') — "
        'choose one with [checkpoints] prefix = "..." in the spec'
    )
    report = ingest(spec_for(tmp_path, ["runs/*.pt"], 'prefix = "student."\n'), db)  # inside [checkpoints]
    assert report.ok, report.outcomes
    assert_loads_as(db, runs / "distill.pt", {k: v + 1 for k, v in sd.items()})


def test_timm_pth_tar_state_dict_and_ema(tmp_path):
    _, sd = model_and_state(0)
    _, ema = model_and_state(1)
    path = tmp_path / "runs" / "checkpoint-5.pth.tar"
    path.parent.mkdir()
    args = argparse.Namespace(model="mlp", lr=0.05, epochs=10)
    torch.save({"epoch": 5, "arch": "mlp", "state_dict": sd, "state_dict_ema": ema, "optimizer": {}, "args": args}, path)
    db = tmp_path / "c.db"
    report = ingest(spec_for(tmp_path, ["runs/*.tar"]), db, allow_globals=("argparse.Namespace",))
    o = outcome(report, path.name)
    assert report.ok and o.layout == "timm"
    assert "state_dict_ema not used (set [checkpoints] ema = true to read it)" in o.notes
    rec = assert_loads_as(db, path, sd)
    assert rec["step"] == 5 and json.loads(rec["hparams_json"]) == {"model": "mlp", "lr": 0.05, "epochs": 10}
    ema_db = tmp_path / "ema.db"
    spec = spec_for(tmp_path, ["runs/*.tar"], "")
    spec.write_text(spec.read_text().replace('paths = ["runs/*.tar"]', 'paths = ["runs/*.tar"]\nema = true'))
    assert ingest(spec, ema_db, allow_globals=("argparse.Namespace",)).ok
    assert_loads_as(ema_db, path, ema)


def hf_folder(root: Path, sd: dict[str, torch.Tensor], shards: int = 1, config: dict | None = None) -> Path:
    root.mkdir(parents=True)
    (root / "config.json").write_text(json.dumps(config or {"model_type": "toy", "hidden_size": 8}))
    if shards == 1:
        save_file(sd, str(root / "model.safetensors"))
        return root
    names = list(sd)
    weight_map = {}
    for i in range(shards):
        shard = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        part = {k: sd[k].contiguous() for k in names[i::shards]}
        save_file(part, str(root / shard))
        weight_map.update(dict.fromkeys(part, shard))
    (root / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return root


def test_hugging_face_folders_single_sharded_and_legacy_bin(tmp_path):
    _, sd = model_and_state()
    single = hf_folder(tmp_path / "runs" / "hf_single", sd)
    sharded = hf_folder(tmp_path / "runs" / "hf_sharded", sd, shards=3)
    legacy = tmp_path / "runs" / "hf_bin"
    legacy.mkdir()
    (legacy / "config.json").write_text("{}")
    torch.save(sd, legacy / "pytorch_model.bin")
    db = tmp_path / "c.db"
    report = ingest(spec_for(tmp_path, ["runs/hf_*"]), db)
    assert report.ok, report.outcomes
    assert {o.path.name: o.layout for o in report.outcomes} == dict.fromkeys(["hf_bin", "hf_sharded", "hf_single"], "huggingface")
    for folder in (single, sharded, legacy):
        rec = assert_loads_as(db, folder, sd)
        assert rec["format"] == ("torch" if folder is legacy else "safetensors")
    assert json.loads(record(db, single)["meta_json"])["config"] == {"model_type": "toy", "hidden_size": 8}
    direct = read_checkpoint(sharded)
    assert direct.layout == "huggingface" and direct.meta["weights"] == "model.safetensors.index.json"


def test_hugging_face_refusals(tmp_path):
    _, sd = model_and_state()
    runs = tmp_path / "runs"
    remote = hf_folder(runs / "remote", sd, config={"auto_map": {"AutoModel": "modeling_x.X"}})
    broken = hf_folder(runs / "broken", sd, shards=2)
    (broken / "model-00002-of-00002.safetensors").unlink()
    db = tmp_path / "c.db"
    report = ingest(spec_for(tmp_path, ["runs/*"]), db)
    errors = {o.path.name: o.error for o in report.outcomes}
    assert errors == {
        "broken": f"{broken}: shard model-00002-of-00002.safetensors listed in model.safetensors.index.json is missing — "
        "copy every shard",
        "remote": f"{remote / 'config.json'}: refused: config.json has auto_map, so the model needs the folder's own Python "
        "code (trust_remote_code) — LossLens never runs code from checkpoints; build the model with a [model] factory you trust",
    }
    assert not db.exists() or sqlite3.connect(db).execute("SELECT COUNT(*) FROM checkpoints").fetchone() == (0,)


def test_mlflow_state_dict_read_and_pickled_module_refused(tmp_path):
    model, sd = model_and_state()
    runs = tmp_path / "runs"
    good = runs / "mlflow_weights"
    (good / "data").mkdir(parents=True)
    (good / "MLmodel").write_text("flavors:\n  pytorch: {}\n")
    torch.save(sd, good / "state_dict.pth")
    pickled = runs / "mlflow_model"
    (pickled / "data").mkdir(parents=True)
    (pickled / "MLmodel").write_text("flavors:\n  pytorch: {}\n")
    torch.save(model, pickled / "data" / "model.pth")
    db = tmp_path / "c.db"
    report = ingest(spec_for(tmp_path, ["runs/mlflow_*"]), db)
    assert outcome(report, "mlflow_weights").layout == "mlflow"
    assert outcome(report, "mlflow_model").error == (
        f"{pickled}: refused: MLflow saved a whole pickled module (data/model.pth); loading it would run its code — log the "
        "weights instead with mlflow.pytorch.log_state_dict(model.state_dict(), path) and ingest state_dict.pth"
    )
    assert_loads_as(db, good, sd)
    # The same pickled module pointed at directly is refused by the torch reader, naming the class.
    report = ingest(spec_for(tmp_path, ["runs/mlflow_model/data/model.pth"]), db)
    assert report.outcomes[0].error == (
        f"{pickled / 'data' / 'model.pth'}: refused: the file is a whole pickled module (torch.nn.modules.activation.Tanh); "
        "rebuilding it would run its code — save the weights instead: torch.save(model.state_dict(), path) or safetensors"
    )


def test_low_precision_file_is_cast_to_the_models_dtype_with_a_note(tmp_path):
    _, sd = model_and_state()
    path = tmp_path / "runs" / "half.safetensors"
    path.parent.mkdir()
    save_file({k: v.to(torch.bfloat16) for k, v in sd.items()}, str(path))
    db = tmp_path / "c.db"
    report = ingest(spec_for(tmp_path, ["runs/*"]), db)
    assert report.outcomes[0].notes == (f"{len(sd)} tensors cast from bfloat16 to float32 (the model's dtype)",)
    assert_loads_as(db, path, {k: v.to(torch.bfloat16).to(torch.float32) for k, v in sd.items()})


def test_allow_global_refuses_names_that_could_run_commands(tmp_path):
    from losslens.errors import LossLensError

    _, sd = model_and_state()
    (tmp_path / "runs").mkdir()
    torch.save(sd, tmp_path / "runs" / "a.pt")
    with pytest.raises(LossLensError) as err:
        ingest(spec_for(tmp_path, ["runs/*"]), tmp_path / "c.db", allow_globals=("os.system",))
    assert err.value.line() == (
        "--allow-global os.system: refused, it could run commands while loading — allow only data classes such as "
        "argparse.Namespace"
    )


def test_dry_run_reports_each_layout_in_the_cli(tmp_path):
    _, sd = model_and_state()
    runs = tmp_path / "runs"
    runs.mkdir()
    torch.save(sd, runs / "plain.pt")
    torch.save({"epoch": 2, "model_state_dict": sd}, runs / "loop.pt")
    hf_folder(runs / "hf", sd)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "losslens",
            "ingest",
            str(spec_for(tmp_path, ["runs/*"])),
            "--dry-run",
            "--catalog",
            str(tmp_path / "c.db"),
        ],
        capture_output=True,
        text=True,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path(__file__).parents[1])},
    )
    assert proc.returncode == 0, proc.stderr
    rows = {line.split("│")[3].strip(): line.split("│")[4].strip() for line in proc.stdout.splitlines() if line.count("│") >= 6}
    assert rows == {"hf": "huggingface", "loop.pt": "training-loop", "plain.pt": "state-dict"}
    assert not (tmp_path / "c.db").exists()


class TiedHead(torch.nn.Module):
    """An embedding and an output head sharing one weight (a language model's tied embeddings)."""

    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Linear(2, 4, bias=False)
        self.head = torch.nn.Linear(2, 4, bias=False)
        self.head.weight = self.embed.weight
        self.out = torch.nn.Linear(4, 1)

    def forward(self, x):
        return self.out(self.embed(x) + self.head(x))


def test_tied_weight_omitted_by_the_file_is_filled_from_its_twin(tmp_path):
    """Hugging Face / safetensors omit the second name of a tied tensor; it is taken from the first."""
    from losslens.checkpoints import fit_state_dict

    torch.manual_seed(0)
    model = TiedHead()
    sd = {k: v.clone() for k, v in model.state_dict().items() if k != "head.weight"}
    path = tmp_path / "tied.safetensors"
    save_file(sd, str(path))
    state, prefix, notes = fit_state_dict(TiedHead(), read_checkpoint(path).state_dict, str(path))
    assert prefix == "" and notes == []  # filled by losslens.models.hf.align_state_dict (rule 2)
    fresh = TiedHead()
    fresh.load_state_dict(state)
    assert torch.equal(fresh.head.weight, sd["embed.weight"]) and fresh.head.weight is fresh.embed.weight
