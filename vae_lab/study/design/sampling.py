"""The study's Optuna sampler and pruner, built from its spec."""

from __future__ import annotations

import optuna

from vae_lab.study.design.spec import StudySpec


def make_sampler(spec: StudySpec) -> optuna.samplers.BaseSampler:
    """TPE for tpe studies. A grid study's points are all queued up front (see `execution.queue`), so
    its sampler only ever picks repeats past the end of the grid."""
    if spec.is_grid:
        return optuna.samplers.RandomSampler(seed=spec.training.seed)
    if spec.sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(
            seed=spec.training.seed, population_size=max(4, min(50, spec.planned_trials // 4))
        )
    return optuna.samplers.TPESampler(
        seed=spec.training.seed, n_startup_trials=min(10, max(2, spec.planned_trials // 3))
    )


def make_pruner(spec: StudySpec) -> optuna.pruners.BasePruner:
    """The study's pruner; every one reads the objective reported at each epoch."""
    p = spec.pruner
    if p.kind == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=p.startup_trials, n_warmup_steps=p.warmup_epochs)
    if p.kind == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=p.min_epochs, max_resource=spec.training.epochs, reduction_factor=p.reduction_factor
        )
    if p.kind == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=p.min_epochs, reduction_factor=p.reduction_factor)
    return optuna.pruners.NopPruner()
