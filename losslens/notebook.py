"""LossLens in a notebook: ``losslens.open(catalog).chart(view, ...)`` returns a :class:`Chart` that Jupyter
(JupyterLab, Notebook 7, VS Code) draws inline through the Vega-Lite mimetype, offline: the front end's own
Vega renderer draws it, and the data are inline in the spec. The views, their arguments and their specs
are those of the view registry (:mod:`losslens.views.registry`), the same as in Datasette and the exports.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from losslens.errors import LossLensError
from losslens.views import registry

VEGALITE_MIMETYPE = "application/vnd.vegalite.v5+json"  # the Vega-Lite mimetype Jupyter front ends render
V5_SCHEMA = "https://vega.github.io/schema/vega-lite/v5.json"


class Chart:
    """One view as a Vega-Lite spec with its data inline. Displays itself in Jupyter; :meth:`save` writes
    any format of ``losslens export chart`` (json, html, svg, png, pdf)."""

    def __init__(self, view: str, args: dict[str, str], spec: dict[str, Any], n_rows: int) -> None:
        self.view, self.args, self.spec, self.n_rows = view, args, spec, n_rows

    def to_dict(self) -> dict[str, Any]:
        """The Vega-Lite spec (a copy), data inline."""
        return json.loads(json.dumps(self.spec, allow_nan=False))

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        """What Jupyter displays: the spec under the Vega-Lite mimetype, and a line of text elsewhere."""
        spec = {**self.to_dict(), "$schema": V5_SCHEMA}
        return {VEGALITE_MIMETYPE: spec, "text/plain": repr(self)}

    def __repr__(self) -> str:
        subject = ", ".join(f"{k}={v[:12]}" for k, v in self.args.items())
        return f"<LossLens chart {self.view} ({subject}): {self.n_rows} rows>"

    def save(self, path: str | Path, fmt: str | None = None) -> Path:
        """Write the chart to ``path`` in ``fmt`` (default: from the suffix); returns the path.

        :raises LossLensError: when the format is neither given nor one of the suffixes json, html, svg, png, pdf.
        """
        from losslens.export.chart import format_of, render

        path = Path(path)
        path.write_bytes(render(self.spec, format_of(path, fmt), title=f"LossLens: {self.view}"))
        return path


class Lens:
    """A catalog opened read-only for notebooks. Each call opens and closes its own connection, so a handle
    can live as long as the notebook."""

    def __init__(self, catalog: str | Path) -> None:
        self.catalog = Path(catalog)
        if not self.catalog.exists():
            raise LossLensError(f"no catalog at {self.catalog}", where="losslens.open", hint="give the path of a losslens.db")

    def views(self) -> dict[str, str]:
        """Every view's name and what it is drawn for (experiment, setting, checkpoint or pair)."""
        return {name: v.subject for name, v in registry.VIEWS.items()}

    def chart(
        self,
        view: str,
        *,
        experiment: str | None = None,
        setting: str | None = None,
        checkpoint: str | None = None,
        pair: tuple[str, str] | None = None,
    ) -> Chart:
        """The chart of ``view`` for a subject given by id, unique id prefix or name (as ``export chart`` takes).

        :raises LossLensError: for an unknown view, a missing or ambiguous subject, or a view with nothing to draw
            (the message names the metric to compute).
        """
        from losslens.export.chart import inline_spec, read_catalog, resolve_args

        with read_catalog(self.catalog) as conn:
            args = resolve_args(conn, view, experiment=experiment, setting=setting, checkpoint=checkpoint, pair=pair)
            spec, n_rows = inline_spec(conn, view, args)
        if n_rows == 0:
            raise LossLensError(
                f"nothing to draw: the {view} view has no rows for {', '.join(args.values())}",
                where="losslens.open().chart",
                hint=f"compute it first: losslens compute {' '.join(registry.VIEWS[view].metrics)}",
            )
        return Chart(view, args, spec, n_rows)

    def __repr__(self) -> str:
        return f"<LossLens catalog {self.catalog}>"
