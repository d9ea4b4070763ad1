"""This machine's executors: ``serial`` (in the driver) and ``process`` (a spawn-started process pool)."""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, TypeVar

import torch

from losslens.allocator import keep_freed_memory
from losslens.errors import LossLensError
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
    # Ctrl-C reaches the whole process group; the driver alone handles it and stops the workers, so that
    # none starts a queued job or prints a traceback on its way out.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(threads)
    torch.set_num_interop_threads(1)
    keep_freed_memory()


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    """Terminate the pool's workers now, jobs in flight included; without this, shutting the pool down
    waits for them and their workers take the queued jobs first (Ctrl-C took a job's length or more to
    exit, and computed results nobody stores). Python 3.14 has ``terminate_workers``; before it the pool
    has no public handle on its processes."""
    terminate = getattr(pool, "terminate_workers", None)
    if terminate is not None:
        terminate()
        return
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        process.terminate()


@dataclass(frozen=True)
class ProcessConfig:
    """The ``-X`` options of ``--executor process``.

    :raises LossLensError: for a ``window`` below 1 (no job would ever be submitted).
    """

    window: int = 2  # jobs in flight per worker

    def __post_init__(self) -> None:
        if self.window < 1:
            raise LossLensError(f"window {self.window} must be at least 1", where="--executor process")


class ProcessExecutor:
    """A spawn-started process pool; each worker pins torch threads so workers × threads ≤ cores
    (oversubscribed torch threads made the same work ~30× slower on a 2-core machine). Workers are
    ``resources.workers``, or cores ÷ ``cpus_per_job``.

    A worker that dies (killed, out of memory) breaks the whole pool and every job in flight with it,
    without saying which job killed it. Those jobs go to a fresh pool one at a time, so the others finish
    and the one that kills its worker is found; it is resubmitted up to ``max_retries`` times and then
    returned as failed. The rest of the sweep goes on.
    """

    Config = ProcessConfig

    def __init__(self, resources: Resources | None = None, config: ProcessConfig | None = None):
        resources = resources or Resources()
        self.config = config or ProcessConfig()
        self.workers = max(1, resources.workers or int(cores() // max(resources.cpus_per_job, 1)))
        self.threads = max(1, cores() // self.workers)
        self.max_retries = resources.max_retries

    def run(self, fn: Callable[[J], R], jobs: Iterable[J]) -> Iterator[Finished[J, R]]:
        queue = iter(jobs)
        lost: deque[tuple[J, int]] = deque()  # jobs of a broken pool, with their resubmissions so far
        exhausted = False
        while not exhausted or lost:
            pending: dict[Future, tuple[J, int]] = {}
            pool = ProcessPoolExecutor(
                self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker,
                initargs=(self.threads,),
            )
            try:
                broken = False
                while not broken:
                    if lost:  # one at a time, to find the job that kills its worker
                        if not pending:
                            job, tries = lost.popleft()
                            pending[pool.submit(fn, job)] = (job, tries)
                    else:
                        while not exhausted and len(pending) < self.workers * self.config.window:
                            fresh = next(queue, None)
                            if fresh is None:
                                exhausted = True
                                break
                            pending[pool.submit(fn, fresh)] = (fresh, 0)
                    if not pending:
                        break
                    finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for fut in finished:
                        if isinstance(fut.exception(), BrokenProcessPool):
                            broken = True
                            continue
                        job, tries = pending.pop(fut)
                        yield Finished(job, fut.result(), retries=tries)
                for fut, (job, tries) in pending.items():  # the broken pool's jobs: those that did not finish are lost
                    if fut.done() and not fut.cancelled() and fut.exception() is None:
                        yield Finished(job, fut.result(), retries=tries)
                    elif tries < self.max_retries:
                        lost.append((job, tries + 1))
                    else:
                        error = f"its worker process died {tries + 1} times (killed, or out of memory?)"
                        yield Finished(job, None, retries=tries, error=error)
                pending.clear()
            finally:
                if pending:  # closed early (Ctrl-C): the jobs in flight are not wanted
                    _stop_workers(pool)
                pool.shutdown(wait=True, cancel_futures=True)

    def ship(self, record: dict[str, Any]) -> None:
        return None

    def close(self) -> None:
        return None
