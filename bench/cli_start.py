"""CLI start-up: wall time and peak RSS of ``losslens --version``, ``--help``, ``ls`` and ``status``
against ``datasette --version`` (the anchor: the server LossLens is browsed with), in the same run.

Each command runs ``--repeat`` times, the commands interleaved round by round so that a load spike on
a shared machine hits all of them alike. Wall time is measured around the child process; peak RSS is
the child's own ``ru_maxrss`` from ``os.wait4``. The goal (issue #14) is ≤ 1.5× datasette's time.

Usage: flock /tmp/losslens-bench.lock python bench/cli_start.py [--repeat 15]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def entry_point(name: str) -> list[str]:
    """The console script installed beside this interpreter (what a user types), else ``python -m``."""
    script = BIN / name
    return [str(script)] if script.exists() else [sys.executable, "-m", name]


def run_once(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """Seconds of wall time and peak RSS in MiB of one run of ``argv``; raises if it fails."""
    start = time.perf_counter()
    cwd = env.get("PYTHONPATH") if env else None  # `python -m` puts the working folder first on sys.path
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=cwd)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr.read().decode() if proc.stderr else ''}")
    return seconds, usage.ru_maxrss / 1024  # Linux reports KiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=15, help="runs per command (default 15)")
    parser.add_argument(
        "--before", type=Path, help="a checkout of an older LossLens: its `--version` is timed too (python -m losslens)"
    )
    args = parser.parse_args()
    envs: dict[str, dict[str, str] | None] = {}

    with tempfile.TemporaryDirectory() as tmp:
        catalog = str(Path(tmp) / "losslens.db")
        subprocess.run([*entry_point("losslens"), "init", "--catalog", catalog], check=True, stdout=subprocess.DEVNULL)
        commands = {
            "datasette --version": [*entry_point("datasette"), "--version"],
            "losslens --version": [*entry_point("losslens"), "--version"],
            "losslens --help": [*entry_point("losslens"), "--help"],
            "losslens ls": [*entry_point("losslens"), "ls", "--catalog", catalog],
            "losslens status": [*entry_point("losslens"), "status", "--catalog", catalog],
        }
        if args.before:
            name = f"losslens --version (before: {args.before.name})"
            commands[name] = [sys.executable, "-m", "losslens", "--version"]
            envs[name] = {**os.environ, "PYTHONPATH": str(args.before.resolve())}
        for name, argv in commands.items():  # warm the page cache and .pyc files
            run_once(argv, envs.get(name))
        samples: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
        load_before = os.getloadavg()[0]
        for _ in range(args.repeat):
            for name, argv in commands.items():
                samples[name].append(run_once(argv, envs.get(name)))
        load_after = os.getloadavg()[0]

    anchor = statistics.median(s for s, _ in samples["datasette --version"])
    print(f"{args.repeat} runs each, interleaved; load average {load_before:.1f} → {load_after:.1f}; {sys.version.split()[0]}")
    print()
    print("| command | median wall (s) | min wall (s) | ratio to datasette (median) | peak RSS (MiB) |")
    print("|---|---|---|---|---|")
    for name, runs in samples.items():
        walls = [s for s, _ in runs]
        rss = max(r for _, r in runs)
        print(
            f"| `{name}` | {statistics.median(walls):.3f} | {min(walls):.3f} | {statistics.median(walls) / anchor:.2f}× | {rss:.0f} |"
        )


if __name__ == "__main__":
    main()
