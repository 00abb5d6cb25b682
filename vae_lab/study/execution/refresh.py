"""The study at a glance, on the parent run: a leaderboard and Optuna's own figures.

Refreshed in a background thread whenever a trial finishes (the next trial trains meanwhile),
and once more when the worker stops, so a long study can be read while it runs: open the
parent run's `leaderboard.csv` (a table in the UI) or `leaderboard.html`, and the optimisation
history, parameter importances, parallel coordinates and intermediate values.
"""

from __future__ import annotations

import logging
import threading

import optuna

from vae_lab.study.reading.leaderboard import leaderboard, study_figures
from vae_lab.study.reading.story import StoryContext, write_story
from vae_lab.tracking import PlotlyAssets, Tracker

logger = logging.getLogger(__name__)


def refresh(
    tracker: Tracker,
    run_id: str,
    study: optuna.Study,
    objective: str,
    assets: PlotlyAssets,
    story: StoryContext | None = None,
) -> None:
    """Write the leaderboard, the study figures and (given `story`) report.html to the parent run."""
    frame = leaderboard(study, objective)
    if not frame.empty:
        tracker.log_table(run_id, frame, "leaderboard", title=f"study {study.study_name}: trials by {objective}")
    for name, figure in study_figures(study, objective).items():
        tracker.log_figure(run_id, figure, name, assets)
    if story is not None:
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
        story: StoryContext | None = None,
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
