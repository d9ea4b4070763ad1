"""Next-token prediction on a local text: the loss of a causal language model.

The text (a UTF-8 file, tokenised with the model folder's own ``tokenizer.json`` through the
``tokenizers`` library, without special tokens) or a pre-tokenised array of token ids (``.npy``,
or a raw ``.bin`` of ``token_dtype``) is one stream of ids. It is cut into non-overlapping
sequences of ``seq_len`` tokens in file order (a remainder shorter than ``seq_len`` is dropped);
the last ``test_fraction`` of the sequences form the test split. Nothing is shuffled, so the
batches, and every metric computed from them, are the same in every run.

The loss of a batch is the mean next-token cross-entropy over all of its predicted positions
(``seq_len − 1`` per sequence), exactly what ``transformers`` computes for
``model(input_ids, labels=input_ids).loss``; perplexity is ``exp`` of that mean over a split.
The model runs in eval mode (dropout off), without a KV cache.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

from losslens.errors import LossLensError, unknown
from losslens.problems.base import Problem, State

TOKEN_DTYPES = ("uint16", "uint32", "int32", "int64")


def tokenizer_file(folder_or_file: str | Path) -> Path:
    """The ``tokenizer.json`` of a model folder (or the file itself).

    :raises LossLensError: there is none.
    """
    path = Path(folder_or_file)
    file = path / "tokenizer.json" if path.is_dir() or not path.suffix else path
    if not file.is_file():
        raise LossLensError(
            "no tokenizer.json",
            where=str(file),
            hint="save the tokenizer into the model folder (tokenizer.save_pretrained(folder)), or pass pre-tokenised tokens=",
        )
    return file


def tokenize_text(text_path: Path, tokenizer: str | Path) -> np.ndarray:
    """Token ids of a UTF-8 text file, encoded whole with the ``tokenizers`` library (no special tokens).

    :raises LossLensError: no tokenizer.json, the file is missing or not UTF-8, or the library is missing.
    """
    file = tokenizer_file(tokenizer)
    try:
        from tokenizers import Tokenizer
    except ImportError:
        raise LossLensError(
            "tokenizers is not installed", where=str(file), hint="install the extra: pip install 'losslens[hf]'"
        ) from None
    try:
        tok = Tokenizer.from_file(str(file))
    except Exception as exc:  # the Rust side raises a bare Exception on a malformed file
        raise LossLensError(f"cannot read the tokenizer ({exc})", where=str(file)) from None
    try:
        text = text_path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise LossLensError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", where=str(text_path)) from None
    return np.asarray(tok.encode(text, add_special_tokens=False).ids, dtype=np.int64)


def read_token_ids(path: Path, token_dtype: str) -> np.ndarray:
    """A 1-D stream of token ids from ``.npy`` (any integer array, flattened) or a raw ``.bin``.

    :raises LossLensError: the file holds no integers, a negative id, or is a pickled object array.
    """
    where = str(path)
    if path.suffix == ".npy":
        try:
            ids = np.load(path, allow_pickle=False)
        except ValueError as exc:
            raise LossLensError(
                f"cannot read the array ({exc})", where=where, hint="save an integer array with np.save"
            ) from None
    elif path.suffix == ".bin":
        if token_dtype not in TOKEN_DTYPES:
            raise unknown("token_dtype", token_dtype, TOKEN_DTYPES, where=where)
        ids = np.fromfile(path, dtype=np.dtype(token_dtype).newbyteorder("<"))
    else:
        raise LossLensError("token ids must be a .npy or .bin file", where=where, hint="or give a text file as text=")
    if not np.issubdtype(ids.dtype, np.integer):
        raise LossLensError(f"token ids must be integers, found {ids.dtype}", where=where)
    ids = ids.reshape(-1).astype(np.int64)
    if len(ids) and ids.min() < 0:
        raise LossLensError(f"negative token id {int(ids.min())}", where=where)
    return ids


def next_token_cross_entropy(logits: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of predicting ``ids[:, 1:]`` from ``logits[:, :-1]``: (B, L, V), (B, L) → scalar.

    Written with primitives (log-softmax, gather) so that vmap, jvp and double backward all go through it.
    """
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    return -logp.gather(-1, ids[:, 1:, None]).mean()


