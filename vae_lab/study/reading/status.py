"""A stored study's status, without running anything: its trials and its best (or its front)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import optuna

from vae_lab.config import Settings, get_settings
from vae_lab.errors import VaeLabError
from vae_lab.stores import check_stores
from vae_lab.study.reading.trials import TrialRow, trial_rows
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
    status = StudyStatus(name, directions, trial_rows(study))
    if len(directions) > 1:
        front = sorted(study.best_trials, key=lambda t: t.number)
        status.pareto_front = [BestTrial(t.number, list(t.values), dict(t.params)) for t in front]
        return status
    try:
        best = study.best_trial
        status.best = BestTrial(best.number, list(best.values), dict(best.params))
    except ValueError:  # no trial finished yet
        pass
    return status
