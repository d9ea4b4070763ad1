"""Static exports: single charts (JSON, HTML, SVG, PNG, PDF), every view of an experiment, and
the VS Code–style viewer that opens from ``file://``. All built on the ``losslens/views``
builders and the Datasette plugin's row functions."""

from losslens.export.all_views import export_all
from losslens.export.chart import export_chart
from losslens.export.viewer import export_viewer

__all__ = ["export_all", "export_chart", "export_viewer"]
