"""What a front end hears of a study: observer hooks and the progress events built on them.

`StudyObserver` is what the trial loop calls (every default does nothing). `EventObserver` turns
those calls into `ProgressSink` events, the same for one worker in-process and for N worker
processes (`QueueSink` forwards them to the parent), so the CLI draws both the same way.
"""

from __future__ import annotations

from typing import Any, Protocol

import optuna

from vae_lab.models import ModelConfig
from vae_lab.study.trial.provenance import TrialStatus
from vae_lab.training import Callback, TrainConfig, Trainer


class StudyObserver:
    """Hooks for a front end (the CLI's progress bars); every default does nothing."""

    def on_trial_start(self, number: int, model: ModelConfig, train: TrainConfig) -> None: ...

    def training_callback(self) -> Callback | None:
        return None

    def on_trial_end(self, trial: optuna.trial.FrozenTrial) -> None: ...


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
        self.sink.epoch(
            self.worker, epoch + 1, f"val_loss {metrics['val_loss']:.3f}  val_f1 {metrics['val_f1']:.3f}  {shown}"
        )


class EventObserver(StudyObserver):
    """A study observer that turns worker `worker`'s hooks into `ProgressSink` events; `metric` is
    the objective its epoch lines show."""

    def __init__(self, sink: ProgressSink, worker: int = 0, metric: str = "val_tradeoff"):
        self.sink, self.worker, self.metric = sink, worker, metric

    def on_trial_start(self, number: int, model: ModelConfig, train: TrainConfig) -> None:
        self.sink.trial_start(self.worker, number, trial_label(model, train).format(number=number), train.epochs)

    def training_callback(self) -> Callback | None:
        return EpochEvents(self.sink, self.worker, self.metric)

    def on_trial_end(self, trial: optuna.trial.FrozenTrial) -> None:
        value = trial.values[0] if trial.values else None
        self.sink.trial_end(self.worker, trial.number, TrialStatus.of(trial.state), value)


class SilentSink:
    """A `ProgressSink` that shows nothing (the Python API's default)."""

    def study_start(self, name: str, remaining: int, done: int, workers: int) -> None: ...

    def trial_start(self, worker: int, number: int, label: str, epochs: int) -> None: ...

    def epoch(self, worker: int, completed: float, note: str) -> None: ...

    def trial_end(self, worker: int, number: int, state: str, value: float | None) -> None: ...

    def worker_done(self, worker: int, code: int, message: str) -> None: ...


class QueueSink:
    """A `ProgressSink` in a worker process that forwards events to the parent's queue."""

    def __init__(self, events: Any):
        self.events = events

    def study_start(self, name: str, remaining: int, done: int, workers: int) -> None:
        self.events.put(("study_start", (name, remaining, done, workers)))

    def trial_start(self, worker: int, number: int, label: str, epochs: int) -> None:
        self.events.put(("trial_start", (worker, number, label, epochs)))

    def epoch(self, worker: int, completed: float, note: str) -> None:
        self.events.put(("epoch", (worker, completed, note)))

    def trial_end(self, worker: int, number: int, state: str, value: float | None) -> None:
        self.events.put(("trial_end", (worker, number, state, value)))

    def worker_done(self, worker: int, code: int, message: str) -> None:
        self.events.put(("worker_done", (worker, code, message)))