class CausalLMProblem(Problem):
    """Fixed-length token sequences of one text, split into train and test; loss: next-token cross-entropy."""

    kind: ClassVar[str] = "causal_lm"

    def __init__(self, name: str, sequences: torch.Tensor, n_test: int, batch_size: int, source: dict[str, Any]):
        if len(sequences) - n_test < 1:
            raise LossLensError(f"{name}: no training sequence", where="causal_lm", hint="use a longer text or a smaller seq_len")
        self.name = name
        self.data = {"train": sequences[: len(sequences) - n_test], "test": sequences[len(sequences) - n_test :]}
        self.batch_size = batch_size
        self.seq_len = int(sequences.shape[1])
        self.max_id = int(sequences.max()) if sequences.numel() else -1
        self.source = source

    def to(self, device: torch.device) -> CausalLMProblem:
        self.device = torch.device(device)
        self.data = {k: v.to(self.device) for k, v in self.data.items()}
        return self

    def split(self, split: str) -> torch.Tensor:
        if split not in self.data or not len(self.data[split]):
            raise LossLensError(
                f"split {split!r} has no sequences", where=self.name, hint="set test_fraction > 0 for a test split"
            )
        return self.data[split]

    def batches(self, split: str = "train", batch_size: int | None = None, limit: int | None = None) -> Iterator[torch.Tensor]:
        """(B, seq_len) int64 token ids, in file order."""
        seqs = self.split(split)
        size = batch_size or self.batch_size
        for i, start in enumerate(range(0, len(seqs), size)):
            if limit is not None and i >= limit:
                return
            yield seqs[start : start + size]

    def _call(self, model: nn.Module, state: State, ids: torch.Tensor, **kwargs: Any) -> Any:
        config = getattr(model, "config", None)
        vocab = getattr(config, "vocab_size", None)
        if vocab is not None and self.max_id >= vocab:
            raise LossLensError(
                f"token id {self.max_id} is outside the model's vocabulary of {vocab}",
                where=self.name,
                hint="tokenise with the model's own tokenizer",
            )
        if config is not None:  # a transformers model: no KV cache, plain outputs
            kwargs = {"use_cache": False, **kwargs}
        return functional_call(model, state, (ids,), kwargs)

    def logits(self, model: nn.Module, state: State, ids: torch.Tensor) -> torch.Tensor:
        """(B, L, vocab) next-token logits; ``model`` may return a tensor or an object with ``.logits``."""
        out = self._call(model, state, ids)
        return getattr(out, "logits", out)

    def loss(self, model: nn.Module, state: State, batch: torch.Tensor) -> torch.Tensor:
        return next_token_cross_entropy(self.logits(model, state, batch), batch)

    def hidden_states(self, model: nn.Module, state: State, ids: torch.Tensor) -> list[torch.Tensor]:
        """The residual stream: the embedding output and every layer's output, each (B, L, hidden)
        (``output_hidden_states``; the last has the final LayerNorm applied, as transformers returns it).

        :raises LossLensError: the model does not return hidden states (not a transformers model).
        """
        out = self._call(model, state, ids, output_hidden_states=True)
        hidden = getattr(out, "hidden_states", None)
        if hidden is None:
            raise LossLensError(
                "the model returns no hidden states", where=self.name, hint="per-layer CKA needs a transformers causal LM"
            )
        return list(hidden)

    def cka_inputs(self, n: int) -> torch.Tensor:
        """The first ``n`` training sequences: the fixed input set CKA compares models on."""
        return self.split("train")[:n]

    @torch.no_grad()
    def loss_and_error(
        self, model: nn.Module, state: State, split: str = "train", batch_size: int | None = None, limit: int | None = None
    ) -> tuple[float, float]:
        """Mean next-token loss and top-1 next-token error over ``split`` (every predicted position counts once)."""
        n, loss_sum, wrong = 0, 0.0, 0
        for ids in self.batches(split, batch_size=batch_size, limit=limit):
            logits = self.logits(model, state, ids)
            count = ids[:, 1:].numel()
            loss_sum += float(next_token_cross_entropy(logits, ids)) * count
            wrong += int((logits[:, :-1].argmax(-1) != ids[:, 1:]).sum())
            n += count
        return loss_sum / n, wrong / n

    def performance(self, model: nn.Module, state: State) -> list[tuple[str, str, float]]:
        rows = []
        for split in ("train", "test"):
            if not len(self.data[split]):
                continue
            loss, error = self.loss_and_error(model, state, split)
            rows += [
                (split, "loss", loss),
                (split, "perplexity", math.exp(loss) if loss < 700 else math.inf),
                (split, "accuracy", 1 - error),
                (split, "error", error),
            ]
        return rows


