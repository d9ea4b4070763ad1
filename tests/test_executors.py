"""Executors and what jobs carry: plugin discovery through a real installed distribution, pair choices,
one-pass planning, Ctrl-C, jobs that run without the catalog, and the real engines (a 3-node Ray cluster
on this machine, submitit's local executor) against the serial executor.

Oracles: the serial executor's stored results (allclose), counts from combinatorics, SQLite's own
``PRAGMA integrity_check`` and row counts, and the statements SQLite traced while planning.
"""

from __future__ import annotations

import math
import os
import shutil
import sqlite3
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from losslens.errors import LossLensError
from losslens.jobs import compute
from losslens.jobs.executors import Resources, available, make_executor
from losslens.jobs.executors.local import ProcessExecutor
from losslens.jobs.inputs import attach_inputs
from losslens.jobs.options import build_params
from losslens.jobs.pairs import select_pairs
from losslens.jobs.plan import plan
from losslens.jobs.runner import execute_job, store_outcome, with_requirements
from losslens.metrics.registry import load_metrics
from losslens.store import open_catalog

PLUGIN = '''
"""A third-party LossLens plugin, installed as a distribution: test metrics and an executor."""
import os
import time
from dataclasses import dataclass

from losslens.errors import LossLensError
from losslens.metrics.registry import Result, register


@dataclass(frozen=True)
class SleepyParams:
    seconds: float = 0.0
    marks: str = ""  # a folder where each job, as it starts, drops a file named after its Ray node


@register("test_sleepy", scope="checkpoint", params=SleepyParams, tables=("performance",))
def sleepy(ctx, params):
    """Sleeps, then stores the checkpoint's parameter count."""
    if params.marks:
        import ray

        node = ray.get_runtime_context().get_node_id()
        open(os.path.join(params.marks, node + "-" + ctx.shas[0][:12]), "w").close()
    time.sleep(params.seconds)
    s = ctx.subject()
    result = Result()
    result.add("performance", checkpoint=s.sha256, split="train", name="n_params",
               value=float(sum(p.numel() for p in s.params.values())))
    return result


@dataclass(frozen=True)
class NoParams:
    pass


@register("test_raises", scope="checkpoint", params=NoParams, tables=("performance",))
def raises(ctx, params):
    """Always raises, as a buggy metric would."""
    raise RuntimeError("boom in " + ctx.checkpoints[0]["name"])


@register("test_interrupt", scope="checkpoint", params=NoParams, tables=("performance",))
def interrupt(ctx, params):
    """Ctrl-C arrives while the second job runs."""
    if ctx.checkpoints[0]["seed"] == 1:
        raise KeyboardInterrupt
    return Result()


@dataclass(frozen=True)
class ReversedConfig:
    tag: str = "rev"


class ReversedExecutor:
    """A third-party executor: runs the jobs in the driver, last first."""

    Config = ReversedConfig

    def __init__(self, resources, config):
        self.config = config

    def run(self, fn, jobs):
        from losslens.jobs.executors import Finished

        for job in reversed(list(jobs)):
            yield Finished(job, fn(job), where=self.config.tag)

    def ship(self, record):
        return None

    def close(self):
        return None


class ListExecutor:
    """A third-party executor whose run returns a plain iterator (no generator, so no close())."""

    Config = None

    def __init__(self, resources, config):
        pass

    def run(self, fn, jobs):
        from losslens.jobs.executors import Finished

        return iter([Finished(job, fn(job)) for job in jobs])

    def ship(self, record):
        return None

    def close(self):
        return None
'''


