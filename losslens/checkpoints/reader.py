"""Recognise a checkpoint's layout and read it: the one entry point, :func:`read_checkpoint`."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path
from typing import Any

from losslens.checkpoints import huggingface, lightning, mlflow, plain, timm, training_loop
from losslens.checkpoints.base import CheckpointFile
from losslens.checkpoints.metadata import read_sidecar
from losslens.checkpoints.safe_load import load_weights_only
from losslens.checkpoints.safetensors_file import read_header, read_tensors
from losslens.errors import LossLensError


def read_checkpoint(path: Path, *, allow_globals: tuple[str, ...] = (), ema: bool = False) -> CheckpointFile:
    """Read a checkpoint file or folder in whichever layout it has, without running pickled code.

    Folders: Hugging Face (``config.json``), MLflow (``MLmodel``). Files: ``.safetensors``, or a
    ``torch.save`` file read with ``weights_only=True`` and recognised as Lightning, timm,
    training-loop bundle or plain state dict (in that order). A sidecar JSON beside it
    (``NAME.json`` or ``NAME.<ext>.json``) updates the metadata and wins.

    :param allow_globals: extra globals for ``torch.load`` (``module.QualName``, or ``numpy``), see
        :mod:`losslens.checkpoints.safe_load`.
    :param ema: read timm's ``state_dict_ema`` instead of ``state_dict``.
    :raises LossLensError: missing/empty/truncated file, refused pickle, unknown layout; one line
        naming the file and the fix.
    """
    path = Path(path)
    where = str(path)
    if path.is_dir():
        if huggingface.matches(path):
            ckpt = huggingface.read_hf_folder(path, allow_globals)
        elif mlflow.matches(path):
            ckpt = mlflow.read_mlflow_folder(path, allow_globals)
        else:
            raise LossLensError(
                "a folder, but neither a Hugging Face folder (config.json) nor an MLflow model (MLmodel)",
                where=where,
                hint="point [checkpoints].paths at the weight files themselves",
            )
    elif not path.exists():
        raise LossLensError("no such file", where=where, hint="check [checkpoints].paths in the spec")
    elif path.stat().st_size == 0:
        raise LossLensError("file is empty", where=where, hint="the checkpoint was not written completely; save it again")
    elif path.suffix == ".safetensors":
        ckpt = CheckpointFile(path, "safetensors", read_tensors(path), read_header(path), layout="safetensors")
    else:
        ckpt = _read_torch_file(path, allow_globals, ema)
    return replace(ckpt, meta={**ckpt.meta, **read_sidecar(path)})


def _read_torch_file(path: Path, allow_globals: tuple[str, ...], ema: bool) -> CheckpointFile:
    where = str(path)
    obj: Any = load_weights_only(path, allow_globals)
    if not isinstance(obj, dict):
        raise LossLensError(
            f"expected a dict of tensors, found {type(obj).__name__}", where=where, hint="save model.state_dict()"
        )
    notes: list[str] = []
    if lightning.matches(obj):
        layout, (state, meta) = lightning.NAME, lightning.split(obj, where, notes)
    elif timm.matches(obj):
        layout, (state, meta) = timm.NAME, timm.split(obj, where, notes, ema=ema)
    elif training_loop.matches(obj):
        layout, (state, meta) = training_loop.NAME, training_loop.split(obj, where, notes)
    elif plain.matches(obj):
        layout, (state, meta) = plain.NAME, plain.split(obj, where, notes)
    else:
        keys = ", ".join(repr(k) for k in list(obj)[:4])
        raise LossLensError(
            f"no weights found: the file holds {keys}{' ...' if len(obj) > 4 else ''}",
            where=where,
            hint="save model.state_dict(), or a dict with model_state_dict / state_dict",
        )
    return CheckpointFile(path, "torch", state, meta, layout=layout, notes=tuple(notes))


def checkpoint_sha256(path: Path) -> str:
    """Content hash of a checkpoint: the file's SHA-256, or for a folder the SHA-256 of its files'
    relative names and hashes, in sorted order (so renaming the folder keeps its id)."""
    from losslens.store.ids import sha256_file

    path = Path(path)
    if not path.is_dir():
        return sha256_file(path)
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")):
        digest.update(f"{file.relative_to(path).as_posix()}\0{sha256_file(file)}\n".encode())
    return digest.hexdigest()


def checkpoint_size(path: Path) -> int:
    """Bytes of a file, or of all files in a folder."""
    path = Path(path)
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size
