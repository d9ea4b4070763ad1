"""The mode-connectivity score of a profile e(t) along a path (Yang et al. 2021)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def mode_connectivity(values: Sequence[float]) -> tuple[float, int]:
    """mc = ½(e(0) + e(1)) − e(t*), with t* = argmax_t |e(t) − ½(e(0) + e(1))|.

    ``values`` is e at increasing t, its first and last entries at t = 0 and t = 1. Returns (mc,
    index of t*). mc < 0 means a barrier (poorly connected); mc ≥ 0 means well connected. Ties in
    |e(t) − mean| go to the first such t.
    """
    e = np.asarray(values, dtype=np.float64)
    if e.ndim != 1 or len(e) < 2:
        raise ValueError("need e(t) at two or more points, including both ends")
    mean = 0.5 * (e[0] + e[-1])
    star = int(np.argmax(np.abs(e - mean)))
    return float(mean - e[star]), star
