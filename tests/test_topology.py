"""Tests for losslens.topology: merge trees against gudhi, closed-form wells, non-finite values."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from losslens.topology.graph import grid_edges, knn_edges
from losslens.topology.layout import node_xy
from losslens.topology.merge_tree import join_tree, simplified
from losslens.topology.persistence import graph_persistence, grid_persistence
from losslens.topology.summaries import curvature, summarize


def _field(rng: np.random.Generator, kind: str, shape: tuple[int, ...]) -> np.ndarray:
    if kind == "smooth":
        return gaussian_filter(rng.normal(size=shape), 1.5)
    if kind == "noise":
        return rng.normal(size=shape)
    return rng.integers(0, 4, size=shape).astype(float)  # plateaus: many exact ties


def _tree_pairs(tree) -> tuple[list, list]:
    dying = (tree.saddle >= 0) & np.isfinite(tree.persistence) & (tree.persistence > 0)
    values = sorted(zip(tree.birth[dying].tolist(), tree.death[dying].tolist(), strict=True))
    points = sorted(zip(tree.minimum[dying].tolist(), tree.saddle[dying].tolist(), strict=True))
    return values, points


def _gudhi_pairs(pairs) -> tuple[list, list]:
    m = pairs.finite_h0()
    values = sorted(zip(pairs.birth[m].tolist(), pairs.death[m].tolist(), strict=True))
    points = sorted(zip(pairs.birth_point[m].tolist(), pairs.death_point[m].tolist(), strict=True))
    return values, points


@pytest.mark.parametrize("kind", ["smooth", "noise", "plateau"])
@pytest.mark.parametrize("shape", [(9, 11), (23, 17), (5, 6, 7), (8, 8, 8)])
def test_merge_tree_pairs_equal_gudhi_h0(kind: str, shape: tuple[int, ...]) -> None:
    """Oracle: gudhi CubicalComplex(vertices=...) finite H0 pairs. 10 fields per case, 120 in all.
    Values always agree; on tie-free fields (smooth, noise) the birth and death points agree too.
    On plateaus only values are compared: which of equal-valued minima is the elder is a convention."""
    rng = np.random.default_rng(zlib.crc32(f"{kind}{shape}".encode()))  # fixed per case, unlike hash()
    for _ in range(10):
        f = _field(rng, kind, shape)
        tree = join_tree(f, grid_edges(f.shape))
        ours_v, ours_p = _tree_pairs(tree)
        theirs_v, theirs_p = _gudhi_pairs(grid_persistence(f))
        assert ours_v == theirs_v
        if kind != "plateau":
            assert ours_p == theirs_p


def test_grid_connectivity_is_axis_neighbours_like_gudhi() -> None:
    """Oracle: gudhi. Two minima touching only diagonally stay apart in 2-D (4-neighbours) and
    in 3-D (6-neighbours): both gudhi and the merge tree see a pair dying at the wall value."""
    cube = np.full((2, 2, 2), 5.0)
    cube[0, 0, 0], cube[1, 1, 1] = 0.0, 1.0
    for f in (np.array([[0.0, 5.0], [5.0, 1.0]]), cube):
        tree = join_tree(f, grid_edges(f.shape))
        assert _tree_pairs(tree)[0] == _gudhi_pairs(grid_persistence(f))[0] == [(1.0, 5.0)]


def test_knn_graph_pairs_equal_gudhi_simplex_tree() -> None:
    """Oracle: gudhi SimplexTree holding the same kNN graph (H0 of its sublevel filtration)."""
    rng = np.random.default_rng(7)
    for dims in (3, 4):
        coords = rng.uniform(-1, 1, size=(400, dims))
        values = np.sin(3 * coords).sum(axis=1) + 0.1 * rng.normal(size=400)
        edges = knn_edges(coords, 4 * dims)
        tree = join_tree(values, edges)
        assert _tree_pairs(tree) == _gudhi_pairs(graph_persistence(values, edges))


def _wells(depths: list[float], centres: list[tuple[int, int]], n: int = 101, sigma: float = 4.0) -> np.ndarray:
    y, x = np.mgrid[0:n, 0:n]
    f = np.zeros((n, n))
    for d, (cy, cx) in zip(depths, centres, strict=True):
        f -= d * np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * sigma**2))
    return f


def test_separated_gaussian_wells_give_known_minima_and_persistences() -> None:
    """Closed form: k wells of depth dᵢ on a flat floor at 0, far apart, have minima −dᵢ; every
    well but the deepest dies where it meets the floor, so its persistence is dᵢ (to the
    wells' overlap, < 1e-6 here); the deepest never dies."""
    depths = [3.0, 2.0, 1.5, 1.0, 0.5]
    centres = [(20, 20), (20, 80), (80, 20), (80, 80), (50, 50)]
    f = _wells(depths, centres)
    tree = join_tree(f, grid_edges(f.shape))
    keep = tree.kept(0.1)
    assert keep.sum() == len(depths)
    assert np.allclose(sorted(tree.birth[keep]), sorted(-np.array(depths)), atol=1e-6)
    finite = np.isfinite(tree.persistence[keep])
    assert np.allclose(sorted(tree.persistence[keep][finite]), sorted(depths[1:]), atol=1e-6)
    basins = tree.segmentation(keep)
    for (cy, cx), m in zip(centres, tree.minimum[keep][np.argsort(tree.birth[keep])], strict=True):
        assert basins[cy * 101 + cx] == basins[m]  # each well's centre lies in its own basin


def test_layout_puts_main_branch_at_zero_and_branches_apart() -> None:
    """Invariants of the branch-decomposition layout: the global minimum's branch is at x = 0,
    each kept branch has its own x, and every node's y is its value."""
    f = _wells([3.0, 2.0, 1.5, 1.0, 0.5], [(20, 20), (20, 80), (80, 20), (80, 80), (50, 50)])
    tree = join_tree(f, grid_edges(f.shape))
    graph = simplified(tree, tree.kept(0.1))
    x, y = node_xy(tree, graph)
    kinds = np.array(graph.node_kind)
    assert x[(kinds == "minimum") & (graph.node_branch == 0)] == 0.0
    assert len(set(x[kinds == "minimum"].tolist())) == 5
    assert np.allclose(y, f.ravel()[graph.node_point])
    assert (kinds == "saddle").sum() >= 1 and (kinds == "root").sum() == 1


def test_non_finite_landscape_is_counted_not_fatal() -> None:
    """A grid with NaN and ±inf points: the sweep puts them at the top, gudhi agrees on the
    finite pairs, and the summary counts the non-finite points."""
    rng = np.random.default_rng(3)
    f = gaussian_filter(rng.normal(size=(31, 31)), 2.0)
    f[0, :5] = np.nan
    f[10, 3] = np.inf
    f[30, 30] = -np.inf
    f[15, :] = np.nan  # a wall: the two halves meet only at the top
    tree = join_tree(f, grid_edges(f.shape))
    pairs = grid_persistence(f)
    assert _tree_pairs(tree)[0] == _gudhi_pairs(pairs)[0]
    graph = simplified(tree, tree.kept(0.0))
    node_xy(tree, graph)
    centre = 31 * 31 // 2 + 31  # a finite point off the wall
    row = summarize(f.ravel(), tree, graph, tree.segmentation(tree.kept(0.0)), 0.0, centre, [(centre - 1, centre + 1)], [1.0])
    assert row["n_nonfinite"] == 5 + 1 + 1 + 31
    assert np.isfinite(row["grid_max"]) and row["n_points"] == 31 * 31
    never_die = (tree.saddle < 0) | ~np.isfinite(tree.death)
    assert never_die.sum() >= 2  # one component per side of the wall


def test_curvature_of_a_quadratic_is_exact() -> None:
    """Closed form: f = α a² + β b² has second differences 2α and 2β at the centre."""
    a = np.linspace(-1, 1, 21)
    f = (3.0 * a[:, None] ** 2 + 0.5 * a[None, :] ** 2).ravel()
    h = a[1] - a[0]
    c = 21 * 10 + 10
    assert np.allclose(curvature(f, c, [(c - 21, c + 21), (c - 1, c + 1)], [h, h]), [6.0, 1.0])
