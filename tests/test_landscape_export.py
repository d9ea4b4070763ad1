"""Landscapes out of LossLens: ``export landscape --format vti`` (VTK image data for ParaView/TTK), read
back by two independent readers: the XML and appended raw bytes parsed by hand, and VTK's own
``vtkXMLImageDataReader`` (the reader ParaView uses)."""

from __future__ import annotations

import json
import re
import sqlite3
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from helpers import PINN_KWARGS, WatchedPage, save_checkpoint, write_spec
from typer.testing import CliRunner

from losslens.cli import app
from losslens.errors import LossLensError
from losslens.export.landscape import export_landscape
from losslens.jobs import compute


@pytest.fixture(scope="module")
def grids(tmp_path_factory) -> Path:
    """The tiny PINN sweep with a 2-D (7²), a 3-D (5³) and a 4-D (3⁴) grid landscape of each checkpoint."""
    import torch

    from losslens.ingest import ingest
    from losslens.models import pinn_mlp

    root = tmp_path_factory.mktemp("vti")
    torch.manual_seed(0)
    save_checkpoint(root / "runs" / "beta1_seed0.pt", pinn_mlp(**PINN_KWARGS), 0, {"beta": 1.0})
    spec = write_spec(
        root / "pinn.toml",
        "tiny-pinn",
        "losslens.models:pinn_mlp",
        PINN_KWARGS,
        "losslens.problems:convection",
        {"n_collocation": 64, "n_x": 32, "n_t": 16},
        ["runs/*.pt"],
        ["beta"],
    )
    db = root / "catalog" / "losslens.db"
    ingest(spec, db)
    for dims, steps in ((2, 7), (3, 5), (4, 3)):
        report = compute(["landscape"], [("dims", str(dims)), ("steps", str(steps))], catalog_path=db, device="cpu")
        assert report.failed == 0
    return db


def stored_grid(db: Path, dims: int) -> tuple[np.ndarray, dict]:
    """The grid artifact and landscapes row, read with plain SQL and numpy."""
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    row = dict(conn.execute("SELECT * FROM landscapes WHERE dims = ? AND samples = 0", (dims,)).fetchone())
    path = conn.execute("SELECT path FROM artifacts WHERE sha256 = ?", (row["grid_artifact"],)).fetchone()[0]
    conn.close()
    return np.load(db.parent / path), row


