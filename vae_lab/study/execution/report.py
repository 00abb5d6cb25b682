"""The study at a glance, on the parent run: a leaderboard and Optuna's own figures.

Refreshed in a background thread whenever a trial finishes (the next trial trains meanwhile),
and once more when the worker stops, so a long study can be read while it runs: open the
parent run's `leaderboard.csv` (a table in the UI) or `leaderboard.html`, and the optimisation
history, parameter importances, parallel coordinates and intermediate values.
"""

from __future__ import annotations

import logging
import threading
import warnings
from typing import TYPE_CHECKING, Any

import optuna
import pandas as pd

from vae_lab.study.trial.provenance import TrialAttr
from vae_lab.tracking import PlotlyAssets, Tracker

if TYPE_CHECKING:
    from vae_lab.study.story import StoryContext

logger = logging.getLogger(__name__)


def leaderboard(study: optuna.Study, objective: str) -> pd.DataFrame:
    """One row per trial, best first (by the first objective, with several): objectives, F1s, KL,
    active units, kNN accuracy, time, config, state."""
    rows: list[dict[str, Any]] = []
    names = study.user_attrs.get("objectives") or [objective]
    for t in study.get_trials(deepcopy=False):
        duration = t.duration.total_seconds() if t.duration is not None else None
        row: dict[str, Any] = {
            "trial": t.number,
            "state": t.state.name.lower(),
            **dict(zip(names, t.values or [None] * len(names), strict=False)),
        }
        row.update(t.user_attrs.get(TrialAttr.SUMMARY, {}))
        row.update(
            {
                "time_s": duration,
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

    complete = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        return {}
    if len(study.directions) > 1:
        return {}  # several objectives: the Pareto figure and report.html tell it (see study.story)
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
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, make in figures.items():
            try:
                made[name] = make()
            except (ValueError, RuntimeError, ZeroDivisionError) as error:  # e.g. importances of constant values
                logger.debug("study figure %s skipped: %s", name, error)
    return made


def refresh(
    tracker: Tracker,
    run_id: str,
    study: optuna.Study,
    objective: str,
    assets: PlotlyAssets,
    story: "StoryContext | None" = None,
) -> None:
    """Write the leaderboard, the study figures and (given `story`) report.html to the parent run."""
    frame = leaderboard(study, objective)
    if not frame.empty:
        tracker.log_table(run_id, frame, "leaderboard", title=f"study {study.study_name}: trials by {objective}")
    for name, figure in study_figures(study, objective).items():
        tracker.log_figure(run_id, figure, name, assets)
    if story is not None:
        from vae_lab.study.story import write_story

        write_story(tracker, run_id, study, story, assets)


class ReportRefresher:
    """Refreshes the study report off the training thread; requests arriving while it works
    coalesce into one more refresh. `close` does a last refresh and waits for it."""

    def __init__(
        self,
        tracker: Tracker,
        run_id: str,
        study: optuna.Study,
        objective: str,
        assets: PlotlyAssets,
        story: "StoryContext | None" = None,
    ):
        self._args = (tracker, run_id, study, objective, assets, story)
        self._wanted = threading.Event()
        self._stop = False
        self._thread = threading.Thread(target=self._loop, name="vae-lab-report", daemon=True)
        self._thread.start()

    def request(self) -> None:
        self._wanted.set()

    def _loop(self) -> None:
        while True:
            self._wanted.wait()
            self._wanted.clear()
            if self._stop:
                return
            self._refresh()

    def _refresh(self) -> None:
        try:
            refresh(*self._args)
        except Exception as error:  # a report must never stop a study
            logger.warning("could not refresh the study report: %s", error)

    def close(self) -> None:
        self._stop = True
        self._wanted.set()
        self._thread.join(timeout=120)
        self._refresh()
