"""Topology benchmark: merge tree + persistence + layout on 41², 201² and 1001² grids.

Yardstick: gudhi's CubicalComplex persistence alone (build, compute_persistence, vertex pairs),
timed side by side in the same run; "all" is LossLens's whole pipeline: gudhi plus our reading
of its pairs (``grid_persistence``), the merge tree, simplification, layout and basins.
Fields: "landscape" (smooth wells plus small noise, like a real loss surface), "noise"
(white noise: the worst case, one minimum in five points) and, at 41², "pinn": the convection
PINN's real 41² landscape from bench/landscape.py's case (our batched grid). With
``LANDSCAPER_PYTHON`` set to a bench venv's Python (see bench/landscaper_anchor.py),
Landscaper 1.3.1's merge tree (topopy) is timed on the same 41² arrays in the same run; at
201² and beyond it grows as about N^2.5 (hours), so it is not run there.

    flock /tmp/losslens-bench.lock env OMP_NUM_THREADS=1 .venv/bin/python bench/topology.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter

from losslens.topology.graph import grid_edges
from losslens.topology.layout import node_xy
from losslens.topology.merge_tree import join_tree, simplified
from losslens.topology.persistence import grid_persistence


def pinn_landscape() -> np.ndarray:
    """The convection PINN's 41² landscape (bench/landscape.py's case and directions)."""
    import torch

    sys.path.insert(0, str(Path(__file__).parent))
    from landscape import setup

    from losslens.landscape.grid import evaluate

    torch.set_num_threads(1)
    subject, directions, coords, batches, _ = setup("pinn")
    values, _ = evaluate(subject, directions, coords, batches)
    return values.reshape(41, 41)


def landscaper_merge_tree_s(f: np.ndarray) -> str:
    """Landscaper's merge tree on ``f`` in its bench venv, or "—" without ``LANDSCAPER_PYTHON``."""
    python = os.environ.get("LANDSCAPER_PYTHON")
    if not python:
        return "—"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "f.npy"
        np.save(path, f)
        out = subprocess.run(
            [python, str(Path(__file__).with_name("landscaper_anchor.py")), "merge-tree", str(path)],
            capture_output=True,
            text=True,
            check=True,
        )
    return f"{json.loads(out.stdout.strip().splitlines()[-1])['landscaper_merge_tree_s']:.1f}"


def field(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    if kind == "pinn":
        return pinn_landscape()
    if kind == "noise":
        return rng.normal(size=(n, n))
    smooth = gaussian_filter(rng.normal(size=(n, n)), n / 12, mode="wrap")
    return smooth / smooth.std() + 0.01 * rng.normal(size=(n, n))


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def gudhi_alone(f: np.ndarray) -> None:
    import gudhi

    complex_ = gudhi.CubicalComplex(vertices=f)
    complex_.compute_persistence()
    complex_.vertices_of_persistence_pairs()


def merge_tree_and_layout(f: np.ndarray) -> tuple[int, int]:
    """What LossLens adds to gudhi: the sweep, simplification at 1% of the range, layout, basins."""
    tree = join_tree(f, grid_edges(f.shape))
    keep = tree.kept(0.01 * float(np.ptp(f)))
    graph = simplified(tree, keep)
    node_xy(tree, graph)
    tree.segmentation(keep)
    return len(tree.minimum), len(graph.branches)


def main() -> None:
    rng = np.random.default_rng(0)
    print(
        "| grid | field | minima | kept branches | gudhi alone (s) | grid_persistence (s) | merge tree + layout (s) | all (s) | all / gudhi "
        "| goal | Landscaper merge tree (s) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    goals = {41: 0.05, 201: 0.2, 1001: 3.0}
    for n in (41, 201, 1001):
        repeat = 5 if n < 1001 else 2
        for kind in ("landscape", "noise", "pinn") if n == 41 else ("landscape", "noise"):
            f = field(kind, n, rng)
            minima, kept = merge_tree_and_layout(f)  # warm-up
            gudhi_s = best(lambda f=f: gudhi_alone(f), repeat)
            pairs_s = best(lambda f=f: grid_persistence(f), repeat)
            tree_s = best(lambda f=f: merge_tree_and_layout(f), repeat)
            all_s = pairs_s + tree_s
            print(
                f"| {n}² | {kind} | {minima} | {kept} | {gudhi_s:.3f} | {pairs_s:.3f} | {tree_s:.3f} | {all_s:.3f} | "
                f"{all_s / gudhi_s:.2f} | ≤ {goals[n]} s | {landscaper_merge_tree_s(f) if n == 41 else '—'} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
