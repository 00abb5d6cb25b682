"""The training loop: fit a VAE on in-memory tensors, timing and measuring every epoch.

`Trainer.fit` is deliberately plain: per epoch it runs `train_epoch`, then `validate` on the
validation split, then hands the metrics to its callbacks. The metric names are part of the
product (MLflow charts and study objectives use them; the list is `choices.EpochMetric`).

The weights of the best epoch (by `TrainConfig.select_metric`) are restored at the end, so the
model a study logs is the one its objective value describes. Model, data and metrics stay on
the device the `Runtime` names; the loop reads a number back to the host once per epoch, never
per batch. A loss, gradient or weight that turns NaN or infinite ends the fit with
`NonFiniteError` naming the epoch.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator

from vae_lab.choices import (
    GENERATION_METRICS,
    HIGHER_IS_BETTER,
    LATENT_METRICS,
    WEIGHTED_LOSSES,
    Augment,
    ClassWeighting,
    LrSchedule,
    OptimizerName,
    ReconLoss,
)
from vae_lab.device import autocast, grad_scaler, prepare_backend, resolve_device
from vae_lab.losses import LossSettings, class_weights, descriptor_weights, kl_divergence, kl_penalty
from vae_lab.models.base import BaseVAE, check_loss
from vae_lab.runtime import Runtime
from vae_lab.training.augment import AUGMENTERS
from vae_lab.training.batches import TensorData
from vae_lab.training.callbacks import Callback, EarlyStopping, dispatch
from vae_lab.training.generation import GENERATION_PREFIX, GenerationCheck
from vae_lab.training.latent_metrics import latent_scores
from vae_lab.training.pose_invariance import content_shift, pose_invariances
from vae_lab.training.schedules import beta_at, learning_rate_at, settled_epoch
from vae_lab.training.validation import ValidationResult, validate

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
    lr_schedule: LrSchedule = Field(
        default="constant", description="cosine: linear warm-up over 2% of the steps, then cosine decay to 0"
    )
    weight_decay: float = Field(default=0.0, ge=0)
    max_grad_norm: float = Field(
        default=0.0, ge=0, description="clip each step's gradient to this global L2 norm (0: no clipping)"
    )
    batch_size: int = Field(default=64, ge=1)
    loss: ReconLoss = "mse"
    focal_alpha: float = Field(default=0.25, ge=0, le=1)
    focal_gamma: float = Field(default=2.0, ge=0)
    brock_gamma: float = Field(default=0.97, gt=0, lt=1)
    tversky_alpha: float = Field(default=0.5, ge=0)
    tversky_beta: float = Field(default=0.5, ge=0)
    class_weighting: ClassWeighting = "log"
    beta: float = Field(default=1.0, ge=0)
    kl_warmup_epochs: int = Field(default=0, ge=0, description="linear warm-up of beta from 0 over N epochs")
    kl_cycles: int = Field(default=0, ge=0, description="cyclical beta: M cycles over the run (Fu et al. 2019)")
    kl_cycle_ratio: float = Field(default=0.5, gt=0, le=1, description="share of each cycle spent ramping beta up")
    free_bits: float = Field(default=0.0, ge=0, description="nats per latent dimension the KL term does not charge")
    augment: Augment = Field(
        default="none",
        description="rotations: each training sample under a random rotation of the cube; "
        "so3: under any rotation and a sub-cell shift, re-voxelised",
    )
    content_consistency: float = Field(
        default=0.0,
        ge=0,
        description="weight of a term pulling each sample's content latent (the metric latent) "
        "towards that of its augmented copy, over the batch's spread; needs augment",
    )
    epochs: int = Field(default=30, ge=1)
    patience: int = Field(default=5, ge=1)
    early_stopping_metric: str = "val_loss"
    seed: int = 0
    kl_scale: float = Field(default=10.0, gt=0, description="C in the tradeoff score, nats per latent dim")
    select_metric: str = "val_tradeoff"
    select_mode: Literal["min", "max"] = "max"

    @model_validator(mode="after")
    def _one_schedule(self) -> "TrainConfig":
        if self.kl_warmup_epochs and self.kl_cycles:
            raise ValueError("kl_warmup_epochs and kl_cycles are two KL schedules: use one")
        if self.content_consistency and self.augment == "none":
            raise ValueError(
                "content_consistency compares a sample with its augmented copy: set augment (so3 or rotations)"
            )
        return self

    def loss_settings(self) -> LossSettings:
        return LossSettings(
            name=self.loss,
            focal_alpha=self.focal_alpha,
            focal_gamma=self.focal_gamma,
            brock_gamma=self.brock_gamma,
            tversky_alpha=self.tversky_alpha,
            tversky_beta=self.tversky_beta,
        )

    def beta_at(self, epoch: int) -> float:
        return beta_at(
            epoch,
            beta=self.beta,
            epochs=self.epochs,
            warmup_epochs=self.kl_warmup_epochs,
            cycles=self.kl_cycles,
            cycle_ratio=self.kl_cycle_ratio,
        )

    def uses_latent_metrics(self) -> bool:
        """Whether selection or early stopping reads a latent metric, which then runs every epoch."""
        return bool({self.select_metric, self.early_stopping_metric} & set(LATENT_METRICS))

    def uses_generation_metrics(self) -> bool:
        """Whether selection or early stopping reads a generation metric, which then runs every epoch."""
        return bool({self.select_metric, self.early_stopping_metric} & set(GENERATION_METRICS))


def training_weights(train_grid: torch.Tensor, config: TrainConfig) -> torch.Tensor | None:
    """Class weights from the training split, for the losses that weigh cells by class (over
    every cell for the dense losses, over the occupied cells for the set loss)."""
    if config.loss not in WEIGHTED_LOSSES:
        return None
    if config.loss == "set":
        return descriptor_weights(train_grid, config.class_weighting)
    return class_weights(train_grid, config.class_weighting)


class NonFiniteError(RuntimeError):
    """Training diverged: a loss, gradient or weight became NaN or infinite."""

    def __init__(self, epoch: int, what: str):
        self.epoch, self.what = epoch, what
        super().__init__(f"{what} became NaN or infinite in epoch {epoch}")


@dataclass
class FitResult:
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = -1
    stopped_early: bool = False
    final: ValidationResult | None = None  # the restored best model on the validation split

    @property
    def best_metrics(self) -> dict[str, float]:
        """The best epoch's metrics, plus the latent and generation metrics of the restored model."""
        if not self.history:
            return {}
        final = self.final.scores.items() if self.final else ()
        extra = {f"val_{k}": v for k, v in final if f"val_{k}" in (*LATENT_METRICS, "val_pose_part_invariance")}
        extra |= {k: v for k, v in final if k.startswith(GENERATION_PREFIX)}
        return {**extra, **self.history[self.best_epoch]}


