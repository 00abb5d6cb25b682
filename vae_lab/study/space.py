"""From a search space to the two configs a trial trains with.

The space is data (`SearchSpace`); this module is the only code that turns it into Optuna
`suggest_*` calls, so grid and TPE studies share one objective.
"""

from __future__ import annotations

from typing import Any

import optuna

from vae_lab.models.base import ModelConfig
from vae_lab.study.spec import FloatRange, IntRange, StudySpec
from vae_lab.training.trainer import TrainConfig


def _suggest(trial: optuna.Trial, name: str, choice: Any) -> Any:
    if isinstance(choice, FloatRange):
        return trial.suggest_float(name, choice.low, choice.high, log=choice.log)
    if isinstance(choice, IntRange):
        return trial.suggest_int(name, choice.low, choice.high, step=choice.step, log=choice.log)
    return trial.suggest_categorical(name, list(choice))


def suggest_configs(trial: optuna.Trial, spec: StudySpec, grid: int, max_points: int) -> tuple[ModelConfig, TrainConfig]:
    """Sample every hyperparameter of `spec.space` and build the model and training configs."""
    params = {name: _suggest(trial, name, choice) for name, choice in spec.space}
    model = ModelConfig(
        architecture=params["architecture"],
        latent_dim=params["latent_dim"],
        output=params["output"],
        grid=grid,
        max_points=max_points,
    )
    direction = "max" if spec.objective.direction == "maximize" else "min"
    train = TrainConfig(
        optimizer=params["optimizer"],
        learning_rate=params["learning_rate"],
        weight_decay=params["weight_decay"],
        batch_size=params["batch_size"],
        beta=params["beta"],
        loss=params["loss"],
        class_weighting=params["class_weighting"],
        epochs=spec.training.epochs,
        patience=spec.training.patience,
        early_stopping_metric=spec.training.early_stopping_metric,
        seed=spec.training.seed + trial.number,
        kl_scale=spec.training.kl_scale,
        select_metric=spec.objective.metric,
        select_mode=direction,
    )
    return model, train


def make_sampler(spec: StudySpec) -> optuna.samplers.BaseSampler:
    if spec.sampler == "grid":
        return optuna.samplers.GridSampler(search_space=spec.space.grid(), seed=spec.training.seed)
    return optuna.samplers.TPESampler(seed=spec.training.seed, n_startup_trials=min(10, max(2, spec.planned_trials // 3)))


def make_pruner(spec: StudySpec) -> optuna.pruners.BasePruner:
    if spec.pruner.kind == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=spec.pruner.startup_trials, n_warmup_steps=spec.pruner.warmup_epochs)
    return optuna.pruners.NopPruner()
