"""``losslens demo``: the PINN case study end to end, from an empty folder, at laptop scale.

A :class:`Study` is one sweep carried through the whole product: train (runs already trained are
skipped), ingest (present checkpoints are skipped), compute every metric (done jobs are skipped),
export the static views (skipped while the catalog is unchanged), then summarise each setting.
Every stage is incremental, so a second run recomputes nothing and finishes in seconds.

The demo's sizes and metric options are chosen to fit the budgets of a 2-core CPU (default
≤ 10 minutes, ``--quick`` ≤ 3 minutes from an empty folder); ``docs/benchmarks.md`` has the
measured times. The reproduction report (:mod:`losslens.case_studies`) runs its studies through
the same pipeline.
"""

from __future__ import annotations

import functools
import json
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from losslens import __version__
from losslens.errors import LossLensError, unknown
from losslens.export import export_all, export_viewer
from losslens.ingest import IngestReport, ingest
from losslens.jobs.executors import cores
from losslens.jobs.runner import ComputeReport, compute
from losslens.store import queries
from losslens.store.catalog import open_catalog
from losslens.store.ids import content_id
from losslens.taxonomy.table import taxonomy_table
from losslens.train import (
    ClassifierConfig,
    ConvectionConfig,
    ModularConfig,
    TrainResult,
    parse_dataset,
    train_classifier,
    train_convection,
    train_modular,
)
from losslens.train.outputs import OnEvent

#: Every metric the demo computes; ``compute`` adds what each requires and orders them.
METRICS = ("performance", "hessian", "landscape", "topology", "connectivity", "cka", "similarity", "taxonomy", "predictions")
EXPORT_FORMATS = ("png",)  # the viewer is the interactive export; PNGs are the files to share


def _quiet(*_: Any, **__: Any) -> None:
    return None


@dataclass(frozen=True)
class Study:
    """One case study: its experiment name, how to train it into a folder, and its metric options."""

    name: str
    train: Callable[..., TrainResult]  # train(out, *, name, on_event) -> TrainResult
    options: tuple[tuple[str, str], ...] = ()  # ``losslens compute`` options, e.g. ("landscape.steps", "41")
    metrics: tuple[str, ...] = METRICS
    #: Further ``compute`` passes after the first, each (metrics, options): e.g. a second landscape with other
    #: directions, which needs its own options.
    passes: tuple[tuple[tuple[str, ...], tuple[tuple[str, str], ...]], ...] = ()


def convection_study(
    name: str, betas: tuple[float, ...], seeds: tuple[int, ...], config: ConvectionConfig, options: dict[str, Any]
) -> Study:
    train = functools.partial(train_convection, betas=betas, seeds=seeds, config=config)
    return Study(name, train, tuple((k, str(v)) for k, v in options.items()))


# Options shared by the landscape and its topology: topology finds its landscape by these values.
def _grid(steps: int) -> dict[str, int]:
    return {"landscape.steps": steps, "topology.steps": steps}


def _landscape_options(steps: int, **landscape: Any) -> tuple[tuple[str, str], ...]:
    values = {"steps": steps, **landscape}
    return tuple((f"{m}.{k.replace('_', '-')}", str(v)) for m in ("landscape", "topology") for k, v in values.items())


