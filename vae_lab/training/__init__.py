"""Training: metrics (pure functions), the event-driven loop, its callbacks and KL schedules."""

from vae_lab.training.batches import TensorData
from vae_lab.training.callbacks import Callback, EarlyStopping
from vae_lab.training.trainer import FitResult, NonFiniteError, TrainConfig, Trainer, training_weights
from vae_lab.training.validation import ValidationResult, validate

__all__ = [
    "Callback",
    "EarlyStopping",
    "FitResult",
    "NonFiniteError",
    "TensorData",
    "TrainConfig",
    "Trainer",
    "ValidationResult",
    "training_weights",
    "validate",
]
