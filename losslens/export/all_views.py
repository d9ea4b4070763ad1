"""``losslens export all``: every view of an experiment as files, in a folder per subject.

Layout: ``DIR/<experiment>/taxonomy.<fmt>``, ``.../<setting>/modes.<fmt>``,
``.../<setting>/<checkpoint>/<view>.<fmt>`` and ``.../<setting>/<a>--<b>/<view>.<fmt>``, one
file per view of :mod:`losslens.views.registry` (the local view as its panels: landscape,
merge-tree, persistence, hessian). Folder names are the
user's names made file-safe; views with nothing to draw (a metric not computed) are skipped.
"""

from __future__ import annotations

import re
from pathlib import Path

from losslens.export.chart import inline_spec, read_catalog, render, resolve_experiment
from losslens.export.data import experiments_of, modes_of, pairs_of, settings_of
from losslens.views.registry import views_of

DEFAULT_FORMATS = ("svg", "png")
# The registry's views per subject; a composite (the local view) is written as its panels.
EXPERIMENT_VIEWS = tuple(v.name for v in views_of("experiment", exported=True))
SETTING_VIEWS = tuple(v.name for v in views_of("setting", exported=True))
CHECKPOINT_VIEWS = tuple(v.name for v in views_of("checkpoint", exported=True))
PAIR_VIEWS = tuple(v.name for v in views_of("pair", exported=True))


def safe_name(name: str, taken: set[str]) -> str:
    """A file name from a user's name: letters, digits, ``.=_-`` only, never hidden, unique in ``taken``."""
    base = re.sub(r"[^A-Za-z0-9.=_-]+", "_", name).strip("._") or "unnamed"
    candidate, n = base[:80], 2
    while candidate in taken:
        candidate, n = f"{base[:80]}-{n}", n + 1
    taken.add(candidate)
    return candidate


def export_all(
    catalog_path: Path, out_dir: Path, experiment: str | None = None, formats: tuple[str, ...] = DEFAULT_FORMATS
) -> list[Path]:
    """Write every view of ``experiment`` (default: every experiment) in each of ``formats``."""
    out_dir = Path(out_dir)
    written: list[Path] = []
    with read_catalog(catalog_path) as conn:

        def write(folder: Path, view: str, args: dict[str, str]) -> None:
            spec, n_rows = inline_spec(conn, view, args)
            if n_rows == 0:
                return
            folder.mkdir(parents=True, exist_ok=True)
            for fmt in formats:
                path = folder / f"{view}.{fmt}"
                path.write_bytes(render(spec, fmt, title=f"LossLens: {view}"))
                written.append(path)

        experiment_id = resolve_experiment(conn, experiment) if experiment else None
        top: set[str] = set()
        for e in experiments_of(conn, experiment_id):
            e_dir = out_dir / safe_name(e["name"], top)
            for view in EXPERIMENT_VIEWS:
                write(e_dir, view, {"experiment": e["id"]})
            in_experiment: set[str] = set(EXPERIMENT_VIEWS)
            for s in settings_of(conn, e["id"]):
                s_dir = e_dir / safe_name(s["label"], in_experiment)
                for view in SETTING_VIEWS:
                    write(s_dir, view, {"setting": s["id"]})
                modes = modes_of(conn, s["id"])
                names = {m["sha256"]: m["name"] for m in modes}
                in_setting: set[str] = set(SETTING_VIEWS)
                for m in modes:
                    c_dir = s_dir / safe_name(m["name"], in_setting)
                    for view in CHECKPOINT_VIEWS:
                        write(c_dir, view, {"checkpoint": m["sha256"]})
                for a, b in pairs_of(modes):
                    p_dir = s_dir / safe_name(f"{names[a]}--{names[b]}", in_setting)
                    for view in PAIR_VIEWS:
                        write(p_dir, view, {"a": a, "b": b})
    return written
