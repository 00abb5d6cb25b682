"""The trainer's link to MLflow: each epoch's metrics on the trial's run, step = epoch."""

from __future__ import annotations

from typing import TYPE_CHECKING

from vae_lab.training.callbacks import Callback

if TYPE_CHECKING:
    from vae_lab.tracking.client import Tracker
    from vae_lab.training.trainer import Trainer


class MlflowEpochLogger(Callback):
    """Log each epoch's metrics to a run, with step = epoch (one request per epoch)."""

    def __init__(self, tracker: "Tracker", run_id: str):
        self.tracker, self.run_id = tracker, run_id

    def on_epoch_end(self, trainer: "Trainer", epoch: int, metrics: dict[str, float]) -> None:
        self.tracker.log_metrics(self.run_id, metrics, step=epoch)
