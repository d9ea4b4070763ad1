"""``--executor ray``: jobs as Ray tasks (CPU) or calls on long-lived GPU actors, on a local or remote cluster.

- ``--address local`` starts a private cluster on this machine for the command; ``auto`` joins the cluster
  started on this machine with ``ray start``; ``HOST:PORT`` joins a remote head. A driver already
  connected (``ray.init`` in a notebook) is reused and left connected.
- CPU jobs are tasks with ``num_cpus=cpus_per_job``; GPU jobs (``gpus_per_job`` > 0, fractional allowed)
  go to one long-lived actor per GPU slot, so CUDA and torch start once per slot instead of once per job
  (Ray's default ``max_calls=1`` for GPU tasks would start a process per job). torch threads are set in
  the worker to the job's CPUs, and ``--device auto`` is resolved there.
- A job whose worker, actor or node is lost is resubmitted up to ``max_retries`` times (Ray's own task
  retries are off so that the driver can count and show retries); a metric that raised comes back as a
  failed outcome from ``execute_job`` and is never retried.
- When the workers cannot see the checkpoint files (``ship_checkpoints``), the driver puts each file's
  bytes once into Ray's object store and jobs carry the reference.
"""

from __future__ import annotations

import contextlib
import logging
import math
import socket
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import ray
import ray.exceptions

from losslens.errors import LossLensError
from losslens.jobs.executors import Finished, Resources, cores

J = TypeVar("J")
R = TypeVar("R")


@dataclass(frozen=True)
class RayConfig:
    """The ``-X`` options of ``--executor ray`` (``address`` is also the flag ``--address``).

    :raises LossLensError: for a ``window`` below 1.
    """

    address: str = "local"  # local | auto | HOST:PORT | ray://HOST:PORT
    window: int = 2  # jobs in flight per slot (CPU slots: cluster CPUs ÷ cpus_per_job; GPU slots: actors)
    ship_checkpoints: Literal["auto", "always", "never"] = "auto"  # auto: ship when the cluster is not local

    def __post_init__(self) -> None:
        if self.window < 1:
            raise LossLensError(f"window {self.window} must be at least 1", where="--executor ray")


class RayBlob:
    """A checkpoint's bytes in Ray's object store; read in the worker."""

    def __init__(self, ref: ray.ObjectRef):
        self.ref = ref

    def read(self) -> bytes:
        return ray.get(self.ref)


def _prepare(threads: int) -> None:
    import torch

    from losslens.allocator import keep_freed_memory

    torch.set_num_threads(threads)
    keep_freed_memory()


def _call(fn: Callable[[Any], Any], job: Any, threads: int) -> tuple[str, Any]:
    """One job in a task: torch threads to the task's CPUs, then ``fn``; returns the node id with the result."""
    _prepare(threads)
    return ray.get_runtime_context().get_node_id(), fn(job)


class _GpuWorker:
    """A long-lived actor holding one GPU slot: torch and CUDA start once, jobs run one after another."""

    def __init__(self, threads: int):
        _prepare(threads)

    def call(self, fn: Callable[[Any], Any], job: Any) -> tuple[str, Any]:
        return ray.get_runtime_context().get_node_id(), fn(job)


