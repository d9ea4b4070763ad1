"""The one "not computed" hint: the ``losslens compute`` command that fills a view for its subject.

Every place that says a view has nothing to draw (the Datasette pages, the charts' subtitles, ``export
chart``, the notebook API and the static viewer's ``data.js``) takes its command from
:func:`compute_command`, so the hints cannot drift apart. The command names the subject's experiment
(``-e``), and ``--pairs all`` when a pair metric is wanted for two modes of different settings (the
default ``--pairs within-setting`` never pairs them).
"""

from __future__ import annotations

import shlex
import sqlite3
from collections.abc import Sequence

from losslens.metrics.registry import metric_scopes
from losslens.store import reads


def compute_command(
    metrics: Sequence[str], experiment: str | None = None, *, across_settings: bool = False, options: Sequence[str] = ()
) -> str:
    """``losslens compute METRIC... [OPTION...] [--pairs all] [-e EXPERIMENT]``, shell-quoted so it can be pasted.

    ``experiment``: the experiment's name (None: every experiment); ``across_settings``: the subject is a
    pair of modes of different settings, so pair metrics need ``--pairs all``; ``options``: further
    ``losslens compute`` options, e.g. ``("--dims", "3")``.
    """
    words = ["losslens", "compute", *metrics, *options]
    scopes = metric_scopes()
    if across_settings and any(scopes.get(m) == "pair" for m in metrics):
        words += ["--pairs", "all"]
    if experiment:
        words += ["-e", experiment]
    return shlex.join(words)


def subject_command(conn: sqlite3.Connection, metrics: Sequence[str], args: dict[str, str], options: Sequence[str] = ()) -> str:
    """:func:`compute_command` for the subject that a view's ``args`` name (``experiment``, ``setting``,
    ``checkpoint``, or a pair ``a``/``b``): the experiment's name, and whether a pair crosses settings.
    Ids the catalog does not hold leave the command without ``-e``."""
    if "experiment" in args:
        names = [e["name"] for e in reads.experiments(conn) if e["id"] == args["experiment"]]
        return compute_command(metrics, names[0] if names else None, options=options)
    if "setting" in args:
        setting = reads.setting(conn, args["setting"])
        return compute_command(metrics, setting["experiment"] if setting else None, options=options)
    shas = [args["checkpoint"]] if "checkpoint" in args else [args["a"], args["b"]]
    records = [r for r in (reads.checkpoint(conn, sha) for sha in shas) if r is not None]
    experiments = {r["experiment_id"] for r in records}
    return compute_command(
        metrics,
        records[0]["experiment"] if records and len(experiments) == 1 else None,
        across_settings=len({r["setting_id"] for r in records}) > 1,
        options=options,
    )