#: The default demo: the three regimes of Krishnapriyan et al. (β = 1 learns, 10 is marginal, 30 fails)
#: with 3 seeds for connectivity and CKA. 500 L-BFGS iterations reach the β = 1 error of the paper
#: (≈ 1e-2). The Hessian keeps its top-10 (the glyph's bars) but uses 50 trace probes and 2 SLQ runs
#: instead of 100 and 5: the density is for the picture, and the 250 HVPs of the full default were
#: most of the Hessian's time. The bend (200 Adam steps, then up to 200 L-BFGS iterations on 10 fixed t)
#: took 35 s for one β = 1 pair on the shared 2-core machine at load ≈ 6 (100 iterations on 5 t: 16 s),
#: so the 9 pairs on 2 workers should add about 3 minutes to the 2:53 the demo took before this bend
#: optimiser (docs/benchmarks.md): an estimate from one pair, not a timing of the demo.
DEFAULT = convection_study(
    "convection",
    (1.0, 10.0, 30.0),
    (0, 1, 2),
    ConvectionConfig(iterations=500, n_collocation=1000),
    {**_grid(41), "hessian.trace-probes": 50, "hessian.esd-runs": 2, "connectivity.lbfgs-iterations": 200},
)
#: ``--quick``: two regimes, two seeds (one pair each), a short L-BFGS and a coarse landscape.
QUICK = convection_study(
    "convection-quick",
    (1.0, 30.0),
    (0, 1),
    ConvectionConfig(iterations=150, n_collocation=200),
    {
        **_grid(21),
        "hessian.trace-probes": 20,
        "hessian.esd-runs": 1,
        "hessian.esd-steps": 30,
        "connectivity.steps": 100,
        "connectivity.lbfgs-iterations": 30,
        "connectivity.points": 7,
    },
)

#: ``--study resnet20``: ResNet-20 with and without skips on scikit-learn's digits (always installed), 2 seeds ×
#: 10 epochs (≈ 2–3 s an epoch), landscapes 21×21 at Li et al.'s scale (filter-normalised, ±1 in direction units)
#: and, in a second pass, at ±1 % of ‖θ‖; Hessian on one batch of 200 as Yang et al.
RESNET_DEMO = Study(
    "resnet20-digits",
    functools.partial(train_classifier, dataset=parse_dataset("digits"), seeds=(0, 1), config=ClassifierConfig(epochs=10)),
    (
        *_landscape_options(21, span_mode="absolute", span=1),
        ("hessian.batch-size", "200"),
        ("hessian.trace-probes", "50"),
        ("hessian.esd-runs", "2"),
    ),
    passes=((("landscape", "topology"), (("steps", "21"), ("span-mode", "relative"), ("span", "0.01"))),),
)
RESNET_QUICK = Study(
    "resnet20-digits-quick",
    functools.partial(
        train_classifier, dataset=parse_dataset("digits"), seeds=(0, 1), config=ClassifierConfig(epochs=2, width_mult=0.5)
    ),
    (
        *_landscape_options(11, span_mode="absolute", span=1),
        ("hessian.batch-size", "200"),
        ("hessian.trace-probes", "10"),
        ("hessian.esd-runs", "1"),
        ("connectivity.steps", "30"),
        ("connectivity.points", "5"),
    ),
)

#: ``--study modular``: the grokking transformer (p = 23) with weight decay 0 and 2, 2 seeds, checkpoints at 4 steps
#: of 900; connectivity and CKA pair seeds at the same step; landscapes along random filter-normalised directions
#: (±1 in direction units) and, in a second pass, the run's trajectory PCA (±25 % of ‖θ‖).
MODULAR_METRICS = ("performance", "hessian", "landscape", "topology", "connectivity", "cka")


def modular_study(name: str, config: ModularConfig, steps: int, connectivity_steps: int) -> Study:
    return Study(
        name,
        functools.partial(train_modular, weight_decays=(0.0, 2.0), seeds=(0, 1), config=config),
        (
            *_landscape_options(steps, span_mode="absolute", span=1),
            ("pairs", "same-step"),
            ("connectivity.steps", str(connectivity_steps)),
            ("hessian.trace-probes", "20"),
            ("hessian.esd-runs", "1"),
            ("cka.inputs", "200"),
        ),
        metrics=MODULAR_METRICS,
        passes=(
            (
                ("landscape", "topology"),
                (("directions", "pca"), ("steps", str(steps)), ("span-mode", "relative"), ("span", "0.25")),
            ),
        ),
    )