@pytest.fixture(scope="module")
def plugin(tmp_path_factory) -> Iterator[Path]:
    """A real distribution (package + dist-info with entry points) on sys.path and PYTHONPATH, so that
    importlib.metadata, spawned processes and Ray workers all discover it."""
    root = tmp_path_factory.mktemp("site")
    (root / "llplug").mkdir()
    (root / "llplug" / "__init__.py").write_text(PLUGIN)
    info = root / "llplug-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: llplug\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[losslens.metrics]\nllplug = llplug\n\n[losslens.executors]\nreversed = llplug:ReversedExecutor\nlisted = llplug:ListExecutor\n"
    )
    before = os.environ.get("PYTHONPATH")
    sys.path.insert(0, str(root))
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(root), before) if p)
    import llplug  # noqa: F401  (registers its metrics in this process; load_metrics may have run already)

    yield root
    sys.path.remove(str(root))  # later tests' subprocesses (docs/cli.md) must not see the test metrics
    if before is None:
        os.environ.pop("PYTHONPATH", None)
    else:
        os.environ["PYTHONPATH"] = before


def rows(db: Path, sql: str, args: tuple = ()) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql, args).fetchall()


def table_rows(db: Path, table: str) -> list[dict]:
    """All rows of a table with their run's subject instead of its id, without timings, in a content
    order, for comparing two catalogs whose jobs finished in different orders."""
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        got = [
            {k: r[k] for k in r.keys() if k != "run_id" and not k.endswith("seconds")}  # noqa: SIM118 (a Row iterates values)
            for r in conn.execute(f"SELECT t.*, r.subject AS run_subject FROM {table} t JOIN metric_runs r ON r.id = t.run_id")
        ]
    return sorted(got, key=lambda r: tuple(str(v) for v in r.values() if not isinstance(v, float)))


def assert_same_tables(a: Path, b: Path, tables: tuple[str, ...]) -> None:
    for table in tables:
        ra, rb = table_rows(a, table), table_rows(b, table)
        assert len(ra) == len(rb) > 0, table
        for x, y in zip(ra, rb, strict=True):
            assert x.keys() == y.keys()
            for key in x:
                if isinstance(x[key], float) and isinstance(y[key], float):
                    assert math.isclose(x[key], y[key], rel_tol=1e-5, abs_tol=1e-7), (table, key, x[key], y[key])
                else:
                    assert x[key] == y[key], (table, key)


def copy_catalog(db: Path, name: str) -> Path:
    dest = db.parent.parent / name
    shutil.copytree(db.parent, dest)
    return dest / db.name


# ---------------------------------------------------------------------------------------------
# Plugins


def test_third_party_executor_is_discovered_and_used(plugin, pinn_catalog):
    """Oracle: the serial executor's values; the plugin's tag on every outcome shows it ran them."""
    assert available()["reversed"] == "llplug:ReversedExecutor"
    assert {"serial", "process", "ray", "slurm"} <= set(available())
    copy = copy_catalog(pinn_catalog, "copy")
    where = []
    report = compute(
        ["performance"],
        catalog_path=copy,
        device="cpu",
        executor="reversed",
        executor_options={"tag": "plugin"},
        on_event=lambda e, **d: where.append(d["outcome"].worker) if e == "job_done" else None,
    )
    assert report.metrics[0].done == 4 and where == ["plugin"] * 4
    compute(["performance"], catalog_path=pinn_catalog, device="cpu")
    assert_same_tables(pinn_catalog, copy, ("performance",))


def test_ctrl_c_with_an_engine_that_returns_a_plain_iterator(plugin, pinn_catalog):
    """An engine may return any iterator, not only a generator: Ctrl-C (here in the first job_done
    event) still stores that job and returns interrupted (it raised AttributeError on .close()).
    Oracle: metric_runs rows."""
    copy = copy_catalog(pinn_catalog, "listed")

    def ctrl_c(event, **data):
        if event == "job_done":
            raise KeyboardInterrupt

    report = compute(["performance"], catalog_path=copy, device="cpu", executor="listed", on_event=ctrl_c)
    assert report.interrupted and report.metrics[0].done == 1
    assert rows(copy, "SELECT COUNT(*) FROM metric_runs WHERE metric = 'performance'") == [(1,)]


