"""The trainer's events and the callbacks that hang on them.

The training loop knows nothing about MLflow, Optuna or the terminal: it calls these hooks and
callbacks do the rest (tracking in `vae_lab.tracking`, pruning in `vae_lab.study`). A callback
stops training by setting `trainer.should_stop`; an exception it raises (e.g. optuna's
TrialPruned) ends the fit and propagates to the caller.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vae_lab.training.trainer import FitResult, Trainer


class Callback:
    """Override the events you need; each default does nothing."""

    def on_fit_start(self, trainer: "Trainer") -> None: ...

    def on_batch_end(self, trainer: "Trainer", batch: int, batches: int) -> None: ...

    def on_epoch_end(self, trainer: "Trainer", epoch: int, metrics: dict[str, float]) -> None: ...

    def on_fit_end(self, trainer: "Trainer", result: "FitResult") -> None: ...


class EarlyStopping(Callback):
    """Stop when `monitor` has not improved for `patience` epochs (the journal used 5 on val_loss).

    Epochs before `start_epoch` (a KL warm-up, whose loss rises by design) and epochs whose
    value is missing or not finite never spend patience.
    """

    def __init__(self, monitor: str = "val_loss", patience: int = 5, mode: str = "min", start_epoch: int = 0):
        self.monitor, self.patience, self.mode, self.start_epoch = monitor, patience, mode, start_epoch
        self.best = math.inf if mode == "min" else -math.inf
        self.bad_epochs = 0

    def on_epoch_end(self, trainer: "Trainer", epoch: int, metrics: dict[str, float]) -> None:
        value = metrics.get(self.monitor)
        if epoch < self.start_epoch or value is None or not math.isfinite(value):
            return
        improved = value < self.best if self.mode == "min" else value > self.best
        if improved:
            self.best, self.bad_epochs = value, 0
            return
        self.bad_epochs += 1
        if self.bad_epochs >= self.patience:
            trainer.should_stop = True


def dispatch(callbacks: list[Callback], event: str, *args: Any) -> None:
    for callback in callbacks:
        getattr(callback, event)(*args)
