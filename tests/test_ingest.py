"""Ingestion: safe loading, clear one-line errors, idempotence, crash safety and concurrency.

Oracles: SQLite (row counts, PRAGMA integrity_check), the file system (a sentinel file that
malicious unpickling would create), and the checkpoints written by the test itself.
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers import PINN_KWARGS, save_checkpoint, write_spec
from safetensors.torch import save_file

from losslens.ingest import ingest
from losslens.models import pinn_mlp

LOSSLENS = [sys.executable, "-m", "losslens"]


def spec_for(tmp_path: Path, globs: list[str], name: str = "exp", keys: list[str] | None = None) -> Path:
    return write_spec(
        tmp_path / f"{name}.toml",
        name,
        "losslens.models:pinn_mlp",
        PINN_KWARGS,
        "losslens.problems:convection",
        {"n_collocation": 16, "n_x": 8, "n_t": 4},
        globs,
        keys if keys is not None else ["beta"],
    )


def good(path: Path, seed: int = 0, beta: float = 1.0) -> Path:
    torch.manual_seed(seed)
    return save_checkpoint(path, pinn_mlp(**PINN_KWARGS), seed, {"beta": beta})


def count(db: Path, table: str) -> int:
    with sqlite3.connect(db) as conn:
        return conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]


def single_failure(report) -> str:
    failed = [o for o in report.outcomes if o.status == "failed"]
    assert len(failed) == 1, report.outcomes
    assert "\n" not in failed[0].error
    return failed[0].error


def test_ingest_adds_rows_and_reingest_adds_nothing(tmp_path):
    for seed in (0, 1):
        for beta in (1.0, 30.0):
            good(tmp_path / "runs" / f"b{beta}_s{seed}.pt", seed, beta)
    spec = spec_for(tmp_path, ["runs/*.pt"])
    db = tmp_path / "cat" / "losslens.db"
    report = ingest(spec, db)
    assert report.ok and report.count("added") == 4
    assert (count(db, "experiments"), count(db, "settings"), count(db, "models"), count(db, "checkpoints")) == (1, 2, 2, 4)
    again = ingest(spec, db)
    assert again.count("present") == 4 and again.count("added") == 0
    assert count(db, "checkpoints") == 4
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT c.seed, s.values_json, c.n_params FROM checkpoints c JOIN models m ON m.id = c.model_id "
            "JOIN settings s ON s.id = m.setting_id ORDER BY c.seed, s.values_json"
        ).fetchall()
    assert rows == [(0, '{"beta":1.0}', 105), (0, '{"beta":30.0}', 105), (1, '{"beta":1.0}', 105), (1, '{"beta":30.0}', 105)]


def test_sidecar_overrides_kwargs_and_spec(tmp_path):
    """The sidecar's hparams win over the problem kwargs of the same name; its seed is recorded."""
    path = tmp_path / "runs" / "a.pt"
    path.parent.mkdir(parents=True)
    torch.save(pinn_mlp(**PINN_KWARGS).state_dict(), path)
    (tmp_path / "runs" / "a.pt.json").write_text(json.dumps({"seed": 7, "step": 100, "hparams": {"beta": 12.5, "lr": 0.1}}))
    db = tmp_path / "losslens.db"
    report = ingest(spec_for(tmp_path, ["runs/*.pt"]), db)
    assert report.ok, report.outcomes
    with sqlite3.connect(db) as conn:
        seed, step, problem, hparams = conn.execute(
            "SELECT c.seed, c.step, m.problem_json, m.hparams_json FROM checkpoints c JOIN models m ON m.id = c.model_id"
        ).fetchone()
    assert (seed, step) == (7, 100)
    assert json.loads(problem)["kwargs"]["beta"] == 12.5
    assert json.loads(hparams) == {"beta": 12.5, "lr": 0.1}


def test_safetensors_with_metadata(tmp_path):
    path = tmp_path / "runs" / "m.safetensors"
    path.parent.mkdir(parents=True)
    save_file(pinn_mlp(**PINN_KWARGS).state_dict(), str(path), metadata={"seed": "3", "hparams": json.dumps({"beta": 2.0})})
    db = tmp_path / "losslens.db"
    report = ingest(spec_for(tmp_path, ["runs/*.safetensors"]), db)
    assert report.ok, report.outcomes
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT format, seed FROM checkpoints").fetchone() == ("safetensors", 3)