def test_executor_errors_name_the_choices(plugin):
    with pytest.raises(LossLensError, match="unknown") as info:
        make_executor("nope")
    assert "ray" in info.value.line() and "reversed" in info.value.line()
    with pytest.raises(LossLensError, match="-X colour: not an option") as info:
        make_executor("process", Resources(), {"colour": "red"})
    assert "window" in info.value.line()
    with pytest.raises(LossLensError, match=": -X window: 'many' is not a valid int"):
        make_executor("process", Resources(), {"window": "many"})


# ---------------------------------------------------------------------------------------------
# Planning


def test_pair_choices_grow_as_stated():
    """Oracle: n(n−1)/2 pairs for every pair, n−1 adjacent, K distinct random ones (the same on a rerun)."""
    recs = [{"sha256": f"{i:064x}", "seed": i} for i in range(10)]
    assert len(select_pairs(recs, "within-setting")) == 45
    adjacent = select_pairs(recs, "adjacent")
    assert [(a["seed"], b["seed"]) for a, b in adjacent] == [(i, i + 1) for i in range(9)]
    drawn = select_pairs(recs, "random:7")
    assert len(drawn) == 7 == len({(a["seed"], b["seed"]) for a, b in drawn})
    assert all(a["seed"] < b["seed"] for a, b in drawn)
    assert drawn == select_pairs(recs, "random:7")
    assert len(select_pairs(recs, "random:100")) == 45
    with pytest.raises(LossLensError, match="K must be a positive integer"):
        select_pairs(recs, "random:x")
    with pytest.raises(LossLensError, match="is not one of"):
        select_pairs(recs, "nearest")


def test_a_pair_done_under_one_choice_is_not_redone_under_another(pinn_catalog, pinn_experiment):
    """Adding a seed: ``adjacent`` plans 2 pairs in the 3-seed setting; ``within-setting`` then computes
    only the third pair there (and nothing in the 2-seed setting)."""
    from helpers import PINN_KWARGS, save_checkpoint

    from losslens.ingest import ingest
    from losslens.models import pinn_mlp

    torch.manual_seed(2)
    save_checkpoint(pinn_experiment.parent / "runs" / "beta1_seed2.pt", pinn_mlp(**PINN_KWARGS), 2, {"beta": 1.0})
    assert ingest(pinn_experiment, pinn_catalog).count("added") == 1
    opts = [("layer-cka", "false")]
    first = compute(["cka"], [*opts, ("pairs", "adjacent")], catalog_path=pinn_catalog, device="cpu").metrics[0]
    assert (first.planned, first.done) == (2 + 1, 3)
    second = compute(["cka"], [*opts, ("pairs", "within-setting")], catalog_path=pinn_catalog, device="cpu").metrics[0]
    assert (second.planned, second.skipped, second.done) == (3 + 1, 3, 1)


def test_planning_reads_the_catalog_a_fixed_number_of_times(pinn_catalog, pinn_experiment):
    """Oracle: SQLite's statement trace. Planning and the skip-done check run the same statements for
    4 checkpoints as for 8, so their cost in SQL does not grow with the number of jobs."""
    from helpers import PINN_KWARGS, save_checkpoint

    from losslens.ingest import ingest
    from losslens.jobs.plan import done_run_ids
    from losslens.models import pinn_mlp

    load_metrics()
    metrics = with_requirements(["connectivity", "topology", "similarity"])
    params = build_params(metrics, [])

    def statements() -> int:
        with open_catalog(pinn_catalog) as cat:
            traced: list[str] = []
            cat.db.conn.set_trace_callback(traced.append)
            for metric in metrics:
                plan(cat, metric, params[metric.name])
                done_run_ids(cat, metric)
            return len(traced)

    before = statements()
    for seed in (2, 3):
        for beta in (1, 5):
            torch.manual_seed(seed)
            save_checkpoint(
                pinn_experiment.parent / "runs" / f"beta{beta}_seed{seed}.pt", pinn_mlp(**PINN_KWARGS), seed, {"beta": beta}
            )
    assert ingest(pinn_experiment, pinn_catalog).count("added") == 4
    assert statements() == before


