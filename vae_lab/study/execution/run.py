"""Run a study: Optuna asks, the trainer fits, MLflow records, the registry crowns.

`run_study` is what `vae-lab study run` calls with one worker: the invocation lifecycle
(`execution.invocation`) with this process as its only worker. Running it again with the same
study name resumes: finished trials stay in the Optuna storage, a grid only runs its missing
points and a TPE study only the trials still owed. Any number of workers, on one machine or
many, may run the same study at once: they share it through the Optuna storage, the study lock,
liveness leases and the grid queue (`trial.lock`, `execution.liveness`, `execution.queue`); `execution.workers`
starts several on this machine (`--workers N`).

`run_trials` is one worker's share of an invocation, whichever launcher started the worker: the
trial objective, the report refresher and the `TrialLoop` over an open session.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna

from vae_lab.config import Settings
from vae_lab.study.design.spec import StudySpec
from vae_lab.study.execution.admission import Admission, admit
from vae_lab.study.execution.events import EventObserver, ProgressSink, SilentSink
from vae_lab.study.execution.invocation import Launch, run_invocation
from vae_lab.study.execution.loop import TrialLoop
from vae_lab.study.execution.refresh import ReportRefresher
from vae_lab.study.execution.session import StudyReport, StudySession
from vae_lab.study.reading.story import StoryContext
from vae_lab.study.trial.objective import TrialObjective, TrialSetup
from vae_lab.tracking import PlotlyAssets

# Optuna logs every failed trial with a traceback; vae-lab records the reason on the trial and
# its run and shows it in the trials table, so only Optuna's errors reach the terminal.
optuna.logging.set_verbosity(optuna.logging.ERROR)


def run_study(
    spec: StudySpec,
    *,
    n_trials: int | None = None,
    data_path: Path | None = None,
    settings: Settings | None = None,
    sink: ProgressSink | None = None,
    where: str = "study",
    device: str | None = None,
    admission: Admission | None = None,
) -> StudyReport:
    """Run (or resume) `spec` in this process and return its trials and champion. See the module
    docstring. `admission`: the result of `admit` when the caller checked already (the CLI does, to
    print the plan's estimate in between)."""
    if admission is None:
        admission = admit(spec, data_path=data_path, device=device, where=where, settings=settings)
    sink = sink or SilentSink()
    return run_invocation(admission, InProcess(sink), sink, n_trials)


@dataclass
class InProcess:
    """The launcher of one worker: this process runs every trial."""

    sink: ProgressSink
    workers: int = 1

    def tags(self) -> dict[str, Any]:
        return {}

    def launch(self, session: StudySession, n_trials: int | None) -> Launch:
        run_trials(session, self.sink, count=session.remaining, exact=n_trials is not None)
        return Launch()


def run_trials(
    session: StudySession,
    sink: ProgressSink,
    *,
    count: int,
    exact: bool,
    worker: int = 0,
    trial_tags: dict[str, Any] | None = None,
) -> None:
    """One worker's trials of the invocation whose parent run `session` started or joined;
    `trial_tags` go on each trial's run (where an engine placed the worker)."""
    spec, data = session.spec, session.admission.data
    assets = PlotlyAssets(spec.artifacts.plotlyjs, session.parent_run_id)
    setup = TrialSetup(
        spec,
        data,
        session.tracker,
        session.experiment_id,
        session.parent_run_id,
        session.admission.device,
        assets,
        dict(trial_tags or {}),
    )
    refresher = ReportRefresher(
        session.tracker, session.parent_run_id, session.study, spec.objective.metric, assets, StoryContext(spec, data)
    )
    observer = EventObserver(sink, worker, spec.objective.metric)
    try:
        TrialLoop(
            session, TrialObjective(setup), observer, refresher, grid=spec.is_grid, planned=spec.planned_trials
        ).run(count, exact=exact)
    finally:
        refresher.close()