MODULAR_DEMO = modular_study("modular-demo", ModularConfig(steps=900, checkpoints=4), 21, 300)
MODULAR_QUICK = modular_study("modular-quick", ModularConfig(steps=200, checkpoints=4, d_model=16, d_mlp=64), 11, 50)


def _lm_train(seeds: tuple[int, ...], config: Any) -> Callable[..., TrainResult]:
    def train(out: Path, *, name: str, on_event: OnEvent) -> TrainResult:
        from losslens.train.lm import train_lm  # needs the hf extra: imported only for this study

        return train_lm(out, seeds, config, name=name, on_event=on_event)

    return train


#: ``--study lm``: a tiny GPT-NeoX (Pythia architecture, 2 layers, width 32, about 28k parameters) trained on a
#: generated toy language, 3 seeds saved with ``save_pretrained`` after 40 and 400 AdamW steps; a setting is a
#: training step, its seeds the modes. Metric options are sized for 2 CPU cores (a few minutes in all).
LM = Study(
    "lm",
    _lm_train((0, 1, 2), None),
    tuple(
        (k, str(v))
        for k, v in {
            **_grid(31),
            "hessian.trace-probes": 30,
            "hessian.esd-runs": 2,
            "connectivity.steps": 100,
            "connectivity.points": 7,
            "cka.inputs": 64,
        }.items()
    ),
)
#: ``--study lm --quick``: 2 seeds, 200 steps, 21×21 landscapes.
LM_QUICK = Study(
    "lm-quick",
    _lm_train((0, 1), "quick"),
    tuple(
        (k, str(v))
        for k, v in {
            **_grid(21),
            "hessian.k": 5,
            "hessian.trace-probes": 20,
            "hessian.esd-runs": 1,
            "hessian.esd-steps": 30,
            "connectivity.steps": 50,
            "connectivity.points": 5,
            "cka.inputs": 32,
        }.items()
    ),
)
#: ``losslens demo --study NAME``: (default, ``--quick``) per study.
STUDIES = {
    "convection": (DEFAULT, QUICK),
    "resnet20": (RESNET_DEMO, RESNET_QUICK),
    "modular": (MODULAR_DEMO, MODULAR_QUICK),
    "lm": (LM, LM_QUICK),
}


@dataclass
class StudyResult:
    """What one pass of a study did and found."""

    study: str
    out: Path
    catalog: Path
    training: TrainResult
    ingested: IngestReport
    computed: ComputeReport
    views: list[Path]  # export_all's files
    viewer: Path  # the static viewer's index.html
    exports_skipped: bool  # the catalog had not changed since the last export
    settings: list[dict[str, Any]]  # setting_table rows
    seconds: dict[str, float] = field(default_factory=dict)  # wall time per stage

    @property
    def recomputed(self) -> int:
        """Jobs this pass computed (0 on an incremental rerun)."""
        return sum(m.done for m in self.computed.metrics)


def catalog_path(out: Path) -> Path:
    return Path(out) / "catalog" / "losslens.db"


