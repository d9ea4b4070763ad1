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
import signal
import sqlite3
import subprocess
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


def mark(folder, name):
    """Drop a new file named after the job in ``folder``: one file per time a job really ran."""
    if folder:
        open(os.path.join(folder, f"{name}-{os.getpid()}-{time.time_ns()}"), "w").close()


@dataclass(frozen=True)
class RaisesParams:
    marks: str = ""  # a folder where each call drops a file


@register("test_raises", scope="checkpoint", params=RaisesParams, tables=("performance",))
def raises(ctx, params):
    """Always raises, as a buggy metric would."""
    mark(params.marks, ctx.checkpoints[0]["name"])
    raise RuntimeError("boom in " + ctx.checkpoints[0]["name"])


@register("test_faulty", scope="checkpoint", params=NoParams, tables=("performance",))
def faulty(ctx, params):
    """The performance metric's rows, with faults set from the environment (which submitit's local array
    tasks and a `losslens` subprocess inherit, and which leaves the run ids alone): LLPLUG_MARKS, a folder
    where each call drops a file; LLPLUG_SLEEP, seconds to wait first; LLPLUG_KILL, the checkpoint name
    whose process is killed with SIGKILL (as the OOM killer or a preempting scheduler would)."""
    import signal

    from losslens.metrics.registry import get_metric

    name = ctx.checkpoints[0]["name"]
    mark(os.environ.get("LLPLUG_MARKS"), name)
    time.sleep(float(os.environ.get("LLPLUG_SLEEP") or 0))
    if os.environ.get("LLPLUG_KILL") == name:
        os.kill(os.getpid(), signal.SIGKILL)
    performance = get_metric("performance")
    return performance.fn(ctx, performance.params())


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


def ran(folder: Path) -> list[str]:
    """The checkpoint names of the jobs that really ran, once per run (the files the test metrics drop)."""
    return sorted(p.name.rsplit("-", 2)[0] for p in folder.iterdir())


