"""Rich progress bars for a running study: one bar for trials, one for the current trial's epochs."""

from __future__ import annotations

import optuna
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from vae_lab.cli.common import err
from vae_lab.models import ModelConfig
from vae_lab.study.objective import StudyObserver
from vae_lab.study.spec import StudySpec
from vae_lab.training import Callback, TrainConfig, Trainer


class EpochBar(Callback):
    """Advances the epoch bar by batch fractions, and shows the last epoch's headline metrics."""

    def __init__(self, progress: Progress, task: int, metric: str):
        self.progress, self.task, self.metric = progress, task, metric

    def on_batch_end(self, trainer: Trainer, batch: int, batches: int) -> None:
        if batch % 10 == 0 or batch == batches:
            self.progress.update(self.task, completed=trainer.epoch + batch / batches)

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: dict[str, float]) -> None:
        note = f"val_loss {metrics['val_loss']:.3f}  val_f1 {metrics['val_f1']:.3f}  {self.metric} {metrics[self.metric]:.4f}"
        self.progress.update(self.task, completed=epoch + 1, note=note)

    def on_fit_end(self, trainer: Trainer, result) -> None:
        self.progress.update(self.task, total=trainer.epoch + 1, completed=trainer.epoch + 1)


class RichStudyProgress(StudyObserver):
    def __init__(self) -> None:
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[note]}", style="dim"),
            console=err,
            transient=False,
        )
        self.trials_task: int | None = None
        self.epoch_task: int | None = None
        self.metric = "val_tradeoff"

    def __enter__(self) -> "RichStudyProgress":
        self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.stop()

    def on_study_start(self, spec: StudySpec, remaining: int, done: int) -> None:
        self.metric = spec.objective.metric
        if done and not remaining:
            err.print(f"study [bold]{spec.name}[/] is complete ({done} trials); `--n-trials N` runs N more")
            return
        if done:
            err.print(f"resuming study [bold]{spec.name}[/]: {done} trial(s) already finished, {remaining} to run")
        self.trials_task = self.progress.add_task(f"study {spec.name}", total=remaining, note="")

    def on_trial_start(self, number: int, model: ModelConfig, train: TrainConfig) -> None:
        if self.epoch_task is not None:
            self.progress.remove_task(self.epoch_task)
        loss = train.loss if model.output == "scalar" else "ce"  # a categorical head always uses cross-entropy
        label = f"  trial {number} {model.architecture}/{model.output} z={model.latent_dim} {loss} beta={train.beta:g}"
        self.epoch_task = self.progress.add_task(label, total=train.epochs, note="")

    def training_callback(self) -> Callback | None:
        return EpochBar(self.progress, self.epoch_task, self.metric) if self.epoch_task is not None else None

    def on_trial_end(self, trial: optuna.trial.FrozenTrial) -> None:
        value = f"{trial.value:.4f}" if trial.value is not None else trial.state.name.lower()
        self.progress.advance(self.trials_task)
        self.progress.update(self.trials_task, note=f"last: trial {trial.number} {value}")
