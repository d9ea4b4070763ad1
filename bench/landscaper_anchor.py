"""Landscaper 1.3.1 on our benchmark cases: run with the Python of a separate bench venv.

bench/landscape.py and bench/topology.py call this when ``LANDSCAPER_PYTHON`` names that
Python, so the anchor is timed in the same run as our code, on the same models, directions
and landscapes. Setup (Landscaper pulls topopy, nglpy, pandas and matplotlib, which LossLens
does not need):

    python3 -m venv /tmp/landscaper-venv
    /tmp/landscaper-venv/bin/pip install torch==2.13.0 landscaper==1.3.1 -e .

    /tmp/landscaper-venv/bin/python bench/landscaper_anchor.py grid pinn
    /tmp/landscaper-venv/bin/python bench/landscaper_anchor.py merge-tree landscape.npy

``grid`` times ``compute_loss_landscape`` (its per-point loop: clone, step along each direction,
copy into the model, evaluate) with our filter-normalised directions (it rescales them its own
way; the work per point is the same). ``merge-tree`` times ``landscaper.tda.merge_tree``
(topopy's MergeTree over its empty-region neighbour graph) on a 2-D array of losses. Each prints
one JSON line; torch uses 1 thread.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))


def grid(case: str) -> dict[str, float]:
    from landscape import subject_for
    from landscaper.compute import compute_loss_landscape

    from losslens.landscape.directions import random_directions
    from losslens.params import unflatten

    subject, steps = subject_for(case)
    directions = random_directions(subject.params, 2, seed=0, normalization="filter", orthogonalize=True)
    dirs = [list(unflatten(row, subject.params).values()) for row in directions]
    batch = next(iter(subject.problem.batches("train", limit=1)))
    buffers = dict(subject.model.named_buffers())

    def scalar_fn(model: torch.nn.Module, data) -> float:
        return float(subject.problem.loss(model, {**dict(model.named_parameters()), **buffers}, data))

    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        compute_loss_landscape(subject.model, batch, dirs, scalar_fn, steps=steps, distance=0.01, dim=2, device="cpu")
    return {"landscaper_grid_s": time.perf_counter() - t0}


def merge_tree(path: str) -> dict[str, float]:
    from landscaper import tda

    loss = np.load(path)
    axes = [np.linspace(-1, 1, n) for n in loss.shape]
    points = np.stack([m.ravel() for m in np.meshgrid(*axes, indexing="ij")], axis=1)
    t0 = time.perf_counter()
    tree = tda.merge_tree(loss, points)
    return {"landscaper_merge_tree_s": time.perf_counter() - t0, "landscaper_nodes": len(tree.nodes)}


def main() -> None:
    torch.set_num_threads(1)
    command, arg = sys.argv[1:3]
    print(json.dumps(grid(arg) if command == "grid" else merge_tree(arg)))


if __name__ == "__main__":
    main()
