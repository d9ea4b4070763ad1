"""Layout ``huggingface``: a Hugging Face model folder, read without running any of its code.

- ``config.json`` (required) is kept whole in ``meta["config"]``. A config with ``auto_map`` needs
  the repository's own Python code (``trust_remote_code``) and is refused.
- Weights, first found wins: ``model.safetensors``; shards listed by ``model.safetensors.index.json``
  (``weight_map``: tensor name → shard file, e.g. ``model-00001-of-00002.safetensors``); legacy
  ``pytorch_model.bin`` (or its ``pytorch_model.bin.index.json`` shards) through
  ``torch.load(weights_only=True)``.

Use :func:`read_hf_folder` directly to get the tensors of a folder; :func:`losslens.checkpoints.read_checkpoint`
calls it for any folder holding ``config.json``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from losslens.checkpoints.base import CheckpointFile, State
from losslens.checkpoints.plain import tensors_only
from losslens.checkpoints.safe_load import load_weights_only
from losslens.checkpoints.safetensors_file import read_header, read_tensors
from losslens.errors import LossLensError

NAME = "huggingface"
SINGLE = "model.safetensors"
INDEX = "model.safetensors.index.json"
LEGACY = "pytorch_model.bin"
LEGACY_INDEX = "pytorch_model.bin.index.json"


def matches(folder: Path) -> bool:
    return (folder / "config.json").is_file()


def read_config(folder: Path) -> dict[str, Any]:
    """``config.json`` as a dict. :raises LossLensError: missing, not JSON, or needs remote code."""
    path = folder / "config.json"
    try:
        config = json.loads(path.read_text())
    except FileNotFoundError:
        raise LossLensError("no config.json", where=str(folder), hint="save the model with save_pretrained(folder)") from None
    except json.JSONDecodeError as exc:
        raise LossLensError(f"config.json is not JSON ({exc})", where=str(path), hint="save it again") from None
    if not isinstance(config, dict):
        raise LossLensError(
            "config.json must hold a JSON object", where=str(path), hint="save it again with save_pretrained(folder)"
        )
    if "auto_map" in config:
        raise LossLensError(
            "refused: config.json has auto_map, so the model needs the folder's own Python code (trust_remote_code)",
            where=str(path),
            hint="LossLens never runs code from checkpoints; build the model with a [model] factory you trust",
        )
    return config


def run_position(folder: Path, config: dict[str, Any]) -> dict[str, int]:
    """``step`` and ``seed`` of a checkpoint folder: from ``config.json`` keys of those names, else from the
    folder's own name or its parents' (``step1000``, ``checkpoint-1000`` as saved by the transformers
    Trainer, ``seed3``; Pythia's revisions are ``step143000``). A sidecar beside the folder overrides both."""
    found: dict[str, int] = {}
    patterns = {"step": r"(?:^|[-_])(?:step|checkpoint)[-_]?(\d+)$", "seed": r"(?:^|[-_])seed[-_]?(\d+)$"}
    for key, pattern in patterns.items():
        if isinstance(config.get(key), int):
            found[key] = config[key]
            continue
        for part in (folder.resolve().name, *(p.name for p in folder.resolve().parents)):
            for piece in re.split(r"[./]", part):
                match = re.search(pattern, piece)
                if match:
                    found[key] = int(match.group(1))
                    break
            if key in found:
                break
    return found


def _read_index(folder: Path, index_name: str) -> dict[str, str]:
    path = folder / index_name
    try:
        weight_map = json.loads(path.read_text()).get("weight_map")
    except (json.JSONDecodeError, AttributeError) as exc:
        raise LossLensError(f"{index_name} is not a JSON index ({exc})", where=str(path), hint="save the model again") from None
    if not isinstance(weight_map, dict) or not weight_map:
        raise LossLensError(f"{index_name} has no weight_map", where=str(path), hint="save the model again")
    for shard in sorted(set(weight_map.values())):
        if not (folder / shard).is_file():
            raise LossLensError(f"shard {shard} listed in {index_name} is missing", where=str(folder), hint="copy every shard")
    return weight_map


def _read_shards(folder: Path, index_name: str, read: Any) -> State:
    weight_map = _read_index(folder, index_name)
    state: State = {}
    for shard in sorted(set(weight_map.values())):
        tensors = read(folder / shard)
        for name, tensor in tensors.items():
            if weight_map.get(name) == shard:
                state[name] = tensor
    absent = [name for name in weight_map if name not in state]
    if absent:
        raise LossLensError(
            f"tensor {absent[0]!r} is not in its shard {weight_map[absent[0]]}"
            + (f" (and {len(absent) - 1} more)" if len(absent) > 1 else ""),
            where=str(folder),
            hint="the index and the shards come from different saves; save the model again",
        )
    return state


def read_hf_folder(folder: Path, allow_globals: tuple[str, ...] = ()) -> CheckpointFile:
    """Tensors and config of a Hugging Face folder.

    :returns: a :class:`CheckpointFile` with ``layout="huggingface"``, ``format`` ``safetensors`` or
        ``torch``, ``meta["config"]`` = config.json and ``meta["weights"]`` = the file(s) read.
    :raises LossLensError: no config.json, ``auto_map`` in it, no weights file, a missing shard, or an
        unreadable file; each names the file and the fix.
    """
    folder = Path(folder)
    config = read_config(folder)
    meta: dict[str, Any] = {"config": config, **run_position(folder, config)}
    if (folder / SINGLE).is_file():
        state, fmt, meta["weights"] = read_tensors(folder / SINGLE), "safetensors", SINGLE
        meta.update({k: v for k, v in read_header(folder / SINGLE).items() if k != "format"})
    elif (folder / INDEX).is_file():
        state, fmt, meta["weights"] = _read_shards(folder, INDEX, read_tensors), "safetensors", INDEX
    elif (folder / LEGACY).is_file():
        obj = load_weights_only(folder / LEGACY, allow_globals)
        state, fmt, meta["weights"] = tensors_only(obj, str(folder / LEGACY), LEGACY), "torch", LEGACY
    elif (folder / LEGACY_INDEX).is_file():

        def read_bin(path: Path) -> State:
            return tensors_only(load_weights_only(path, allow_globals), str(path), path.name)

        state, fmt, meta["weights"] = _read_shards(folder, LEGACY_INDEX, read_bin), "torch", LEGACY_INDEX
    else:
        raise LossLensError(
            f"no weights: none of {SINGLE}, {INDEX}, {LEGACY}",
            where=str(folder),
            hint="save with model.save_pretrained(folder) (safetensors)",
        )
    return CheckpointFile(folder, fmt, state, meta, layout=NAME)
