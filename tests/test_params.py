"""The ``--params`` glob rule (fnmatch from the start of the dotted name, or after a transformers model's
base-model prefix) on nested ``nn.Sequential`` and real transformers models, and the refusal hints' globs.

Oracle: plain string prefixes and suffixes of the parameter names."""

from __future__ import annotations

import re

import pytest
import torch

from losslens.errors import LossLensError
from losslens.params import base_prefix, block_glob, closest_globs, module_globs, select

transformers = pytest.importorskip("transformers")


def _gpt2() -> torch.nn.Module:
    return transformers.GPT2LMHeadModel(transformers.GPT2Config(vocab_size=11, n_embd=8, n_layer=2, n_head=2))


def _gpt_neox() -> torch.nn.Module:
    return transformers.GPTNeoXForCausalLM(
        transformers.GPTNeoXConfig(vocab_size=11, hidden_size=8, num_hidden_layers=2, num_attention_heads=2, intermediate_size=16)
    )


def _nested() -> torch.nn.Module:
    inner = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 4))
    return torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), inner, torch.nn.Linear(4, 1))


def _named() -> torch.nn.Module:
    return torch.nn.ModuleDict(
        {"features": torch.nn.Sequential(torch.nn.Tanh(), torch.nn.Linear(2, 2)), "head": torch.nn.Linear(2, 1)}
    )


def _select(model: torch.nn.Module, *globs: str) -> list[str]:
    return select(dict(model.named_parameters()), list(globs), base_prefix(model))


def test_nested_sequential_globs_match_from_the_start_of_the_name() -> None:
    """``0.*`` is the first Linear only, never the nested ``2.0.weight``; ``*.0.*`` reaches the nested one."""
    model = _nested()
    names = list(dict(model.named_parameters()))
    assert names == ["0.weight", "0.bias", "2.0.weight", "2.0.bias", "2.1.weight", "2.1.bias", "3.weight", "3.bias"]
    assert _select(model, "0.*") == ["0.weight", "0.bias"]
    assert _select(model, "2.*") == [n for n in names if n.startswith("2.")]
    assert _select(model, "2.0.*") == ["2.0.weight", "2.0.bias"]
    assert _select(model, "*.0.*") == ["2.0.weight", "2.0.bias"]
    assert _select(model, "*.bias") == [n for n in names if n.endswith(".bias")]
    assert _select(model, "*bias") == [n for n in names if n.endswith("bias")]
    with pytest.raises(LossLensError, match=re.escape("'1.weight' matches no parameter")):
        _select(model, "1.weight")  # 2.1.weight only ends with it


@pytest.mark.parametrize(
    ("model", "prefix", "glob", "expected_prefix"),
    [
        (_gpt_neox, "gpt_neox.", "layers.1.*", "gpt_neox.layers.1."),
        (_gpt_neox, "gpt_neox.", "gpt_neox.layers.1.*", "gpt_neox.layers.1."),
        (_gpt2, "transformer.", "h.0.*", "transformer.h.0."),
        (_gpt2, "transformer.", "transformer.h.0.*", "transformer.h.0."),
    ],
)
def test_transformers_globs_match_after_the_base_model_prefix(model, prefix: str, glob: str, expected_prefix: str) -> None:
    m = model()
    names = list(dict(m.named_parameters()))
    assert base_prefix(m) == prefix
    assert _select(m, glob) == [n for n in names if n.startswith(expected_prefix)]


def test_transformers_globs_do_not_match_inside_the_name() -> None:
    """``attention.*`` names no top-level module of GPT-NeoX; ``*.attention.*`` is every attention tensor."""
    m = _gpt_neox()
    names = list(dict(m.named_parameters()))
    with pytest.raises(LossLensError, match=re.escape("after 'gpt_neox.'")):
        _select(m, "attention.*")
    assert _select(m, "*.attention.*") == [n for n in names if ".attention." in n]
    assert _select(m, "lm_head.weight") == ["lm_head.weight"]


@pytest.mark.parametrize(
    ("model", "glob", "prefix"),
    [
        (_gpt2, "h.0.*", "transformer.h.0."),
        (_gpt_neox, "layers.0.*", "gpt_neox.layers.0."),
        (_nested, "0.*", "0."),
        (_named, "features.1.*", "features.1."),
    ],
)
def test_block_glob_selects_exactly_the_first_block(model, glob: str, prefix: str) -> None:
    """Oracle: the parameter names that start with the first numbered module's path (plain string prefix)."""
    m = model()
    params = dict(m.named_parameters())
    assert block_glob(list(params), base_prefix(m)) == glob
    assert _select(m, glob) == [n for n in params if n.startswith(prefix)]


def test_block_glob_without_numbered_modules_is_the_first_tensor() -> None:
    params = dict(torch.nn.Linear(3, 2).named_parameters())
    assert block_glob(list(params)) == "weight"
    assert select(params, ["weight"]) == ["weight"]


@pytest.mark.parametrize("model", [_gpt2, _gpt_neox, _nested, _named])
def test_module_globs_select_one_module_or_tensor_each(model) -> None:
    """Each glob ``P.*`` selects exactly the names under module path P; a tensor's name selects that tensor."""
    m = model()
    params = dict(m.named_parameters())
    prefix = base_prefix(m)
    globs = module_globs(list(params), prefix)
    assert len(globs) == len(set(globs))
    for glob in globs:
        path = glob[:-2] if glob.endswith(".*") else None

        def hit(name: str, glob: str = glob, path: str | None = path) -> bool:
            return name == glob or (path is not None and name.startswith(path + "."))

        expected = [n for n in params if hit(n) or (bool(prefix) and n.startswith(prefix) and hit(n[len(prefix) :]))]
        assert _select(m, glob) == expected, glob


def test_closest_globs_name_the_fix() -> None:
    """A module path written without its leading '*.' gets '*.PATH' first; a block number the model lacks gets
    the model's own numbered blocks (difflib's nearest module globs). Oracle: the names of a 2-layer GPT-NeoX."""
    m = _gpt_neox()
    names = list(dict(m.named_parameters()))
    assert closest_globs("attention.*", names, "gpt_neox.")[0] == "*.attention.*"
    close = closest_globs("layers.7.*", names, "gpt_neox.")
    assert len(close) == 3 and {"layers.0.*", "layers.1.*"} & set(close)
    assert all(_select(m, g) for g in close)  # every suggestion selects something
    with pytest.raises(LossLensError, match=re.escape("closest: '*.attention.*'")):
        _select(m, "attention.*")
    assert closest_globs("anything", []) == []
