"""Hugging Face causal language models, rebuilt offline from a ``config.json``.

``hf_causal_lm(config=...)`` builds the architecture with ``AutoModelForCausalLM.from_config``
(random weights; the checkpoint's safetensors are loaded into it afterwards). It never runs code
from a model folder: a config with ``auto_map`` names classes that live in the folder or on the
Hub (``trust_remote_code``) and is refused in one line. Nothing here reaches the Hub:
``HF_HUB_OFFLINE=1`` is set before ``transformers`` is imported, and ``from_config`` downloads nothing.

The config becomes part of the catalog's model record (``architecture_json``), so a checkpoint is
rebuilt later from the catalog alone. Keys that do not change the computation
(:data:`IGNORED_KEYS`: the transformers version, the source path, the saved dtype, …) are dropped,
so the checkpoints of one run share one model record whatever transformers version wrote them.

Attention is built ``eager`` by default: its second derivatives are exact in every backend,
which the Hessian needs (fused kernels such as flash attention have no double backward).
Dropout is off: metrics run the model in eval mode.

Needs the ``hf`` extra: ``pip install 'losslens[hf]'`` (transformers, tokenizers).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeGuard

import torch
from torch import Tensor, nn

from losslens.errors import LossLensError, unknown

if TYPE_CHECKING:
    from transformers import PreTrainedModel

#: config.json keys that do not change the model's computation.
IGNORED_KEYS = frozenset(
    {
        "_name_or_path",
        "_commit_hash",
        "architectures",
        "transformers_version",
        "torch_dtype",
        "dtype",
        "use_cache",
        "output_hidden_states",
        "output_attentions",
        "return_dict",
    }
)

ATTENTION = ("eager", "sdpa")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def require_transformers(where: str) -> Any:
    """Import ``transformers`` offline, or raise one line saying how to install it."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import transformers
    except ImportError:
        raise LossLensError(
            "transformers is not installed", where=where, hint="install the extra: pip install 'losslens[hf]'"
        ) from None
    return transformers


def config_path(folder_or_file: str | Path) -> Path:
    """The ``config.json`` of a model folder (or the file itself)."""
    path = Path(folder_or_file)
    return path / "config.json" if path.is_dir() else path


def read_config(folder_or_file: str | Path) -> dict[str, Any]:
    """A model folder's ``config.json`` as a dict, with :data:`IGNORED_KEYS` dropped.

    :raises LossLensError: the file is missing or not a JSON object, or it has ``auto_map``
        (remote code), or it names no ``model_type``.
    """
    path = config_path(folder_or_file)
    if not path.is_file():
        raise LossLensError("no config.json", where=str(path), hint="save the model with model.save_pretrained(folder)")
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise LossLensError(
            f"config.json is not valid JSON ({exc})", where=str(path), hint="save it again with save_pretrained(folder)"
        ) from None
    if not isinstance(raw, dict):
        raise LossLensError(
            "config.json must hold a JSON object", where=str(path), hint="save it again with save_pretrained(folder)"
        )
    return clean_config(raw, str(path))


def clean_config(raw: dict[str, Any], where: str) -> dict[str, Any]:
    """Check a config dict (no remote code, a model type) and drop :data:`IGNORED_KEYS`.

    :raises LossLensError: ``auto_map`` is present, or ``model_type`` is missing.
    """
    if "auto_map" in raw:
        raise LossLensError(
            f"refused: config.json has auto_map ({', '.join(sorted(raw['auto_map']))}), i.e. it needs remote code",
            where=where,
            hint="LossLens never runs trust_remote_code; use a model whose architecture ships with transformers",
        )
    if not isinstance(raw.get("model_type"), str):
        raise LossLensError("config.json has no model_type", where=where, hint="save it with model.save_pretrained(folder)")
    return {k: v for k, v in sorted(raw.items()) if k not in IGNORED_KEYS}


