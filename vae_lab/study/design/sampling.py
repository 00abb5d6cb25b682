"""The study's Optuna sampler and pruner, built from its spec (one sampler per worker)."""

from __future__ import annotations

import hashlib

import optuna

from vae_lab.study.design.spec import StudySpec


def worker_seed(seed: int, worker: int) -> int:
    """Worker `worker`'s sampler seed: the study's own for worker 0 (so a single worker samples
    as it always did), a hash of (seed, index) for the others, so workers started from the same
    state still propose different points, and a rerun proposes the same ones."""
    if worker == 0:
        return seed
    digest = hashlib.sha256(f"vae-lab sampler {seed} {worker}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def make_sampler(spec: StudySpec, worker: int = 0) -> optuna.samplers.BaseSampler:
    """The sampler of worker `worker` (0 alone). TPE for tpe studies, NSGA-II for nsga2. A grid
    study's points are all queued up front (see `execution.queue`), so its sampler only ever picks
    repeats past the end of the grid.

    TPE's `n_startup_trials` counts every finished trial in the study's history, trials learned
    from other studies (`learn_from`) included: a study that learned enough starts with TPE."""
    seed = worker_seed(spec.training.seed, worker)
    if spec.is_grid:
        return optuna.samplers.RandomSampler(seed=seed)
    if spec.sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=max(4, min(50, spec.planned_trials // 4)))
    return optuna.samplers.TPESampler(
        seed=seed,
        n_startup_trials=min(10, max(2, spec.planned_trials // 3)),
        # The constant liar counts other workers' running trials as bad results, so several
        # workers asking at once spread out instead of proposing the same point. (Optuna 5's
        # default; named here since `--workers` relies on it.)
        constant_liar=True,
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
