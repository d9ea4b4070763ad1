"""Tests for the grid's batched kernels (losslens/landscape/kernels.py), its chunk-size rules and
the allocator setting: oracles are torch's own linear/tanh/jvp, closed-form FLOP counts and
closed-form footprints."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call, jvp, vmap
from torch.utils.flop_counter import FlopCounterMode

from losslens.landscape import grid
from losslens.landscape.kernels import GridKernels
from losslens.models import mlp
from losslens.params import flatten, unflatten


def _linear(x, w, b):
    with GridKernels():
        return F.linear(x, w, b)


@pytest.mark.parametrize("inputs", [1, 3])
@pytest.mark.parametrize(
    "in_dims", [(0, 0, 0), (None, 0, 0), (0, None, None), (None, None, 0), (0, 0, None), (1, 0, None), (0, None, 0)]
)
def test_linear_vmap_rule_equals_torch(in_dims, inputs: int) -> None:
    """Every combination of batched and shared x, weight and bias (and a batch dim not in front)
    gives torch's vmapped ``F.linear``, for one input (the outer-product path) and for three."""
    g = torch.Generator().manual_seed(0)
    size = 4
    shapes = {"x": (7, 5, inputs), "w": (6, inputs), "b": (6,)}
    args = []
    for shape, dim in zip(shapes.values(), in_dims, strict=True):
        t = torch.randn(*shape, generator=g)
        if dim is not None:
            t = torch.stack([torch.randn(*shape, generator=g) for _ in range(size)], dim=dim)
        args.append(t)
    if in_dims[2] is None and in_dims[0] == 0 and in_dims[1] == 0:
        args[2] = None
    got = vmap(_linear, in_dims=in_dims)(*args)
    want = vmap(F.linear, in_dims=in_dims)(*args)
    assert got.shape == want.shape
    assert torch.allclose(got, want, atol=1e-6)


def test_vector_weight_falls_through_to_torch() -> None:
    """``F.linear`` also takes a 1-D weight (a dot product); that form is left to torch."""
    x, w = torch.randn(5, 3), torch.randn(4, 3)
    assert torch.allclose(vmap(lambda row: _linear(x, row, None))(w), vmap(lambda row: F.linear(x, row))(w))


def test_tanh_is_within_float_rounding_of_torch() -> None:
    z = torch.linspace(-20, 20, 200_001)
    with GridKernels():
        fast32, fast64 = torch.tanh(z), torch.tanh(z.double())
    assert (fast32 - torch.tanh(z)).abs().max() <= 2.4e-7
    assert (fast64 - torch.tanh(z.double())).abs().max() <= 1e-15


def test_jvp_inside_vmap_equals_torch_and_skips_zero_weight_tangents() -> None:
    """The PINN pattern, vmap over parameter rows of a jvp along the inputs: same tangents as
    torch, and the FLOPs are exactly the needed products (closed form), where torch also
    multiplies the weights' zero tangents."""
    model = mlp(2, 1, width=8, depth=2)
    params = {k: v.detach() for k, v in model.named_parameters()}
    rows = flatten(params) + 0.1 * torch.randn(3, flatten(params).numel(), generator=torch.Generator().manual_seed(1))
    x, v = torch.randn(10, 2), torch.ones(10, 2)

    def tangent(row):
        p = unflatten(row, params)
        return jvp(lambda z: functional_call(model, p, (z,)), (x,), (v,))[1]

    with FlopCounterMode(display=False) as plain:
        want = vmap(tangent)(rows)
    with GridKernels(), FlopCounterMode(display=False) as fast:
        got = vmap(tangent)(rows)
    assert torch.allclose(got, want, atol=1e-6)
    needed = 2 * 3 * 10 * 2 * (2 * 8 + 8 * 8 + 8 * 1)  # primal and tangent products, 3 rows
    assert fast.get_total_flops() == needed < plain.get_total_flops()


def test_jvp_along_weight_and_bias_equals_torch() -> None:
    g = torch.Generator().manual_seed(2)
    x, w, b = torch.randn(5, 3, generator=g), torch.randn(4, 3, generator=g), torch.randn(4, generator=g)
    tangents = (torch.randn(5, 3, generator=g), torch.randn(4, 3, generator=g), torch.randn(4, generator=g))
    want = jvp(F.linear, (x, w, b), tangents)
    got = jvp(_linear, (x, w, b), tangents)
    assert torch.allclose(got[0], want[0]) and torch.allclose(got[1], want[1], atol=1e-6)
    only_bias = jvp(lambda bias: _linear(x, w, bias), (b,), (tangents[2],))[1]
    assert torch.equal(only_bias, tangents[2].expand(5, 4))


def test_backward_through_the_kernels_is_refused() -> None:
    """Forward and forward-mode only, as documented: the grid runs under no_grad."""
    x = torch.randn(3, 2, requires_grad=True)
    with GridKernels():
        y = torch.tanh(x).sum()
    with pytest.raises(NotImplementedError):
        y.backward()


def _mlp_loss(batch: int):
    model = mlp(1, 1, width=16, depth=2)
    params = {k: v.detach() for k, v in model.named_parameters()}
    x = torch.randn(batch, 1)
    return (lambda row: functional_call(model, unflatten(row, params), (x,)).pow(2).mean()), flatten(params)


def test_chunk_size_rules_from_closed_form_footprints(monkeypatch: pytest.MonkeyPatch) -> None:
    """1-16-16-1 MLP on 256 inputs: module outputs 4 × 16 KiB (linear, tanh, linear, tanh), 1 KiB
    (last linear) and 1 KiB (the Sequential itself); 321 float parameters."""
    loss, theta = _mlp_loss(256)
    total = grid.ACTIVATION_FACTOR * (4 * 16384 + 2 * 1024) + 2 * 321 * 4
    assert grid.footprint(loss, theta) == (total, 16384)
    assert grid.chunk_size(loss, theta, 10**6) == grid.CACHE_BYTES // 16384
    assert grid.chunk_size(loss, theta, 10) == 10
    monkeypatch.setattr(grid, "MEMORY_BUDGET_BYTES", 100 * total)
    assert grid.chunk_size(loss, theta, 10**6) == 100
    monkeypatch.setattr(grid, "ALONE_BYTES", total - 1)
    assert grid.chunk_size(loss, theta, 10**6) == 1


ALLOC = """
import ctypes, sys, torch
from losslens.allocator import keep_freed_memory
class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2
assert sys.argv[1] == "0" or keep_freed_memory()
before = libc.mallinfo2()
block = torch.empty(5_000_000)  # 20 MB, the size of a landscape chunk's activation
during = libc.mallinfo2()
del block
after = libc.mallinfo2()
print(during.hblkhd - before.hblkhd, after.fordblks - before.fordblks)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc is Linux-only")
@pytest.mark.slow
def test_keep_freed_memory_keeps_blocks_in_the_heap() -> None:
    """glibc's own accounting (mallinfo2), fresh processes: by default a 20 MB tensor is its own
    mmap, unmapped when freed (so the next one faults in fresh pages); after keep_freed_memory it
    comes from the heap and stays there, free for the next one."""
    runs = [
        subprocess.run([sys.executable, "-c", ALLOC, flag], capture_output=True, text=True, check=True).stdout.split()
        for flag in ("0", "1")
    ]
    (mapped, kept), (mapped_tuned, kept_tuned) = [[int(v) for v in run] for run in runs]
    assert mapped >= 20_000_000 and kept < 1_000_000
    assert mapped_tuned == 0 and kept_tuned >= 19_000_000