class _Exploit:
    def __init__(self, sentinel: str):
        self.sentinel = sentinel

    def __reduce__(self):
        return (os.system, (f"touch {self.sentinel}",))


def test_malicious_pickle_is_refused_and_never_runs(tmp_path):
    """Oracle: the sentinel file that unpickling would create never appears."""
    sentinel = tmp_path / "PWNED"
    bad = tmp_path / "runs" / "evil.pt"
    bad.parent.mkdir(parents=True)
    torch.save({"state_dict": pinn_mlp(**PINN_KWARGS).state_dict(), "payload": _Exploit(str(sentinel))}, bad)
    good(tmp_path / "runs" / "fine.pt")
    db = tmp_path / "losslens.db"
    report = ingest(spec_for(tmp_path, ["runs/*.pt"]), db)
    line = single_failure(report)
    assert "evil.pt" in line and "refused" in line and "state_dict" in line
    assert "weights_only" not in line  # torch's advice to load with weights_only=False is never passed on
    assert not sentinel.exists()
    assert report.count("added") == 1
    # A plain pickle (not torch's zip format) with the same payload is refused as well.
    raw = tmp_path / "runs" / "evil2.pt"
    raw.write_bytes(pickle.dumps(_Exploit(str(sentinel))))
    report = ingest(spec_for(tmp_path, ["runs/evil2.pt"]), db)
    line = single_failure(report)
    assert "evil2.pt" in line and "weights_only" not in line
    assert not sentinel.exists()


