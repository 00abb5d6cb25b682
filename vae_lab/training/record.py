"""One typed record of how a trial was trained and on what data.

The study writes it once, as `trial_record.json` on the trial's run, when the trial finishes;
evaluation and the registry read it back. Everything needed to rebuild the model, the split,
the class weights and the loss is here, so nothing is re-derived from string tags with their
own defaults: `vae-lab evaluate NAME --split val` reproduces the trial's best val metrics.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from vae_lab.data.reference import DataRef
from vae_lab.models.base import ModelConfig
from vae_lab.runtime import Runtime
from vae_lab.training.trainer import TrainConfig

RECORD_FILE = "trial_record.json"


class TrialRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: int = 1
    study: str
    trial: int
    model: ModelConfig
    train: TrainConfig
    runtime: Runtime
    data: DataRef
    objective: str
    direction: str
    value: float | None = None
    best_epoch: int = -1
    epochs_run: int = 0

    @property
    def best_beta(self) -> float:
        """beta at the best epoch: the validation loss of that epoch was computed with it."""
        return self.train.beta_at(max(self.best_epoch, 0))
