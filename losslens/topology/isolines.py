"""Isolines (contour lines) of a 2-D loss landscape, computed once with the topology run.

Vega-Lite has no contour mark, so the lines are traced here with contourpy's marching squares on
log10 of the loss, at levels evenly spaced in log between the grid's finite positive minimum and
maximum, and stored as an artifact that the landscape view draws as polylines.
"""

from __future__ import annotations

from typing import cast

import contourpy
import numpy as np

N_LEVELS = 10
COLUMNS = ("level_index", "piece", "order", "a", "b", "level")


def isolines(a: np.ndarray, b: np.ndarray, loss: np.ndarray, n_levels: int = N_LEVELS) -> np.ndarray:
    """Polylines of log10(loss) as an (n, 6) float64 array with columns :data:`COLUMNS`: the level's index,
    the piece (connected line) within that level, the vertex order along the piece, its (a, b) position and
    the level as a loss value.

    ``a`` (length n_a) and ``b`` (length n_b) are the grid's axes, ``loss`` its (n_a, n_b) values; non-finite
    and non-positive losses are holes. A grid with fewer than four usable points or a constant loss has no
    isolines (an empty (0, 6) array). Method: marching squares (contourpy, ``LineType.Separate``).

    :raises ValueError: when ``loss`` is not (len(a), len(b)).
    """
    loss = np.asarray(loss, dtype=np.float64)
    if loss.shape != (len(a), len(b)):
        raise ValueError(f"loss has shape {loss.shape}, axes give {(len(a), len(b))}")
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(np.isfinite(loss) & (loss > 0), np.log10(np.where(loss > 0, loss, 1.0)), np.nan)
    empty = np.zeros((0, len(COLUMNS)))
    if np.isfinite(z).sum() < 4 or np.nanmin(z) == np.nanmax(z):
        return empty
    # contourpy takes z[y, x]: rows along b, columns along a.
    gen = contourpy.contour_generator(
        np.asarray(a, dtype=np.float64),
        np.asarray(b, dtype=np.float64),
        np.ma.masked_invalid(z.T),
        line_type=contourpy.LineType.Separate,
    )
    pieces = []
    for li, level in enumerate(np.linspace(np.nanmin(z), np.nanmax(z), n_levels + 2)[1:-1]):
        lines = cast(list[np.ndarray], gen.lines(level))  # LineType.Separate: one (n, 2) array per line
        for pi, line in enumerate(lines):
            n = len(line)
            pieces.append(
                np.column_stack([np.full(n, li), np.full(n, pi), np.arange(n), line[:, 0], line[:, 1], np.full(n, 10**level)])
            )
    return np.concatenate(pieces) if pieces else empty
