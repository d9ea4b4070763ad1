"""Language-model benchmark: seconds and peak memory per Hessian-vector product and per landscape point for
GPT-NeoX models of about 1M, 10M and 70M parameters (70M = Pythia-70m's shape), on CPU.

Each (model, measurement) runs in a fresh subprocess, so the peak resident set (``ru_maxrss``) belongs
to that measurement alone; the table gives it above the process's resident set after the model and
data were built (the weights themselves are in that baseline), next to LossLens's own estimate
(:mod:`losslens.memory`). Measurements, on one batch of 4 sequences × 128 tokens of seeded random ids:

- ``hvp``: LossLens's ``HVP`` (double backward: the gradient graph is built once, then one backward pass
  per product); the first product (graph included) and the mean of the next ones;
- ``plain``: a plain ``torch.autograd.grad`` double backward written out in full for every product
  (forward, gradient with ``create_graph``, gradient of ⟨g, v⟩), as a script without LossLens would;
- ``point``: one landscape point by LossLens's grid evaluation (``landscape.grid.evaluate``; large models
  run one point at a time, without vmap) and by a clone-perturb-evaluate loop (``evaluate_loop``): a
  first call of one point (one-time costs), then one call over the points, whose mean is "s/op", with
  the minor page faults per point.

torch runs on 1 thread.

    flock /tmp/losslens-bench.lock env OMP_NUM_THREADS=1 .venv/bin/python bench/lm.py
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

SIZES = {
    # name: (vocab, hidden, layers, heads, intermediate)
    "1M": (2048, 128, 4, 4, 512),
    "10M": (8192, 256, 6, 8, 1024),
    "70M": (50304, 512, 6, 8, 2048),  # Pythia-70m
}
BATCH, SEQ = 4, 128
REPEATS = {"1M": 10, "10M": 5, "70M": 3}


def rss_bytes() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * resource.getpagesize()


def peak_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def build(size: str):
    from losslens.jobs.context import Subject
    from losslens.models.hf import hf_causal_lm
    from losslens.models.hf_tiny import gpt_neox_config
    from losslens.problems.causal_lm import CausalLMProblem

    vocab, hidden, layers, heads, inter = SIZES[size]
    torch.manual_seed(0)
    model = hf_causal_lm(gpt_neox_config(vocab, hidden, layers, heads, inter, max_positions=SEQ)).eval()
    ids = torch.randint(0, vocab, (BATCH * 2, SEQ), generator=torch.Generator().manual_seed(1))
    problem = CausalLMProblem("random", ids, BATCH, BATCH, {})
    params = {k: v.detach() for k, v in model.named_parameters()}
    buffers = {k: v.detach() for k, v in model.named_buffers()}
    return Subject("bench", size, model, params, buffers, problem, {})


def measure(size: str, what: str) -> dict:
    """One measurement in this process; returns its figures."""
    from losslens.hessian.hvp import hvp_operator
    from losslens.landscape.directions import random_directions
    from losslens.landscape.grid import batched_loss, chunk_for, evaluate, evaluate_loop, footprint
    from losslens.memory import hessian_estimate, landscape_estimate, saved_tensor_bytes
    from losslens.params import flatten

    torch.set_num_threads(1)
    s = build(size)
    n = sum(p.numel() for p in s.params.values())
    batch = next(s.problem.batches("train"))
    reps = REPEATS[size]
    v = torch.randn(n, generator=torch.Generator().manual_seed(2))
    out: dict = {"size": size, "what": what, "n_params": n}
    if what in ("hvp", "plain"):
        op = hvp_operator(s)
        leaves = {k: p.detach().requires_grad_(True) for k, p in s.params.items()}
        graph = saved_tensor_bytes(lambda: op.loss(leaves))
        out["estimate"] = hessian_estimate(n, n, 4, graph, 0).total - 4 * n
    base = rss_bytes()
    times = []
    if what == "hvp":
        for _ in range(reps + 1):
            t0 = time.perf_counter()
            op(v)
            times.append(time.perf_counter() - t0)
        out.update(first_s=times[0], each_s=float(np.mean(times[1:])))
    elif what == "plain":
        names = list(s.params)
        for _ in range(reps):
            t0 = time.perf_counter()
            leaves = [s.params[k].detach().requires_grad_(True) for k in names]
            loss = s.problem.loss(s.model, {**dict(zip(names, leaves, strict=True)), **s.buffers}, batch)
            grads = torch.autograd.grad(loss, leaves, create_graph=True)
            chunks = torch.split(v, [p.numel() for p in leaves])
            dot = sum((g * t.view_as(g)).sum() for g, t in zip(grads, chunks, strict=True))
            torch.autograd.grad(dot, leaves)
            times.append(time.perf_counter() - t0)
            del loss, grads, dot
        out.update(first_s=times[0], each_s=float(np.mean(times[1:])) if len(times) > 1 else times[0])
    else:
        directions = random_directions(s.params, 2, 0, "filter", True)
        coords = np.random.default_rng(0).uniform(-0.5, 0.5, size=(reps, 2))
        total, largest = footprint(batched_loss(s, [batch]), flatten(s.params))
        chunk = chunk_for(total, largest, reps)
        out["estimate"] = landscape_estimate(n, 4, 2, total - 8 * n, chunk).total - 4 * n
        out["chunk"] = chunk
        run = (
            (lambda c: evaluate(s, directions, c, [batch], chunk=chunk))
            if what == "point"
            else (lambda c: evaluate_loop(s, directions, c, [batch]))
        )
        t0 = time.perf_counter()
        run(coords[:1])  # the first point: one-time costs (first forward, first touch of buffers)
        out["first_s"] = time.perf_counter() - t0
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        t0 = time.perf_counter()
        run(coords)
        out["each_s"] = (time.perf_counter() - t0) / reps
        out["faults"] = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) // reps
    out["peak_above_base"] = peak_bytes() - base
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="*", default=list(SIZES))
    parser.add_argument("--what", nargs="*", default=["hvp", "plain", "point", "loop"], help="measurements to run")
    parser.add_argument("--one", nargs=2, metavar=("SIZE", "WHAT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(*args.one)))
        return
    print(f"torch {torch.__version__}, 1 thread, batch {BATCH} × {SEQ} tokens")
    print(
        f"{'model':>5} {'params':>11} {'measurement':<34} {'s/op':>8} {'first':>8} {'peak MiB':>9} {'estimate MiB':>13} {'faults/op':>9}"
    )
    for size in args.sizes:
        for what, label in (
            ("hvp", "HVP, LossLens (graph kept)"),
            ("plain", "HVP, plain autograd.grad"),
            ("point", "landscape point, LossLens grid"),
            ("loop", "landscape point, clone-perturb loop"),
        ):
            if what not in args.what:
                continue
            done = (
                subprocess.run([sys.executable, __file__, "--one", size, what], capture_output=True, text=True, check=True)
                .stdout.strip()
                .splitlines()[-1]
            )
            r = json.loads(done)
            first = f"{r['first_s']:.3f}" if "first_s" in r else ""
            est = f"{r['estimate'] / 2**20:.0f}" if "estimate" in r and what in ("hvp", "point") else ""
            print(
                f"{size:>5} {r['n_params']:>11,} {label:<34} {r['each_s']:>8.3f} {first:>8} "
                f"{r['peak_above_base'] / 2**20:>9.0f} {est:>13} {r.get('faults', ''):>9}",
                flush=True,
            )


if __name__ == "__main__":
    main()
