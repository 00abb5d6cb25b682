"""`vae-lab study run NAME --engine ray --workers N`: the workers as Ray tasks, wherever Ray places them.

`RayWorkers` is a launcher of the one invocation lifecycle (`execution.invocation`), beside
`LocalWorkers`: this process (the driver) opens the study, crowns, and starts and ends the
parent run; each worker is a Ray task holding `--cpus-per-worker` / `--gpus-per-worker` of a
node that calls `run_worker`, vae-lab's own trial loop, against the study's stores. Ray places
the workers and reruns one whose node went away; which trial runs where is decided as for
workers on several machines (the grid queue, leases, heartbeats), not by Ray. This is not Ray
Tune.

- Data: the prepared split goes once into Ray's object store; each worker checks its digest,
  so a node needs no copy of the user's file.
- Progress: workers put their events on a Ray queue pinned to the head node (whose loss ends
  the cluster anyway; a driver may be attached to any node); the driver hands them to the same
  `ProgressSink` as `--workers`. Should the queue go all the same, the study goes on without
  progress lines, and the report at the end is read from the stores as always.
- A lost node kills its worker's process: the other workers see the trial's lease (same
  machine) or heartbeat (elsewhere) go, fail it (its run KILLED) and queue its point again, and
  Ray reruns the task on a node that is left (`TASK_RETRIES`).
- Ctrl-C cancels every task (a KeyboardInterrupt inside it: its trial ends interrupted, its run
  KILLED), and the same command resumes.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from vae_lab.choices import Engine
from vae_lab.data import PreparedDataset
from vae_lab.errors import VaeLabError
from vae_lab.study.execution.admission import Admission
from vae_lab.study.execution.events import ProgressSink, QueueSink
from vae_lab.study.execution.invocation import Launch, run_invocation
from vae_lab.study.execution.ray_cluster import RayPlacement, check_same_version, code_version
from vae_lab.study.execution.session import StudyReport, StudySession
from vae_lab.study.execution.workers import WorkerJob, run_worker, split_budget
from vae_lab.study.trial.provenance import RunTag
from vae_lab.threads import apply_threads

logger = logging.getLogger(__name__)

# Reruns of a worker whose process or node died (Ray's system failures; a worker's own error is not retried).
TASK_RETRIES = 3
HEAD_NODE = {
    "node:__internal_head__": 0.001
}  # Ray's resource that only the head node has (Ray Train pins its state actor so)
CANCEL_GRACE_S = 60  # after Ctrl-C, how long workers get to settle their trials before they are killed
PLACED = "placed"  # a worker's first event: the node it landed on (the driver's own, not the display's)


def run_study_ray(
    admission: Admission,
    workers: int,
    placement: RayPlacement,
    *,
    sink: ProgressSink,
    n_trials: int | None = None,
    device: str | None = None,
    threads: int | None = None,
) -> StudyReport:
    """Run the admitted study with `workers` Ray tasks placed by `placement`, inside
    `ray_cluster.open_cluster` (which connects and refuses); returns the study's report."""
    launcher = RayWorkers(workers, sink, placement, placement.worker_device(device), placement.worker_threads(threads))
    return run_invocation(admission, launcher, sink, n_trials)


def dataset_digest(data: PreparedDataset) -> str:
    """A digest of the split's arrays, to check the copy a node received."""
    digest = hashlib.blake2b(digest_size=16)
    for split in (data.train, data.val, data.test):
        for array in (split.grids, split.labels):
            digest.update(np.ascontiguousarray(array))
    return digest.hexdigest()


