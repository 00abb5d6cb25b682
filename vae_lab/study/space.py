"""From a search space to the configurations trials train with.

The space is data (`SearchSpace`); this module is the only code that turns it into Optuna
`suggest_*` calls and grid points, so grid and TPE studies share one objective.

Conditional hyperparameters. Each trial uses only the hyperparameters that apply to it: the
head follows the loss (or the loss the head), `class_weighting` applies to losses that weigh
cells, `focal_gamma` to the focal losses, `kl_cycle_ratio` to cyclical schedules, `output` to
families with a head to choose. A grid is therefore the set of distinct configurations, not a
blind product (a grid over `loss: [mse, focal]` x `focal_gamma: [1, 2]` is three trials, not
four). What the study lists is checked up front:
- every (architecture, output, loss) combination must fit: a loss trains one head, and a family
  has its own heads (`pointnet` only has its set loss);
- every value listed must be used by some trial: a value no trial can use is an error, never
  silently ignored.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import optuna

from vae_lab.choices import DEFAULT_LOSS, LOSS_HEAD, LOSS_OPTIONS, WEIGHTED_LOSSES
from vae_lab.errors import VaeLabError
from vae_lab.study.spec import FloatRange, IntRange, SearchSpace, StudySpec

LOSS_OPTION_NAMES = frozenset(name for options in LOSS_OPTIONS.values() for name in options)
MODEL_FIELDS = ("architecture", "latent_dim", "width")


def _family(architecture: str):
    from vae_lab.models import ARCHITECTURES

    return ARCHITECTURES[architecture]


def head_and_loss(chosen: dict[str, Any]) -> tuple[str, str]:
    """The trial's head and loss from what it chose so far (architecture, and output/loss if set)."""
    family = _family(chosen["architecture"])
    if "loss" in chosen:
        return LOSS_HEAD[chosen["loss"]], chosen["loss"]
    head = chosen.get("output") or family.heads[0]
    return head, DEFAULT_LOSS[head]


def applies(name: str, chosen: dict[str, Any]) -> bool:
    """Whether hyperparameter `name` means anything for a trial that chose `chosen` so far."""
    if name == "architecture":
        return True
    family = _family(chosen["architecture"])
    if name == "output":
        return len(family.heads) > 1
    if name == "width":
        return family.default_width is not None
    if name == "loss":
        return True
    head, loss = head_and_loss(chosen)
    if name == "class_weighting":
        return loss in WEIGHTED_LOSSES
    if name in LOSS_OPTION_NAMES:
        return name in LOSS_OPTIONS.get(loss, ())
    if name == "kl_cycle_ratio":
        return chosen.get("kl_cycles", 0) > 0
    return True


def resolve(raw: dict[str, Any], order: list[str]) -> dict[str, Any]:
    """The hyperparameters of `raw` (one value each) that apply, in `order`."""
    chosen: dict[str, Any] = {}
    for name in order:
        if name in raw and applies(name, chosen):
            chosen[name] = raw[name]
    return chosen


def _values(choice: Any) -> list:
    return list(choice) if isinstance(choice, list) else [choice]


def grid_points(space: SearchSpace) -> list[dict[str, Any]]:
    """The distinct configurations of a grid over `space`, in product order."""
    items = space.items()
    names = [name for name, _ in items]
    seen: dict[str, dict[str, Any]] = {}
    for combination in itertools.product(*(_values(choice) for _, choice in items)):
        point = resolve(dict(zip(names, combination)), names)
        seen.setdefault(json.dumps(point, sort_keys=True, default=str), point)
    return list(seen.values())


def check_space(space: SearchSpace, where: str) -> None:
    """Raise a VaeLabError naming the field when the space lists something no trial can use."""
    from vae_lab.models import ARCHITECTURES

    unknown = [a for a in space.architecture if a not in ARCHITECTURES]
    if unknown:
        raise VaeLabError(f"{where}: space.architecture", f"unknown architecture {unknown[0]!r}", f"use any of: {', '.join(sorted(ARCHITECTURES))}")
    _check_heads_and_losses(space, where)
    if any(w and c for w in _values(space.kl_warmup_epochs or [0]) for c in _values(space.kl_cycles or [0]) if isinstance(w, int) and isinstance(c, int)):
        raise VaeLabError(f"{where}: space.kl_cycles", "kl_warmup_epochs and kl_cycles are two KL schedules and a trial uses one", "search them in separate studies")
    used: dict[str, set[str]] = {}
    for point in grid_points(space):
        for name, value in point.items():
            used.setdefault(name, set()).add(json.dumps(value, default=str))
    for name, choice in space.items():
        for value in _values(choice):
            if json.dumps(value, default=str) not in used.get(name, set()):
                shown = value if isinstance(value, (list, int, float, str)) else "the range"
                raise VaeLabError(f"{where}: space.{name}", f"{shown} is never used: {_why_unused(name)}", "remove it, or add what it needs to the space")


