"""`vae-lab study run NAME --workers N`: N worker processes on this machine, one display.

Each worker is an ordinary `run_study` in its own process, sharing the study through the
configured stores exactly as workers on other machines do (the lock, leases and grid queue of
`vae_lab.study.coordination`); nothing here schedules trials. The parent prepares what the
workers share once (data cache, study, parent run, grid queue), starts them, shows their
progress through one event queue, and reaps the trials of any worker that dies. With several
GPUs, worker i owns GPU i mod the number of visible ones (CUDA_VISIBLE_DEVICES decides which).

Progress reaches a front end as events (`ProgressSink`), the same for one worker in-process and
for N in subprocesses, so the CLI draws both the same way.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import signal
import sys
import time
from pathlib import Path
from typing import Any, Protocol

import optuna

from vae_lab.config import Settings, get_settings
from vae_lab.device import resolve_device, worker_device
from vae_lab.errors import VaeLabError
from vae_lab.models import ModelConfig
from vae_lab.study import interrupts
from vae_lab.study.coordination import Lease
from vae_lab.study.reaper import reap_dead_trials
from vae_lab.study.objective import StudyObserver
from vae_lab.study.runner import (
    StudyReport,
    WorkerOptions,
    _summarise_parent,
    open_session,
    prepare_study_data,
    run_study,
    start_parent_run,
)
from vae_lab.stores import check_stores
from vae_lab.study.spec import StudySpec
from vae_lab.threads import apply_threads, thread_environment, worker_threads
from vae_lab.training import Callback, TrainConfig, Trainer


class ProgressSink(Protocol):
    """What a front end receives; `worker` numbers the worker (0 when there is one)."""

    def study_start(self, name: str, remaining: int, done: int, workers: int) -> None: ...

    def trial_start(self, worker: int, number: int, label: str, epochs: int) -> None: ...

    def epoch(self, worker: int, completed: float, note: str) -> None: ...

    def trial_end(self, worker: int, number: int, state: str, value: float | None) -> None: ...

    def worker_done(self, worker: int, code: int, message: str) -> None: ...


def trial_label(model: ModelConfig, train: TrainConfig) -> str:
    return f"trial {{number}} {model.architecture}/{model.output} z={model.latent_dim} {train.loss} beta={train.beta:g}"


class EpochEvents(Callback):
    """Sends the epoch's progress (every 10 batches, and each epoch's headline metrics)."""

    def __init__(self, sink: ProgressSink, worker: int, metric: str):
        self.sink, self.worker, self.metric = sink, worker, metric

    def on_batch_end(self, trainer: Trainer, batch: int, batches: int) -> None:
        if batch % 10 == 0 or batch == batches:
            self.sink.epoch(self.worker, trainer.epoch + batch / batches, "")

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: dict[str, float]) -> None:
        value = metrics.get(self.metric)
        shown = f"{self.metric} {value:.4f}" if value is not None else ""
        self.sink.epoch(self.worker, epoch + 1, f"val_loss {metrics['val_loss']:.3f}  val_f1 {metrics['val_f1']:.3f}  {shown}")


class EventObserver(StudyObserver):
    """A study observer that turns a worker's hooks into `ProgressSink` events."""

    def __init__(self, sink: ProgressSink, worker: int = 0, workers: int = 1, announce: bool = True):
        self.sink, self.worker, self.workers, self.announce = sink, worker, workers, announce
        self.metric = "val_tradeoff"

    def on_study_start(self, spec: StudySpec, remaining: int, done: int) -> None:
        self.metric = spec.objective.metric
        if self.announce:
            self.sink.study_start(spec.name, remaining, done, self.workers)

    def on_trial_start(self, number: int, model: ModelConfig, train: TrainConfig) -> None:
        self.sink.trial_start(self.worker, number, trial_label(model, train).format(number=number), train.epochs)

    def training_callback(self) -> Callback | None:
        return EpochEvents(self.sink, self.worker, self.metric)

    def on_trial_end(self, trial: optuna.trial.FrozenTrial) -> None:
        self.sink.trial_end(self.worker, trial.number, trial.state.name, trial.value)


class QueueSink:
    """A `ProgressSink` in a worker process that forwards events to the parent's queue."""

    def __init__(self, events: Any):
        self.events = events

    def __getattr__(self, name: str):
        return lambda *args: self.events.put((name, args))


def split_budget(total: int | None, workers: int) -> list[int | None]:
    """`--n-trials N` across workers: N // W each, the first N % W one more."""
    if total is None:
        return [None] * workers
    return [total // workers + (1 if i < total % workers else 0) for i in range(workers)]


def _worker_main(spec_json: dict, index: int, n_trials: int | None, data_path: str | None, parent_run_id: str, device: str, events: Any, where: str, threads: int = 1) -> None:
    """Entry point of a worker process (spawned: a fresh interpreter, its own CUDA context)."""
    apply_threads(threads)
    interrupts.install()
    sink = QueueSink(events)
    try:
        spec = StudySpec.model_validate(spec_json)
        observer = EventObserver(sink, index, announce=False)
        options = WorkerOptions(index=index, parent_run_id=parent_run_id, device=device)
        run_study(spec, n_trials=n_trials, data_path=Path(data_path) if data_path else None, observer=observer, where=where, worker=options)
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
    threads: int | None = None,
) -> StudyReport:
    """Run `spec` with `workers` processes on this machine (`threads` compute threads each, or a
    share of the cores); returns the study's report."""
    settings = settings or get_settings()
    check_stores(settings, experiment=spec.name, model=spec.model_name)
    data = prepare_study_data(spec, data_path, settings, where)
    device_spec = device or spec.training.device
    resolve_device(device_spec, where="--device" if device else f"{where}: training.device")
    session = open_session(spec, data, settings, n_trials)
    tracker, study = session.tracker, session.study
    try:
        sink.study_start(spec.name, session.remaining, session.done, workers)
        if session.remaining == 0:
            return session.report(spec, None, device_spec)
        parent_run_id = start_parent_run(tracker, session.experiment_id, spec, data, settings)
        invocation = Lease(settings.optuna_storage, spec.name, f"run-{parent_run_id}")
        tracker.set_tags(parent_run_id, {"workers": workers})
        threads = worker_threads(workers, threads)
        codes, interrupted = _run_processes(spec, workers, n_trials, data.source, parent_run_id, device_spec, sink, where, threads)
        with session.lock:
            reap_dead_trials(study, settings.optuna_storage, tracker, session.stale)
        _summarise_parent(tracker, study, parent_run_id)
        died = sum(code < 0 for code in codes)
        if died:
            tracker.set_tags(parent_run_id, {"workers_died": died})
        tracker.end_run(parent_run_id, "KILLED" if interrupted else "FINISHED")
        invocation.release()
        if interrupted:
            raise KeyboardInterrupt
        if codes and all(code == 2 for code in codes):
            raise VaeLabError(f"study {spec.name}", "every worker stopped on an error (shown above)", "fix it and run the same command again")
        return session.report(spec, parent_run_id, device_spec)
    finally:
        session.lock.close()


def _run_processes(spec: StudySpec, workers: int, n_trials: int | None, data_path: Path, parent_run_id: str, device: str, sink: ProgressSink, where: str, threads: int = 1) -> tuple[list[int], bool]:
    context = multiprocessing.get_context("spawn")
    events = context.Queue()
    budgets = split_budget(n_trials, workers)
    processes = {
        i: context.Process(
            target=_worker_main,
            args=(spec.model_dump(mode="json"), i, budgets[i], str(data_path), parent_run_id, worker_device(device, i), events, where, threads),
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
