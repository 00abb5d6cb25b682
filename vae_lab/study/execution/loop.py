"""The trial loop: claim a trial, hold it, run the objective, settle how it ended.

`run_trial` is the whole life of one trial in one function (Optuna's own `_run_trial` shape):
claimed by `study.ask()` (a grid study claims under the lock, so two workers never take the
same queued point), held alive (`Liveness.hold`: its lease, and heartbeats on RDB storages)
while the objective runs, and ended by exactly one `settle` whatever happened. Then the
registry is reconciled, the observer told and the study report refreshed.

A trial failure (an error of the kinds in TRIAL_FAILURES, a diverging loss, a NaN objective)
ends that trial and the study goes on; an interrupt, or any other error (a bug, a VaeLabError),
is settled and then stops the worker.
"""

from __future__ import annotations

import itertools
import warnings

import optuna
from optuna.trial import TrialState

from vae_lab.study.execution import interrupts
from vae_lab.study.execution.events import StudyObserver
from vae_lab.study.execution.queue import finished_count, waiting_count
from vae_lab.study.execution.report import ReportRefresher
from vae_lab.study.execution.session import StudySession
from vae_lab.study.execution.settle import ending_of, settle
from vae_lab.study.trial.objective import TrialObjective
from vae_lab.study.trial.provenance import Owner, TrialEnding
from vae_lab.training import Callback

# Trial failures that end one trial and let the study go on; anything else is a bug (or a
# VaeLabError) and stops the worker.
TRIAL_FAILURES = (RuntimeError, ValueError, FloatingPointError, ArithmeticError)


class TrialLoop:
    """Runs one worker's trials of an open session."""

    def __init__(
        self, session: StudySession, objective: TrialObjective, observer: StudyObserver, refresher: ReportRefresher
    ):
        self.session, self.objective, self.observer, self.refresher = session, objective, observer, refresher

    def run(self, count: int, exact: bool) -> None:
        """Run up to `count` trials. `exact` (the user gave --n-trials): exactly that many, a worker's
        share. Otherwise a grid study runs until its queue is empty and a sampled one until the
        study as a whole has its planned trials, counted across every worker."""
        study, spec = self.session.study, self.session.spec
        for _ in range(count) if exact or spec.sampler != "grid" else itertools.count():
            if interrupts.last_signal() is not None:
                raise KeyboardInterrupt
            self.session.reap(requeue_points=spec.sampler == "grid")
            trial = self._claim()
            if trial is None:
                return
            self.run_trial(trial)
            if not exact and spec.sampler != "grid" and finished_count(study) >= spec.planned_trials:
                return

    def _claim(self) -> optuna.Trial | None:
        """The next trial: a queued grid point (None when the queue is empty), or a new sample."""
        study = self.session.study
        if self.session.spec.sampler != "grid":
            return _ask(study)
        with self.session.lock:
            return _ask(study) if waiting_count(study) else None

    def run_trial(self, trial: optuna.Trial) -> optuna.trial.FrozenTrial:
        """Hold, run and settle one claimed trial; re-raise what must stop the worker."""
        run_id, error = None, None
        with self.session.liveness.hold(trial):
            for key, value in Owner.this_process().attrs().items():
                trial.set_user_attr(key, value)
            try:
                started = self.objective.start(trial)
                run_id = started.run_id
                self.observer.on_trial_start(trial.number, started.model, started.train)
                ending = TrialEnding.complete(self.objective.fit(trial, started, self._training_callbacks()))
            except (Exception, KeyboardInterrupt) as caught:
                error, ending = caught, ending_of(caught)
            settled = settle(self.session.books, trial, run_id, ending)
        if error is not None and not isinstance(error, (optuna.TrialPruned, *TRIAL_FAILURES)):
            raise error
        if settled.state == TrialState.COMPLETE:
            self.session.crown()
        self.observer.on_trial_end(settled)
        self.refresher.request()
        return settled

    def _training_callbacks(self) -> list[Callback]:
        callbacks: list[Callback] = [interrupts.StopOnSignal()]
        if (progress := self.observer.training_callback()) is not None:
            callbacks.append(progress)
        return callbacks


def _ask(study: optuna.Study) -> optuna.Trial:
    with warnings.catch_warnings():
        # Optuna warns that heartbeats are meant for Study.optimize; this loop beats itself
        # (Liveness.hold), as Study.optimize would.
        warnings.filterwarnings("ignore", message="Heartbeat of storage")
        return study.ask()