def live_processes_in_group(pgid: int) -> list[str]:
    """Command lines of the processes of a process group that still run (zombies, which this container's
    init may never reap, are dead already), from /proc."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                found.append(f"{fields[0]} {(stat.parent / 'cmdline').read_text()!r}")
        except (OSError, IndexError):  # ended while we looked
            continue
    return found


def checkpoint_names(db: Path) -> list[str]:
    return sorted(name for (name,) in rows(db, "SELECT name FROM checkpoints"))


def assert_each_job_done_once(db: Path, metric: str, n: int) -> None:
    """n done runs of ``metric``, one per subject and nothing else; each performance row once per
    checkpoint; SQLite's own integrity check passes."""
    runs = "SELECT COUNT(*), COUNT(DISTINCT subject), SUM(status = 'done') FROM metric_runs WHERE metric = ?"
    assert rows(db, runs, (metric,)) == [(n, n, n)]
    perf = "SELECT COUNT(*), COUNT(DISTINCT checkpoint || ' ' || split || ' ' || name) FROM performance"
    ((total, distinct),) = rows(db, perf)
    assert total == distinct > 0
    assert rows(db, "PRAGMA integrity_check") == [("ok",)]


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
    with pytest.raises(LossLensError, match="unknown option 'colour'") as info:
        make_executor("process", Resources(), {"colour": "red"})
    assert info.value.where == "compute -X" and "choose from: window" in info.value.line()
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
    with pytest.raises(LossLensError, match="unknown pairing 'nearest'"):
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
@pytest.mark.parametrize(
    "where",
    [
        ["--jobs", "1"],
        ["--jobs", "2"],
        ["--executor", "ray", "--address", "local", "--cpus-per-job", "1"],
        ["--executor", "slurm", "-X", "cluster=local", "-X", "poll_s=0.2"],
    ],
    ids=["serial", "process", "ray", "slurm-local"],
)
def test_ctrl_c_in_a_terminal_stores_what_finished_and_a_rerun_does_the_rest(plugin, pinn_catalog, tmp_path, monkeypatch, where):
    """A real `losslens compute` in its own process group gets what a terminal's Ctrl-C sends (SIGINT to the
    whole group: the driver, its pool's workers, a private Ray cluster, local array tasks) once a job is
    stored. It exits with status 130 and the `interrupted:` line, no traceback of its own and no process
    left in its process group; the catalog holds only finished jobs
    (none recorded as failed); the same command again runs exactly the others. Oracles: the files each
    real run of the metric drops, the serial executor's values, row counts, SQLite's integrity check."""
    reference = copy_catalog(pinn_catalog, "reference")
    compute(["test_faulty"], catalog_path=reference, device="cpu")
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    env = {**os.environ, "LLPLUG_MARKS": str(first), "LLPLUG_SLEEP": "2", "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    command = [sys.executable, "-m", "losslens", "compute", "test_faulty", "--catalog", str(pinn_catalog)]
    command += ["--device", "cpu", *where]
    if "slurm" in where:
        command += ["-X", f"folder={tmp_path / 'submitit'}"]
    done = "SELECT COUNT(*) FROM metric_runs WHERE metric = 'test_faulty' AND status = 'done'"
    proc = subprocess.Popen(
        command,
        env=env,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # as a terminal starts it: a runner that starts the tests in the background (`cmd &` in a script) hands
        # every child an ignored SIGINT, and Python then installs no KeyboardInterrupt handler at all
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        give_up = time.monotonic() + 600  # a hung command fails the test instead of hanging CI
        while rows(pinn_catalog, done) == [(0,)]:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < give_up, "no job stored in 10 minutes"
            time.sleep(0.1)
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, (out, err)
    assert "interrupted: stored what finished" in err and "Traceback" not in out, (out, err)
    for trace in err.split("Traceback (most recent call last):")[1:]:
        # Only submitit's local controllers (array tasks in the terminal's process group, which a real Slurm
        # array is not) print their own KeyboardInterrupt; the driver and workers print none.
        # (two controllers' tracebacks can interleave line by line, so a piece may hold no frame at all)
        assert "slurm" in where and "/losslens/" not in trace, err
    for _ in range(300):  # the pool's workers and multiprocessing's resource tracker end with the driver
        if not live_processes_in_group(proc.pid):
            break
        time.sleep(0.1)
    assert live_processes_in_group(proc.pid) == []
    finished = sorted(
        name for (name,) in rows(pinn_catalog, "SELECT c.name FROM metric_runs r JOIN checkpoints c ON c.sha256 = r.checkpoint")
    )
    assert 1 <= len(finished) < 4 and set(finished) <= set(ran(first))
    assert rows(pinn_catalog, "SELECT COUNT(*) FROM metric_runs WHERE status != 'done'") == [(0,)]

    monkeypatch.setenv("LLPLUG_MARKS", str(second))
    m = compute(["test_faulty"], catalog_path=pinn_catalog, device="cpu").metrics[0]
    assert (m.planned, m.skipped, m.done) == (4, len(finished), 4 - len(finished))
    assert ran(second) == sorted(set(checkpoint_names(pinn_catalog)) - set(finished))
    assert_each_job_done_once(pinn_catalog, "test_faulty", 4)
    assert_same_tables(reference, pinn_catalog, ("performance",))


@pytest.mark.slow
def test_process_pool_worker_killed_the_others_finish_and_a_rerun_does_the_rest(plugin, pinn_catalog, tmp_path, monkeypatch):
    """One job kills its worker (SIGKILL, as the OOM killer would), which breaks the pool and every job in
    flight with it. The lost jobs run again one at a time: the others finish, the killer is resubmitted
    --max-retries 1 times and stored as failed with one line; the sweep does not crash. A rerun computes
    exactly the killer's job. Oracles: the files each real run of the metric drops (the killer ran 1 + 1
    times), the serial executor's values, row counts, SQLite's integrity check."""
    reference = copy_catalog(pinn_catalog, "reference")
    compute(["test_faulty"], catalog_path=reference, device="cpu")
    killer = checkpoint_names(pinn_catalog)[0]
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    monkeypatch.setenv("LLPLUG_MARKS", str(first))
    monkeypatch.setenv("LLPLUG_KILL", killer)
    pool = Resources(workers=2, max_retries=1)
    m = compute(["test_faulty"], catalog_path=pinn_catalog, device="cpu", executor="process", resources=pool).metrics[0]
    assert (m.done, m.failed) == (3, 1) and m.retried >= 1
    assert [error for _, error in m.failures] == ["its worker process died 2 times (killed, or out of memory?)"]
    assert ran(first).count(killer) == 2 and set(ran(first)) == set(checkpoint_names(pinn_catalog))
    failed = rows(
        pinn_catalog, "SELECT c.name FROM metric_runs r JOIN checkpoints c ON c.sha256 = r.checkpoint WHERE r.status = 'failed'"
    )
    assert failed == [(killer,)]

    monkeypatch.setenv("LLPLUG_MARKS", str(second))
    monkeypatch.delenv("LLPLUG_KILL")
    m = compute(["test_faulty"], catalog_path=pinn_catalog, device="cpu", executor="process", resources=pool).metrics[0]
    assert (m.planned, m.skipped, m.done, m.failed) == (4, 3, 1, 0)
    assert ran(second) == [killer]
    assert_each_job_done_once(pinn_catalog, "test_faulty", 4)
    assert_same_tables(reference, pinn_catalog, ("performance",))


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
    # sbatch refuses a script whose first line is not #! ("This does not look like a batch script")
    assert text.startswith("#!/bin/bash\n# 4 jobs in 2 array tasks of up to 3 jobs\n")
    for line in ("#SBATCH --array=0-1%2", "#SBATCH --cpus-per-task=2", "#SBATCH --gpus-per-node=1", "#SBATCH --partition=gpu"):
        assert line in text
    assert rows(pinn_catalog, "SELECT COUNT(*) FROM metric_runs") == [(0,)]
    if shutil.which("sbatch") is None:
        with pytest.raises(LossLensError, match="sbatch is not on PATH"):
            compute(["performance"], catalog_path=pinn_catalog, executor="slurm", executor_options={"folder": str(tmp_path)})
        assert rows(pinn_catalog, "SELECT COUNT(*) FROM metric_runs") == [(0,)]


def test_slurm_flags_reach_the_sbatch_script(pinn_catalog, tmp_path):
    """`--partition`, `--gpus-per-node` and `--array-parallelism` on the command line, as the issue spells them,
    land in the sbatch script (4 jobs in chunks of 1: an array of 4 tasks, at most 3 at once). Oracle: the
    script's #SBATCH lines; nothing is run or stored."""
    from typer.testing import CliRunner

    from losslens.cli import app

    args = ["compute", "performance", "--catalog", str(pinn_catalog), "--executor", "slurm", "--partition", "gpu"]
    args += ["--gpus-per-node", "2", "--array-parallelism", "3", "--cpus-per-job", "4", "-X", "chunk=1"]
    args += ["-X", f"folder={tmp_path / 'sj'}", "-X", "partition=gpu", "--dry-run"]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    for line in ("#SBATCH --array=0-3%3", "#SBATCH --gpus-per-node=2", "#SBATCH --partition=gpu", "#SBATCH --cpus-per-task=4"):
        assert line in result.output
    assert rows(pinn_catalog, "SELECT COUNT(*) FROM metric_runs") == [(0,)]


def test_executor_flags_given_wrongly_are_one_line_each(pinn_catalog, tmp_path):
    """A flag of one executor with another, two spellings that disagree, a node too small for a job, a
    bad -X: each is one `error:` line naming the flag and the fix, on compute and demo, before anything
    runs. Oracle: the exact lines, and no run stored, no demo folder made."""
    from typer.testing import CliRunner

    from losslens.cli import app

    cases = {
        ("--partition", "gpu"): "error: --partition: only --executor slurm takes this option (this command runs on "
        "serial) — add --executor slurm, or leave --partition out",
        ("--executor", "ray", "--array-parallelism", "4"): "error: --array-parallelism: only --executor slurm takes this "
        "option (this command runs on ray) — add --executor slurm, or leave --array-parallelism out",
        ("-j", "2", "--gpus-per-node", "1"): "error: --gpus-per-node: only --executor slurm takes this option (this "
        "command runs on process) — add --executor slurm, or leave --gpus-per-node out",
        ("--executor", "slurm", "--address", "auto"): "error: --address: only --executor ray takes this option (this "
        "command runs on slurm) — add --executor ray, or leave --address out",
        ("--executor", "slurm", "--partition", "gpu", "-X", "partition=cpu"): "error: --partition: --partition gpu and "
        "-X partition=cpu disagree — give the value once",
        ("--executor", "slurm", "--array-parallelism", "8", "-X", "array-parallelism=4"): "error: --array-parallelism: "
        "--array-parallelism 8 and -X array_parallelism=4 disagree — give the value once",
        ("--executor", "slurm", "--gpus-per-job", "2", "--gpus-per-node", "1"): "error: --gpus-per-node: 1 GPUs per "
        "array task cannot hold a job of --gpus-per-job 2 — give --gpus-per-node 2 or more",
        ("--executor", "slurm", "-X", "chunk=-1"): "error: --executor slurm: chunk -1 must be at least 0",
        ("-X", "window"): "error: -X: 'window' is not KEY=VALUE — e.g. -X timeout_min=120",
        ("--executor", "ray", "-j", "4"): "error: --jobs: -j 4 sizes a local pool of processes, which --executor ray "
        "does not use — Ray runs as many jobs at once as the cluster has CPUs ÷ --cpus-per-job; leave -j out",
        ("--executor", "slurm", "-j", "2"): "error: --jobs: -j 2 sizes a local pool of processes, which --executor "
        "slurm does not use — array tasks run at once: --array-parallelism; leave -j out",
        ("--executor", "serial", "-j", "2"): "error: --jobs: -j 2 sizes a local pool of processes, which --executor "
        "serial does not use — use --executor process for a pool, or leave -j out",
    }
    runner = CliRunner()
    for args, line in cases.items():
        result = runner.invoke(app, ["compute", "performance", "--catalog", str(pinn_catalog), *args], env={"COLUMNS": "400"})
        assert (result.exit_code, " ".join(result.output.split())) == (1, line), args
    assert rows(pinn_catalog, "SELECT COUNT(*) FROM metric_runs") == [(0,)]
    out = tmp_path / "demo"
    result = runner.invoke(app, ["demo", "--quick", "--out", str(out), "--partition", "gpu"], env={"COLUMNS": "400"})
    assert result.exit_code == 1 and result.output.startswith("error: --partition: only --executor slurm takes")
    assert not out.exists()
    result = runner.invoke(app, ["demo", "--out", str(out), "--executor", "ray", "-j", "3"], env={"COLUMNS": "400"})
    assert result.exit_code == 1 and result.output.startswith("error: --jobs: -j 3 sizes a local pool of processes")
    assert not out.exists()
    demo_help = runner.invoke(app, ["demo", "--help"], env={"COLUMNS": "300"}).output
    assert all(flag in demo_help for flag in ("--partition", "--gpus-per-node", "--array-parallelism"))


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
def test_ray_raising_metric_is_stored_once_as_failed(ray_cluster, pinn_catalog, tmp_path):
    """Oracle: the files the metric drops each time it really runs (one per checkpoint: never retried),
    and the catalog's metric_runs rows (one failed run per checkpoint, with a one-line error)."""
    cluster, _ = ray_cluster
    marks = tmp_path / "marks"
    marks.mkdir()
    report = compute(
        ["test_raises"],
        [("marks", str(marks))],
        catalog_path=pinn_catalog,
        executor="ray",
        executor_options={"address": cluster.address},
    )
    m = report.metrics[0]
    assert (m.done, m.failed, m.retried) == (0, 4, 0)
    names = sorted(r[0] for r in rows(pinn_catalog, "SELECT name FROM checkpoints"))
    assert sorted(p.name.rsplit("-", 2)[0] for p in marks.iterdir()) == names
    errors = rows(pinn_catalog, "SELECT status, error FROM metric_runs WHERE metric = 'test_raises'")
    assert len(errors) == 4
    assert all(s == "failed" and e.startswith("RuntimeError: boom in beta") and "\n" not in e for s, e in errors)


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
    """submitit's local executor as the Slurm job array runs the Ray test's sweep (one array task per
    metric: each is a fresh Python). Oracle: the serial executor's results."""
    slurm = copy_catalog(pinn_catalog, "slurm")
    compute(list(SWEEP), SWEEP_OPTIONS, catalog_path=pinn_catalog, device="cpu")
    opts = {"cluster": "local", "folder": str(tmp_path / "submitit"), "array_parallelism": "1", "poll_s": "0.5"}
    report = compute(list(SWEEP), SWEEP_OPTIONS, catalog_path=slurm, device="cpu", executor="slurm", executor_options=opts)
    assert report.failed == 0 and {m.metric for m in report.metrics} == set(SWEEP)
    assert_same_tables(pinn_catalog, slurm, SWEEP_TABLES)
    again = compute(list(SWEEP), SWEEP_OPTIONS, catalog_path=slurm, device="cpu", executor="slurm", executor_options=opts)
    assert sum(m.done for m in again.metrics) == 0 and all(m.skipped == m.planned for m in again.metrics)


@pytest.mark.slow
def test_slurm_rerun_after_an_array_task_died_computes_only_its_jobs(plugin, pinn_catalog, tmp_path, monkeypatch):
    """Two array tasks of two jobs (submitit's local executor: real subprocesses); the first task is killed
    with SIGKILL in its second job, after finishing its first. The driver stores the other task's results
    and the dead task's jobs as failed runs naming the array task; the same command again runs exactly the
    dead task's two jobs. Oracles: the files each real run of the metric drops, the serial executor's
    values, row counts and SQLite's integrity check."""
    reference = copy_catalog(pinn_catalog, "reference")
    compute(["test_faulty"], catalog_path=reference, device="cpu")
    load_metrics()
    metric = with_requirements(["test_faulty"])[0]
    with open_catalog(pinn_catalog) as cat:
        order = [job.records[0]["name"] for job in plan(cat, metric, metric.params())]
    dead, alive = order[:2], order[2:]  # 4 jobs over --array-parallelism 2: two tasks, in plan order
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    opts = {"cluster": "local", "folder": str(tmp_path / "submitit"), "array_parallelism": "2", "poll_s": "0.5"}

    monkeypatch.setenv("LLPLUG_MARKS", str(first))
    monkeypatch.setenv("LLPLUG_KILL", dead[1])
    report = compute(["test_faulty"], catalog_path=pinn_catalog, device="cpu", executor="slurm", executor_options=opts)
    m = report.metrics[0]
    assert (m.planned, m.done, m.failed) == (4, 2, 2)
    assert ran(first) == sorted(order)  # every job started once; dead[1] died in its task
    stored = rows(
        pinn_catalog, "SELECT c.name, r.status, r.error FROM metric_runs r JOIN checkpoints c ON c.sha256 = r.checkpoint"
    )
    assert sorted((name, status) for name, status, _ in stored) == sorted(
        [(n, "failed") for n in dead] + [(n, "done") for n in alive]
    )
    for _, status, error in stored:  # the failed runs name the dead task and its log, in one line
        if status == "failed":
            assert error.startswith("Slurm array task ") and "ended without a result" in error and "\n" not in error
            assert Path(error.rsplit("its log: ", 1)[1]).is_file()

    monkeypatch.setenv("LLPLUG_MARKS", str(second))
    monkeypatch.delenv("LLPLUG_KILL")
    again = compute(["test_faulty"], catalog_path=pinn_catalog, device="cpu", executor="slurm", executor_options=opts)
    m = again.metrics[0]
    assert (m.planned, m.skipped, m.done, m.failed) == (4, 2, 2, 0)
    assert ran(second) == sorted(dead)
    assert_each_job_done_once(pinn_catalog, "test_faulty", 4)
    assert_same_tables(reference, pinn_catalog, ("performance",))


@pytest.mark.slow
@pytest.mark.cuda
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
    assert_close_across_devices(pinn_catalog, gpu)


@pytest.mark.slow
@pytest.mark.cuda
@pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA device: checks that an array task given --gpus-per-node 1 uses it"
)
def test_slurm_array_task_given_a_gpu_runs_its_jobs_on_cuda(plugin, pinn_catalog, tmp_path):
    """submitit's local executor hands the array task one GPU (CUDA_VISIBLE_DEVICES) for --gpus-per-node 1;
    --device auto resolves to it there. Oracle: the serial CPU executor's values (1e-4 relative)."""
    gpu = copy_catalog(pinn_catalog, "gpu")
    compute(["performance"], catalog_path=pinn_catalog, device="cpu")
    devices = []
    opts = {"cluster": "local", "folder": str(tmp_path / "submitit"), "gpus_per_node": "1", "poll_s": "0.5"}
    report = compute(
        ["performance"],
        catalog_path=gpu,
        executor="slurm",
        executor_options=opts,
        on_event=lambda e, **d: devices.append(d["outcome"].device) if e == "job_done" else None,
    )
    assert report.failed == 0 and len(devices) == 4 and all(d.startswith("cuda") for d in devices)
    assert_close_across_devices(pinn_catalog, gpu)


def assert_close_across_devices(cpu: Path, gpu: Path) -> None:
    """The performance rows of two catalogs agree to float32 accuracy across devices (1e-4 relative)."""
    a, b = table_rows(cpu, "performance"), table_rows(gpu, "performance")
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


@pytest.mark.parametrize("name", ["process", "ray"])
@pytest.mark.parametrize("window", ["0", "-3"])
def test_window_below_one_is_refused(name, window):
    """A window below 1 let the process pool submit nothing and return at once: every job silently not run
    (computed 0, failed 0). Oracle: the executor's typed config refuses it with one line, as slurm's counts do."""
    if name == "ray":
        pytest.importorskip("ray")
    with pytest.raises(LossLensError, match=f"window {window} must be at least 1") as info:
        make_executor(name, Resources(), {"window": window})
    assert info.value.where == f"--executor {name}"
