"""The training loop: fit a VAE on in-memory tensors, timing and measuring every epoch.

`Trainer.fit` is deliberately plain: per epoch it runs `train_epoch`, then `evaluate` on the
validation split, then hands the metrics to its callbacks. The metric names are part of the
product (MLflow charts and study objectives use them):

    train_loss, val_loss, train_recon, val_recon, train_kl, val_kl,
    val_f1, val_tradeoff, train_time_s, val_time_s

The weights of the best epoch (by `TrainConfig.select_metric`) are restored at the end, so the
model a study logs is the one its objective value describes.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field

from vae_lab.choices import HIGHER_IS_BETTER, ClassWeighting, EpochMetric, OptimizerName, ReconLoss
from vae_lab.models.base import BaseVAE
from vae_lab.training.batches import TensorData
from vae_lab.training.callbacks import Callback, EarlyStopping, dispatch
from vae_lab.training.losses import class_weights, vae_loss
from vae_lab.training.metrics import class_counts, macro_f1, tradeoff_score

OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "sgd": torch.optim.SGD,
}


class TrainConfig(BaseModel):
    """Hyperparameters of one fit; logged as MLflow params."""

    model_config = ConfigDict(extra="forbid")

    optimizer: OptimizerName = "adam"
    learning_rate: float = Field(default=1e-3, gt=0)
    weight_decay: float = Field(default=0.0, ge=0)
    batch_size: int = Field(default=64, ge=1)
    beta: float = Field(default=1.0, ge=0)
    loss: ReconLoss = "mse"
    class_weighting: ClassWeighting = "log"
    epochs: int = Field(default=30, ge=1)
    patience: int = Field(default=5, ge=1)
    early_stopping_metric: EpochMetric = "val_loss"
    seed: int = 0
    kl_scale: float = Field(default=10.0, gt=0, description="C in the tradeoff score, nats per latent dim")
    select_metric: EpochMetric = "val_tradeoff"
    select_mode: Literal["min", "max"] = "max"


@dataclass
class FitResult:
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = -1
    stopped_early: bool = False

    @property
    def best_metrics(self) -> dict[str, float]:
        return self.history[self.best_epoch] if self.history else {}


def make_optimizer(model: BaseVAE, config: TrainConfig) -> torch.optim.Optimizer:
    return OPTIMIZERS[config.optimizer](model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)


@torch.no_grad()
def evaluate(model: BaseVAE, data: TensorData, *, loss: ReconLoss, beta: float, kl_scale: float = 10.0, weights: torch.Tensor | None = None, batch_size: int = 512, counts_out: torch.Tensor | None = None) -> dict[str, float]:
    """Loss terms, macro F1 over classes 1-4 and the tradeoff score on a split (eval mode, z = mu).

    Pass the training `weights` so validation loss is on the same scale as training loss.
    `counts_out`, a (3, 4) int64 tensor, receives the per-class counts (for per-class F1).
    """
    model.eval()
    total = recon = kl = 0.0
    counts = torch.zeros(3, 4, dtype=torch.int64)
    for batch in data.batches(batch_size):
        out = model.forward_batch(batch)
        parts = vae_loss(model, out, batch, loss=loss, beta=beta, weights=weights)
        n = batch.grid.shape[0]
        total, recon, kl = total + parts.total.item() * n, recon + parts.recon.item() * n, kl + parts.kl.item() * n
        counts += class_counts(model.predict_grid(out), batch.grid)
    if counts_out is not None:
        counts_out.copy_(counts)
    n = max(len(data), 1)
    f1 = macro_f1(counts)
    return {
        "loss": total / n,
        "recon": recon / n,
        "kl": kl / n,
        "f1": f1,
        "tradeoff": tradeoff_score(f1, kl / n, model.config.latent_dim, kl_scale),
    }


class Trainer:
    def __init__(self, model: BaseVAE, config: TrainConfig, callbacks: list[Callback] | None = None):
        self.model, self.config = model, config
        mode = "max" if config.early_stopping_metric in HIGHER_IS_BETTER else "min"
        self.callbacks = [EarlyStopping(config.early_stopping_metric, config.patience, mode), *(callbacks or [])]
        self.optimizer = make_optimizer(model, config)
        self.generator = torch.Generator().manual_seed(config.seed)
        self.should_stop = False
        self.epoch = 0
        self.weights: torch.Tensor | None = None  # class weights, from the training split in fit()

    def train_epoch(self, data: TensorData) -> dict[str, float]:
        self.model.train()
        sums = torch.zeros(3)
        batches = -(-len(data) // self.config.batch_size)
        for i, batch in enumerate(data.batches(self.config.batch_size, shuffle=True, generator=self.generator)):
            out = self.model.forward_batch(batch)
            parts = vae_loss(self.model, out, batch, loss=self.config.loss, beta=self.config.beta, weights=self.weights)
            self.optimizer.zero_grad(set_to_none=True)
            parts.total.backward()
            self.optimizer.step()
            # Accumulate as a tensor: one .item() per batch would sync and cost ~5% on small models.
            sums += torch.stack([parts.total, parts.recon, parts.kl]).detach() * batch.grid.shape[0]
            dispatch(self.callbacks, "on_batch_end", self, i + 1, batches)
        total, recon, kl = (sums / max(len(data), 1)).tolist()
        return {"train_loss": total, "train_recon": recon, "train_kl": kl}

    def fit(self, train: TensorData, val: TensorData) -> FitResult:
        torch.manual_seed(self.config.seed)
        self.weights = class_weights(train.grid, self.config.class_weighting)
        result, best_value, best_state = FitResult(), None, None
        sign = 1 if self.config.select_mode == "max" else -1
        dispatch(self.callbacks, "on_fit_start", self)
        for self.epoch in range(self.config.epochs):
            started = time.perf_counter()
            metrics = self.train_epoch(train)
            metrics["train_time_s"] = time.perf_counter() - started
            started = time.perf_counter()
            c = self.config
            scores = evaluate(self.model, val, loss=c.loss, beta=c.beta, kl_scale=c.kl_scale, weights=self.weights)
            metrics.update({f"val_{k}": v for k, v in scores.items()})
            metrics["val_time_s"] = time.perf_counter() - started
            result.history.append(metrics)
            value = metrics[self.config.select_metric]
            if best_value is None or sign * value > sign * best_value:
                best_value, result.best_epoch = value, self.epoch
                best_state = copy.deepcopy(self.model.state_dict())
            dispatch(self.callbacks, "on_epoch_end", self, self.epoch, metrics)
            if self.should_stop:
                result.stopped_early = self.epoch + 1 < self.config.epochs
                break
        if best_state is not None:
            self.model.load_state_dict(best_state)
        self.model.eval()
        dispatch(self.callbacks, "on_fit_end", self, result)
        return result
