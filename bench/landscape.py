"""Landscape grid benchmark: batched vmap grids against a per-point loop and the FLOP bound.

The loop is written the way Landscaper evaluates a landscape: for every point, clone the
parameters, add a·d1 + b·d2, evaluate the loss (``losslens.landscape.grid.evaluate_loop``).
The FLOP bound is the matmul FLOPs one loss evaluation really performs (``loss_flops``: every
mm/addmm/bmm/convolution torch dispatches, counted with torch's own formulas, jvp tangents
included, but not the products with a zero tangent), times the number of points, over the
float32 matmul throughput measured here and now (1024² ``mm``). It counts matmuls only:
element-wise work (tanh and its jvp, adds) is outside it. "Matmuls alone" replays the matmuls
one chunk really dispatches (same ops, same shapes) without anything else, times the number
of chunks: what the bound would be at the throughput these shapes get.
Each case runs in its own process so that its peak RSS is its own. torch uses 1 thread, and
glibc keeps freed memory (``keep_freed_memory``), as in ``losslens compute``. With
``LANDSCAPER_PYTHON`` set to a bench venv's Python (see bench/landscaper_anchor.py), Landscaper
1.3.1's own ``compute_loss_landscape`` is timed on each case in the same run.

    flock /tmp/losslens-bench.lock env OMP_NUM_THREADS=1 .venv/bin/python bench/landscape.py
    flock /tmp/losslens-bench.lock env OMP_NUM_THREADS=1 .venv/bin/python bench/landscape.py ablation
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.flop_counter import flop_registry

from losslens.allocator import keep_freed_memory
from losslens.jobs.context import Subject
from losslens.landscape import grid
from losslens.landscape.directions import random_directions
from losslens.landscape.grid import batched_loss, evaluate, evaluate_loop, grid_coordinates
from losslens.landscape.kernels import GridKernels
from losslens.params import flatten
from losslens.problems.base import Problem


class Regression(Problem):
    """y = sin(3x) on 256 points, MSE: the tiny regression where per-point overhead dominates."""

    kind: ClassVar[str] = "regression"

    def __init__(self) -> None:
        self.x = torch.linspace(-1, 1, 256)[:, None]
        self.y = torch.sin(3 * self.x)

    def batches(self, split="train", batch_size=None, limit=None):
        yield (self.x, self.y)

    def loss(self, model, state, batch):
        x, y = batch
        return ((torch.func.functional_call(model, state, (x,)) - y) ** 2).mean()

    def performance(self, model, state):
        return []

    def to(self, device):
        return self


def subject_for(case: str) -> tuple[Subject, int]:
    from losslens.models import mlp, pinn_mlp, resnet20
    from losslens.problems.convection import convection
    from losslens.problems.digits import digits

    torch.manual_seed(0)
    if case == "pinn":
        model, problem, steps = pinn_mlp(), convection(beta=1.0, n_collocation=1000), 41
    elif case == "mlp":
        model, problem, steps = mlp(1, 1, width=16, depth=2), Regression(), 201
    else:
        model, problem, steps = resnet20(in_channels=1, num_classes=10), digits(batch_size=128), 41
    model.eval()
    subject = Subject(
        case,
        case,
        model,
        {k: v.detach() for k, v in model.named_parameters()},
        {k: v.detach() for k, v in model.named_buffers()},
        problem,
        {},
    )
    return subject, steps


class MatmulFlops(TorchDispatchMode):
    """Adds up the FLOPs of the matmuls and convolutions the loss needs. Under ``jvp`` torch
    also multiplies every layer's input by its weight's zero tangent (a zero scalar expanded
    to the weight's shape, strides all 0): work the loss does not need, which FlopCounterMode
    counts and this does not (for the PINN, 1000 forwards: 52.9 against 37.6 MFLOP)."""

    def __init__(self) -> None:
        super().__init__()
        self.flops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        count = flop_registry.get(func.overloadpacket)
        zero = any(
            isinstance(t, torch.Tensor) and t.numel() > 0 and not any(t.stride()) and not t.reshape(-1)[0]
            for t in tree_leaves((args, kwargs))
        )
        if count is not None and not zero:
            self.flops += count(*args, **kwargs, out_val=out)
        return out


class MatmulRecorder(TorchDispatchMode):
    """Keeps every matmul or convolution dispatched (with its arguments) for :func:`replay`."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[Any, tuple, dict]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func.overloadpacket in flop_registry:
            self.calls.append((func, args, kwargs))
        return func(*args, **kwargs)


def matmuls_alone_s(subject: Subject, directions: torch.Tensor, coords: np.ndarray, batches: list, chunk: int) -> float:
    """Seconds the matmuls ``evaluate`` dispatches for one chunk take replayed alone (best of 5),
    times the number of chunks."""
    with MatmulRecorder() as recorder:
        evaluate(subject, directions, coords[:chunk], batches, chunk)
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        for func, args, kwargs in recorder.calls:
            func(*args, **kwargs)
        best = min(best, time.perf_counter() - t0)
    return best * -(-len(coords) // chunk)


def loss_flops(loss, theta: torch.Tensor) -> int:
    with torch.no_grad(), MatmulFlops() as counter:
        loss(theta)
    return counter.flops


def matmul_gflops() -> float:
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    a @ b
    t0 = time.perf_counter()
    for _ in range(10):
        a @ b
    return 10 * 2 * 1024**3 / (time.perf_counter() - t0) / 1e9


def setup(case: str) -> tuple[Subject, torch.Tensor, np.ndarray, list, int]:
    subject, steps = subject_for(case)
    directions = random_directions(subject.params, 2, seed=0, normalization="filter", orthogonalize=True)
    _, coords = grid_coordinates([1.0, 1.0], steps)
    loop_points = len(coords) if case == "pinn" else min(len(coords), 2000 if case == "mlp" else 200)
    return subject, directions, coords, list(subject.problem.batches("train", limit=1)), loop_points


def best_of(repeats: int, fn) -> tuple[float, Any]:
    """(fastest wall seconds, last result) over ``repeats`` calls: the machine is shared and noisy."""
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def run_case(case: str) -> dict[str, Any]:
    """Batched grid, loop, bound and matmuls alone, with the process set up as ``losslens compute``."""
    torch.set_num_threads(1)
    keep_freed_memory()
    subject, directions, coords, batches, loop_points = setup(case)
    loss = batched_loss(subject, batches)
    theta = flatten(subject.params)
    flops = loss_flops(loss, theta)
    gflops = matmul_gflops()
    bound = flops * len(coords) / (gflops * 1e9)
    evaluate(subject, directions, coords[:8], batches)  # warm-up (first torch.func call)
    batched_s, (values, chunk) = best_of(2, lambda: evaluate(subject, directions, coords, batches))
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    alone_s = matmuls_alone_s(subject, directions, coords, batches, chunk)
    loop_s, reference = best_of(2, lambda: evaluate_loop(subject, directions, coords[:loop_points], batches))
    assert np.allclose(values[:loop_points], reference, rtol=1e-4, atol=1e-5)
    side = round(len(coords) ** 0.5)
    return {
        "case": case,
        "grid": f"{side}×{side}",
        "points": len(coords),
        "n_params": theta.numel(),
        "mflop": flops / 1e6,
        "chunk": chunk,
        "batched_s": batched_s,
        "loop_s": loop_s * len(coords) / loop_points,
        "loop_points": loop_points,
        "bound_s": bound,
        "matmuls_alone_s": alone_s,
        "gflops": gflops,
        "peak_rss_mb": rss_mb,
    }


def run_default_loop(case: str) -> dict[str, Any]:
    """The loop alone in a process left as Landscaper leaves it: glibc's default malloc."""
    torch.set_num_threads(1)
    subject, directions, coords, batches, loop_points = setup(case)
    loop_s, _ = best_of(2, lambda: evaluate_loop(subject, directions, coords[:loop_points], batches))
    return {"default_loop_s": loop_s * len(coords) / loop_points}


def run_ablation(case: str, allocator: str) -> dict[str, Any]:
    """Batched seconds per point with and without the grid kernels (``GridKernels`` swapped for a
    no-op), at the chunk size evaluate picks, in a process with glibc's default or kept memory."""
    torch.set_num_threads(1)
    if allocator == "kept":
        keep_freed_memory()
    subject, directions, coords, batches, _ = setup(case)
    coords = coords[: min(len(coords), 8192)]
    evaluate(subject, directions, coords[:8], batches)
    out = {}
    for name, mode in (("vmap only", contextlib.nullcontext), ("with kernels", GridKernels)):
        grid.GridKernels = mode
        seconds, (_, chunk) = best_of(3, lambda: evaluate(subject, directions, coords, batches))
        out[name] = seconds / len(coords) * 1e3
    return {"chunk": chunk, **out}


def ablation() -> None:
    print("| case | chunk | malloc | vmap only (ms/point) | with kernels (ms/point) |")
    print("|---|---|---|---|---|")
    for case in ("pinn", "mlp"):
        for allocator in ("default", "kept"):
            r = measure(case, "ablation", allocator)
            print(f"| {case} | {r['chunk']} | {allocator} | {r['vmap only']:.4f} | {r['with kernels']:.4f} |", flush=True)


def measure(*args: str, python: str = sys.executable, script: str = __file__) -> dict[str, Any]:
    out = subprocess.run([python, script, *args], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def landscaper(case: str) -> dict[str, Any]:
    """Landscaper's own grid on the case, when ``LANDSCAPER_PYTHON`` names its bench venv."""
    python = os.environ.get("LANDSCAPER_PYTHON")
    if not python:
        return {}
    return measure("grid", case, python=python, script=str(Path(__file__).with_name("landscaper_anchor.py")))


def main() -> None:
    if sys.argv[1:] == ["ablation"]:
        ablation()
        return
    if len(sys.argv) > 1:
        case, *mode = sys.argv[1:]
        result = run_ablation(case, mode[1]) if mode[:1] == ["ablation"] else run_default_loop(case) if mode else run_case(case)
        print(json.dumps(result))
        return
    print(
        "| case | grid | params | MFLOP per loss | chunk | batched (s) | loop (s) | loop / batched | loop, default malloc (s) | that / batched "
        "| Landscaper (s) | Landscaper / batched | FLOP bound (s) | batched / bound | matmuls alone (s) | batched / matmuls alone "
        "| matmul GFLOP/s | peak RSS (MB) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    names = {"pinn": "convection PINN, N_f = 1000", "mlp": "regression MLP 1-16-16-1", "resnet": "ResNet-20 on digits, batch 128"}
    for case in ("pinn", "mlp", "resnet"):
        r = measure(case) | measure(case, "default-malloc") | landscaper(case)
        anchor = (
            f"{r['landscaper_grid_s']:.2f} | {r['landscaper_grid_s'] / r['batched_s']:.1f}×"
            if "landscaper_grid_s" in r
            else "— | —"
        )
        scaled = "" if r["loop_points"] == r["points"] else f" (timed on {r['loop_points']} points, scaled)"
        print(
            f"| {names[case]} | {r['grid']} | {r['n_params']} | {r['mflop']:.2f} | {r['chunk']} | {r['batched_s']:.2f} | {r['loop_s']:.2f}{scaled} | "
            f"{r['loop_s'] / r['batched_s']:.1f}× | {r['default_loop_s']:.2f} | {r['default_loop_s'] / r['batched_s']:.1f}× | {anchor} | "
            f"{r['bound_s']:.2f} | {r['batched_s'] / r['bound_s']:.2f} | {r['matmuls_alone_s']:.2f} | "
            f"{r['batched_s'] / r['matmuls_alone_s']:.2f} | {r['gflops']:.0f} | {r['peak_rss_mb']:.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
