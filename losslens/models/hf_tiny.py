"""Small GPT-NeoX (Pythia architecture) language models built entirely in code, for the LM demo,
tests and benchmarks: a config, a generated text, and a word-level tokenizer trained on it.

The text is a generated toy language (seeded): sentences of a small grammar ("the red cat sees a
small dog .", "three plus four is seven .") whose next word is partly predictable, so a model's
loss falls well below the uniform ``log(vocab)`` within a few hundred steps on a CPU. Nothing is
downloaded; the text carries no licence because it is produced here.

bench/lm.py builds Pythia-70m's shape with :func:`gpt_neox_config` (vocabulary 50,304, width 512, 6 layers,
8 heads, untied embeddings: 70,426,624 parameters, as the released model).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

_DETERMINERS = ("the", "a", "every", "one")
_ADJECTIVES = ("red", "small", "old", "quick", "green", "quiet")
_NOUNS = ("cat", "dog", "bird", "fox", "horse", "fish", "child", "robot")
_VERBS = ("sees", "likes", "follows", "finds", "helps", "hears")
_NUMBERS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def generated_text(sentences: int = 2000, seed: int = 0) -> str:
    """A seeded toy-language text, one sentence per line."""
    rng = np.random.default_rng(seed)
    lines = []
    for _ in range(sentences):
        if rng.random() < 0.3:
            a, b = rng.integers(0, 5, size=2)
            lines.append(f"{_NUMBERS[a]} plus {_NUMBERS[b]} is {_NUMBERS[a + b]} .")
        else:
            words = [rng.choice(_DETERMINERS)]
            if rng.random() < 0.5:
                words.append(rng.choice(_ADJECTIVES))
            words += [rng.choice(_NOUNS), rng.choice(_VERBS), rng.choice(_DETERMINERS), rng.choice(_NOUNS), "."]
            lines.append(" ".join(str(w) for w in words))
    return "\n".join(lines) + "\n"


def word_tokenizer(text: str, vocab_size: int = 64) -> Any:
    """A word-level ``tokenizers.Tokenizer`` trained on ``text`` (whitespace split, ``[UNK]`` = id 0)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.train_from_iterator(text.splitlines(), trainers.WordLevelTrainer(vocab_size=vocab_size, special_tokens=["[UNK]"]))
    return tok


def gpt_neox_config(
    vocab_size: int = 64,
    hidden_size: int = 32,
    layers: int = 2,
    heads: int = 4,
    intermediate_size: int | None = None,
    max_positions: int = 128,
    tie_word_embeddings: bool = False,
) -> dict[str, Any]:
    """A GPT-NeoX config dict (the keys of its ``config.json``) with Pythia's choices: rotary on a
    quarter of each head, parallel residual, GELU, no dropout."""
    return {
        "model_type": "gpt_neox",
        "vocab_size": vocab_size,
        "hidden_size": hidden_size,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "intermediate_size": intermediate_size or 4 * hidden_size,
        "max_position_embeddings": max_positions,
        "rotary_pct": 0.25,
        "use_parallel_residual": True,
        "hidden_act": "gelu",
        "hidden_dropout": 0.0,
        "attention_dropout": 0.0,
        "tie_word_embeddings": tie_word_embeddings,
        "bos_token_id": 0,
        "eos_token_id": 0,
    }


def save_folder(model: Any, folder: Path, tokenizer: Any | None = None) -> Path:
    """``save_pretrained`` (safetensors) plus the tokenizer's ``tokenizer.json`` in the same folder."""
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    if tokenizer is not None:
        tokenizer.save(str(folder / "tokenizer.json"))
    return folder
