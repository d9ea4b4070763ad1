"""LossLens in a notebook: ``losslens.open(catalog).chart(view, ...)`` returns a :class:`Chart` that Jupyter
(JupyterLab, Notebook 7, VS Code) draws inline, offline. The views, their arguments and their specs
are those of the view registry (:mod:`losslens.views.registry`), the same as in Datasette and the exports.

What a chart's mime bundle holds, and why (checked 2026-11-30 against the sources):

- the spec under ``application/vnd.vegalite.v6+json``: the Vega-Lite mimetype follows the spec's major
  version (our specs are Vega-Lite 6, :data:`losslens.views.spec.SCHEMA`). Altair 6 displays Vega-Lite 6
  specs under exactly this mimetype (``VEGALITE_MIME_TYPE`` in ``altair/vegalite/v6/display.py``,
  github.com/vega/altair);
- ``text/html``: the chart with the Vega bundle (vega, vega-lite 6, vega-embed, from vl-convert) inline,
  so it draws with no network wherever output scripts run. JupyterLab 4.4's built-in renderer
  (``@jupyterlab/vega5-extension`` 4.4.1, ``packages/vega5-extension/src/index.ts``) registers only the
  Vega-Lite v3, v4 and v5 mimetypes and bundles vega-lite 5 (github.com/jupyterlab/jupyterlab), so it draws
  none of a v6 spec; labelling our spec v5 for it (as LossLens did before) would hand a v6 spec to a v5
  compiler. Altair 6 itself renders through HTML by default (``renderers.enable("default")``, the HTML
  renderer, in the same display.py), having moved off mimetype rendering because front ends lag the
  Vega-Lite majors (vega/altair#2585). Each output carries the bundle (about 0.9 MB; the price of offline);
  a notebook reopened untrusted runs no output scripts until trusted;
- ``text/plain``: one line naming the view and its rows.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from losslens.errors import LossLensError
from losslens.views import registry
from losslens.views.spec import SCHEMA


def vegalite_mimetype(schema: str) -> str:
    """``application/vnd.vegalite.vN+json`` for a Vega-Lite ``$schema`` URL of major version N
    (``https://vega.github.io/schema/vega-lite/v6.json`` → ``application/vnd.vegalite.v6+json``).

    :raises ValueError: when ``schema`` is not a Vega-Lite schema URL.
    """
    found = re.search(r"/vega-lite/v(\d+)(?:\.[\d.]+)?\.json$", schema)
    if found is None:
        raise ValueError(f"not a Vega-Lite schema URL: {schema}")
    return f"application/vnd.vegalite.v{found.group(1)}+json"


VEGALITE_MIMETYPE = vegalite_mimetype(SCHEMA)


class Chart:
    """One view as a Vega-Lite spec with its data inline. Displays itself in Jupyter; :meth:`save` writes
    any format of ``losslens export chart`` (json, html, svg, png, pdf)."""

    def __init__(self, view: str, args: dict[str, str], spec: dict[str, Any], n_rows: int) -> None:
        self.view, self.args, self.spec, self.n_rows = view, args, spec, n_rows

    def to_dict(self) -> dict[str, Any]:
        """The Vega-Lite spec (a copy), data inline."""
        return json.loads(json.dumps(self.spec, allow_nan=False))

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        """What Jupyter displays (see the module docstring): the spec under its own Vega-Lite mimetype,
        the offline HTML chart, and a line of text."""
        from losslens.export.chart import html_fragment

        spec = self.to_dict()
        return {vegalite_mimetype(spec["$schema"]): spec, "text/html": html_fragment(spec), "text/plain": repr(self)}

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
        from losslens.export.chart import inline_spec, nothing_to_draw, read_catalog, resolve_args

        with read_catalog(self.catalog) as conn:
            args = resolve_args(conn, view, experiment=experiment, setting=setting, checkpoint=checkpoint, pair=pair)
            spec, n_rows = inline_spec(conn, view, args)
            if n_rows == 0:
                raise nothing_to_draw(conn, view, args, "losslens.open().chart")
        return Chart(view, args, spec, n_rows)

    def __repr__(self) -> str:
        return f"<LossLens catalog {self.catalog}>"