def test_each_bad_file_gets_one_line_naming_it_and_the_rest_land(tmp_path):
    runs = tmp_path / "runs"
    good(runs / "ok.pt")
    full = good(runs / "whole.pt", seed=1).read_bytes()
    (runs / "truncated.pt").write_bytes(full[: len(full) // 2])
    (runs / "empty.pt").write_bytes(b"")
    sd = pinn_mlp(**PINN_KWARGS).state_dict()
    torch.save({k: v for k, v in sd.items() if k != "2.bias"}, runs / "missing_key.pt")
    torch.save({**sd, "extra.weight": torch.zeros(1)}, runs / "extra_key.pt")
    torch.save(pinn_mlp(width=9, depth=2).state_dict(), runs / "wrong_shape.pt")
    spec = spec_for(tmp_path, ["runs/*.pt", "runs/not_there.pt"])
    db = tmp_path / "losslens.db"
    report = ingest(spec, db)
    errors = {o.path.name: o.error for o in report.outcomes if o.status == "failed"}
    assert report.count("added") == 2
    assert set(errors) == {"truncated.pt", "empty.pt", "missing_key.pt", "extra_key.pt", "wrong_shape.pt", "not_there.pt"}
    for name, line in errors.items():
        assert name in line and "\n" not in line and " — " in line, line
    assert "truncated" in errors["truncated.pt"]
    assert "empty" in errors["empty.pt"]
    assert "'2.bias'" in errors["missing_key.pt"]
    assert "'extra.weight'" in errors["extra_key.pt"]
    assert "shape mismatch" in errors["wrong_shape.pt"] and "(9, 2)" in errors["wrong_shape.pt"]
    assert "no such file" in errors["not_there.pt"]
    assert not report.ok
    assert count(db, "checkpoints") == 2


def test_glob_matching_nothing_is_reported(tmp_path):
    good(tmp_path / "runs" / "a.pt")
    report = ingest(spec_for(tmp_path, ["runs/*.pt", "elsewhere/*.pt"]), tmp_path / "losslens.db")
    assert report.empty_patterns == ["elsewhere/*.pt"]
    assert not report.ok


def test_spec_in_a_folder_whose_name_holds_glob_characters(tmp_path):
    """The spec's folder is taken literally; only the pattern is a glob (`[run1]` is not a character class)."""
    home = tmp_path / "[run1] data"
    good(home / "runs" / "a.pt")
    good(home / "runs" / "b.pt", seed=1)
    report = ingest(spec_for(home, ["runs/*.pt"]), tmp_path / "losslens.db")
    assert sorted(o.path.name for o in report.outcomes if o.status == "added") == ["a.pt", "b.pt"]
    assert report.ok and report.empty_patterns == []


def test_a_file_that_is_not_a_checkpoint_says_so_without_torchs_unsafe_advice(tmp_path):
    good(tmp_path / "runs" / "ok.pt")
    (tmp_path / "runs" / "notes.pt").write_bytes(b"not a checkpoint at all")
    report = ingest(spec_for(tmp_path, ["runs/*.pt"]), tmp_path / "losslens.db")
    assert single_failure(report) == (
        f"{tmp_path / 'runs' / 'notes.pt'}: cannot read the file: it is neither a torch zip archive nor a pickle"
        " — the file is not a torch checkpoint or is corrupted; save it again with torch.save"
    )
    assert report.count("added") == 1


def test_a_file_catalogued_for_another_experiment_or_other_hparams_is_not_called_present(tmp_path):
    """A file is catalogued once (sha256 is its id): ingesting it for another experiment, or with other
    hyperparameters, is one line naming where it is, and writes nothing; the same spec again is "present"."""
    good(tmp_path / "runs" / "a.pt")
    db = tmp_path / "losslens.db"
    assert ingest(spec_for(tmp_path, ["runs/a.pt"]), db).count("added") == 1
    assert ingest(spec_for(tmp_path, ["runs/a.pt"]), db).count("present") == 1
    path = tmp_path / "runs" / "a.pt"
    assert single_failure(ingest(spec_for(tmp_path, ["runs/a.pt"], name="other"), db)) == (
        f"{path}: already catalogued as a checkpoint of experiment 'exp', and a file is catalogued once"
        " — ingest it with that experiment's spec, or into another catalog (--catalog)"
    )
    (tmp_path / "runs" / "a.pt.json").write_text(json.dumps({"seed": 0, "hparams": {"beta": 2.0}}))
    line = single_failure(ingest(spec_for(tmp_path, ["runs/a.pt"]), db))
    assert line.startswith(f"{path}: already catalogued as model 'pinn_mlp beta=1' of this experiment with other")
    assert count(db, "experiments") == 1 and count(db, "settings") == 1 and count(db, "checkpoints") == 1


def test_a_seed_or_step_that_is_not_an_integer_is_one_line_and_whole_numbers_are_read(tmp_path):
    """A seed "two" used to become NULL silently (the run merged with the seedless ones)."""
    runs = tmp_path / "runs"
    for name, side in [("a", {"seed": "two"}), ("b", {"seed": 1, "step": 2.5}), ("c", {"seed": "3", "step": 40.0}), ("d", [1])]:
        good(runs / f"{name}.pt", seed=ord(name))
        (runs / f"{name}.pt.json").write_text(json.dumps(side))
    db = tmp_path / "losslens.db"
    report = ingest(spec_for(tmp_path, ["runs/*.pt"], keys=[]), db)
    errors = {o.path.name: o.error for o in report.outcomes if o.status == "failed"}
    assert errors == {
        "a.pt": f"{runs / 'a.pt'}: seed 'two' is not an integer — write seed as a whole number in the sidecar JSON"
        " (NAME.json) or the file's metadata",
        "b.pt": f"{runs / 'b.pt'}: step 2.5 is not an integer — write step as a whole number in the sidecar JSON"
        " (NAME.json) or the file's metadata",
        "d.pt": f'{runs / "d.pt.json"}: sidecar must hold a JSON object — write {{"seed": 0, "step": 100, "hparams": {{...}}}}',
    }
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT name, seed, step FROM checkpoints").fetchall() == [("c", 3, 40)]


def test_missing_setting_key_is_a_clear_error(tmp_path):
    good(tmp_path / "runs" / "a.pt")
    report = ingest(spec_for(tmp_path, ["runs/*.pt"], keys=["lr"]), tmp_path / "losslens.db")
    line = single_failure(report)
    assert "'lr'" in line and "a.pt" in line


def test_dry_run_writes_nothing(tmp_path):
    good(tmp_path / "runs" / "a.pt")
    db = tmp_path / "losslens.db"
    report = ingest(spec_for(tmp_path, ["runs/*.pt"]), db, dry_run=True)
    assert report.count("would-add") == 1
    assert not db.exists()


def test_dry_run_on_an_existing_catalog_tells_present_from_would_add_and_writes_nothing(tmp_path):
    """It used to say "would-add" for every file, even those already in the catalog."""
    good(tmp_path / "runs" / "a.pt")
    db = tmp_path / "losslens.db"
    assert ingest(spec_for(tmp_path, ["runs/a.pt"]), db).count("added") == 1
    good(tmp_path / "runs" / "b.pt", seed=1)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("losslens.db")}
    report = ingest(spec_for(tmp_path, ["runs/*.pt"]), db, dry_run=True)
    assert {o.path.name: o.status for o in report.outcomes} == {"a.pt": "present", "b.pt": "would-add"}
    other = ingest(spec_for(tmp_path, ["runs/a.pt"], name="other"), db, dry_run=True)
    assert single_failure(other).endswith(
        "already catalogued as a checkpoint of experiment 'exp', and a file is catalogued once"
        " — ingest it with that experiment's spec, or into another catalog (--catalog)"
    )
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("losslens.db")} == before


