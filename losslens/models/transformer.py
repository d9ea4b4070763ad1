"""A small decoder-only transformer for algorithmic tasks: the grokking model.

The architecture follows Nanda et al. (2023, "Progress measures for grokking via mechanistic
interpretability") with pre-LayerNorm blocks added (Power et al. 2022 used a 2-layer decoder with
LayerNorm): token and position embeddings, ``layers`` blocks of causal multi-head self-attention and a
ReLU MLP, each with a residual connection, a final LayerNorm and an unembedding. The logits of the last
position are the prediction, so ``(a, b, =) -> (a + b) mod p``.

Written with plain ``nn.Linear``/``nn.Embedding``/``nn.LayerNorm`` modules (not ``nn.MultiheadAttention``)
so every projection is its own weight matrix: Hessian, landscape and CKA see (and name) W_Q, W_K, W_V
and W_O of each block, and the landscape's ``F.linear`` kernel batches them under vmap.

Filter normalisation (Li et al. 2018, :mod:`losslens.landscape.directions`) rescales each slice along a
weight's first axis. For these modules that is: one row of ``nn.Linear.weight`` (out × in) = one output
unit, so one row of W_Q, W_K, W_V (one query/key/value coordinate of one head) and one row of W_O and of
the MLP and unembedding; one row of ``nn.Embedding.weight`` (vocab × d) = the vector of one token (or of
one position). LayerNorm gains and shifts and all biases are one-dimensional and are zeroed in random
directions, as Li et al.'s ``ignore="biasbn"``.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class SelfAttention(nn.Module):
    """Causal multi-head self-attention with separate Q, K, V and output projections."""

    def __init__(self, d_model: int, heads: int):
        super().__init__()
        if d_model % heads:
            raise ValueError(f"d_model {d_model} is not divisible by heads {heads}")
        self.heads = heads
        self.q = nn.Linear(d_model, d_model)
        self.k = nn.Linear(d_model, d_model)
        self.v = nn.Linear(d_model, d_model)
        self.o = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t, d = x.shape
        h, dh = self.heads, d // self.heads

        def split(y: torch.Tensor) -> torch.Tensor:  # (n, t, d) -> (n, h, t, dh)
            return y.reshape(n, t, h, dh).transpose(1, 2)

        q, k, v = split(self.q(x)), split(self.k(x)), split(self.v(x))
        scores = q @ k.transpose(-1, -2) / math.sqrt(dh)
        causal = torch.ones(t, t, dtype=torch.bool, device=x.device).tril()
        scores = scores.masked_fill(~causal, float("-inf"))
        mixed = torch.softmax(scores, dim=-1) @ v  # (n, h, t, dh)
        return self.o(mixed.transpose(1, 2).reshape(n, t, d))


class Block(nn.Module):
    """Pre-LayerNorm residual block: x + attn(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, d_model: int, heads: int, d_mlp: int):
        super().__init__()
        self.ln1 = nn.LayerNorm(d_model)
        self.attn = SelfAttention(d_model, heads)
        self.ln2 = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(nn.Linear(d_model, d_mlp), nn.ReLU(), nn.Linear(d_mlp, d_model))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class ModularTransformer(nn.Module):
    """Tokens (N, T) of ints in [0, vocab) -> logits (N, classes) read at the last position."""

    def __init__(self, vocab: int, classes: int, context: int, d_model: int, heads: int, d_mlp: int, layers: int):
        super().__init__()
        self.embed = nn.Embedding(vocab, d_model)
        self.pos = nn.Embedding(context, d_model)
        self.blocks = nn.Sequential(*[Block(d_model, heads, d_mlp) for _ in range(layers)])
        self.ln_f = nn.LayerNorm(d_model)
        self.unembed = nn.Linear(d_model, classes)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(tokens.shape[-1], device=tokens.device)
        x = self.embed(tokens) + self.pos(positions)
        x = self.ln_f(self.blocks(x))
        return self.unembed(x[:, -1])


def modular_transformer(p: int = 23, d_model: int = 64, heads: int = 4, d_mlp: int = 256, layers: int = 1) -> ModularTransformer:
    """The transformer for (a + b) mod ``p``: vocabulary 0…p−1 plus the ``=`` token p, context 3, p classes.

    Raises ValueError when a size is not positive, ``layers`` is not 1 or 2 (the grokking setting), or
    ``d_model`` is not divisible by ``heads``. Defaults: 1 layer, d_model 64, 4 heads, d_mlp 256
    (Nanda et al. used 128/4/512 at p = 113; ours is halved for CPU runs).
    """
    if p < 2 or d_model < 1 or heads < 1 or d_mlp < 1:
        raise ValueError("p must be at least 2 and d_model, heads and d_mlp positive")
    if layers not in (1, 2):
        raise ValueError(f"layers must be 1 or 2, not {layers}")
    return ModularTransformer(p + 1, p, 3, d_model, heads, d_mlp, layers)
