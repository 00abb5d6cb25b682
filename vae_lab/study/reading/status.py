"""A stored study's status, without running anything: its trials and its best (or its front)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import optuna

from vae_lab.config import Settings, get_settings
from vae_lab.errors import VaeLabError
from vae_lab.selection import best, pareto_front
from vae_lab.stores import check_stores
from vae_lab.study.reading.trials import TrialRow, learned_counts, own_trials, trial_rows
from vae_lab.study.trial.storage import open_storage


@dataclass(frozen=True)
class BestTrial:
    number: int
    values: list[float]
    params: dict[str, Any]


@dataclass
class StudyStatus:
    """What `vae-lab study status` shows: `best` with one objective, `pareto_front` with several."""

    study: str
    directions: list[str]
    trials: list[TrialRow]
    best: BestTrial | None = None
    pareto_front: list[BestTrial] = field(default_factory=list)
    learned: dict[str, int] = field(default_factory=dict)  # trials learned from each other study (not shown)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_stored_study(name: str, storage: optuna.storages.BaseStorage) -> optuna.Study:
    """The stored study `name`, or one line naming the studies there are."""
    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        known = optuna.study.get_all_study_names(storage)
        fix = f"known studies: {', '.join(known)}" if known else "run it first: vae-lab study run NAME"
        raise VaeLabError(f"study {name}", "not found in the Optuna storage", fix) from None


def study_status(name: str, settings: Settings | None = None) -> StudyStatus:
    """Trials of a stored study, without running anything."""
    settings = settings or get_settings()
    check_stores(settings, tracking=False)
    study = load_stored_study(name, open_storage(settings.optuna_storage))
    directions = [d.name.lower() for d in study.directions]
    status = StudyStatus(name, directions, trial_rows(study), learned=learned_counts(study))
    # The best of the study's own trials: one learned from another study is never its best.
    complete = {t.number: t for t in own_trials(study, states=(optuna.trial.TrialState.COMPLETE,))}
    points = {n: {str(i): v for i, v in enumerate(t.values)} for n, t in complete.items()}
    objectives = {str(i): d for i, d in enumerate(directions)}
    if len(directions) > 1:
        status.pareto_front = [_best_trial(complete[n]) for n in pareto_front(points, objectives)]
    elif (number := best(points, "0", directions[0])) is not None:
        status.best = _best_trial(complete[number])
    return status


def _best_trial(trial: optuna.trial.FrozenTrial) -> BestTrial:
    return BestTrial(trial.number, list(trial.values), dict(trial.params))