@pytest.mark.slow
def test_cli_exit_codes_and_error_line(tmp_path):
    good(tmp_path / "runs" / "a.pt")
    (tmp_path / "runs" / "b.pt").write_bytes(b"garbage")
    spec = spec_for(tmp_path, ["runs/*.pt"])
    db = tmp_path / "losslens.db"
    proc = subprocess.run([*LOSSLENS, "ingest", str(spec), "--catalog", str(db)], capture_output=True, text=True)
    assert proc.returncode == 1
    err_lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(err_lines) == 1 and "b.pt" in err_lines[0]
    assert "added 1" in proc.stdout
    bad_spec = tmp_path / "bad.toml"
    bad_spec.write_text("name = \n")
    proc = subprocess.run([*LOSSLENS, "ingest", str(bad_spec), "--catalog", str(db)], capture_output=True, text=True)
    assert proc.returncode == 1
    assert proc.stderr.startswith("error:") and "bad.toml" in proc.stderr and "Traceback" not in proc.stderr


def _many(tmp_path: Path, name: str, n: int, first_seed: int = 0) -> Path:
    for i in range(first_seed, first_seed + n):
        good(tmp_path / name / f"c{i:03d}.pt", seed=i, beta=float(i % 3))
    return spec_for(tmp_path, [f"{name}/*.pt"], name=name)


@pytest.mark.slow
def test_kill_9_during_ingest_leaves_a_sound_catalog_that_completes(tmp_path):
    """Oracle: PRAGMA integrity_check, and the row count after a rerun."""
    spec = _many(tmp_path, "many", 60)
    db = tmp_path / "losslens.db"
    proc = subprocess.Popen(
        [*LOSSLENS, "ingest", str(spec), "--catalog", str(db)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 120
    try:
        while time.time() < deadline:
            if db.exists():
                try:
                    with sqlite3.connect(db, timeout=1) as conn:
                        if conn.execute("SELECT COUNT(*) FROM checkpoints").fetchone()[0] >= 3:
                            break
                except sqlite3.OperationalError:
                    pass
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        partial = conn.execute("SELECT COUNT(*) FROM checkpoints").fetchone()[0]
        orphans = conn.execute(
            "SELECT COUNT(*) FROM checkpoints c LEFT JOIN models m ON m.id = c.model_id WHERE m.id IS NULL"
        ).fetchone()[0]
    assert 3 <= partial < 60 and orphans == 0
    report = ingest(spec, db)
    assert report.ok
    assert count(db, "checkpoints") == 60


@pytest.mark.slow
def test_two_concurrent_ingests_lose_nothing(tmp_path):
    """Two processes on one new catalog at once: no 'database is locked', every row lands."""
    spec_a, spec_b = _many(tmp_path, "alpha", 25), _many(tmp_path, "beta", 25, first_seed=100)
    db = tmp_path / "losslens.db"
    procs = [
        subprocess.Popen(
            [*LOSSLENS, "ingest", str(s), "--catalog", str(db)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for s in (spec_a, spec_b)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
        assert "locked" not in err
    assert count(db, "checkpoints") == 50
    assert count(db, "experiments") == 2