def _check_heads_and_losses(space: SearchSpace, where: str) -> None:
    from vae_lab.models import check_loss

    for architecture in space.architecture:
        family = _family(architecture)
        outputs = space.output if space.output and len(family.heads) > 1 else [None]
        for output in outputs:
            if output is not None and output not in family.heads:
                raise VaeLabError(f"{where}: space.output", f"architecture {architecture!r} has no {output!r} output", f"use {' or '.join(family.heads)}")
            for loss in space.loss or []:
                check_loss(architecture, output or LOSS_HEAD[loss], loss, where=f"{where}: space.loss")


def _why_unused(name: str) -> str:
    if name == "output":
        return "only families with a head to choose (not pointnet) take an output"
    if name == "width":
        return "only families whose width is a knob (pointnet) take a width; the journal's have fixed layers"
    if name == "class_weighting":
        return f"class weights apply only to the losses {', '.join(sorted(WEIGHTED_LOSSES))}"
    if name in LOSS_OPTION_NAMES:
        losses = [loss for loss, options in LOSS_OPTIONS.items() if name in options]
        return f"{name} applies only to the loss {' / '.join(losses)}"
    if name == "kl_cycle_ratio":
        return "it applies only to trials with kl_cycles > 0"
    return "no trial of the study reaches it"


def _suggest(trial: optuna.Trial, name: str, choice: Any) -> Any:
    if isinstance(choice, FloatRange):
        return trial.suggest_float(name, choice.low, choice.high, log=choice.log)
    if isinstance(choice, IntRange):
        return trial.suggest_int(name, choice.low, choice.high, step=choice.step, log=choice.log)
    return trial.suggest_categorical(name, list(choice))


def suggest_params(trial: optuna.Trial, space: SearchSpace) -> dict[str, Any]:
    """Ask Optuna for the hyperparameters that apply to this trial, define-by-run."""
    chosen: dict[str, Any] = {}
    for name, choice in space.items():
        if applies(name, chosen):
            chosen[name] = _suggest(trial, name, choice)
    return chosen


def build_configs(chosen: dict[str, Any], spec: StudySpec, grid: int, max_points: int, seed: int):
    """(ModelConfig, TrainConfig) of a trial from its chosen hyperparameters and the study's defaults."""
    from vae_lab.models import ModelConfig
    from vae_lab.training import TrainConfig

    head, loss = head_and_loss(chosen)
    sizes = {k: chosen[k] for k in ("latent_dim", "width") if k in chosen}
    model = ModelConfig(architecture=chosen["architecture"], output=head, grid=grid, max_points=max_points, **sizes)
    options = {k: v for k, v in chosen.items() if k not in (*MODEL_FIELDS, "output", "loss")}
    if loss not in WEIGHTED_LOSSES:
        options["class_weighting"] = "none"
    train = TrainConfig(
        loss=loss,
        epochs=spec.training.epochs,
        patience=spec.training.patience,
        early_stopping_metric=spec.training.early_stopping_metric,
        seed=seed,
        kl_scale=spec.training.kl_scale,
        select_metric=spec.objective.metric,
        select_mode="max" if spec.direction == "maximize" else "min",
        **options,
    )
    return model, train


def make_sampler(spec: StudySpec) -> optuna.samplers.BaseSampler:
    """TPE for tpe studies. A grid study's points are all queued up front (see the runner), so
    its sampler only ever picks repeats past the end of the grid."""
    if spec.sampler == "grid":
        return optuna.samplers.RandomSampler(seed=spec.training.seed)
    if spec.sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=spec.training.seed, population_size=max(4, min(50, spec.planned_trials // 4)))
    return optuna.samplers.TPESampler(seed=spec.training.seed, n_startup_trials=min(10, max(2, spec.planned_trials // 3)))


def make_pruner(spec: StudySpec) -> optuna.pruners.BasePruner:
    """The study's pruner; every one reads the objective reported at each epoch."""
    p = spec.pruner
    if p.kind == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=p.startup_trials, n_warmup_steps=p.warmup_epochs)
    if p.kind == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=p.min_epochs, max_resource=spec.training.epochs, reduction_factor=p.reduction_factor)
    if p.kind == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=p.min_epochs, reduction_factor=p.reduction_factor)
    return optuna.pruners.NopPruner()
