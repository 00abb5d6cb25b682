"""Dead workers: their trials failed, their MLflow runs closed, their grid points freed.

A worker that dies outright (SIGKILL, a lost machine) cannot clean up. Whoever runs next does:
local workers are judged by their leases (`coordination.owner_is_dead`), workers elsewhere by
Optuna's heartbeats (RDB storages). Their trials become FAIL with the reason, and their trial
runs and invocation runs are closed as KILLED, so nothing stays RUNNING.
"""

from __future__ import annotations

import warnings

import optuna

from vae_lab.study.coordination import dead_trials, fail_trial, owner_is_dead
from vae_lab.tracking import Tracker


class StaleTrialCloser:
    """Optuna's heartbeat callback (RDB storages): close the dead trial's MLflow run, and keep
    the trial so the reaper can queue its grid point again."""

    def __init__(self, tracker: Tracker):
        self.tracker = tracker
        self.found: list[optuna.trial.FrozenTrial] = []

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        close_dead_run(self.tracker, trial, "the worker stopped sending heartbeats")
        self.found.append(trial)


def close_dead_run(tracker: Tracker, trial: optuna.trial.FrozenTrial, reason: str) -> None:
    run_id = trial.user_attrs.get("mlflow_run_id")
    if not run_id:
        return
    try:
        if tracker.run_status(run_id) == "RUNNING":
            tracker.set_tags(run_id, {"trial_state": "WORKER_DIED", "failure_reason": reason})
            tracker.end_run(run_id, "KILLED")
    except Exception:  # the run may be gone; the trial's state is what matters
        pass


def reap_dead_trials(study: optuna.Study, storage_url: str, tracker: Tracker, stale: StaleTrialCloser | None = None) -> list[optuna.trial.FrozenTrial]:
    """Fail the trials of dead workers and close their runs (under the lock); returns them.

    Local workers are judged by their leases; with an RDB storage, Optuna's heartbeat check
    also fails stale trials of workers on other machines (its callback closes their runs).
    """
    if _heartbeat_enabled(study):
        from optuna.storages import fail_stale_trials

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fail_stale_trials(study)
    reaped = list(stale.found) if stale else []
    if stale:
        stale.found.clear()
    for trial in dead_trials(study, storage_url):
        reason = f"its worker (pid {trial.user_attrs.get('worker_pid', '?')} on {trial.user_attrs.get('worker_host', '?')}) died"
        if fail_trial(study, trial, reason):
            close_dead_run(tracker, trial, reason)
            reaped.append(trial)
    return reaped


def reap_dead_invocations(tracker: Tracker, experiment_id: str, storage_url: str, study_name: str) -> int:
    """Close as KILLED the parent runs of invocations on this machine whose process is gone."""
    runs = tracker.client.search_runs([experiment_id], filter_string="tags.kind = 'study-invocation' and attributes.status = 'RUNNING'", max_results=200)
    closed = 0
    for run in runs:
        if owner_is_dead(storage_url, study_name, f"run-{run.info.run_id}", run.data.tags):
            tracker.set_tags(run.info.run_id, {"failure_reason": "its process died"})
            tracker.end_run(run.info.run_id, "KILLED")
            closed += 1
    return closed


def _heartbeat_enabled(study: optuna.Study) -> bool:
    from optuna.storages._heartbeat import is_heartbeat_enabled

    return is_heartbeat_enabled(study._storage)
