"""Vega-Lite spec builders for the LossLens views, shared by the Datasette plugin and the static exports.

Each view family is one module with two kinds of plain functions: ``*_rows(conn, ...)`` read
what the view shows from a catalog connection (parameterised SQL, read only), and
``*_spec(data, ...)`` turn a data source into a Vega-Lite dict. A data source is either
``{"url": ...}`` (the browser fetches rows from Datasette) or ``{"values": rows}`` (inline,
for static files); the specs are the same either way.
"""

from losslens.views.source import Data, inline, url, values

__all__ = ["Data", "inline", "url", "values"]
