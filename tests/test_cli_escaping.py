"""Terminal output prints every message, name and label verbatim: Rich markup is never interpreted.

Oracle: the exact text the test wrote into file names, sidecar names, hyperparameters and error
hints, found unchanged in the CLI's output (markup such as ``[model]`` or ``[bold]`` would vanish,
and an unbalanced ``[/x]`` used to crash ``losslens ls`` with MarkupError).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from helpers import PINN_KWARGS, write_spec

from losslens.models import pinn_mlp

NASTY = '[bold]s<0>&"q"[/x]'
TAG = "[red]wide[/red] <&> 'x'"


def run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "400", "PYTHONPATH": str(Path(__file__).parents[1])}
    return subprocess.run([sys.executable, "-m", "losslens", *args], capture_output=True, text=True, env=env)


def test_names_labels_and_error_lines_print_verbatim(tmp_path):
    runs = tmp_path / "[data]" / "[run1]"
    runs.mkdir(parents=True)
    torch.manual_seed(0)
    sd = pinn_mlp(**PINN_KWARGS).state_dict()
    torch.save(sd, runs / "good.pt")
    (runs / "good.pt.json").write_text(json.dumps({"name": NASTY, "seed": 0}))
    torch.save({k: v for k, v in sd.items() if k != "2.bias"}, runs / "[model].pt")
    spec = write_spec(
        tmp_path / "exp.toml",
        "exp [x] <y> & 'z'",
        "losslens.models:pinn_mlp",
        PINN_KWARGS,
        "losslens.problems:convection",
        {"n_collocation": 8, "n_x": 8, "n_t": 4},
        [str(runs / "*.pt").replace("[", "[[]")],
        ["tag"],
    )
    spec.write_text(spec.read_text() + f"\n[hparams]\ntag = {json.dumps(TAG)}\n")
    db = tmp_path / "c.db"
    proc = run("ingest", str(spec), "--catalog", str(db))
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: {runs / '[model].pt'}: missing key '2.bias' — the checkpoint does not match [model] in the spec"]
    assert "exp [x] <y> & 'z'" in proc.stdout and f"tag={TAG}" in proc.stdout

    proc = run("ls", "--checkpoints", "--catalog", str(db))
    assert proc.returncode == 0, proc.stderr
    row = next(line for line in proc.stdout.splitlines() if NASTY in line)
    cells = [c.strip() for c in row.split("│")[1:-1]]
    assert cells[:4] == ["exp [x] <y> & 'z'", f"tag={TAG}", NASTY, "0"]

    missing = tmp_path / "[spec].toml"
    proc = run("ingest", str(missing), "--catalog", str(db))
    assert proc.stderr.strip() == f"error: {missing}: no such spec file — pass the path of an experiment TOML file"


def test_control_characters_in_names_never_reach_the_terminal(pinn_catalog):
    """Names come from files a colleague sent (sidecars, checkpoint metadata, specs): an ESC sequence in one
    (``\\x1b]52;…`` writes the clipboard, ``\\x1b[2J`` clears the screen) or a C1 ``\\x9b`` (CSI) must print as
    visible escapes, not act on the terminal; ``ls``, ``status`` and the error lines of a command print them
    as ``\\x1b``. Oracle: the names written with plain SQL, and the raw bytes of the output."""
    import sqlite3

    name = "run\x1b[31mRED\x1b[0m\x9b2J\x07 ok"
    with sqlite3.connect(pinn_catalog) as conn:
        conn.execute("UPDATE checkpoints SET name = ? WHERE sha256 = (SELECT min(sha256) FROM checkpoints)", (name,))
        conn.execute("UPDATE experiments SET name = ?", ("exp\x1b]52;c;aGk=\x07 x",))
    conn.close()
    shown = "run\\x1b[31mRED\\x1b[0m\\x9b2J\\x07 ok"
    for args in (["ls", "--checkpoints"], ["status"], ["compute", "performance", "-e", "exp\x1b[2Jx"]):
        proc = run(*args, "--catalog", str(pinn_catalog))
        out = proc.stdout + proc.stderr
        assert not any(c in out for c in "\x1b\x9b\x07"), (args, out)
        assert "exp\\x1b]52;c;aGk=\\x07 x" in out or "exp\\x1b[2Jx" in out, (args, out)
        if args[0] == "ls":
            assert shown in out, out