FUSED_DEVICES = ("cpu", "cuda")  # where torch has a fused (single-kernel) step for these optimizers


def make_optimizer(model: BaseVAE, config: TrainConfig) -> torch.optim.Optimizer:
    """The configured optimizer, fused where the model's device allows (+20-30% on `fc`, CPU)."""
    params = list(model.parameters())
    fused = all(p.device.type in FUSED_DEVICES and p.dtype.is_floating_point for p in params)
    return OPTIMIZERS[config.optimizer](
        params, lr=config.learning_rate, weight_decay=config.weight_decay, fused=fused or None
    )


class Trainer:
    def __init__(
        self,
        model: BaseVAE,
        config: TrainConfig,
        callbacks: list[Callback] | None = None,
        runtime: Runtime | None = None,
        generation: GenerationCheck | None = None,
    ):
        check_loss(model.name, model.config.output, config.loss, where="training")
        self.runtime = runtime or Runtime()
        self.device = resolve_device(self.runtime.device)
        prepare_backend(self.device)
        self.model, self.config = model.to(self.device), config
        mode = "max" if config.early_stopping_metric in HIGHER_IS_BETTER else "min"
        start = settled_epoch(warmup_epochs=config.kl_warmup_epochs, cycles=config.kl_cycles)
        stopping = EarlyStopping(config.early_stopping_metric, config.patience, mode, start_epoch=start)
        self.callbacks = [stopping, *(callbacks or [])]
        self.optimizer = make_optimizer(model, config)
        self.scaler = grad_scaler(self.device, self.runtime.precision)
        self.forward = torch.compile(model) if self.runtime.compile else model
        self.generator = torch.Generator().manual_seed(config.seed)
        self.loss = config.loss_settings()
        self.should_stop = False
        self.generation = generation  # grids from the prior scored on the restored model (and per epoch if asked)
        self.epoch = 0
        self.weights: torch.Tensor | None = None  # class weights, from the training split in fit()
        self.val_labels = None
        self.step, self.total_steps = 0, 0
        augmenter = AUGMENTERS.get(config.augment)
        self.augmenter = augmenter(model.config.grid, self.device, seed=config.seed) if augmenter else None

    def _schedule_learning_rate(self) -> None:
        if self.config.lr_schedule == "constant":
            return
        rate = learning_rate_at(self.step, self.total_steps, self.config.learning_rate)
        for group in self.optimizer.param_groups:
            group["lr"] = rate

    def train_epoch(self, data: TensorData, beta: float) -> dict[str, float]:
        self.model.train()
        sums = torch.zeros(4, device=self.device)
        batches = -(-len(data) // self.config.batch_size)
        self.total_steps = self.total_steps or batches * self.config.epochs
        for i, batch in enumerate(data.batches(self.config.batch_size, shuffle=True, generator=self.generator)):
            self._schedule_learning_rate()
            self.step += 1
            original = batch
            if self.augmenter is not None:
                batch = self.augmenter(batch)
            with autocast(self.device, self.runtime.precision):
                out = self.forward(*self.model.inputs(batch))
                recon = self.model.reconstruction_loss(out, batch, self.loss, self.weights).mean()
                shift = (
                    content_shift(self.model, out, original) if self.config.content_consistency else recon.new_zeros(())
                )
            mu, logvar = out.mu.float(), out.logvar.float()
            total = (
                recon + beta * kl_penalty(mu, logvar, self.config.free_bits) + self.config.content_consistency * shift
            )
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(total).backward()
            if self.config.max_grad_norm > 0:
                self.scaler.unscale_(self.optimizer)  # clip the true gradient, not the loss-scaled one
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.max_grad_norm)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            # Accumulate as a tensor: one .item() per batch would sync and cost ~5% on small models.
            sums += (
                torch.stack([total, recon, kl_divergence(mu, logvar).mean(), shift.float()]).detach()
                * batch.grid.shape[0]
            )
            dispatch(self.callbacks, "on_batch_end", self, i + 1, batches)
        total, recon, kl, shift = (sums / max(len(data), 1)).tolist()
        metrics = {"train_loss": total, "train_recon": recon, "train_kl": kl}
        if self.config.content_consistency:
            metrics["train_content_shift"] = shift
        return metrics

    def validate(self, data: TensorData, beta: float, keep_latents: bool = False) -> ValidationResult:
        c = self.config
        return validate(
            self.model,
            data,
            loss=self.loss,
            beta=beta,
            weights=self.weights,
            kl_scale=c.kl_scale,
            precision=self.runtime.precision,
            keep_latents=keep_latents,
        )

    def fit(self, train: TensorData, val: TensorData) -> FitResult:
        torch.manual_seed(self.config.seed)
        train, val = train.to(self.device), val.to(self.device)
        self.weights = training_weights(train.grid, self.config)
        self.val_labels = val.labels.cpu().numpy()
        result, best_value, best_state = FitResult(), None, None
        sign = 1 if self.config.select_mode == "max" else -1
        per_epoch_latents = self.config.uses_latent_metrics()
        dispatch(self.callbacks, "on_fit_start", self)
        for self.epoch in range(self.config.epochs):  # noqa: B020 - callbacks read trainer.epoch
            metrics = self._run_epoch(train, val, per_epoch_latents)
            result.history.append(metrics)
            value = metrics.get(self.config.select_metric)
            if value is not None and (best_value is None or sign * value > sign * best_value):
                best_value, result.best_epoch = value, self.epoch
                best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
            dispatch(self.callbacks, "on_epoch_end", self, self.epoch, metrics)
            if self.should_stop:
                result.stopped_early = self.epoch + 1 < self.config.epochs
                break
        if best_state is not None:
            self.model.load_state_dict(best_state)
        else:
            result.best_epoch = len(result.history) - 1
        result.final = self._final_validation(val, result)
        dispatch(self.callbacks, "on_fit_end", self, result)
        return result

    def _run_epoch(self, train: TensorData, val: TensorData, per_epoch_latents: bool) -> dict[str, float]:
        beta = self.config.beta_at(self.epoch)
        started = time.perf_counter()
        metrics = self.train_epoch(train, beta)
        metrics["train_time_s"] = time.perf_counter() - started
        self._check_finite(metrics)
        started = time.perf_counter()
        scores = self.validate(val, beta, keep_latents=per_epoch_latents)
        metrics.update(scores.prefixed("val"))
        if per_epoch_latents:
            metrics.update(latent_scores(scores.latents, self.val_labels))
            metrics.update({f"val_{k}": v for k, v in self._pose_scores(val).items()})
        if self.generation is not None and self.config.uses_generation_metrics():
            metrics.update(self.generation.scores(self.model))
        metrics["val_time_s"] = time.perf_counter() - started
        metrics["beta"] = beta
        if not all(map(_finite, (metrics["val_loss"], metrics["val_kl"]))):
            raise NonFiniteError(self.epoch, "the validation loss")
        return metrics

    def _check_finite(self, metrics: dict[str, float]) -> None:
        if not _finite(metrics["train_loss"]):
            raise NonFiniteError(self.epoch, "the training loss")
        # A NaN gradient shows up in the weights after the optimizer step (one pass per epoch).
        if not all(bool(torch.isfinite(p).all()) for p in self.model.parameters()):
            raise NonFiniteError(self.epoch, "a gradient (the weights)")

    def _final_validation(self, val: TensorData, result: FitResult) -> ValidationResult:
        """The restored model on the validation split, with latents for the figures and latent metrics."""
        epoch = max(result.best_epoch, 0)
        final = self.validate(val, self.config.beta_at(epoch), keep_latents=True)
        final.scores.update(
            {k.removeprefix("val_"): v for k, v in latent_scores(final.latents, self.val_labels).items()}
        )
        final.scores.update(self._pose_scores(val))
        if self.generation is not None:
            final.scores.update(self.generation.scores(self.model))
        return final

    def _pose_scores(self, val: TensorData) -> dict[str, float]:
        return pose_invariances(self.model, val, precision=self.runtime.precision, seed=self.config.seed)


def _finite(value: float) -> bool:
    return value == value and value not in (float("inf"), float("-inf"))
