"""``losslens export landscape``: a landscape grid as VTK image data (``.vti``) for ParaView and TTK.

The original LossLens pipeline and many of its users analyse landscapes in TTK, which reads VTK
image data. pyevtk (a small, maintained VTK XML writer) writes the file; the grid's points carry
``loss`` and ``log10_loss`` (NaN where the loss was not finite), and the axes are the landscape's
coefficients α, β, γ along its directions, in units of each direction, with θ at the origin.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np

from losslens.errors import LossLensError, unknown
from losslens.export.chart import read_catalog, resolve_checkpoint
from losslens.store import chart_queries
from losslens.views.hints import subject_command
from losslens.views.source import load_array

LANDSCAPE_FORMATS = ("vti",)


def landscape_grid(conn: sqlite3.Connection, checkpoint: str, dims: int | None = None) -> tuple[np.ndarray, dict]:
    """(grid of losses, landscapes row) of the newest full-grid landscape of ``checkpoint`` with ``dims``
    axes (default: the most axes that fit VTK image data, 3, else fewer).

    :raises LossLensError: no such landscape, a sampled one, or more than 3 axes (VTK image data holds 3).
    """
    have = chart_queries.landscape_dims(conn, checkpoint)
    if dims is None:
        fitting = [d for d in have if d <= 3]
        if not fitting:
            raise LossLensError(
                "no landscape of 1 to 3 axes for this checkpoint",
                where=checkpoint[:12],
                hint=f"compute one: {subject_command(conn, ['landscape'], {'checkpoint': checkpoint}, ['--dims', '2'])} (or 3)",
            )
        dims = max(fitting)
    if dims > 3:
        raise LossLensError(
            f"a {dims}-D landscape does not fit VTK image data (at most 3 axes)",
            where=checkpoint[:12],
            hint="export --dims 3 or fewer, or a 2-D slice from the slices view",
        )
    record = chart_queries.landscape_record(conn, checkpoint, dims, grid_only=True)
    if record is None:
        raise LossLensError(
            f"no {dims}-D grid landscape for this checkpoint",
            where=checkpoint[:12],
            hint=f"compute one: {subject_command(conn, ['landscape'], {'checkpoint': checkpoint}, ['--dims', str(dims)])}"
            " (sampled landscapes have no grid)",
        )
    grid = load_array(conn, record["grid_artifact"])
    if grid is None:
        raise LossLensError("the landscape's grid artifact is missing", where=record["grid_artifact"][:12])
    return np.asarray(grid, dtype=np.float64), record


def write_vti(grid: np.ndarray, record: dict, out: Path) -> Path:
    """Write ``grid`` (axes i, j, k → x, y, z) as VTK image data; returns the ``.vti`` path written."""
    from pyevtk.hl import imageToVTK

    half = json.loads(record["half_widths_json"])
    steps = grid.shape
    cube = grid.reshape(steps + (1,) * (3 - grid.ndim))
    origin = tuple(-h for h in half) + (0.0,) * (3 - grid.ndim)
    spacing = tuple(2 * h / (n - 1) if n > 1 else 1.0 for h, n in zip(half, steps, strict=True)) + (1.0,) * (3 - grid.ndim)
    loss = np.where(np.isfinite(cube), cube, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_loss = np.where(loss > 0, np.log10(loss), np.nan)
    base = str(Path(out).with_suffix(""))
    written = imageToVTK(
        base,
        origin=origin,
        spacing=spacing,
        pointData={"loss": np.ascontiguousarray(loss), "log10_loss": np.ascontiguousarray(log_loss)},
    )
    return Path(written)


def export_landscape(catalog_path: Path, checkpoint: str, out: Path, fmt: str = "vti", dims: int | None = None) -> Path:
    """Write the checkpoint's landscape grid to ``out`` in ``fmt`` (``vti``); returns the path written.

    :raises LossLensError: unknown format, checkpoint or landscape (see :func:`landscape_grid`).
    """
    if fmt not in LANDSCAPE_FORMATS:
        raise unknown("format", fmt, LANDSCAPE_FORMATS, where="export landscape")
    with read_catalog(catalog_path) as conn:
        sha = resolve_checkpoint(conn, checkpoint)
        grid, record = landscape_grid(conn, sha, dims)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    return write_vti(grid, record, Path(out))
