"""`vae-lab study run NAME --workers N`: N worker processes on this machine, one display.

`LocalWorkers` is a launcher of the one invocation lifecycle (`execution.invocation`): the
parent process opens the study, crowns, starts the parent run and ends it, exactly as with one
worker; in between it starts the worker processes, shows their progress through one event queue,
and reaps the trials of any worker that dies. Each worker joins the parent run and runs its share
with `run_trials`, sharing the study through the configured stores exactly as workers on other
machines do (the lock, liveness and grid queue of `vae_lab.study.execution`); nothing here
schedules trials. With several GPUs, worker i owns GPU i mod the number of visible ones
(CUDA_VISIBLE_DEVICES decides which).

Progress reaches the parent as events (`execution.events`): each worker's `QueueSink` puts them
on one queue, and the parent hands them to the front end's `ProgressSink`.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vae_lab.choices import Engine
from vae_lab.config import Settings
from vae_lab.data import PreparedDataset
from vae_lab.device import worker_device
from vae_lab.errors import VaeLabError
from vae_lab.study.design.spec import StudySpec
from vae_lab.study.execution import interrupts
from vae_lab.study.execution.admission import Admission, admit
from vae_lab.study.execution.events import ProgressSink, QueueSink
from vae_lab.study.execution.invocation import Launch, run_invocation
from vae_lab.study.execution.run import run_trials
from vae_lab.study.execution.session import StudyReport, StudySession
from vae_lab.study.trial.provenance import RunTag
from vae_lab.threads import apply_threads, thread_environment, worker_threads


def split_budget(total: int | None, workers: int) -> list[int | None]:
    """`--n-trials N` across workers: N // W each, the first N % W one more."""
    if total is None:
        return [None] * workers
    return [total // workers + (1 if i < total % workers else 0) for i in range(workers)]


@dataclass
class WorkerJob:
    """What one worker process is told: its share of the invocation whose parent run it joins."""

    spec_json: dict
    index: int
    n_trials: int | None
    data_path: str
    parent_run_id: str
    device: str
    where: str
    threads: int = 1
    trial_tags: dict[str, Any] = field(default_factory=dict)  # where each trial ran (an engine's placement)


def run_worker(job: WorkerJob, sink: ProgressSink, data: PreparedDataset | None = None) -> None:
    """One worker's share: open the study (no repeats queued: the parent did), join the parent
    run, run the trials. Any launcher's worker, in whatever process or node it runs, calls this;
    `data` is the driver's prepared split when the launcher ships it (else `job.data_path` is read)."""
    spec = StudySpec.model_validate(job.spec_json)
    admission = admit(spec, data_path=Path(job.data_path), device=job.device, where=job.where, data=data)
    with StudySession.open(admission, job.n_trials, allow_repeats=False, worker=job.index) as session:
        if session.remaining == 0:
            return
        session.join_invocation(job.parent_run_id)
        run_trials(
            session,
            sink,
            count=session.remaining,
            exact=job.n_trials is not None,
            worker=job.index,
            trial_tags=job.trial_tags,
        )


def _worker_main(job: WorkerJob, events: Any) -> None:
    """Entry point of a worker process (spawned: a fresh interpreter, its own CUDA context)."""
    apply_threads(job.threads)
    interrupts.install()
    sink = QueueSink(events)
    try:
        run_worker(job, sink)
    except KeyboardInterrupt:
        sink.worker_done(job.index, 130, "interrupted")
        sys.exit(130)
    except VaeLabError as error:
        sink.worker_done(job.index, 2, str(error))
        sys.exit(2)
    except BaseException as error:  # a bug: say which, and let the parent report it
        sink.worker_done(job.index, 1, f"{type(error).__name__}: {error}")
        raise
    sink.worker_done(job.index, 0, "")


def run_study_workers(
    spec: StudySpec,
    workers: int,
    *,
    sink: ProgressSink,
    n_trials: int | None = None,
    data_path: Path | None = None,
    settings: Settings | None = None,
    where: str = "study",
    device: str | None = None,
    admission: Admission | None = None,
    threads: int | None = None,
) -> StudyReport:
    """Run `spec` with `workers` processes on this machine (`threads` compute threads each, or a
    share of the cores); returns the study's report."""
    if admission is None:
        admission = admit(spec, data_path=data_path, device=device, where=where, settings=settings)
    launcher = LocalWorkers(workers, sink, device or admission.spec.training.device, worker_threads(workers, threads))
    return run_invocation(admission, launcher, sink, n_trials)


@dataclass
class LocalWorkers:
    """The launcher of `--workers N`: N spawned processes on this machine."""

    workers: int
    sink: ProgressSink
    device: str  # the device spec each worker resolves (worker i takes GPU i mod n)
    threads: int = 1

    def tags(self) -> dict[str, Any]:
        return {RunTag.ENGINE: Engine.LOCAL, RunTag.WORKERS: self.workers}

    def launch(self, session: StudySession, n_trials: int | None) -> Launch:
        admission = session.admission
        budgets = split_budget(n_trials, self.workers)
        jobs = [
            WorkerJob(
                admission.spec.model_dump(mode="json"),
                i,
                budgets[i],
                str(admission.data.source),
                session.parent_run_id,
                worker_device(self.device, i),
                admission.where,
                self.threads,
            )
            for i in range(self.workers)
            if budgets[i] is None or budgets[i] > 0
        ]
        codes, interrupted = _run_processes(jobs, self.sink)
        session.reap()
        died = sum(code < 0 for code in codes)
        error = None
        if codes and all(code == 2 for code in codes):
            error = VaeLabError(
                f"study {admission.spec.name}",
                "every worker stopped on an error (shown above)",
                "fix it and run the same command again",
            )
        return Launch({RunTag.WORKERS_DIED: died} if died else {}, error, interrupted)


def _run_processes(jobs: list[WorkerJob], sink: ProgressSink) -> tuple[list[int], bool]:
    context = multiprocessing.get_context("spawn")
    events = context.Queue()
    processes = {
        job.index: context.Process(target=_worker_main, args=(job, events), name=f"vae-lab-worker-{job.index}")
        for job in jobs
    }
    with thread_environment(jobs[0].threads if jobs else 1):  # sized before torch starts in the spawned interpreter
        for process in processes.values():
            process.start()
    interrupted = False
    reported: set[int] = set()
    deadline = None
    while True:
        try:
            _drain(events, sink, reported, timeout=0.2)
            if not any(p.is_alive() for p in processes.values()):
                _drain(events, sink, reported, timeout=0.5)
                break
            if deadline is not None and time.monotonic() > deadline:
                for process in processes.values():
                    process.terminate()
        except KeyboardInterrupt:
            # Ctrl-C reaches every worker of the terminal too; SIGTERM only this process, so pass
            # it on. Each worker ends its trial cleanly; wait for them.
            if not interrupted and interrupts.last_signal() == signal.SIGTERM:
                for process in processes.values():
                    if process.is_alive():
                        os.kill(process.pid, signal.SIGTERM)
            interrupted = True
            deadline = time.monotonic() + 60
    for index, process in processes.items():
        process.join(timeout=10)
        if index not in reported:
            code = process.exitcode if process.exitcode is not None else -1
            message = f"killed by signal {-code}: its trial is failed and queued again" if code < 0 else "stopped"
            sink.worker_done(index, code, message)
    return [p.exitcode if p.exitcode is not None else -1 for p in processes.values()], interrupted


def _drain(events: Any, sink: ProgressSink, reported: set[int], timeout: float) -> None:
    try:
        name, args = events.get(timeout=timeout)
    except queue.Empty:
        return
    while True:
        if name == "worker_done":
            reported.add(args[0])
        getattr(sink, name)(*args)
        try:
            name, args = events.get_nowait()
        except queue.Empty:
            return
