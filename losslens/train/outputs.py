"""What a training run leaves on disk, and how a rerun recognises it.

Each run writes ``<run>.pt`` (``{"state_dict", "meta": {"seed", "hparams", ...}}``, the layout
:mod:`losslens.checkpoints` reads) and a sidecar ``<run>.pt.json`` with the same metadata plus
final metrics and wall time. The sidecar also holds ``config_sha``, a hash of everything that
determines the run; a rerun whose config hashes the same finds the run done and skips it.
Files are written to a temporary name and renamed, checkpoint first, so a sidecar always
describes a complete checkpoint.

A sweep writes one experiment spec naming exactly the runs of that call, ready for
``losslens ingest``.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w
import torch

from losslens.errors import LossLensError
from losslens.spec import load_spec
from losslens.store.ids import canonical_json, content_id

OnEvent = Callable[..., None]
"""``on_event(event, **data)``: "sweep_start" (total), "run_start" (label, total), "advance" (n, loss),
"run_done" (record). The CLI turns these into progress bars; a library caller may ignore them."""


@dataclass(frozen=True)
class RunRecord:
    """One trained (or found) run: where its files are and how it ended."""

    checkpoint: Path
    sidecar: Path
    seed: int
    hparams: dict[str, Any]
    metrics: dict[str, float]
    wall_time_s: float
    steps: int  # L-BFGS/Adam iterations for the PINN, optimiser steps for classifiers
    skipped: bool = False  # found done on disk, not trained by this call


@dataclass(frozen=True)
class TrainResult:
    spec: Path
    runs: list[RunRecord] = field(default_factory=list)

    @property
    def trained(self) -> int:
        return sum(not r.skipped for r in self.runs)


def require_number(value: float, option: str, *, minimum: float = -math.inf, strict: bool = False, hint: str) -> None:
    """Refuse, in one line naming ``option``, a value that is not a finite number ≥ ``minimum`` (> when
    ``strict``): NaN or infinity would otherwise train nonsense or fail deep inside torch."""
    ok = math.isfinite(value) and (value > minimum if strict else value >= minimum)
    if not ok:
        bound = "" if minimum == -math.inf else f" {'>' if strict else '≥'} {minimum:g}"
        raise LossLensError(f"{value} is not a finite number{bound}", where=option, hint=hint)


def check_out_folder(out: Path) -> None:
    """Refuse an ``--out`` that exists and is not a folder (an existing folder is reused: reruns are incremental)."""
    if out.exists() and not out.is_dir():
        raise LossLensError(
            "exists and is not a folder", where=str(out), hint="pass a folder (new or from an earlier run) to --out"
        )


def config_sha(config: dict[str, Any]) -> str:
    return content_id("train-config", config)


def sidecar_of(checkpoint: Path) -> Path:
    return checkpoint.with_name(checkpoint.name + ".json")


def finished_run(checkpoint: Path, sha: str) -> RunRecord | None:
    """The run recorded at ``checkpoint`` if it was trained with the same config, else None."""
    side = sidecar_of(checkpoint)
    if not (checkpoint.is_file() and side.is_file()):
        return None
    try:
        meta = json.loads(side.read_text())
        if meta.get("config_sha") != sha:
            return None
        return RunRecord(
            checkpoint,
            side,
            int(meta["seed"]),
            meta["hparams"],
            meta["metrics"],
            float(meta["wall_time_s"]),
            int(meta["step"]),
            skipped=True,
        )
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
        return None  # unreadable or foreign sidecar: train again


def _atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    write(tmp)
    os.replace(tmp, path)


def save_run(checkpoint: Path, state_dict: dict[str, torch.Tensor], meta: dict[str, Any], sha: str) -> RunRecord:
    """Write the checkpoint, then its sidecar (meta + ``config_sha``). ``meta`` needs seed, hparams,
    metrics, wall_time_s and step."""
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().clone() for k, v in state_dict.items()}
    file_meta = {k: meta[k] for k in ("seed", "hparams", "step", "name") if k in meta}
    _atomic_write(checkpoint, lambda p: torch.save({"state_dict": state, "meta": file_meta}, p))
    side = sidecar_of(checkpoint)
    full = {**meta, "config_sha": sha, "torch_version": torch.__version__}
    _atomic_write(side, lambda p: p.write_text(json.dumps(full, indent=2, sort_keys=True) + "\n"))
    return RunRecord(
        checkpoint, side, int(meta["seed"]), meta["hparams"], meta["metrics"], float(meta["wall_time_s"]), int(meta["step"])
    )


def write_spec(
    path: Path,
    *,
    name: str,
    description: str,
    model: tuple[str, dict[str, Any]],
    problem: tuple[str, dict[str, Any]],
    checkpoints: list[Path],
    setting_keys: list[str],
) -> Path:
    """Write an experiment spec naming ``checkpoints`` (relative to the spec) and check that it loads.

    An unchanged spec is not rewritten, so a rerun leaves its timestamp alone."""
    doc = {
        "name": name,
        "description": description,
        "model": {"factory": model[0], **({"kwargs": model[1]} if model[1] else {})},
        "problem": {"factory": problem[0], **({"kwargs": problem[1]} if problem[1] else {})},
        "checkpoints": {"paths": [os.path.relpath(c, path.parent) for c in checkpoints]},
        "settings": {"keys": setting_keys},
    }
    text = "# Written by `losslens train`; ingest with `losslens ingest " + path.name + "`.\n" + tomli_w.dumps(doc)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.is_file() or path.read_text() != text:
        _atomic_write(path, lambda p: p.write_text(text))
    load_spec(path)
    return path


def plain(value: Any) -> Any:
    """JSON round-trip, so hashed configs and sidecars hold the same plain values."""
    return json.loads(canonical_json(value))