def test_ctrl_c_stores_what_finished_and_a_rerun_does_the_rest(plugin, pinn_catalog):
    """Ctrl-C during the second job (seed 1): the first job is stored, nothing else; the rerun then
    skips it. Oracle: metric_runs rows."""
    report = compute(["test_interrupt"], catalog_path=pinn_catalog, device="cpu")
    assert report.interrupted and report.metrics[0].done == 1
    assert rows(pinn_catalog, "SELECT COUNT(*) FROM metric_runs WHERE metric = 'test_interrupt'") == [(1,)]


@pytest.mark.slow
def test_jobs_run_with_the_catalog_moved_away(pinn_catalog):
    """Jobs planned and shipped by the driver run in spawned worker processes while the catalog folder
    (database and artifacts) is somewhere else; stored afterwards they equal a normal serial run's."""
    reference = copy_catalog(pinn_catalog, "reference")
    opts = [("steps", "5"), ("layer-cka", "false")]
    compute(["landscape", "cka"], opts, catalog_path=pinn_catalog, device="cpu")
    compute(["topology", "similarity"], opts, catalog_path=reference, device="cpu")
    load_metrics()
    metrics = with_requirements(["topology", "similarity"])
    params = build_params(metrics, opts)
    with open_catalog(pinn_catalog) as cat:
        shipped = []
        for name in ("topology", "similarity"):
            metric = next(m for m in metrics if m.name == name)
            shipped += [(metric, job) for job in attach_inputs(cat, metric, params[name], plan(cat, metric, params[name]))]
        away = pinn_catalog.parent.rename(pinn_catalog.parent.parent / "away")
        try:
            import functools

            finished = list(
                ProcessExecutor(Resources(workers=2)).run(functools.partial(execute_job, "cpu"), [j for _, j in shipped])
            )
        finally:
            away.rename(pinn_catalog.parent)
        assert [f.value.status for f in finished] == ["done"] * len(shipped)
        by_job = {id(f.job): f.value for f in finished}
        for metric, job in shipped:
            store_outcome(cat, metric, job, by_job[id(job)])
    assert_same_tables(reference, pinn_catalog, ("persistence_pairs", "merge_tree_nodes", "landscape_summaries", "mds_coords"))


def test_slurm_dry_run_shows_the_array_script(pinn_catalog, tmp_path):
    """Oracle: 4 checkpoints in chunks of 3 make an array of 2 tasks, at most 2 at once. The preview
    needs no Slurm on this machine; a real submission without sbatch fails with one line."""
    script = []
    report = compute(
        ["performance"],
        catalog_path=pinn_catalog,
        device="cpu",
        executor="slurm",
        resources=Resources(cpus_per_job=2, gpus_per_job=1),
        executor_options={
            "chunk": "3",
            "array_parallelism": "2",
            "partition": "gpu",
            "folder": str(tmp_path / "sj"),
        },
        dry_run=True,
        on_event=lambda e, **d: script.append(d["text"]) if e == "dry_run" else None,
    )
    assert report.metrics[0].planned == 4 and report.metrics[0].done == 0
    text = script[0]
    for line in ("#SBATCH --array=0-1%2", "#SBATCH --cpus-per-task=2", "#SBATCH --gpus-per-node=1", "#SBATCH --partition=gpu"):
        assert line in text
    assert rows(pinn_catalog, "SELECT COUNT(*) FROM metric_runs") == [(0,)]
    if shutil.which("sbatch") is None:
        with pytest.raises(LossLensError, match="sbatch is not on PATH"):
            compute(["performance"], catalog_path=pinn_catalog, executor="slurm", executor_options={"folder": str(tmp_path)})
        assert rows(pinn_catalog, "SELECT COUNT(*) FROM metric_runs") == [(0,)]


# ---------------------------------------------------------------------------------------------
# Real engines

