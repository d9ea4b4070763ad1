"""``losslens export chart|all|viewer``: static views to share without a server."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from losslens.cli.app import DEFAULT_CATALOG, CatalogOpt, app, console, user_errors
from losslens.errors import unknown
from losslens.export import export_all, export_chart, export_viewer
from losslens.export.all_views import DEFAULT_FORMATS
from losslens.export.chart import FORMATS
from losslens.views.registry import VIEWS

export_app = typer.Typer(
    help="Static exports: one chart, every view of an experiment, the offline viewer, or a landscape grid for ParaView.",
    no_args_is_help=True,
)
app.add_typer(export_app, name="export")

ExperimentName = Annotated[
    str | None, typer.Option("--experiment", "-e", help="Experiment name or id (default: all; taxonomy: the first).")
]


@export_app.command("chart")
@user_errors
def chart(
    view: Annotated[str, typer.Argument(help=f"One of: {', '.join(VIEWS)}.", show_default=False)],
    out: Annotated[Path, typer.Option("--out", "-o", dir_okay=False, help="File to write.")],
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format",
            "-f",
            help=f"{'|'.join(FORMATS)} (default: from --out's suffix), or surface: the landscape as a rotatable "
            "3-D surface in one offline HTML file (plotly).",
        ),
    ] = None,
    setting: Annotated[str | None, typer.Option("--setting", help="Setting id or label (modes).")] = None,
    checkpoint: Annotated[
        str | None,
        typer.Option(
            "--checkpoint",
            help="Checkpoint sha256, unique prefix or name (landscape, merge-tree, persistence, barcode, hessian).",
        ),
    ] = None,
    pair: Annotated[
        tuple[str, str] | None, typer.Option("--pair", help="Two checkpoints (curve, layer-cka, predictions).")
    ] = None,
    experiment: ExperimentName = None,
    catalog: CatalogOpt = DEFAULT_CATALOG,
) -> None:
    """One view as JSON (spec with data), self-contained offline HTML, SVG, PNG or PDF; a landscape also as a 3-D surface."""
    path = export_chart(catalog, view, out, fmt, experiment=experiment, setting=setting, checkpoint=checkpoint, pair=pair)
    console.print(f"wrote {path}")


@export_app.command("all")
@user_errors
def all_(
    out: Annotated[Path, typer.Option("--out", "-o", file_okay=False, help="Folder to write into.")],
    fmt: Annotated[
        list[str] | None,
        typer.Option(
            "--format", "-f", help=f"Repeat for several: {'|'.join(FORMATS)}. Default: {' and '.join(DEFAULT_FORMATS)}."
        ),
    ] = None,
    experiment: ExperimentName = None,
    catalog: CatalogOpt = DEFAULT_CATALOG,
) -> None:
    """Every view of an experiment (taxonomy, each setting's modes, each mode's local views, each pair's views)."""
    formats = tuple(fmt or DEFAULT_FORMATS)
    bad = [f for f in formats if f not in FORMATS]
    if bad:
        raise unknown("format", bad[0], FORMATS, where="export all")
    paths = export_all(catalog, out, experiment, formats)
    console.print(f"wrote {len(paths)} file(s) under {out}")


@export_app.command("viewer")
@user_errors
def viewer(
    out: Annotated[Path, typer.Option("--out", "-o", file_okay=False, help="Folder to write the viewer into.")],
    experiment: ExperimentName = None,
    catalog: CatalogOpt = DEFAULT_CATALOG,
) -> None:
    """The offline, VS Code-style viewer: open OUT/index.html in a browser, no server needed."""
    index = export_viewer(catalog, out, experiment)
    size = sum(p.stat().st_size for p in index.parent.iterdir() if p.is_file())
    console.print(f"wrote {index} ({size / 1e6:.1f} MB); open it in a browser")


@export_app.command("landscape")
@user_errors
def landscape(
    checkpoint: Annotated[str, typer.Option("--checkpoint", help="Checkpoint sha256, unique prefix or name.")],
    out: Annotated[Path, typer.Option("--out", "-o", dir_okay=False, help="File to write (.vti).")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="vti: VTK image data, for ParaView and TTK.")] = "vti",
    dims: Annotated[
        int | None, typer.Option("--dims", help="Which landscape: 1, 2 or 3 axes (default: the most, up to 3).")
    ] = None,
    catalog: CatalogOpt = DEFAULT_CATALOG,
) -> None:
    """A landscape's loss grid as VTK image data: point arrays loss and log10_loss over α, β, γ (θ at the origin)."""
    from losslens.export.landscape import export_landscape

    path = export_landscape(catalog, checkpoint, out, fmt, dims)
    console.print(f"wrote {path}")