@dataclass
class RayWorkers:
    """The launcher of `--engine ray`: `workers` Ray tasks (see the module docstring)."""

    workers: int
    sink: ProgressSink
    placement: RayPlacement
    device: str  # what each worker resolves on its node
    threads: int = 1
    nodes: set[str] = field(default_factory=set)  # where workers landed
    events_lost: bool = False  # the progress queue died with its node

    def tags(self) -> dict[str, Any]:
        return {
            RunTag.ENGINE: Engine.RAY,
            RunTag.WORKERS: self.workers,
            RunTag.RAY_ADDRESS: self.placement.shown_address,
            RunTag.RAY_RESOURCES: self.placement.describe(),
        }

    def launch(self, session: StudySession, n_trials: int | None) -> Launch:
        import ray
        from ray.util.queue import Queue

        admission = session.admission
        events = Queue(actor_options={"num_cpus": 0, "resources": HEAD_NODE})
        data = ray.put(admission.data)  # once; every worker reads this copy
        digest = dataset_digest(admission.data)
        task = ray.remote(run_on_node).options(
            num_cpus=self.placement.cpus_per_worker,
            num_gpus=self.placement.gpus_per_worker,
            max_retries=TASK_RETRIES,
            retry_exceptions=False,
        )
        budgets = split_budget(n_trials, self.workers)
        pending = {
            task.remote(self._job(session, i, budgets[i]), data, digest, code_version(), events): i
            for i in range(self.workers)
            if budgets[i] is None or budgets[i] > 0
        }
        codes, interrupted = self._wait(ray, pending, events)
        session.reap()
        tags: dict[str, Any] = {RunTag.RAY_NODES: ",".join(sorted(self.nodes))}
        if died := sum(code < 0 for code in codes):
            tags[RunTag.WORKERS_DIED] = died
        error = None
        if codes and all(code == 2 for code in codes):
            error = VaeLabError(
                f"study {admission.spec.name}",
                "every worker stopped on an error (shown above)",
                "fix it and run the same command again",
            )
        return Launch(tags, error, interrupted)

    def _job(self, session: StudySession, index: int, budget: int | None) -> WorkerJob:
        admission = session.admission
        return WorkerJob(
            admission.spec.model_dump(mode="json"),
            index,
            budget,
            str(admission.data.source),  # for the records only: the data travels in the object store
            session.parent_run_id,
            self.device,
            admission.where,
            self.threads,
        )

    def _wait(self, ray: Any, pending: dict[Any, int], events: Any) -> tuple[list[int], bool]:
        """Forward events until every task ended; Ctrl-C cancels them all (a second time, or past
        the grace, kills them). Returns each task's exit code and whether it was interrupted."""
        codes: list[int] = []
        reported: set[int] = set()
        self.events_lost = False
        interrupted, deadline = False, None
        while pending:
            try:
                self._forward(events, reported)
                done, _ = ray.wait(list(pending), num_returns=len(pending), timeout=0.2)
                for ref in done:
                    index = pending.pop(ref)
                    code, message = _outcome(ray, ref)
                    codes.append(code)
                    self._forward(events, reported)
                    if index not in reported:
                        self.sink.worker_done(index, code, message)
                if deadline is not None and time.monotonic() > deadline:
                    for ref in pending:
                        ray.cancel(ref, force=True)
            except KeyboardInterrupt:
                for ref in pending:
                    ray.cancel(ref, force=interrupted)
                interrupted, deadline = True, time.monotonic() + CANCEL_GRACE_S
        self._forward(events, reported)
        return codes, interrupted

    def _forward(self, events: Any, reported: set[int]) -> None:
        if self.events_lost:
            return
        from ray import exceptions

        try:
            size = events.qsize()
            batch = events.get_nowait_batch(size) if size else ()
        except exceptions.RayActorError as error:  # its node went: the study goes on, unseen
            self.events_lost = True
            logger.warning("progress lines stop here: Ray lost the queue that carried them (%s)", type(error).__name__)
            return
        for name, args in batch:
            if name == PLACED:
                self.nodes.add(args[1])
                continue
            if name == "worker_done":
                reported.add(args[0])
            getattr(self.sink, name)(*args)


def _outcome(ray: Any, ref: Any) -> tuple[int, str]:
    """A finished task's exit code (as a worker process's) and what to say about it."""
    from ray import exceptions

    try:
        return ray.get(ref), ""
    except exceptions.TaskCancelledError:
        return 130, "interrupted"
    except exceptions.RayTaskError as error:  # a bug in the worker, reported by the worker already
        return 1, str(error).splitlines()[0]
    except exceptions.RayError as error:  # its process or node died, and every rerun's too
        return -9, f"its process or node died past {TASK_RETRIES} reruns ({type(error).__name__})"


def run_on_node(job: WorkerJob, data: PreparedDataset, digest: str, driver_version: str, events: Any) -> int:
    """A Ray worker: check what arrived, then run its share (`run_worker`); returns its exit code.
    Ray's KeyboardInterrupt (a cancel) ends the running trial as interrupted."""
    import ray

    sink = QueueSink(events)
    node = ray.get_runtime_context().get_node_id()
    events.put((PLACED, (job.index, node)))
    apply_threads(job.threads)
    try:
        check_same_version(node, code_version(), driver_version)
        if dataset_digest(data) != digest:
            raise VaeLabError(
                f"Ray node {node[:12]}", "the prepared data arrived damaged", "run the same command again"
            )
        gpus = ",".join(str(gpu) for gpu in ray.get_gpu_ids()) or "none"
        run_worker(replace(job, trial_tags={RunTag.NODE_ID: node, RunTag.GPU_IDS: gpus}), sink, data=data)
    except KeyboardInterrupt:
        sink.worker_done(job.index, 130, "interrupted")
        return 130
    except VaeLabError as error:
        sink.worker_done(job.index, 2, str(error))
        return 2
    except BaseException as error:  # a bug: say which, and let Ray report it to the driver
        sink.worker_done(job.index, 1, f"{type(error).__name__}: {error}")
        raise
    sink.worker_done(job.index, 0, "")
    return 0
