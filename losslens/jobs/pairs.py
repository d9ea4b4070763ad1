"""Which checkpoint pairs a pair metric (connectivity, CKA) computes: ``--pairs``.

Every seed pair of a setting grows as n²; ``adjacent`` and ``random:K`` grow linearly with the seeds,
for sweeps with many seeds (the LossLens paper's 100).
"""

from __future__ import annotations

import hashlib
import itertools
import random
from typing import Any

from losslens.errors import LossLensError, unknown

PAIRINGS = "within-setting, adjacent, random:K, same-step or all"
PAIRS_HELP = (
    "Which checkpoint pairs: within-setting (every seed pair of each setting, n(n−1)/2), adjacent (each seed with "
    "the next, n−1), random:K (K seeded random seed pairs per setting), same-step (every pair of a setting at one "
    "training step, for checkpoints along training), or all (every pair across settings). "
    "A pair already computed under another choice is not computed again."
)


def select_pairs(records: list[dict[str, Any]], pairing: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Pairs of one group (a setting's seeds, or everything for ``all``) in seed order.

    ``within-setting``/``same-step``/``all``: every pair, n(n−1)/2; ``adjacent``: each seed with the next, n−1;
    ``random:K``: K distinct pairs drawn with a seed derived from the group's checkpoints, so a rerun
    draws the same ones.

    :raises LossLensError: when ``pairing`` is none of these or K is not a positive integer.
    """
    every = list(itertools.combinations(records, 2))
    if pairing in ("within-setting", "same-step", "all"):
        return every
    if pairing == "adjacent":
        return list(itertools.pairwise(records))
    if pairing.startswith("random:"):
        k = pairing.split(":", 1)[1]
        if not k.isdigit() or int(k) < 1:
            raise LossLensError(f"--pairs {pairing}: K must be a positive integer", where="compute", hint="e.g. --pairs random:8")
        seed = int(hashlib.sha256("".join(r["sha256"] for r in records).encode()).hexdigest()[:16], 16)
        picked = sorted(random.Random(seed).sample(range(len(every)), min(int(k), len(every))))
        return [every[i] for i in picked]
    raise unknown("pairing", pairing, ["within-setting", "adjacent", "random:K", "same-step", "all"], where="compute --pairs")
