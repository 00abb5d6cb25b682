"""The read side: a stored study's trials as plain rows, without running anything."""

from __future__ import annotations

import math
from typing import Any

import optuna

from vae_lab.config import Settings, get_settings
from vae_lab.errors import VaeLabError
from vae_lab.stores import check_stores
from vae_lab.study.execution.storage import open_storage
from vae_lab.study.trial.provenance import TrialAttr, failure_reason_of, planned_params, run_id_of


def trial_rows(study: optuna.Study) -> list[dict[str, Any]]:
    """One plain dict per trial: number, state, value, params, run id, duration."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        started, completed = t.datetime_start, t.datetime_complete
        duration = (completed - started).total_seconds() if completed and started else None
        value = t.value if t.value is not None and math.isfinite(t.value) else None
        rows.append(
            {
                "number": t.number,
                "state": t.state.name,
                "value": value,
                "params": planned_params(t),
                "mlflow_run_id": run_id_of(t),
                "best_epoch": t.user_attrs.get(TrialAttr.BEST_EPOCH),
                "duration_s": duration,
                "failure_reason": failure_reason_of(t),
            }
        )
    return rows


def study_status(name: str, settings: Settings | None = None) -> dict[str, Any]:
    """Trials of a stored study, without running anything."""
    settings = settings or get_settings()
    check_stores(settings, tracking=False)
    storage = open_storage(settings.optuna_storage)
    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        known = optuna.study.get_all_study_names(storage)
        fix = f"known studies: {', '.join(known)}" if known else "run it first: vae-lab study run NAME"
        raise VaeLabError(f"study {name}", "not found in the Optuna storage", fix) from None
    best = None
    try:
        trial = study.best_trial
        best = {"number": trial.number, "value": trial.value, "params": trial.params}
    except ValueError:
        pass
    return {"study": name, "direction": study.direction.name.lower(), "trials": trial_rows(study), "best": best}
