"""The trial loop: claim a trial, hold it, run the objective, settle how it ended.

`run_trial` is the whole life of one trial in one function (Optuna's own `_run_trial` shape):
claimed (a grid study claims under the lock, so two workers never take the same queued point),
held alive (its owner, its lease, and heartbeats on RDB storages) while the objective runs, and
ended by exactly one `settle` whatever happened. Then the registry is reconciled, the observer
told and the study report refreshed.

The loop sees the open study only through `TrialHost` (`StudySession` is the real one), so it
runs the same under any launcher, and a test can host it without stores.

A trial failure (an error of the kinds in TRIAL_FAILURES, a diverging loss, a NaN objective)
ends that trial and the study goes on; an interrupt, or any other error (a bug, a VaeLabError),
is settled and then stops the worker.
"""

from __future__ import annotations

import itertools
from typing import Any, ContextManager, Protocol

import optuna
from optuna.trial import TrialState

from vae_lab.study.execution import interrupts
from vae_lab.study.execution.events import StudyObserver
from vae_lab.study.execution.settle import ending_of
from vae_lab.study.trial.objective import TrialObjective
from vae_lab.study.trial.provenance import TrialEnding
from vae_lab.training import Callback

# Trial failures that end one trial and let the study go on; anything else is a bug (or a
# VaeLabError) and stops the worker.
TRIAL_FAILURES = (RuntimeError, ValueError, FloatingPointError, ArithmeticError)


class TrialHost(Protocol):
    """What the trial loop needs of an open study."""

    def reap(self, requeue_points: bool = False) -> list[optuna.trial.FrozenTrial]: ...

    def claim(self) -> optuna.Trial | None: ...

    def hold(self, trial: optuna.Trial) -> ContextManager[None]: ...

    def settle(self, trial: optuna.Trial, run_id: str | None, ending: TrialEnding) -> optuna.trial.FrozenTrial: ...

    def crown(self) -> Any: ...

    def finished_count(self) -> int: ...


class Refresher(Protocol):
    def request(self) -> None: ...


class TrialLoop:
    """Runs one worker's trials of a study: `grid` and `planned` say when a study is done."""

    def __init__(
        self,
        host: TrialHost,
        objective: TrialObjective,
        observer: StudyObserver,
        refresher: Refresher,
        *,
        grid: bool,
        planned: int,
    ):
        self.host, self.objective, self.observer, self.refresher = host, objective, observer, refresher
        self.grid, self.planned = grid, planned

    def run(self, count: int, exact: bool) -> None:
        """Run up to `count` trials. `exact` (the user gave --n-trials): exactly that many, a worker's
        share. Otherwise a grid study runs until its queue is empty and a sampled one until the
        study as a whole has its planned trials, counted across every worker."""
        for _ in range(count) if exact or not self.grid else itertools.count():
            if interrupts.last_signal() is not None:
                raise KeyboardInterrupt
            self.host.reap(requeue_points=self.grid)
            trial = self.host.claim()
            if trial is None:
                return
            self.run_trial(trial)
            if not exact and not self.grid and self.host.finished_count() >= self.planned:
                return

    def run_trial(self, trial: optuna.Trial) -> optuna.trial.FrozenTrial:
        """Hold, run and settle one claimed trial; re-raise what must stop the worker."""
        run_id, error = None, None
        with self.host.hold(trial):
            try:
                started = self.objective.start(trial)
                run_id = started.run_id
                self.observer.on_trial_start(trial.number, started.model, started.train)
                ending = TrialEnding.complete(self.objective.fit(trial, started, self._training_callbacks()))
            except (Exception, KeyboardInterrupt) as caught:
                error, ending = caught, ending_of(caught)
            settled = self.host.settle(trial, run_id, ending)
        if error is not None and not isinstance(error, (optuna.TrialPruned, *TRIAL_FAILURES)):
            raise error
        if settled.state == TrialState.COMPLETE:
            self.host.crown()
        self.observer.on_trial_end(settled)
        self.refresher.request()
        return settled

    def _training_callbacks(self) -> list[Callback]:
        callbacks: list[Callback] = [interrupts.StopOnSignal()]
        if (progress := self.observer.training_callback()) is not None:
            callbacks.append(progress)
        return callbacks
