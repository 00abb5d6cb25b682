"""Training: losses and metrics (pure functions), the event-driven loop and its callbacks."""

from vae_lab.training.batches import TensorData
from vae_lab.training.callbacks import Callback, EarlyStopping
from vae_lab.training.trainer import FitResult, TrainConfig, Trainer, evaluate

__all__ = ["Callback", "EarlyStopping", "FitResult", "TensorData", "TrainConfig", "Trainer", "evaluate"]
