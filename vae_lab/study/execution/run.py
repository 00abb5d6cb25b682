"""Run a study: Optuna asks, the trainer fits, MLflow records, the registry crowns.

`run_study` is what `vae-lab study run` calls (once per worker). Running it again with the same
study name resumes: finished trials stay in the Optuna storage, a grid only runs its missing
points and a TPE study only the trials still owed. Any number of workers, on one machine or
many, may run the same study at once: they share it through the Optuna storage, the study lock,
liveness leases and the grid queue (`execution.lock`, `liveness`, `queue`); `execution.workers`
starts several on this machine (`--workers N`).

The walk: `admit` checks everything before anything is written; `StudySession` opens the stores
and the study once; `TrialLoop` claims, runs and settles each trial; the session ends the parent
run and reports.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import optuna

from vae_lab.config import Settings
from vae_lab.study.design.spec import StudySpec
from vae_lab.study.execution.admission import Admission, admit
from vae_lab.study.execution.events import StudyObserver
from vae_lab.study.execution.loop import TrialLoop
from vae_lab.study.execution.report import ReportRefresher
from vae_lab.study.execution.session import StudyReport, StudySession
from vae_lab.study.story import StoryContext
from vae_lab.study.trial.objective import TrialObjective, TrialSetup
from vae_lab.tracking import PlotlyAssets

# Optuna logs every failed trial with a traceback; vae-lab records the reason on the trial and
# its run and shows it in the trials table, so only Optuna's errors reach the terminal.
optuna.logging.set_verbosity(optuna.logging.ERROR)


@dataclass
class WorkerOptions:
    """How a worker process started by `--workers N` joins its siblings' invocation."""

    index: int = 0
    parent_run_id: str | None = None
    device: str | None = None


def run_study(
    spec: StudySpec,
    *,
    n_trials: int | None = None,
    data_path: Path | None = None,
    settings: Settings | None = None,
    observer: StudyObserver | None = None,
    where: str = "study",
    device: str | None = None,
    worker: WorkerOptions | None = None,
    admission: Admission | None = None,
) -> StudyReport:
    """Run (or resume) `spec` and return its trials and champion. See the module docstring.
    `admission`: the result of `admit` when the caller checked already (the CLI does, to print
    the plan's estimate in between)."""
    observer = observer or StudyObserver()
    worker = worker or WorkerOptions()
    if admission is None:
        admission = admit(spec, data_path=data_path, device=worker.device or device, where=where, settings=settings)
    spec = admission.spec
    with StudySession(admission, n_trials, allow_repeats=worker.parent_run_id is None) as session:
        # The stored trials crowned by this spec's rule: a changed rule re-crowns without retraining.
        crowning = session.crown()
        observer.on_study_start(spec, session.remaining, session.done)
        if session.remaining == 0:
            if crowning is not None and crowning.unmet is not None:
                raise crowning.unmet  # one line; the trials and the previous champion stay
            return session.report()
        if worker.parent_run_id:
            session.join_invocation(worker.parent_run_id)
        else:
            session.start_invocation()
        assets = PlotlyAssets(spec.artifacts.plotlyjs, session.parent_run_id)
        setup = TrialSetup(
            spec,
            admission.data,
            session.tracker,
            session.experiment_id,
            session.parent_run_id,
            admission.device,
            assets,
        )
        story = StoryContext(spec, admission.data)
        refresher = ReportRefresher(
            session.tracker, session.parent_run_id, session.study, spec.objective.metric, assets, story
        )
        status = "FAILED"
        try:
            TrialLoop(session, TrialObjective(setup), observer, refresher).run(
                session.remaining, exact=n_trials is not None
            )
            status = "FINISHED"
        except KeyboardInterrupt:
            status = "KILLED"
            raise
        finally:
            refresher.close()
            session.finish_invocation(status)
        if (crowning := session.crown()) is not None and crowning.unmet is not None:
            raise crowning.unmet
        return session.report()
