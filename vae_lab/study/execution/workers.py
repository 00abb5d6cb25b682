"""`vae-lab study run NAME --workers N`: N worker processes on this machine, one display.

Each worker is an ordinary `run_study` in its own process, sharing the study through the
configured stores exactly as workers on other machines do (the lock, liveness and grid queue of
`vae_lab.study.execution`); nothing here schedules trials. The parent prepares what the
workers share once (data cache, study, parent run, grid queue), starts them, shows their
progress through one event queue, and reaps the trials of any worker that dies. With several
GPUs, worker i owns GPU i mod the number of visible ones (CUDA_VISIBLE_DEVICES decides which).

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
from pathlib import Path
from typing import Any

from vae_lab.config import Settings
from vae_lab.device import worker_device
from vae_lab.errors import VaeLabError
from vae_lab.study.design.spec import StudySpec
from vae_lab.study.execution import interrupts
from vae_lab.study.execution.admission import Admission, admit
from vae_lab.study.execution.events import EventObserver, ProgressSink, QueueSink
from vae_lab.study.execution.run import WorkerOptions, run_study
from vae_lab.study.execution.session import StudyReport, StudySession
from vae_lab.study.trial.provenance import RunTag
from vae_lab.threads import apply_threads, thread_environment, worker_threads


def split_budget(total: int | None, workers: int) -> list[int | None]:
    """`--n-trials N` across workers: N // W each, the first N % W one more."""
    if total is None:
        return [None] * workers
    return [total // workers + (1 if i < total % workers else 0) for i in range(workers)]


def _worker_main(
    spec_json: dict,
    index: int,
    n_trials: int | None,
    data_path: str | None,
    parent_run_id: str,
    device: str,
    events: Any,
    where: str,
    threads: int = 1,
) -> None:
    """Entry point of a worker process (spawned: a fresh interpreter, its own CUDA context)."""
    apply_threads(threads)
    interrupts.install()
    sink = QueueSink(events)
    try:
        spec = StudySpec.model_validate(spec_json)
        observer = EventObserver(sink, index, announce=False)
        options = WorkerOptions(index=index, parent_run_id=parent_run_id, device=device)
        run_study(
            spec,
            n_trials=n_trials,
            data_path=Path(data_path) if data_path else None,
            observer=observer,
            where=where,
            worker=options,
        )
    except KeyboardInterrupt:
        sink.worker_done(index, 130, "interrupted")
        sys.exit(130)
    except VaeLabError as error:
        sink.worker_done(index, 2, str(error))
        sys.exit(2)
    except BaseException as error:  # a bug: say which, and let the parent report it
        sink.worker_done(index, 1, f"{type(error).__name__}: {error}")
        raise
    sink.worker_done(index, 0, "")


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
    spec, device_spec = admission.spec, device or admission.spec.training.device
    with StudySession(admission, n_trials) as session:
        sink.study_start(spec.name, session.remaining, session.done, workers)
        if session.remaining == 0:
            return session.report(device_spec)
        parent_run_id = session.start_invocation({RunTag.WORKERS: workers})
        data_source = admission.data.source
        codes, interrupted = _run_processes(
            spec,
            workers,
            n_trials,
            data_source,
            parent_run_id,
            device_spec,
            sink,
            admission.where,
            worker_threads(workers, threads),
        )
        session.reap()
        died = sum(code < 0 for code in codes)
        session.finish_invocation(
            "KILLED" if interrupted else "FINISHED", {RunTag.WORKERS_DIED: died} if died else None
        )
        if interrupted:
            raise KeyboardInterrupt
        if codes and all(code == 2 for code in codes):
            raise VaeLabError(
                f"study {spec.name}",
                "every worker stopped on an error (shown above)",
                "fix it and run the same command again",
            )
        return session.report(device_spec)


def _run_processes(
    spec: StudySpec,
    workers: int,
    n_trials: int | None,
    data_path: Path,
    parent_run_id: str,
    device: str,
    sink: ProgressSink,
    where: str,
    threads: int = 1,
) -> tuple[list[int], bool]:
    context = multiprocessing.get_context("spawn")
    events = context.Queue()
    budgets = split_budget(n_trials, workers)
    processes = {
        i: context.Process(
            target=_worker_main,
            args=(
                spec.model_dump(mode="json"),
                i,
                budgets[i],
                str(data_path),
                parent_run_id,
                worker_device(device, i),
                events,
                where,
                threads,
            ),
            name=f"vae-lab-worker-{i}",
        )
        for i in range(workers)
        if budgets[i] is None or budgets[i] > 0
    }
    with thread_environment(threads):  # sized before torch starts in the spawned interpreter
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
