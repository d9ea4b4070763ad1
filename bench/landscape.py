"""Landscape grid benchmark: batched vmap grids against a per-point loop and the FLOP bound.

The loop is written the way Landscaper evaluates a landscape: for every point, clone the
parameters, add a·d1 + b·d2, evaluate the loss (``losslens.landscape.grid.evaluate_loop``).
The FLOP bound is the matmul FLOPs one loss evaluation really performs (``loss_flops``: every
mm/addmm/bmm/convolution torch dispatches, counted with torch's own formulas, jvp tangents
included, but not the products with a zero tangent), times the number of points, over the
float32 matmul throughput measured here and now (1024² ``mm``). It counts matmuls only:
element-wise work (tanh and its jvp, adds) is outside it.
Each case runs in its own process so that its peak RSS is its own. torch uses 1 thread.

    flock /tmp/losslens-bench.lock env OMP_NUM_THREADS=1 .venv/bin/python bench/landscape.py
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from typing import Any, ClassVar

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.flop_counter import flop_registry

from losslens.jobs.context import Subject
from losslens.landscape.directions import random_directions
from losslens.params import flatten
from losslens.landscape.grid import batched_loss, evaluate, evaluate_loop, grid_coordinates
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
    subject = Subject(case, case, model, {k: v.detach() for k, v in model.named_parameters()},
                      {k: v.detach() for k, v in model.named_buffers()}, problem, {})
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
        zero = any(isinstance(t, torch.Tensor) and t.numel() > 0 and not any(t.stride()) and not t.reshape(-1)[0]
                   for t in tree_leaves((args, kwargs)))
        if count is not None and not zero:
            self.flops += count(*args, **kwargs, out_val=out)
        return out


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


def run_case(case: str) -> dict[str, Any]:
    torch.set_num_threads(1)
    subject, steps = subject_for(case)
    directions = random_directions(subject.params, 2, seed=0, normalization="filter", orthogonalize=True)
    _, coords = grid_coordinates([1.0, 1.0], steps)
    batches = list(subject.problem.batches("train", limit=1))
    loss = batched_loss(subject, batches)
    theta = flatten(subject.params)
    flops = loss_flops(loss, theta)
    gflops = matmul_gflops()
    bound = flops * len(coords) / (gflops * 1e9)
    evaluate(subject, directions, coords[:8], batches)  # warm-up (first torch.func call)
    t0 = time.perf_counter()
    values, chunk = evaluate(subject, directions, coords, batches)
    batched_s = time.perf_counter() - t0
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    loop_points = len(coords) if case == "pinn" else min(len(coords), 2000 if case == "mlp" else 200)
    t0 = time.perf_counter()
    reference = evaluate_loop(subject, directions, coords[:loop_points], batches)
    loop_s = (time.perf_counter() - t0) * len(coords) / loop_points
    assert np.allclose(values[:loop_points], reference, rtol=1e-4, atol=1e-5)
    return {"case": case, "grid": f"{steps}×{steps}", "n_params": theta.numel(), "mflop": flops / 1e6, "chunk": chunk, "batched_s": batched_s,
            "loop_s": loop_s, "loop_points": loop_points, "bound_s": bound, "gflops": gflops, "peak_rss_mb": rss_mb}


def main() -> None:
    if len(sys.argv) > 1:
        print(json.dumps(run_case(sys.argv[1])))
        return
    print("| case | grid | params | MFLOP per loss | chunk | batched (s) | per-point loop (s) | loop / batched | FLOP bound (s) | batched / bound | matmul GFLOP/s | peak RSS (MB) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    names = {"pinn": "convection PINN, N_f = 1000", "mlp": "regression MLP 1-16-16-1", "resnet": "ResNet-20 on digits, batch 128"}
    for case in ("pinn", "mlp", "resnet"):
        out = subprocess.run([sys.executable, __file__, case], capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        loop = f"{r['loop_s']:.2f}" + ("" if r["loop_points"] == int(r["grid"].split("×")[0]) ** 2 else f" (timed on {r['loop_points']} points, scaled)")
        print(f"| {names[case]} | {r['grid']} | {r['n_params']} | {r['mflop']:.2f} | {r['chunk']} | {r['batched_s']:.2f} | {loop} | "
              f"{r['loop_s'] / r['batched_s']:.1f}× | {r['bound_s']:.2f} | {r['batched_s'] / r['bound_s']:.2f} | {r['gflops']:.0f} | {r['peak_rss_mb']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
