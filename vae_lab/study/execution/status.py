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
        duration = t.duration.total_seconds() if t.duration is not None else None
        values = [v if v is not None and math.isfinite(v) else None for v in (t.values or [])]
        rows.append(
            {
                "number": t.number,
                "state": t.state.name,
                "value": values[0] if values else None,  # the first objective's, with several
                **({"values": values} if len(values) > 1 else {}),
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
    directions = [d.name.lower() for d in study.directions]
    if len(directions) > 1:
        front = sorted(
            ({"number": t.number, "values": t.values, "params": t.params} for t in study.best_trials),
            key=lambda f: f["number"],
        )
        return {
            "study": name,
            "directions": directions,
            "trials": trial_rows(study),
            "best": None,
            "pareto_front": front,
        }
    best = None
    try:
        trial = study.best_trial
        best = {"number": trial.number, "value": trial.value, "params": trial.params}
    except ValueError:
        pass
    return {"study": name, "direction": directions[0], "trials": trial_rows(study), "best": best}
