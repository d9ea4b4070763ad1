"""``losslens export viewer``: the static, VS Code–style viewer of a catalog, for ``file://``.

Browsers block ``fetch`` of ``file://``, so the data ships as ``data.js``, a script that
assigns one JSON blob. The page is ``viewer/`` (plain HTML, CSS and JS) plus the vl-convert
Vega bundle as its own file, written once per export.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from losslens.export.chart import read_catalog, resolve_experiment
from losslens.export.data import viewer_data
from losslens.resources import resource_path
from losslens.views.bundle import ensure_bundle

SOURCES = ("index.html", "viewer.css", "viewer.js")


def data_script(data: dict) -> str:
    """``window.LOSSLENS = {...};`` that no string in the data can break out of (``</script``,
    ``<!--`` and line separators are escaped; JSON stays valid JavaScript)."""
    text = json.dumps(data, allow_nan=False, ensure_ascii=True, separators=(",", ":"))
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return f"window.LOSSLENS = {text};\n"


def export_viewer(catalog_path: Path, out_dir: Path, experiment: str | None = None) -> Path:
    """Write the viewer of ``catalog_path`` (one experiment, or all) to ``out_dir``; returns index.html."""
    out_dir = Path(out_dir)
    with read_catalog(catalog_path) as conn:
        experiment_id = resolve_experiment(conn, experiment) if experiment else None
        data = viewer_data(conn, catalog_path, experiment_id)
    out_dir.mkdir(parents=True, exist_ok=True)
    source = resource_path("viewer")
    for name in SOURCES:
        shutil.copyfile(source / name, out_dir / name)
    shutil.copyfile(ensure_bundle(), out_dir / "vega-bundle.js")
    (out_dir / "data.js").write_text(data_script(data))
    return out_dir / "index.html"