SWEEP = ("performance", "hessian", "landscape", "topology", "connectivity", "cka", "similarity")
SWEEP_OPTIONS = [
    ("k", "2"),
    ("trace-probes", "4"),
    ("esd-runs", "1"),
    ("esd-steps", "8"),
    ("steps", "5"),
    ("points", "3"),
    ("layer-cka", "false"),
]
SWEEP_TABLES = (
    "performance",
    "hessian_eigenvalues",
    "hessian_trace",
    "landscape_points",
    "persistence_pairs",
    "merge_tree_nodes",
    "landscape_summaries",
    "pair_metrics",
    "mds_coords",
)


@pytest.fixture(scope="module")
def ray_cluster(plugin):
    """A head and two worker nodes on this machine, one of them declaring a GPU."""
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    gpu_node = cluster.add_node(num_cpus=1, num_gpus=1)
    cluster.wait_for_nodes()
    yield cluster, gpu_node.node_id
    if ray.is_initialized():
        ray.shutdown()
    cluster.shutdown()


@pytest.mark.slow
def test_ray_cluster_fills_the_same_tables_as_serial(ray_cluster, pinn_catalog):
    """Oracle: the serial executor's results for the same sweep (allclose); GPU jobs ran on the GPU node."""
    cluster, gpu_node = ray_cluster
    distributed = copy_catalog(pinn_catalog, "ray")
    compute(list(SWEEP), SWEEP_OPTIONS, catalog_path=pinn_catalog, device="cpu")
    report = compute(
        list(SWEEP),
        SWEEP_OPTIONS,
        catalog_path=distributed,
        device="auto",
        executor="ray",
        executor_options={"address": cluster.address},
    )
    assert report.failed == 0 and not report.interrupted
    assert_same_tables(pinn_catalog, distributed, SWEEP_TABLES)

    nodes = []
    again = compute(
        ["performance"],
        catalog_path=distributed,
        force=True,
        executor="ray",
        resources=Resources(gpus_per_job=1),
        executor_options={"address": cluster.address},
        on_event=lambda e, **d: nodes.append((d["outcome"].worker, d["outcome"].device)) if e == "job_done" else None,
    )
    assert again.metrics[0].done == 4
    assert nodes == [(gpu_node, "cpu")] * 4  # the GPU node's slot; --device auto found no CUDA in that worker


@pytest.mark.slow
def test_ray_job_no_node_can_hold_fails_at_once_naming_the_option(ray_cluster, pinn_catalog):
    """Ray keeps a task no node can hold pending forever; the executor refuses it up front instead.
    Oracle: the cluster's own nodes (one with 1 GPU, each with 1 CPU); nothing is stored."""
    cluster, _ = ray_cluster
    opts = {"address": cluster.address}
    for resources, option in ((Resources(gpus_per_job=2), "--gpus-per-job"), (Resources(cpus_per_job=3), "--cpus-per-job")):
        with pytest.raises(LossLensError, match="no node of the Ray cluster") as info:
            compute(["performance"], catalog_path=pinn_catalog, executor="ray", resources=resources, executor_options=opts)
        assert info.value.where == option and "at most 1 CPUs and 1 GPUs each" in info.value.line()
    assert rows(pinn_catalog, "SELECT COUNT(*) FROM metric_runs WHERE metric = 'performance'") == [(0,)]


@pytest.mark.slow
def test_ray_raising_metric_is_stored_once_as_failed(ray_cluster, pinn_catalog):
    cluster, _ = ray_cluster
    report = compute(["test_raises"], catalog_path=pinn_catalog, executor="ray", executor_options={"address": cluster.address})
    m = report.metrics[0]
    assert (m.done, m.failed, m.retried) == (0, 4, 0)
    errors = rows(pinn_catalog, "SELECT error FROM metric_runs WHERE metric = 'test_raises'")
    assert len(errors) == 4 and all(e.startswith("RuntimeError: boom in beta") and "\n" not in e for (e,) in errors)


