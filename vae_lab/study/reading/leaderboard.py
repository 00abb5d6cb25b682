"""The leaderboard and Optuna's figures of a study: what the parent run shows at a glance.

The leaderboard lists the study's own trials; Optuna's figures draw the study as Optuna holds it,
so they (like optuna-dashboard) also show trials learned from other studies (`learn_from`)."""

from __future__ import annotations

import logging
from typing import Any

import optuna
import pandas as pd

from vae_lab.study.reading.trials import duration_s, own_trials
from vae_lab.study.trial.provenance import StudyAttr, TrialAttr, TrialStatus

logger = logging.getLogger(__name__)


def leaderboard(study: optuna.Study, objective: str) -> pd.DataFrame:
    """One row per trial, best first (by the first objective, with several): objectives, F1s, KL,
    active units, kNN accuracy, time, config, state."""
    rows: list[dict[str, Any]] = []
    names = study.user_attrs.get(StudyAttr.OBJECTIVES) or [objective]
    for t in own_trials(study):
        row: dict[str, Any] = {
            "trial": t.number,
            "state": TrialStatus.of(t.state).value,
            **dict(zip(names, t.values or [None] * len(names), strict=False)),
        }
        row.update(t.user_attrs.get(TrialAttr.SUMMARY, {}))
        row.update(
            {
                "time_s": duration_s(t),
                "epochs": t.user_attrs.get(TrialAttr.EPOCHS_RUN),
                "best_epoch": t.user_attrs.get(TrialAttr.BEST_EPOCH),
            }
        )
        row.update(t.params)
        rows.append(row)
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    ascending = study.directions[0] == optuna.study.StudyDirection.MINIMIZE
    return frame.sort_values(objective, ascending=ascending, na_position="last", kind="stable")


def study_figures(study: optuna.Study, objective: str) -> dict[str, Any]:
    """Optuna's plotly figures that the trials so far can support (none before a trial completes)."""
    from optuna import visualization as vis

    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if not complete:
        return {}
    if len(study.directions) > 1:
        return {}  # several objectives: the Pareto figure and report.html tell it (see reading.story)
    figures: dict[str, Any] = {
        "optimization_history.html": lambda: vis.plot_optimization_history(study, target_name=objective)
    }
    figures["intermediate_values.html"] = lambda: vis.plot_intermediate_values(study)
    varying = {name for name in complete[0].params if len({repr(t.params.get(name)) for t in complete}) > 1}
    if len(complete) >= 2 and varying:
        figures["parallel_coordinate.html"] = lambda: vis.plot_parallel_coordinate(study, target_name=objective)
    if len(complete) >= 3 and varying:
        figures["param_importances.html"] = lambda: vis.plot_param_importances(study, target_name=objective)
    made = {}
    for name, make in figures.items():
        try:
            made[name] = make()
        except (ValueError, RuntimeError, ZeroDivisionError) as error:  # e.g. importances of constant values
            logger.debug("study figure %s skipped: %s", name, error)
    return made