def causal_lm(
    text: str = "",
    tokens: str = "",
    tokenizer: str = "",
    seq_len: int = 128,
    batch_size: int = 8,
    max_sequences: int = 0,
    test_fraction: float = 0.1,
    token_dtype: str = "uint16",
) -> CausalLMProblem:
    """Next-token prediction over a local text file or pre-tokenised ids.

    :param text: a UTF-8 text file, tokenised with ``tokenizer``.
    :param tokens: instead, token ids: ``.npy`` (integers) or ``.bin`` (raw ``token_dtype``, little-endian).
    :param tokenizer: a model folder holding ``tokenizer.json`` (or the file); needed with ``text``.
    :param seq_len: tokens per sequence (the loss predicts ``seq_len − 1`` of them).
    :param batch_size: sequences per batch.
    :param max_sequences: keep only the first N sequences (0: all), before the train/test split.
    :param test_fraction: the last fraction of the sequences held out as the test split.
    :raises LossLensError: neither or both of ``text``/``tokens``; a missing file or tokenizer; too little text.
    """
    where = "causal_lm"
    if bool(text) == bool(tokens):
        raise LossLensError("give exactly one of text= or tokens=", where=where, hint="a text file, or a .npy/.bin of token ids")
    if seq_len < 2 or batch_size < 1 or max_sequences < 0 or not 0 <= test_fraction < 1:
        raise LossLensError(
            "need seq_len ≥ 2, batch_size ≥ 1, max_sequences ≥ 0 and 0 ≤ test_fraction < 1", where=where, hint="fix the kwargs"
        )
    path = Path(text or tokens)
    if not path.is_file():
        raise LossLensError(
            "no such file", where=str(path), hint="paths in [problem] kwargs are relative to the working directory"
        )
    if text:
        if not tokenizer:
            raise LossLensError("text= needs tokenizer=", where=where, hint="name the model folder that holds tokenizer.json")
        ids = tokenize_text(path, tokenizer)
    else:
        ids = read_token_ids(path, token_dtype)
    n = len(ids) // seq_len
    if max_sequences:
        n = min(n, max_sequences)
    if n < 2:
        raise LossLensError(
            f"{len(ids)} tokens make {n} sequence(s) of {seq_len}", where=str(path), hint="use a longer text or a smaller seq_len"
        )
    sequences = torch.as_tensor(ids[: n * seq_len].reshape(n, seq_len))
    n_test = math.ceil(test_fraction * n) if test_fraction > 0 else 0
    source = {
        "source": str(path.resolve()),
        "source_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "tokenizer": str(tokenizer_file(tokenizer).resolve()) if tokenizer else None,
        "n_tokens": int(n * seq_len),
    }
    return CausalLMProblem(path.name, sequences, n_test, batch_size, source)
