"""The search space: its types, its grid points, and the checks that every value listed is used.

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
from typing import Any, Optional, Union

import optuna
from pydantic import BaseModel, ConfigDict, Field, model_validator

from vae_lab.choices import (
    DEFAULT_LOSS,
    LOSS_HEAD,
    LOSS_OPTIONS,
    WEIGHTED_LOSSES,
    Augment,
    ClassWeighting,
    LrSchedule,
    OptimizerName,
    OutputHead,
    ReconLoss,
)
from vae_lab.errors import VaeLabError


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FloatRange(Strict):
    """A continuous range for TPE; `log: true` samples on a log scale (learning rates)."""

    low: float
    high: float
    log: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> "FloatRange":
        if not self.low < self.high:
            raise ValueError("low must be below high")
        if self.log and self.low <= 0:
            raise ValueError("a log range needs low > 0")
        return self


class IntRange(Strict):
    low: int
    high: int
    step: int = 1
    log: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> "IntRange":
        if not self.low <= self.high:
            raise ValueError("low must not be above high")
        return self


IntChoices = Optional[Union[list[int], IntRange]]
FloatChoices = Optional[Union[list[float], FloatRange]]


class SearchSpace(Strict):
    """Each hyperparameter is a list of choices (grid or TPE) or a range (TPE only).

    A hyperparameter left out is not searched: each trial takes the default that fits it (the
    loss follows the head, the head follows the loss, the options take the papers' values).
    """

    architecture: list[str] = Field(default=["fc"], min_length=1)
    output: Optional[list[OutputHead]] = Field(default=None, min_length=1)
    loss: Optional[list[ReconLoss]] = Field(default=None, min_length=1)
    latent_dim: IntChoices = None
    batch_size: IntChoices = None
    optimizer: Optional[list[OptimizerName]] = Field(default=None, min_length=1)
    learning_rate: FloatChoices = None
    lr_schedule: Optional[list[LrSchedule]] = Field(default=None, min_length=1)
    width: IntChoices = None
    weight_decay: FloatChoices = None
    max_grad_norm: FloatChoices = None
    beta: FloatChoices = None
    class_weighting: Optional[list[ClassWeighting]] = Field(default=None, min_length=1)
    kl_warmup_epochs: IntChoices = None
    kl_cycles: IntChoices = None
    kl_cycle_ratio: FloatChoices = None
    free_bits: FloatChoices = None
    augment: Optional[list[Augment]] = Field(default=None, min_length=1)
    content_consistency: FloatChoices = None
    focal_alpha: FloatChoices = None
    focal_gamma: FloatChoices = None
    brock_gamma: FloatChoices = None
    tversky_alpha: FloatChoices = None
    tversky_beta: FloatChoices = None

    def items(self) -> list[tuple[str, list | FloatRange | IntRange]]:
        """The hyperparameters the study sets, in definition order (architecture first)."""
        return [(name, value) for name, value in self if value is not None]

    def ranges(self) -> list[str]:
        return [name for name, value in self.items() if not isinstance(value, list)]


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
        point = resolve(dict(zip(names, combination, strict=True)), names)
        seen.setdefault(json.dumps(point, sort_keys=True, default=str), point)
    return list(seen.values())


def check_space(space: SearchSpace, where: str) -> None:
    """Raise a VaeLabError naming the field when the space lists something no trial can use."""
    from vae_lab.models import ARCHITECTURES

    unknown = [a for a in space.architecture if a not in ARCHITECTURES]
    if unknown:
        raise VaeLabError(
            f"{where}: space.architecture",
            f"unknown architecture {unknown[0]!r}",
            f"use any of: {', '.join(sorted(ARCHITECTURES))}",
        )
    _check_heads_and_losses(space, where)
    _check_latent_sizes(space, where)
    _check_consistency(space, where)
    if any(
        w and c
        for w in _values(space.kl_warmup_epochs or [0])
        for c in _values(space.kl_cycles or [0])
        if isinstance(w, int) and isinstance(c, int)
    ):
        raise VaeLabError(
            f"{where}: space.kl_cycles",
            "kl_warmup_epochs and kl_cycles are two KL schedules and a trial uses one",
            "search them in separate studies",
        )
    used: dict[str, set[str]] = {}
    for point in grid_points(space):
        for name, value in point.items():
            used.setdefault(name, set()).add(json.dumps(value, default=str))
    for name, choice in space.items():
        for value in _values(choice):
            if json.dumps(value, default=str) not in used.get(name, set()):
                shown = value if isinstance(value, (list, int, float, str)) else "the range"
                raise VaeLabError(
                    f"{where}: space.{name}",
                    f"{shown} is never used: {_why_unused(name)}",
                    "remove it, or add what it needs to the space",
                )


def _check_heads_and_losses(space: SearchSpace, where: str) -> None:
    from vae_lab.models import check_loss

    for architecture in space.architecture:
        family = _family(architecture)
        outputs = space.output if space.output and len(family.heads) > 1 else [None]
        for output in outputs:
            if output is not None and output not in family.heads:
                raise VaeLabError(
                    f"{where}: space.output",
                    f"architecture {architecture!r} has no {output!r} output",
                    f"use {' or '.join(family.heads)}",
                )
            for loss in space.loss or []:
                check_loss(architecture, output or LOSS_HEAD[loss], loss, where=f"{where}: space.loss")


def _check_latent_sizes(space: SearchSpace, where: str) -> None:
    """A family whose latent holds a pose part needs room for content beside it."""
    from vae_lab.models import ModelConfig

    choice = space.latent_dim
    smallest = (
        choice.low
        if isinstance(choice, IntRange)
        else min(choice)
        if choice
        else ModelConfig.model_fields["latent_dim"].default
    )
    for architecture in space.architecture:
        family = _family(architecture)
        if smallest < family.min_latent_dim:
            raise VaeLabError(
                f"{where}: space.latent_dim",
                f"architecture {architecture!r} needs latent_dim >= {family.min_latent_dim}, the space has {smallest}",
                f"its latent holds a content part and a pose part: search latent_dim from {family.min_latent_dim}",
            )


def _check_consistency(space: SearchSpace, where: str) -> None:
    """`content_consistency` compares a sample with its augmented copy: every trial that weighs it
    needs an augmentation."""
    choice = space.content_consistency
    if choice is None:
        return
    weighs = choice.high > 0 if isinstance(choice, FloatRange) else any(value > 0 for value in choice)
    if weighs and "none" in (space.augment or ["none"]):
        raise VaeLabError(
            f"{where}: space.content_consistency",
            "content_consistency pulls a sample's content latent towards its augmented copy's, "
            "and a trial of this space trains without augmentation",
            "set space.augment to [so3] (or [rotations]) alone",
        )


def _why_unused(name: str) -> str:
    if name == "output":
        return "only families with a head to choose (not pointnet) take an output"
    if name == "width":
        return "only families whose width is a knob (pointnet) take a width; the research journal's have fixed layers"
    if name == "class_weighting":
        return f"class weights apply only to the losses {', '.join(sorted(WEIGHTED_LOSSES))}"
    if name in LOSS_OPTION_NAMES:
        losses = [loss for loss, options in LOSS_OPTIONS.items() if name in options]
        return f"{name} applies only to the loss {' / '.join(losses)}"
    if name == "kl_cycle_ratio":
        return "it applies only to trials with kl_cycles > 0"
    return "no trial of the study reaches it"


def distribution(choice: Any) -> optuna.distributions.BaseDistribution:
    """The Optuna distribution that `suggest_params` asks `choice` with."""
    if isinstance(choice, FloatRange):
        return optuna.distributions.FloatDistribution(choice.low, choice.high, log=choice.log)
    if isinstance(choice, IntRange):
        return optuna.distributions.IntDistribution(choice.low, choice.high, log=choice.log, step=choice.step)
    return optuna.distributions.CategoricalDistribution(list(choice))


def space_value(choice: Any, value: Any) -> Any:
    """`value` as `choice` holds it (the listed item it equals; a number for a range), or a
    ValueError when the choice does not contain it. A number YAML read as text (`1e-3`) counts."""
    if isinstance(value, str) and (not isinstance(choice, list) or all(not isinstance(c, str) for c in choice)):
        try:
            value = float(value)
        except ValueError:
            pass
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(choice, FloatRange):
        if number and choice.low <= value <= choice.high:
            return float(value)
    elif isinstance(choice, IntRange):
        if (
            number
            and value == int(value)
            and choice.low <= value <= choice.high
            and (value - choice.low) % choice.step == 0
        ):
            return int(value)
    else:
        for item in choice:
            if item == value and isinstance(item, bool) == isinstance(value, bool):
                return item
    raise ValueError(f"{value!r} is outside {describe_choice(choice)}")


def describe_choice(choice: Any) -> str:
    if isinstance(choice, (FloatRange, IntRange)):
        return f"[{choice.low}, {choice.high}]" + (
            f" in steps of {choice.step}" if getattr(choice, "step", 1) != 1 else ""
        )
    return "the choices " + ", ".join(map(str, choice))


def check_point(point: dict[str, Any], space: SearchSpace, where: str) -> dict[str, Any]:
    """`point` as one complete configuration of `space` (in its order, each value as the space
    holds it); a VaeLabError at `where` naming the hyperparameter that is not searched, is outside
    the space, is missing (every hyperparameter that applies to the point must be given, but one
    the space lists a single value for may be left out) or does not apply to the point."""
    searched = dict(space.items())
    fix = "a point gives one value for each hyperparameter of the space that applies to it"
    unknown = [name for name in point if name not in searched]
    if unknown:
        raise VaeLabError(where, f"{unknown[0]} is not searched by this study", f"{fix}: {', '.join(searched)}")
    chosen: dict[str, Any] = {}
    for name, choice in searched.items():
        if not applies(name, chosen):
            if name in point:
                raise VaeLabError(where, f"{name} does not apply to this point: {_why_unused(name)}", f"remove {name}")
            continue
        if name not in point and not (isinstance(choice, list) and len(choice) == 1):
            raise VaeLabError(where, f"{name} is missing", fix)
        try:
            chosen[name] = space_value(choice, point[name] if name in point else choice[0])
        except ValueError as error:
            raise VaeLabError(where, f"{name}: {error}", f"pick a value of space.{name}, or widen it") from None
    return chosen


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
