"""The one place a trial ends: its Optuna state and its MLflow run, written together.

Every ending goes through `settle`: complete, pruned, failed (an error, a NaN objective, a
diverging loss), interrupted (Ctrl-C, SIGTERM), and killed (its worker died; the reaper settles
it for them). `ending_of` turns what the objective raised into a `TrialEnding`.

Order matters. The failure reason goes on the Optuna trial first (a finished trial takes no more
attributes), then the MLflow run is tagged and closed, and only then is the trial told: a worker
that dies in between leaves a RUNNING trial the reaper will settle, never a finished trial with
a run left open.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import optuna
from optuna.trial import TrialState

from vae_lab.study.trial.provenance import TrialAttr, TrialEnding
from vae_lab.study.trial.storage import trial_id_of
from vae_lab.tracking import Tracker
from vae_lab.training import NonFiniteError

logger = logging.getLogger(__name__)


@dataclass
class TrialBooks:
    """Where a trial's ending is written: the Optuna study (and its storage) and MLflow."""

    study: optuna.Study
    storage: optuna.storages.BaseStorage
    tracker: Tracker

    def trial_id(self, number: int) -> int:
        return trial_id_of(self.storage, self.study.study_name, number)


def ending_of(error: BaseException) -> TrialEnding:
    """The ending of a trial whose objective raised `error`."""
    if isinstance(error, optuna.TrialPruned):
        return TrialEnding.pruned(str(error))
    if isinstance(error, KeyboardInterrupt):
        return TrialEnding.interrupted()
    if isinstance(error, NonFiniteError):
        return TrialEnding.failed(str(error), failed_epoch=error.epoch)
    return TrialEnding.failed(f"{type(error).__name__}: {error}")


def settle(books: TrialBooks, trial: optuna.Trial, run_id: str | None, ending: TrialEnding) -> optuna.trial.FrozenTrial:
    """End a trial this worker runs: reason, MLflow run, then Optuna state; returns the trial as stored."""
    if ending.trial_reason is not None:
        trial.set_user_attr(TrialAttr.FAILURE_REASON, ending.trial_reason)
    if run_id is not None:
        _close_run(books.tracker, run_id, ending)
    if ending.state == TrialState.COMPLETE:
        return books.study.tell(trial, ending.value)
    return books.study.tell(trial, state=ending.state)


def settle_dead(books: TrialBooks, trial: optuna.trial.FrozenTrial, ending: TrialEnding) -> bool:
    """End a trial whose worker died: fail it in Optuna unless it finished meanwhile (True if this
    call failed it), and close its MLflow run if it is still open."""
    failed = False
    if trial.state == TrialState.RUNNING:
        trial_id = books.trial_id(trial.number)
        try:
            books.storage.set_trial_user_attr(trial_id, TrialAttr.FAILURE_REASON, ending.trial_reason)
            failed = books.storage.set_trial_state_values(trial_id, state=TrialState.FAIL)
        except (RuntimeError, ValueError):  # finished by its worker after all
            return False
        if not failed:
            return False
    run_id = trial.user_attrs.get(TrialAttr.RUN_ID)
    if run_id:
        try:
            if books.tracker.run_status(run_id) == "RUNNING":
                _close_run(books.tracker, run_id, ending)
        except Exception as error:  # the run may be gone; the trial's state is what matters
            logger.debug("could not close the run %s of dead trial %s: %s", run_id, trial.number, error)
    return failed or trial.state == TrialState.FAIL


def _close_run(tracker: Tracker, run_id: str, ending: TrialEnding) -> None:
    if tags := ending.run_tags():
        tracker.set_tags(run_id, tags)
    tracker.end_run(run_id, ending.run_status)