@pytest.mark.slow
def test_ray_node_lost_mid_run_every_job_done_once(ray_cluster, pinn_catalog, tmp_path):
    """A node holding running jobs is removed: its jobs are resubmitted elsewhere; each job ends done
    exactly once (one run row, one result row), and SQLite's integrity check passes."""
    cluster, _ = ray_cluster
    victim = cluster.add_node(num_cpus=2)
    cluster.wait_for_nodes()
    marks = tmp_path / "marks"
    marks.mkdir()

    def remove_when_busy() -> None:
        while not any(p.name.startswith(victim.node_id) for p in marks.iterdir()):
            time.sleep(0.1)
        cluster.remove_node(victim)

    remover = threading.Thread(target=remove_when_busy, daemon=True)
    remover.start()
    report = compute(
        ["test_sleepy"],
        [("seconds", "4"), ("marks", str(marks))],
        catalog_path=pinn_catalog,
        device="cpu",
        executor="ray",
        executor_options={"address": cluster.address},
    )
    remover.join(timeout=60)
    m = report.metrics[0]
    assert (m.done, m.failed) == (4, 0) and m.retried >= 1
    assert rows(pinn_catalog, "SELECT COUNT(*), COUNT(DISTINCT subject) FROM metric_runs WHERE metric = 'test_sleepy'") == [
        (4, 4)
    ]
    assert rows(pinn_catalog, "SELECT COUNT(*), COUNT(DISTINCT checkpoint) FROM performance WHERE name = 'n_params'") == [(4, 4)]
    assert rows(pinn_catalog, "PRAGMA integrity_check") == [("ok",)]


@pytest.mark.slow
def test_ray_ships_checkpoint_bytes_when_workers_cannot_see_the_files(ray_cluster, pinn_catalog):
    """With the checkpoint folder gone after planning, jobs still load the weights from Ray's object
    store. Oracle: the serial executor's values on the files."""
    cluster, _ = ray_cluster
    copy = copy_catalog(pinn_catalog, "shipped")
    compute(["performance"], catalog_path=pinn_catalog, device="cpu")
    runs = pinn_catalog.parent.parent / "runs"
    hidden = runs.rename(runs.parent / "hidden")
    ex = make_executor("ray", Resources(), {"address": cluster.address, "ship_checkpoints": "always"})
    try:
        load_metrics()
        metric = with_requirements(["performance"])[0]
        params = build_params([metric], [])["performance"]
        import functools

        with open_catalog(copy) as cat:
            jobs = plan(cat, metric, params)
            # read the bytes while the files are visible to the driver, then hide them from everyone
            hidden.rename(runs)
            shipped = list(attach_inputs(cat, metric, params, jobs, blob=ex.ship))
            runs.rename(hidden)
            finished = list(ex.run(functools.partial(execute_job, "cpu"), shipped))
            assert [f.value.status for f in finished] == ["done"] * 4, [f.value.error for f in finished]
            for f in finished:
                store_outcome(cat, metric, f.job, f.value)
    finally:
        ex.close()
        if hidden.exists():
            hidden.rename(runs)
    assert_same_tables(pinn_catalog, copy, ("performance",))


@pytest.mark.slow
def test_submitit_local_fills_the_same_tables_and_a_rerun_computes_nothing(plugin, pinn_catalog, tmp_path):
    """submitit's local executor as the Slurm job array (one array task per metric: each is a fresh Python).
    Oracle: the serial executor's results."""
    sweep = ("topology", "similarity")
    slurm = copy_catalog(pinn_catalog, "slurm")
    options = [("steps", "5"), ("layer-cka", "false")]
    compute(list(sweep), options, catalog_path=pinn_catalog, device="cpu")
    opts = {"cluster": "local", "folder": str(tmp_path / "submitit"), "array_parallelism": "1", "poll_s": "0.5"}
    report = compute(list(sweep), options, catalog_path=slurm, device="cpu", executor="slurm", executor_options=opts)
    assert report.failed == 0
    assert_same_tables(pinn_catalog, slurm, ("landscape_points", "persistence_pairs", "pair_metrics", "mds_coords"))
    again = compute(list(sweep), options, catalog_path=slurm, device="cpu", executor="slurm", executor_options=opts)
    assert sum(m.done for m in again.metrics) == 0 and all(m.skipped == m.planned for m in again.metrics)