def run_study(
    study: Study, out: Path, on_event: OnEvent = _quiet, *, jobs: int = 1, execution: dict[str, Any] | None = None
) -> StudyResult:
    """Train, ingest, compute, export and summarise ``study`` under ``out`` (runs, catalog, views, viewer).

    ``execution`` holds ``compute``'s executor arguments (``executor``, ``resources``, ``executor_options``)."""
    out = Path(out)
    catalog = catalog_path(out)
    seconds: dict[str, float] = {}

    def stage(name: str, work: Callable[[], Any], summary: Callable[[Any], str]) -> Any:
        on_event("stage", name=name)
        start = time.perf_counter()
        result = work()
        seconds[name] = time.perf_counter() - start
        on_event("stage_done", name=name, seconds=seconds[name], summary=summary(result))
        return result

    training = stage(
        "train",
        lambda: study.train(out / "runs" / study.name, name=study.name, on_event=on_event),
        lambda r: f"trained {r.trained}, done before {len(r.runs) - r.trained}",
    )
    ingested = stage(
        "ingest",
        lambda: ingest(training.spec, catalog, on_file=lambda o: on_event("ingested", outcome=o)),
        lambda r: f"added {r.count('added')}, present {r.count('present')}",
    )
    if not ingested.ok:
        failures = "; ".join(o.error or "" for o in ingested.outcomes if o.status == "failed")
        raise LossLensError(
            f"checkpoints failed to ingest: {failures}", where=str(training.spec), hint=f"delete {out} and run again"
        )

    def compute_passes() -> ComputeReport:
        passes = [(study.metrics, study.options), *study.passes]
        reports = [
            compute(
                list(m), list(o), catalog_path=catalog, experiment=study.name, jobs=jobs, on_event=on_event, **(execution or {})
            )
            for m, o in passes
        ]
        return ComputeReport([m for r in reports for m in r.metrics])

    computed = stage(
        "compute",
        compute_passes,
        lambda r: (
            f"computed {sum(m.done for m in r.metrics)}, done before {sum(m.skipped for m in r.metrics)}, failed {r.failed}"
        ),
    )
    views, viewer, skipped = stage(
        "export",
        lambda: export_views(catalog, out, study.name),
        lambda r: "catalog unchanged, kept" if r[2] else f"wrote {len(r[0])} views and the viewer",
    )

    return StudyResult(
        study.name,
        out,
        catalog,
        training,
        ingested,
        computed,
        views,
        viewer,
        skipped,
        setting_table(catalog, study.name),
        seconds,
    )


def default_jobs(quick: bool) -> int:
    """Worker processes for the demo's metrics, from measurement on 2 cores: the default demo's compute
    took 94 s with 2 single-threaded workers against 203 s in one process on 2 torch threads (the 41×41
    landscapes ran 3× faster per core); ``--quick``'s jobs are shorter than a worker's start-up
    (42 s with 2 workers against 7 s in process), so it stays in process."""
    return 1 if quick else min(2, cores())


def run_demo(
    out: Path = Path("demo"),
    quick: bool = False,
    on_event: OnEvent = _quiet,
    *,
    jobs: int | None = None,
    execution: dict[str, Any] | None = None,
    study: str = "convection",
) -> StudyResult:
    """A case study of :data:`STUDIES` (default: the PINN, ``DEFAULT`` or ``QUICK``) end to end under ``out``.

    :raises LossLensError: an unknown study name.
    """
    if study not in STUDIES:
        raise unknown("study", study, STUDIES, where="demo --study")
    return run_study(STUDIES[study][1 if quick else 0], out, on_event, jobs=jobs or default_jobs(quick), execution=execution)


# ---------------------------------------------------------------------------------------------
# Static exports, rewritten only when the catalog changed.


def catalog_fingerprint(catalog: Path) -> str:
    """A hash of everything the exports show: checkpoints and every metric run's outcome and time."""
    with open_catalog(catalog, readonly=True, snapshot=True) as cat:
        checkpoints, runs = queries.catalog_state(cat.conn)
    return content_id("exports", __version__, checkpoints, runs)


def export_views(catalog: Path, out: Path, experiment: str) -> tuple[list[Path], Path, bool]:
    """``export_all`` of the experiment (PNG) into ``out/views`` and the viewer of the catalog into
    ``out/viewer``; skipped when the catalog's fingerprint matches the last export and its files exist."""
    stamp = out / "views" / f".{experiment}.export.json"
    viewer = out / "viewer" / "index.html"
    fingerprint = catalog_fingerprint(catalog)
    if stamp.is_file():
        last = json.loads(stamp.read_text())
        files = [Path(p) for p in last.get("files", [])]
        if last.get("fingerprint") == fingerprint and viewer.is_file() and all(p.is_file() for p in files):
            return files, viewer, True
    files = export_all(catalog, out / "views", experiment, EXPORT_FORMATS)
    viewer = export_viewer(catalog, out / "viewer")
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.write_text(json.dumps({"fingerprint": fingerprint, "files": [str(p) for p in files]}, indent=1) + "\n")
    return files, viewer, False


