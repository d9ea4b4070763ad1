"""This machine's executors: ``serial`` (in the driver) and ``process`` (a spawn-started process pool)."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, TypeVar

import torch

from losslens.allocator import keep_freed_memory
from losslens.jobs.executors import Finished, Resources, cores

J = TypeVar("J")
R = TypeVar("R")


class SerialExecutor:
    """In-process, one job at a time, with torch using every core (or ``OMP_NUM_THREADS`` when set)
    and glibc keeping freed memory (losslens/allocator.py)."""

    Config = None

    def __init__(self, resources: Resources | None = None, config: Any = None, threads: int | None = None):
        self.threads = threads or int(os.environ.get("OMP_NUM_THREADS") or 0) or cores()

    def run(self, fn: Callable[[J], R], jobs: Iterable[J]) -> Iterator[Finished[J, R]]:
        torch.set_num_threads(self.threads)
        keep_freed_memory()
        for job in jobs:
            yield Finished(job, fn(job))

    def ship(self, record: dict[str, Any]) -> None:
        return None

    def close(self) -> None:
        return None


def _init_worker(threads: int) -> None:
    torch.set_num_threads(threads)
    torch.set_num_interop_threads(1)
    keep_freed_memory()


@dataclass(frozen=True)
class ProcessConfig:
    window: int = 2  # jobs in flight per worker


class ProcessExecutor:
    """A spawn-started process pool; each worker pins torch threads so workers × threads ≤ cores
    (oversubscribed torch threads made the same work ~30× slower on a 2-core machine). Workers are
    ``resources.workers``, or cores ÷ ``cpus_per_job``."""

    Config = ProcessConfig

    def __init__(self, resources: Resources | None = None, config: ProcessConfig | None = None):
        resources = resources or Resources()
        self.config = config or ProcessConfig()
        self.workers = max(1, resources.workers or int(cores() // max(resources.cpus_per_job, 1)))
        self.threads = max(1, cores() // self.workers)

    def run(self, fn: Callable[[J], R], jobs: Iterable[J]) -> Iterator[Finished[J, R]]:
        queue = iter(jobs)
        ctx = multiprocessing.get_context("spawn")
        pool = ProcessPoolExecutor(self.workers, mp_context=ctx, initializer=_init_worker, initargs=(self.threads,))
        pending: dict[Future, J] = {}
        try:
            exhausted = False
            while not exhausted or pending:
                while not exhausted and len(pending) < self.workers * self.config.window:
                    job = next(queue, None)
                    if job is None:
                        exhausted = True
                        break
                    pending[pool.submit(fn, job)] = job
                if not pending:
                    break
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in finished:
                    yield Finished(pending.pop(fut), fut.result())
        finally:
            pool.shutdown(wait=not pending, cancel_futures=True)

    def ship(self, record: dict[str, Any]) -> None:
        return None

    def close(self) -> None:
        return None
