"""Sweep benchmark: executor overhead per job, sweep throughput per executor, and plan time at 100,000 jobs.

1. overhead: a no-op pair metric (it loads nothing and returns no rows) over every pair of 24 checkpoints
   (276 jobs), for serial, process (2 workers) and Ray (2 CPUs, the cluster started and its workers
   warmed by a first pass before the clock starts); per job = wall ÷ jobs, storing included.
2. throughput: a PINN sweep (the demo's 2-50-50-50-50-1 model, untrained, β × seeds) with the demo's
   metric set at ``--quick`` sizes (performance, hessian, landscape 21², topology, connectivity, cka,
   similarity; connectivity over adjacent seeds), for serial, process (2 workers) and Ray (a local cluster of 2 CPUs started before the
   clock; its workers' start-up, like the pool's, is timed).
3. plan: ``plan`` + the skip-done check for 100,128 connectivity pair jobs (448 seeds in one setting).

    flock /tmp/losslens-bench.lock env OMP_NUM_THREADS=1 .venv/bin/python bench/sweep.py [--checkpoints 48]

Prints one JSON object; docs/benchmarks.md ("Distributed sweeps") has the figures and the machine's load.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

NOOP = '''
from dataclasses import dataclass
from losslens.metrics.registry import Result, register


@dataclass(frozen=True)
class NoopParams:
    pairs: str = "all"


@register("bench_noop", scope="pair", params=NoopParams, tables=())
def noop(ctx, params):
    """Does nothing: the executor's and the driver's cost per job."""
    return Result()
'''

QUICK = [
    ("landscape.steps", "21"),
    ("topology.steps", "21"),
    ("hessian.trace-probes", "20"),
    ("hessian.esd-runs", "1"),
    ("hessian.esd-steps", "30"),
    ("connectivity.steps", "100"),
    ("connectivity.points", "7"),
    # connectivity over adjacent seed pairs (all pairs of 12 seeds would be 66 bend fits per setting);
    # CKA stays within-setting: the MDS of the similarity metric needs every seed pair
    ("connectivity.pairs", "adjacent"),
]
SWEEP = ["performance", "hessian", "landscape", "topology", "connectivity", "cka", "similarity"]


def install_noop(root: Path) -> None:
    """The no-op metric as an installed distribution (entry point), so spawned and Ray workers find it."""
    (root / "llbench").mkdir(parents=True)
    (root / "llbench" / "__init__.py").write_text(NOOP)
    info = root / "llbench-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: llbench\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[losslens.metrics]\nllbench = llbench\n")
    sys.path.insert(0, str(root))
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(root), os.environ.get("PYTHONPATH")) if p)


def make_sweep(folder: Path, name: str, betas: list[float], seeds: int, width: int = 50, depth: int = 4) -> Path:
    """Untrained PINN checkpoints β × seeds, ingested into ``folder/catalog/losslens.db``."""
    import torch

    from losslens.ingest import ingest
    from losslens.models import pinn_mlp

    for beta in betas:
        for seed in range(seeds):
            torch.manual_seed(seed)
            path = folder / "runs" / f"beta{beta:g}_seed{seed}.pt"
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.save(
                {"state_dict": pinn_mlp(width, depth).state_dict(), "meta": {"seed": seed, "hparams": {"beta": beta}}}, path
            )
    spec = folder / "spec.toml"
    spec.write_text(
        f'name = "{name}"\n\n[model]\nfactory = "losslens.models:pinn_mlp"\nkwargs = {{ width = {width}, depth = {depth} }}\n\n'
        '[problem]\nfactory = "losslens.problems:convection"\nkwargs = { n_collocation = 200 }\n\n'
        '[checkpoints]\npaths = ["runs/*.pt"]\n\n[settings]\nkeys = ["beta"]\n'
    )
    db = folder / "catalog" / "losslens.db"
    report = ingest(spec, db)
    assert report.ok, [o.error for o in report.outcomes if o.error]
    return db


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def overhead(work: Path) -> dict[str, float]:
    import ray

    from losslens.jobs import compute
    from losslens.jobs.executors import Resources

    db = make_sweep(work / "noop", "noop", [1.0, 5.0, 10.0, 30.0], 6, width=8, depth=2)
    opts: list = []
    out = {}
    for label, kwargs in (
        ("serial", {"executor": "serial"}),
        ("process", {"executor": "process", "resources": Resources(workers=2)}),
        ("ray", {"executor": "ray", "resources": Resources(cpus_per_job=1)}),
    ):
        if label == "ray":
            ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
            compute(["bench_noop"], opts, catalog_path=db, device="cpu", force=True, **kwargs)  # warm the workers
        seconds, report = timed(lambda kw=kwargs: compute(["bench_noop"], opts, catalog_path=db, device="cpu", force=True, **kw))
        jobs = report.metrics[0].done
        out[f"{label}_ms_per_job"] = round(1000 * seconds / jobs, 2)
        out["jobs"] = jobs
    ray.shutdown()
    return out


def throughput(work: Path, checkpoints: int) -> dict[str, float]:
    from losslens.jobs import compute
    from losslens.jobs.executors import Resources

    betas = [1.0, 10.0, 20.0, 30.0]
    seeds = max(2, checkpoints // len(betas))
    out: dict[str, float] = {"checkpoints": len(betas) * seeds}
    for label, kwargs in (
        ("serial", {"executor": "serial"}),
        ("process", {"executor": "process", "resources": Resources(workers=2)}),
        ("ray", {"executor": "ray", "resources": Resources(cpus_per_job=1), "executor_options": {"address": "local"}}),
    ):
        db = make_sweep(work / f"sweep-{label}", "sweep", betas, seeds)
        if label == "ray":
            import ray

            ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
        seconds, report = timed(lambda db=db, kw=kwargs: compute(SWEEP, QUICK, catalog_path=db, device="cpu", **kw))
        if label == "ray":
            ray.shutdown()
        assert report.failed == 0, [m.failures for m in report.metrics]
        out[f"{label}_s"] = round(seconds, 1)
        out["jobs"] = sum(m.done for m in report.metrics)
    out["ray_vs_process"] = round(out["process_s"] / out["ray_s"], 2)
    out["ray_vs_serial"] = round(out["serial_s"] / out["ray_s"], 2)
    out["process_vs_serial"] = round(out["serial_s"] / out["process_s"], 2)
    return out


def plan_time(work: Path) -> dict[str, float]:
    from losslens.jobs.options import build_params
    from losslens.jobs.plan import done_run_ids, plan
    from losslens.metrics.registry import get_metric
    from losslens.store import open_catalog

    db = make_sweep(work / "plan", "plan", [1.0], 448, width=8, depth=2)
    metric = get_metric("connectivity")
    params = build_params([metric], [])["connectivity"]
    with open_catalog(db) as cat:
        seconds, jobs = timed(lambda: plan(cat, metric, params))
        skip_s, _ = timed(lambda: done_run_ids(cat, metric))
    return {"jobs": len(jobs), "plan_s": round(seconds, 2), "skip_done_s": round(skip_s, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoints", type=int, default=48)
    parser.add_argument("--only", choices=("overhead", "throughput", "plan"), action="append")
    args = parser.parse_args()
    parts = args.only or ["plan", "overhead", "throughput"]
    with tempfile.TemporaryDirectory(prefix="losslens-sweep-") as tmp:
        work = Path(tmp)
        install_noop(work / "site")
        from losslens.metrics.registry import load_metrics

        load_metrics()
        result = {"load_before": os.getloadavg()[0]}
        if "plan" in parts:
            result["plan"] = plan_time(work)
        if "overhead" in parts:
            result["overhead"] = overhead(work)
        if "throughput" in parts:
            result["throughput"] = throughput(work, args.checkpoints)
        result["load_after"] = os.getloadavg()[0]
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
