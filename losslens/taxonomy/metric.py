"""The ``taxonomy`` metric: read the latest performance, Hessian, connectivity and CKA runs of an experiment,
summarise each setting and assign its phase."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from losslens.jobs.context import JobContext
from losslens.metrics.registry import Read, Result, register
from losslens.taxonomy.rules import Sharpness, assign_phases, summarize


@dataclass(frozen=True)
class TaxonomyParams:
    sharpness: Sharpness = field(
        default="eigenvalue", metadata={"help": "Sharp/flat by log mean top Hessian eigenvalue or log mean trace."}
    )
    epsilon: float = field(default=0.0, metadata={"help": "mc ≥ −ε counts as well connected (ε band around the sign threshold)."})
    sharpness_threshold: float | None = field(
        default=None, metadata={"help": "Sharp above this log value (default: the quantile over settings)."}
    )
    cka_threshold: float | None = field(
        default=None, metadata={"help": "High CKA at or above this (default: the quantile over settings)."}
    )
    quantile: float = field(default=0.5, metadata={"help": "Quantile over the settings for default thresholds (0.5 = median)."})


def diverged_seeds(records: list[dict[str, Any]]) -> dict[str, str]:
    """Setting id → "phase left empty: seed 2 (name) has weights that are not finite", from ingest's
    finiteness flag in each checkpoint's ``meta_json``."""
    bad: dict[str, list[str]] = {}
    for rec in records:
        if json.loads(rec.get("meta_json") or "{}").get("losslens", {}).get("finite") is False:
            bad.setdefault(rec["setting_id"], []).append(f"seed {rec['seed']} ({rec['name']})")
    return {sid: f"phase left empty: {', '.join(names)} has weights that are not finite" for sid, names in bad.items()}


def shipped_rows(
    ctx: Any, metric: str, table: str, keep: Callable[[dict[str, Any]], bool] = lambda row: True
) -> tuple[list[dict[str, Any]], set[str]]:
    """Rows of ``table`` from the latest done run of ``metric`` per subject (shipped with the job), each
    with its run under ``"run"``, and the params hashes of those runs."""
    runs = ctx.results(metric)
    rows = [{**row, "run": run.run} for run in runs for row in run.rows[table] if keep(row)]
    return rows, {run.run["params_hash"] for run in runs}


@register(
    "taxonomy",
    scope="experiment",
    params=TaxonomyParams,
    tables=("taxonomy",),
    requires=("performance", "hessian", "connectivity", "similarity"),
    reads=(
        Read("performance", tables=("performance",)),
        Read("hessian", tables=("hessian_eigenvalues", "hessian_trace")),
        Read("connectivity", tables=("pair_metrics",)),
        Read("cka", tables=("pair_metrics",)),
    ),
)
def taxonomy(ctx: JobContext, params: TaxonomyParams) -> Result:
    """Phase I, II, III, IV-A or IV-B per setting from training loss, Hessian sharpness, mc and CKA (Yang et al.)."""
    perf, h_perf = shipped_rows(ctx, "performance", "performance")
    eig, h_eig = shipped_rows(ctx, "hessian", "hessian_eigenvalues", lambda r: r["which"] == "largest" and r["rank"] == 0)
    trace, _ = shipped_rows(ctx, "hessian", "hessian_trace")
    pairs, h_conn = shipped_rows(ctx, "connectivity", "pair_metrics", lambda r: r["metric"] == "mc")
    mc = [p for p in pairs if p["curve"] == json.loads(p["run"]["params_json"])["curve"]]  # the fitted curve, not the line
    cka, h_cka = shipped_rows(ctx, "cka", "pair_metrics", lambda r: r["metric"] == "cka")
    summaries = summarize(
        {c["sha256"]: c["setting_id"] for c in ctx.checkpoints},
        perf,
        {r["checkpoint"]: r["value"] for r in eig},
        {r["checkpoint"]: r["estimate"] for r in trace},
        mc,
        cka,
    )
    sources = {"performance": sorted(h_perf), "hessian": sorted(h_eig), "connectivity": sorted(h_conn), "cka": sorted(h_cka)}
    result = Result()
    for row in assign_phases(
        summaries,
        sharpness=params.sharpness,
        epsilon=params.epsilon,
        sharpness_threshold=params.sharpness_threshold,
        cka_threshold=params.cka_threshold,
        quantile=params.quantile,
        diverged=diverged_seeds(ctx.checkpoints),
    ):
        thresholds = row.pop("thresholds")
        result.add(
            "taxonomy",
            **row,
            thresholds_json=json.dumps(thresholds, sort_keys=True),
            sources_json=json.dumps(sources, sort_keys=True),
        )
    return result
