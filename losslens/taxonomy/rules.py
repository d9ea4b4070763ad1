"""Yang et al.'s (2021) taxonomy of loss landscapes: per-setting summaries and their phase.

A setting (one configuration, several seeds) is summarised by means over its seeds (training loss and
error, Hessian sharpness) and over its seed pairs (mode connectivity mc, CKA). Then:

|                          | sharp     | flat                              |
|--------------------------|-----------|-----------------------------------|
| poorly connected (mc < 0)| Phase I   | Phase III                         |
| well connected (mc ≥ 0)  | Phase II  | Phase IV-A (low CKA), IV-B (high) |

Only mc's sign is a fixed threshold (with an optional ε band: mc ≥ −ε counts as well connected, a
barrier smaller than ε being within evaluation noise). Sharp/flat and high/low CKA are relative to
the settings compared: thresholds default to a quantile (the median) over them. Ties resolve toward
the benign side (flat, high CKA, well connected), so a setting exactly at a threshold is never
called sharp or dissimilar.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

Sharpness = Literal["eigenvalue", "trace"]
SHARPNESS_COLUMN = {"eigenvalue": "log_top_eigenvalue", "trace": "log_trace"}


@dataclass(frozen=True)
class SettingSummary:
    setting_id: str
    n_checkpoints: int
    n_pairs: int
    train_loss: float | None
    train_error: float | None
    test_error: float | None
    log_top_eigenvalue: float | None
    log_trace: float | None
    mc: float | None
    cka: float | None


def _mean(values: Iterable[float | None]) -> float | None:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(finite)) if finite else None


def _log_of_mean(values: Iterable[float | None]) -> float | None:
    mean = _mean(values)
    return math.log(mean) if mean is not None and mean > 0 else None


def summarize(
    checkpoints: dict[str, str],
    performance: list[dict[str, Any]],
    top_eigenvalues: dict[str, float],
    traces: dict[str, float],
    mc: list[dict[str, Any]],
    cka: list[dict[str, Any]],
) -> list[SettingSummary]:
    """Per-setting means from metric tables.

    ``checkpoints`` maps checkpoint sha → setting id; ``performance`` has rows (checkpoint, split, name,
    value) as in the ``performance`` table; ``top_eigenvalues`` and ``traces`` map checkpoint → value;
    ``mc`` and ``cka`` have rows (checkpoint_a, checkpoint_b, value). Pairs across settings are ignored.
    """
    by_setting: dict[str, list[str]] = defaultdict(list)
    for sha, sid in checkpoints.items():
        by_setting[sid].append(sha)
    perf = {(r["checkpoint"], r["split"], r["name"]): r["value"] for r in performance}

    def pair_values(rows: list[dict[str, Any]], sid: str) -> list[float | None]:
        return [
            r["value"] for r in rows if checkpoints.get(r["checkpoint_a"]) == sid and checkpoints.get(r["checkpoint_b"]) == sid
        ]

    out = []
    for sid in sorted(by_setting):
        shas = by_setting[sid]
        mcs = pair_values(mc, sid)
        test = [perf.get((s, "test", "error"), perf.get((s, "eval", "rel_l2"))) for s in shas]
        out.append(
            SettingSummary(
                setting_id=sid,
                n_checkpoints=len(shas),
                n_pairs=len([v for v in mcs if v is not None]),
                train_loss=_mean(perf.get((s, "train", "loss")) for s in shas),
                train_error=_mean(perf.get((s, "train", "error")) for s in shas),
                test_error=_mean(test),
                log_top_eigenvalue=_log_of_mean(top_eigenvalues.get(s) for s in shas),
                log_trace=_log_of_mean(traces.get(s) for s in shas),
                mc=_mean(mcs),
                cka=_mean(pair_values(cka, sid)),
            )
        )
    return out


def well_connected(mc: float | None, epsilon: float = 0.0) -> bool | None:
    """Yang et al.'s sign rule: mc ≥ −ε is well connected (a barrier within ε counts as noise); None for no mc.
    The one definition of "well connected", used by the taxonomy, the mode map's links and the pages."""
    if mc is None or not math.isfinite(mc):
        return None
    return mc >= -epsilon


def phase_of(well_connected: bool, sharp: bool, high_cka: bool | None) -> str | None:
    if not well_connected:
        return "I" if sharp else "III"
    if sharp:
        return "II"
    if high_cka is None:
        return None
    return "IV-B" if high_cka else "IV-A"


def _threshold(name: str, given: float | None, values: list[float | None], quantile: float) -> dict[str, Any]:
    finite = [v for v in values if v is not None]
    if given is not None:
        return {"value": given, "source": "given"}
    if not finite:
        return {"value": None, "source": f"no {name} values"}
    return {"value": float(np.quantile(finite, quantile)), "source": f"quantile {quantile} over {len(finite)} settings"}


def assign_phases(
    summaries: list[SettingSummary],
    *,
    sharpness: Sharpness = "eigenvalue",
    epsilon: float = 0.0,
    sharpness_threshold: float | None = None,
    cka_threshold: float | None = None,
    quantile: float = 0.5,
    diverged: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Rows of the ``taxonomy`` table (without run_id/sources): each summary with its flags, phase and thresholds.

    ``diverged`` maps a setting id to a note naming its seeds whose weights are not finite: such a
    setting gets phase NULL with that note (its means would come from the other seeds only), and it
    does not move the quantile thresholds of the others.
    """
    diverged = diverged or {}
    column = SHARPNESS_COLUMN[sharpness]
    counted = [s for s in summaries if s.setting_id not in diverged]
    tau_s = _threshold(column, sharpness_threshold, [getattr(s, column) for s in counted], quantile)
    tau_c = _threshold("cka", cka_threshold, [s.cka for s in counted], quantile)
    thresholds = {
        "mc": {"value": 0.0, "epsilon": epsilon, "rule": "well connected when mc >= -epsilon"},
        "sharpness": {**tau_s, "measure": column, "rule": "sharp when above"},
        "cka": {**tau_c, "rule": "high when at or above"},
    }
    rows = []
    for s in summaries:
        value = getattr(s, column)
        well = well_connected(s.mc, epsilon)
        sharp = None if value is None or tau_s["value"] is None else value > tau_s["value"]
        high = None if s.cka is None or tau_c["value"] is None else s.cka >= tau_c["value"]
        missing = [n for n, v in (("mc (needs two or more seeds)", well), (f"{column}", sharp)) if v is None]
        phase = None if well is None or sharp is None else phase_of(well, sharp, high)
        if phase is None and not missing:
            missing = ["cka"]
        note = f"missing {', '.join(missing)}" if missing else None
        if s.setting_id in diverged:
            phase, note = None, diverged[s.setting_id]
        rows.append(
            {
                **asdict(s),
                "well_connected": None if well is None else int(well),
                "sharp": None if sharp is None else int(sharp),
                "high_cka": None if high is None else int(high),
                "phase": phase,
                "note": note,
                "thresholds": thresholds,
            }
        )
    return rows