# ---------------------------------------------------------------------------------------------
# What the demo found: one row per setting.


def _median(values: list[float | None]) -> float | None:
    finite = [v for v in values if v is not None]
    return statistics.median(finite) if finite else None


def setting_table(catalog: Path, experiment: str) -> list[dict[str, Any]]:
    """One row per setting of ``experiment``: medians over its seeds of the error or accuracy, top Hessian
    eigenvalue, trace and number of minima (persistent, and all local minima of the landscape grid), with
    the taxonomy's mc, CKA and phase.

    Values come from the latest done run of each metric per checkpoint; a value that was not finite
    is stored as NULL and left out of the median.
    """
    with open_catalog(catalog, readonly=True, snapshot=True) as cat:
        found = [e for e in queries.experiments(cat.conn, experiment) if e["name"] == experiment]
        if not found:
            return []
        exp_id = found[0]["id"]
        seeds = queries.checkpoint_records(cat.conn, experiment_id=exp_id)

        def latest(metric: str, table: str, columns: list[str], **match: Any) -> list[dict[str, Any]]:
            return queries.latest_rows(cat.conn, metric, table, columns, experiment_id=exp_id, match=match)

        perf = latest("performance", "performance", ["checkpoint", "split", "name", "value"])
        eig = latest("hessian", "hessian_eigenvalues", ["checkpoint", "value"], which="largest", rank=0)
        trace = latest("hessian", "hessian_trace", ["checkpoint", "estimate"])
        minima = latest("topology", "landscape_summaries", ["checkpoint", "n_minima", "n_minima_above"])
        has_taxonomy = queries.has_done_run(cat.conn, "taxonomy", exp_id)
    phases = {r["setting"]: r for r in taxonomy_table(catalog, experiment)} if has_taxonomy else {}
    by_setting: dict[str, list[str]] = {}
    labels: dict[str, tuple[str, dict[str, Any]]] = {}
    for r in seeds:
        by_setting.setdefault(r["setting_id"], []).append(r["sha256"])
        labels[r["setting_id"]] = (r["setting_label"], json.loads(r["setting_values_json"]))
    values = {(r["checkpoint"], r["split"], r["name"]): r["value"] for r in perf}
    top = {r["checkpoint"]: r["value"] for r in eig}
    tr = {r["checkpoint"]: r["estimate"] for r in trace}
    mins = {r["checkpoint"]: r["n_minima_above"] for r in minima}
    local = {r["checkpoint"]: r["n_minima"] for r in minima}
    rows = []
    for setting_id, shas in by_setting.items():
        label, setting_values = labels[setting_id]
        tax = phases.get(label, {})
        rows.append(
            {
                "setting": label,
                "values": setting_values,
                "seeds": len(shas),
                "rel_l2": _median([values.get((s, "eval", "rel_l2")) for s in shas]),
                "train_loss": _median([values.get((s, "train", "loss")) for s in shas]),
                "train_accuracy": _median([values.get((s, "train", "accuracy")) for s in shas]),
                "test_accuracy": _median([values.get((s, "test", "accuracy")) for s in shas]),
                "top_eigenvalue": _median([top.get(s) for s in shas]),
                "trace": _median([tr.get(s) for s in shas]),
                "n_minima": _median([mins.get(s) for s in shas]),  # persistent: the pruned merge tree's minima
                "n_local_minima": _median([local.get(s) for s in shas]),  # every local minimum of the grid
                "mc": tax.get("mc"),
                "cka": tax.get("cka"),
                "phase": tax.get("phase"),
                "note": tax.get("note"),
            }
        )
    return sorted(rows, key=lambda r: tuple(r["values"].values()))