@pytest.mark.slow
@pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA device: checks that --device auto finds the GPU actor's GPU"
)
def test_ray_gpu_jobs_run_on_cuda_and_match_cpu(pinn_catalog):
    """On a machine with CUDA: GPU jobs (half a GPU each) resolve --device auto to cuda in their actor.
    Oracle: the serial CPU executor's values (float32 on both devices, so 1e-4 relative)."""
    pytest.importorskip("ray")
    gpu = copy_catalog(pinn_catalog, "gpu")
    compute(["performance"], catalog_path=pinn_catalog, device="cpu")
    devices = []
    report = compute(
        ["performance"],
        catalog_path=gpu,
        executor="ray",
        resources=Resources(gpus_per_job=0.5),
        executor_options={"address": "local"},
        on_event=lambda e, **d: devices.append(d["outcome"].device) if e == "job_done" else None,
    )
    assert report.failed == 0 and devices and all(d.startswith("cuda") for d in devices)
    a, b = table_rows(pinn_catalog, "performance"), table_rows(gpu, "performance")
    assert [r["name"] for r in a] == [r["name"] for r in b]
    for x, y in zip(a, b, strict=True):
        assert (x["value"] is None) == (y["value"] is None)
        if x["value"] is not None:
            assert math.isclose(x["value"], y["value"], rel_tol=1e-4, abs_tol=1e-6)


def test_progress_rate_and_eta_are_means_over_the_elapsed_time():
    """Jobs that arrive in a burst (a Slurm array task's chunk) must not read as thousands of jobs a
    second. Oracle: 3 jobs in 22 s on Rich's own clock → 7.3 s/job, and 3 left → 22 s."""
    from rich.progress import Progress

    from losslens.cli.executor_options import EtaColumn, RateColumn

    now = [0.0]
    progress = Progress(get_time=lambda: now[0], disable=True)
    task_id = progress.add_task("hessian", total=6)
    task = progress.tasks[0]
    assert (RateColumn().render(task).plain, EtaColumn().render(task).plain) == ("", "-:--:--")
    now[0] = 22.0
    for _ in range(3):  # three results within a millisecond
        progress.update(task_id, advance=1)
        now[0] += 1e-4
    now[0] = 22.0
    assert RateColumn().render(task).plain == "7.3 s/job"
    assert EtaColumn().render(task).plain == "0:00:22"
    now[0] = 44.0
    progress.update(task_id, advance=3)
    now[0] = 500.0  # a finished bar keeps its rate while later metrics run
    assert (RateColumn().render(task).plain, EtaColumn().render(task).plain) == ("7.3 s/job", "0:00:00")


def test_a_metric_with_nothing_to_run_shows_a_finished_bar():
    """Oracle: Rich's own ``finished`` flag (set only when completed ≥ total is seen in an update)."""
    from losslens.cli.compute_cmd import job_progress

    with job_progress() as (progress, on_event):
        on_event("metric_start", metric="hessian", skipped=3, total=0)
        assert progress.tasks[0].finished


def test_ray_address_with_nothing_listening_fails_with_one_line(pinn_catalog):
    """Ray's client retries an unreachable head for minutes; the executor checks the port first.
    Oracle: a port this test just bound and closed, so nothing listens on it; nothing is stored."""
    import socket

    pytest.importorskip("ray")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(LossLensError, match=f"cannot reach a Ray cluster at '127.0.0.1:{port}'") as info:
        compute(["performance"], catalog_path=pinn_catalog, executor="ray", executor_options={"address": f"127.0.0.1:{port}"})
    assert info.value.where == "--address"
    assert rows(pinn_catalog, "SELECT COUNT(*) FROM metric_runs") == [(0,)]
