"""The ``--params`` glob of refusal hints selects one real block of real transformers models."""

from __future__ import annotations

import pytest
import torch

from losslens.params import block_glob, select

transformers = pytest.importorskip("transformers")


def _names(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return dict(model.named_parameters())


@pytest.mark.parametrize(
    ("model", "glob", "prefix"),
    [
        (
            lambda: transformers.GPT2LMHeadModel(transformers.GPT2Config(vocab_size=11, n_embd=8, n_layer=2, n_head=2)),
            "h.0.*",
            "transformer.h.0.",
        ),
        (
            lambda: transformers.GPTNeoXForCausalLM(
                transformers.GPTNeoXConfig(
                    vocab_size=11, hidden_size=8, num_hidden_layers=2, num_attention_heads=2, intermediate_size=16
                )
            ),
            "layers.0.*",
            "gpt_neox.layers.0.",
        ),
        (lambda: torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1)), "0.*", "0."),
    ],
)
def test_block_glob_selects_exactly_the_first_block(model, glob: str, prefix: str) -> None:
    """Oracle: the parameter names that start with the first block's module path (plain string prefix)."""
    params = _names(model())
    assert block_glob(list(params)) == glob
    assert select(params, [glob]) == [n for n in params if n.startswith(prefix)]


def test_block_glob_without_numbered_modules_is_the_first_tensor() -> None:
    params = _names(torch.nn.Linear(3, 2))
    assert block_glob(list(params)) == "weight"
    assert select(params, ["weight"]) == ["weight"]