def parse_vti(path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """(ImageData attributes, point arrays) from the XML header and the raw appended block (UInt64 length
    prefix per array, little-endian Float64), in VTK's x-fastest point order."""
    data = path.read_bytes()
    head, _, tail = data.partition(b'<AppendedData encoding="raw">')
    raw = tail[tail.index(b"_") + 1 :]
    root = ET.fromstring(head + b"</VTKFile>")
    assert root.get("type") == "ImageData" and root.get("header_type") == "UInt64"
    image = root.find("ImageData")
    arrays = {}
    for array in image.iter("DataArray"):
        offset = int(array.get("offset"))
        n = int(np.frombuffer(raw[offset : offset + 8], "<u8")[0])
        arrays[array.get("Name")] = np.frombuffer(raw[offset + 8 : offset + 8 + n], "<f8")
    return image.attrib, arrays


@pytest.mark.parametrize("dims", [2, 3])
def test_vti_holds_the_grid_with_its_coordinates(grids, tmp_path, dims):
    """Oracle: the stored grid artifact (numpy) and half-widths (SQL); the file as parsed by hand and as
    read by VTK's vtkXMLImageDataReader."""
    grid, row = stored_grid(grids, dims)
    sha = row["checkpoint"]
    out = export_landscape(grids, sha[:12], tmp_path / f"land{dims}.vti", dims=dims)
    attrs, arrays = parse_vti(out)
    steps = grid.shape + (1,) * (3 - dims)
    assert attrs["WholeExtent"].split() == " ".join(f"0 {n - 1}" for n in steps).split()
    half = json.loads(row["half_widths_json"])
    origin = [float(v) for v in attrs["Origin"].split()]
    spacing = [float(v) for v in attrs["Spacing"].split()]
    for axis in range(dims):
        assert origin[axis] == pytest.approx(-half[axis])
        assert origin[axis] + spacing[axis] * (grid.shape[axis] - 1) == pytest.approx(half[axis])  # θ ± half-width
    loss = arrays["loss"].reshape(steps, order="F")  # x fastest
    np.testing.assert_array_equal(loss.reshape(grid.shape), grid.astype(np.float64))
    np.testing.assert_allclose(arrays["log10_loss"].reshape(steps, order="F").reshape(grid.shape), np.log10(grid))

    vtk = pytest.importorskip("vtk")
    from vtk.util.numpy_support import vtk_to_numpy

    reader = vtk.vtkXMLImageDataReader()
    reader.SetFileName(str(out))
    reader.Update()
    image = reader.GetOutput()
    assert image.GetDimensions() == steps
    assert image.GetOrigin()[:dims] == pytest.approx([-h for h in half])
    read = vtk_to_numpy(image.GetPointData().GetArray("loss")).reshape(steps, order="F").reshape(grid.shape)
    np.testing.assert_array_equal(read, grid.astype(np.float64))
    # The centre point is θ itself: its loss is the landscape's centre loss.
    assert read[(grid.shape[0] // 2,) * dims] == pytest.approx(row["centre_loss"])


def test_vti_refuses_what_vtk_image_data_cannot_hold(grids, tmp_path):
    """A 4-D grid has no VTK image data form: one line naming the checkpoint and the fix, nothing written."""
    with pytest.raises(LossLensError, match="4-D landscape does not fit VTK image data") as err:
        export_landscape(grids, "beta1_seed0", tmp_path / "four.vti", dims=4)
    assert "--dims 3" in err.value.hint
    assert not (tmp_path / "four.vti").exists()
    with pytest.raises(LossLensError, match="unknown format"):
        export_landscape(grids, "beta1_seed0", tmp_path / "x.obj", fmt="obj")


def test_export_landscape_command(grids, tmp_path):
    """Oracle: the CLI writes the file the library writes (same bytes), defaulting to the most axes that fit."""
    out = tmp_path / "cli.vti"
    result = CliRunner().invoke(
        app, ["export", "landscape", "--checkpoint", "beta1_seed0", "-o", str(out), "--catalog", str(grids)]
    )
    assert result.exit_code == 0, result.output
    attrs, _ = parse_vti(out)
    assert re.fullmatch(r"0 4 0 4 0 4", attrs["WholeExtent"])  # the 3-D (5³) grid: the most axes that fit
    assert out.read_bytes() == export_landscape(grids, "beta1_seed0", tmp_path / "lib.vti").read_bytes()


@pytest.mark.slow  # a browser
def test_surface_export_draws_offline(grids, tmp_path, browser):
    """Oracle: Chromium opens the exported file from disk with no request leaving it, and Plotly's drawn
    surface holds the stored 2-D grid (numpy, plain SQL)."""
    from losslens.export import export_chart

    grid, _ = stored_grid(grids, 2)
    out = export_chart(grids, "landscape", tmp_path / "surface.html", "surface", checkpoint="beta1_seed0")
    w = WatchedPage(browser, {"width": 900, "height": 700}, lambda url: url.startswith(("file:", "data:", "blob:")), "export")
    w.page.goto(out.as_uri())
    w.page.wait_for_function("document.querySelector('.js-plotly-plot') && document.querySelector('.js-plotly-plot').data")
    z = np.array(w.page.evaluate("Array.from(document.querySelector('.js-plotly-plot')._fullData[0].z, r => Array.from(r))"))
    np.testing.assert_allclose(z, grid.T)  # rows along β, columns along α
    assert w.page.locator("canvas").count() >= 1
    w.check("surface")
    with pytest.raises(LossLensError, match="draws a landscape"):
        export_chart(grids, "hessian", tmp_path / "x.html", "surface", checkpoint="beta1_seed0")