def hf_causal_lm(config: str | dict[str, Any], attention: str = "eager", dtype: str = "float32") -> nn.Module:
    """A causal LM with random weights, rebuilt from ``config`` (a dict, or a folder or config.json path).

    :param config: the architecture: the contents of a ``config.json`` or a path to one (or its folder).
    :param attention: ``eager`` (exact second derivatives; the default) or ``sdpa``.
    :param dtype: what the model computes in: ``float32`` (default), or ``bfloat16``/``float16`` to halve
        the memory of weights and activations on a GPU (CPU kernels exist but are slow). The dtype is part
        of the catalog's model record; checkpoint tensors are cast to it at load; losses are taken in float32
        from the logits, and Lanczos vectors stay float64.
    :raises LossLensError: transformers is missing, the config needs remote code, names a model type
        transformers does not know, or is not a causal LM; an unknown attention or dtype.
    """
    where = "hf_causal_lm"
    if attention not in ATTENTION:
        raise unknown("attention", attention, ATTENTION, where=where)
    if dtype not in DTYPES:
        raise unknown("dtype", dtype, DTYPES, where=where)
    cfg = read_config(config) if isinstance(config, (str, Path)) else clean_config(dict(config), where)
    transformers = require_transformers(where)
    fields = {k: v for k, v in cfg.items() if k != "model_type"}
    try:
        hf_config = transformers.AutoConfig.for_model(cfg["model_type"], **fields)
    except (ValueError, KeyError):
        raise LossLensError(
            f"unknown model_type {cfg['model_type']!r}",
            where=where,
            hint=f"transformers {transformers.__version__} must know the architecture",
        ) from None
    try:
        model = transformers.AutoModelForCausalLM.from_config(hf_config, attn_implementation=attention)
    except ValueError:
        raise LossLensError(
            f"{cfg['model_type']} is not a causal LM",
            where=where,
            hint="LossLens reads AutoModelForCausalLM architectures",
        ) from None
    return model.to(DTYPES[dtype]).eval()


def tied_parameter_names(model: nn.Module) -> dict[str, str]:
    """Parameter names that alias another parameter (tied input/output embeddings) → the name kept.

    ``model.named_parameters()`` lists a shared tensor once, under its first name; the others are
    the keys a ``save_pretrained`` file leaves out. Every metric counts a tied tensor once.
    """
    first: dict[int, str] = {}
    aliases: dict[str, str] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        if id(p) in first:
            aliases[name] = first[id(p)]
        else:
            first[id(p)] = name
    return aliases


def is_transformers_model(model: nn.Module) -> TypeGuard[PreTrainedModel]:
    return type(model).__module__.startswith("transformers.")


def align_state_dict(model: nn.Module, state: dict[str, Tensor]) -> dict[str, Tensor]:
    """A checkpoint's tensors under the names ``model.state_dict()`` uses.

    Two rules: (1) for a transformers model, the key renamings transformers itself applies when it
    loads that architecture (its checkpoint conversion mapping; e.g. Pythia files store the output
    embedding as ``embed_out.weight``, transformers 5 names it ``lm_head.weight``); keys the model
    already has are left alone. Tensor conversions (merged expert weights and the like) are not
    applied: such a file then fails the key check with the missing key named. (2) For any model,
    a tied parameter absent from the file (``save_pretrained`` writes a tied tensor once) is filled
    from the name it shares a tensor with. Non-transformers models pass through unchanged except (2).
    """
    expected = model.state_dict()
    out = dict(state)
    if is_transformers_model(model) and any(k not in expected for k in state):
        try:
            from transformers.conversion_mapping import get_model_conversion_mapping
            from transformers.core_model_loading import WeightRenaming, apply_renamings
        except ImportError:  # another transformers layout: leave the keys to the key check
            renamings = []
        else:
            renamings = [t for t in get_model_conversion_mapping(model) if isinstance(t, WeightRenaming)]
        if renamings:
            out = {(k if k in expected else apply_renamings(k, renamings)): v for k, v in state.items()}
    for alias, kept in tied_parameter_names(model).items():
        if alias not in out and kept in out:
            out[alias] = out[kept]
        elif kept not in out and alias in out:
            out[kept] = out[alias]
    return out