class RayExecutor:
    """Runs jobs on a Ray cluster (see the module docstring)."""

    Config = RayConfig

    def __init__(self, resources: Resources | None = None, config: RayConfig | None = None):
        self.resources = resources or Resources()
        self.config = config or RayConfig()
        self.threads = max(1, math.floor(self.resources.cpus_per_job))
        self._owns_connection = False
        self._blobs: dict[str, RayBlob | None] = {}
        self._actors: list[Any] = []

    def describe(self, n_jobs: int) -> str:
        """What ``run`` would do with ``n_jobs`` jobs (``--dry-run``), without connecting."""
        res = self.resources
        where = "GPU actors (one per GPU slot)" if res.gpus_per_job > 0 else "tasks"
        return (
            f"{n_jobs} jobs as Ray {where} on --address {self.config.address}: num_cpus={res.cpus_per_job:g}, "
            f"num_gpus={res.gpus_per_job:g}, resubmitted up to {res.max_retries} times if a worker is lost"
        )

    def _check_reachable(self) -> None:
        """Fail in seconds when nothing listens at a HOST:PORT address: Ray's own client keeps retrying
        the head's GCS for minutes before it gives up.

        :raises LossLensError: when a TCP connection to the address is refused or times out.
        """
        address = self.config.address.removeprefix("ray://")
        host, _, port = address.rpartition(":")
        if address in ("local", "auto") or not host or not port.isdigit():
            return  # Ray resolves these itself (and rejects a malformed address at once)
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=10).close()
        except OSError as exc:
            raise LossLensError(
                f"cannot reach a Ray cluster at {self.config.address!r}: {exc.strerror or type(exc).__name__}",
                where="--address",
                hint="check the head's HOST:PORT (`ray status` on the head), or use --address local; see docs/distributed.md",
            ) from None

    def _connect(self) -> None:
        if ray.is_initialized():
            return
        self._check_reachable()
        kwargs: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False}
        if self.config.address == "local":
            kwargs.update(num_cpus=cores(), include_dashboard=False)
        try:
            ray.init(address=self.config.address, **kwargs)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise LossLensError(
                f"cannot reach a Ray cluster at {self.config.address!r}: {exc}",
                where="--address",
                hint=(
                    "start one with `ray start --head` (then --address auto) or use --address local; a head that is "
                    "running but refuses the token (Ray logs InvalidAuthToken) needs RAY_AUTH_MODE=token and its token "
                    "in this shell; see docs/distributed.md"
                ),
            ) from None
        self._owns_connection = True

    # ---- shipping checkpoints -----------------------------------------------------------------
    def _ships(self) -> bool:
        if self.config.ship_checkpoints == "auto":
            return self.config.address not in ("local", "auto")
        return self.config.ship_checkpoints == "always"

    def ship(self, record: dict[str, Any]) -> RayBlob | None:
        """The checkpoint's bytes in the object store (put once per file), when shipping is on."""
        if not self._ships():
            return None
        self._connect()
        sha = record["sha256"]
        if sha not in self._blobs:
            path = Path(record["path"])
            self._blobs[sha] = RayBlob(ray.put(path.read_bytes())) if path.is_file() else None
        return self._blobs[sha]

    # ---- running ------------------------------------------------------------------------------
    def _check_fits(self) -> None:
        """Refuse a job that no live node could ever hold: Ray would keep it pending, and the command
        would wait forever (an autoscaling cluster is not expected to add such a node either).

        :raises LossLensError: when no live node has ``cpus_per_job`` CPUs and ``gpus_per_job`` GPUs.
        """
        res = self.resources
        nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
        if any(n.get("CPU", 0) >= res.cpus_per_job and n.get("GPU", 0) >= res.gpus_per_job for n in nodes):
            return
        cpus, gpus = (max((n.get(r, 0) for n in nodes), default=0) for r in ("CPU", "GPU"))
        raise LossLensError(
            f"no node of the Ray cluster at {self.config.address!r} can run a job needing "
            f"{res.cpus_per_job:g} CPUs and {res.gpus_per_job:g} GPUs (its {len(nodes)} nodes have at most "
            f"{cpus:g} CPUs and {gpus:g} GPUs each)",
            where="--gpus-per-job" if res.gpus_per_job > gpus else "--cpus-per-job",
            hint="ask for less (--gpus-per-job 0 runs on CPUs) or add a node that has it (`ray start --num-gpus N`)",
        )

    def _slots(self) -> int:
        total = ray.cluster_resources()
        if self.resources.gpus_per_job > 0:
            return max(1, int(total.get("GPU", 0) / self.resources.gpus_per_job))
        return max(1, int(total.get("CPU", 1) / max(self.resources.cpus_per_job, 1e-3)))

    def _start_actors(self) -> None:
        res = self.resources
        actor_cls = ray.remote(_GpuWorker).options(
            num_cpus=res.cpus_per_job, num_gpus=res.gpus_per_job, max_restarts=-1, max_task_retries=0
        )
        self._actors = [actor_cls.remote(self.threads) for _ in range(self._slots())]
        self._load = [0] * len(self._actors)
        self._actor_of: dict[ray.ObjectRef, int] = {}

    def _submit(self, fn: Callable[[Any], Any], job: Any, attempt: int) -> ray.ObjectRef:
        """A task, or a call on the least busy GPU actor (a retry prefers another one)."""
        res = self.resources
        if res.gpus_per_job <= 0:
            return ray.remote(_call).options(num_cpus=res.cpus_per_job, num_gpus=0, max_retries=0).remote(fn, job, self.threads)
        n = len(self._actors)
        index = min(range(n), key=lambda i: (self._load[i], (i - attempt) % n))
        ref = self._actors[index].call.remote(fn, job)
        self._load[index] += 1
        self._actor_of[ref] = index
        return ref

    def _release(self, ref: ray.ObjectRef) -> None:
        if self.resources.gpus_per_job > 0:
            self._load[self._actor_of.pop(ref)] -= 1

    def run(self, fn: Callable[[J], R], jobs: Iterable[J]) -> Iterator[Finished[J, R]]:
        queue = iter(jobs)
        self._connect()
        self._check_fits()
        if self.resources.gpus_per_job > 0 and not self._actors:
            self._start_actors()
        limit = self._slots() * max(1, self.config.window)
        if self.resources.workers:
            limit = min(limit, self.resources.workers * max(1, self.config.window))
        pending: dict[ray.ObjectRef, tuple[J, int]] = {}
        retry: list[tuple[J, int]] = []
        exhausted = False
        try:
            while True:
                while len(pending) < limit and (retry or not exhausted):
                    if retry:
                        job, attempt = retry.pop(0)
                    else:
                        try:
                            job, attempt = next(queue), 0
                        except StopIteration:
                            exhausted = True
                            break
                    pending[self._submit(fn, job, attempt)] = (job, attempt)
                if not pending:
                    return
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    job, attempt = pending.pop(ref)
                    self._release(ref)
                    try:
                        node, value = ray.get(ref)
                    except ray.exceptions.RayTaskError as exc:  # the job's own code raised outside execute_job
                        yield Finished(job, None, attempt, error=" ".join(str(exc.cause or exc).split())[:500])
                    except ray.exceptions.RayError as exc:  # worker, actor, node or object lost
                        if attempt < self.resources.max_retries:
                            retry.append((job, attempt + 1))
                        else:
                            yield Finished(job, None, attempt, error=f"worker lost {attempt + 1} times: {type(exc).__name__}")
                    else:
                        yield Finished(job, value, attempt, where=node)
        finally:
            for ref in pending:  # Ctrl-C or an early close: stop what is still queued or running
                with contextlib.suppress(TypeError, ValueError, ray.exceptions.RayError):
                    ray.cancel(ref, force=self.resources.gpus_per_job <= 0)

    def close(self) -> None:
        for actor in self._actors:
            ray.kill(actor)
        self._actors = []
        if self._owns_connection and ray.is_initialized():
            ray.shutdown()
            self._owns_connection = False
