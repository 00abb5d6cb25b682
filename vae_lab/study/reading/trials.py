"""A stored trial as every reader sees it: one typed row, in the one state vocabulary."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import TrialState

from vae_lab.study.trial.provenance import (
    TrialAttr,
    TrialStatus,
    failure_reason_of,
    learned_from,
    planned_params,
    run_id_of,
)


@dataclass(frozen=True)
class TrialRow:
    """One trial of a study: what the trials table, `--json` and the reports show."""

    number: int
    state: TrialStatus
    value: float | None  # the first objective's, with several
    values: list[float | None] | None  # every objective's, with several (None with one)
    params: dict[str, Any]
    mlflow_run_id: str | None
    best_epoch: int | None
    duration_s: float | None
    failure_reason: str | None


def duration_s(trial: optuna.trial.FrozenTrial) -> float | None:
    """Seconds from start to end (None while it runs or waits)."""
    return trial.duration.total_seconds() if trial.duration is not None else None


def family_of(trial: optuna.trial.FrozenTrial) -> str:
    """The model family a trial trains (known before it suggests it: its queued point says)."""
    return planned_params(trial).get("architecture") or trial.user_attrs.get(TrialAttr.ARCHITECTURE, "?")


def trial_row(trial: optuna.trial.FrozenTrial) -> TrialRow:
    values = [v if v is not None and math.isfinite(v) else None for v in (trial.values or [])]
    return TrialRow(
        trial.number,
        TrialStatus.of(trial.state),
        values[0] if values else None,
        values if len(values) > 1 else None,
        planned_params(trial),
        run_id_of(trial),
        trial.user_attrs.get(TrialAttr.BEST_EPOCH),
        duration_s(trial),
        failure_reason_of(trial),
    )


def own_trials(study: optuna.Study, states: tuple[TrialState, ...] | None = None) -> list[optuna.trial.FrozenTrial]:
    """The study's own trials (in `states`, if given): without those learned from other studies
    (`learn_from`), which only inform its sampler."""
    return [t for t in study.get_trials(deepcopy=False, states=states) if learned_from(t) is None]


def learned_counts(study: optuna.Study) -> dict[str, int]:
    """How many trials the study learned from each other study (`learn_from`), by name."""
    counts: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if (source := learned_from(t)) is not None:
            counts[source] = counts.get(source, 0) + 1
    return counts


def trial_rows(study: optuna.Study) -> list[TrialRow]:
    return [trial_row(t) for t in own_trials(study)]
