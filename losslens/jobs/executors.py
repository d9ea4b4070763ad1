"""Executors run jobs and yield outcomes as they finish. Serial and process pool share one interface,
so a distributed engine can plug in later with the same ``run`` method."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Any, Protocol, TypeVar

import torch

from losslens.allocator import keep_freed_memory

J = TypeVar("J")
R = TypeVar("R")


class Executor(Protocol):
    def run(self, fn: Callable[[J], R], jobs: list[J]) -> Iterator[tuple[J, R]]: ...


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


class SerialExecutor:
    """In-process, one job at a time, with torch using every core (or ``OMP_NUM_THREADS`` when set)
    and glibc keeping freed memory (losslens/allocator.py)."""

    def __init__(self, threads: int | None = None):
        self.threads = threads or int(os.environ.get("OMP_NUM_THREADS") or 0) or cores()

    def run(self, fn: Callable[[J], R], jobs: list[J]) -> Iterator[tuple[J, R]]:
        torch.set_num_threads(self.threads)
        keep_freed_memory()
        for job in jobs:
            yield job, fn(job)


def _init_worker(threads: int) -> None:
    torch.set_num_threads(threads)
    torch.set_num_interop_threads(1)
    keep_freed_memory()


class ProcessExecutor:
    """A spawn-started process pool; each worker pins torch threads so workers × threads ≤ cores
    (oversubscribed torch threads made the same work ~30× slower on a 2-core machine)."""

    def __init__(self, workers: int):
        self.workers = max(1, workers)
        self.threads = max(1, cores() // self.workers)

    def run(self, fn: Callable[[J], R], jobs: list[J]) -> Iterator[tuple[J, R]]:
        if not jobs:
            return
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(self.workers, mp_context=ctx, initializer=_init_worker, initargs=(self.threads,)) as pool:
            pending: dict[Any, J] = {}
            queue = list(jobs)
            while queue or pending:
                while queue and len(pending) < self.workers * 2:
                    job = queue.pop(0)
                    pending[pool.submit(fn, job)] = job
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in finished:
                    yield pending.pop(fut), fut.result()


def make_executor(jobs: int) -> Executor:
    return SerialExecutor() if jobs <= 1 else ProcessExecutor(jobs)
