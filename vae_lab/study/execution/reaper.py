"""Dead workers: their trials failed, their MLflow runs closed, their grid points freed.

A worker that dies outright (SIGKILL, a lost machine) cannot settle its trial. Whoever runs next
does, under the study lock: `Liveness` says which trials are dead (leases here, heartbeats for
RDB storages), `settle_dead` fails each and closes its run as KILLED, and a grid study queues its
point again. Invocations whose process died get their parent runs closed as KILLED too.
"""

from __future__ import annotations

import optuna

from vae_lab.study.execution.liveness import Liveness, owner_is_dead
from vae_lab.study.execution.settle import TrialBooks, settle_dead
from vae_lab.study.trial.provenance import INVOCATION_KIND, Owner, RunTag, TrialEnding, invocation_lease_key
from vae_lab.tracking import Tracker

HEARTBEAT_REASON = "the worker stopped sending heartbeats"


class StaleTrialCollector:
    """Optuna's `heartbeat_stale_trial_callback` for heartbeat storages: Optuna has already failed the
    trial; keep it so the reaper settles its run and queues its point again."""

    def __init__(self) -> None:
        self.found: list[optuna.trial.FrozenTrial] = []

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        self.found.append(trial)

    def take(self) -> list[optuna.trial.FrozenTrial]:
        found, self.found = self.found, []
        return found


def reap_dead_trials(
    books: TrialBooks, liveness: Liveness, stale: StaleTrialCollector
) -> list[optuna.trial.FrozenTrial]:
    """Settle the trials of dead workers (under the lock); returns them."""
    liveness.fail_stale_trials(books.study)
    reaped = []
    for trial in stale.take():
        settle_dead(books, trial, TrialEnding.worker_died(HEARTBEAT_REASON))
        reaped.append(trial)
    for trial in liveness.dead_local_trials(books.study):
        reason = f"its worker ({Owner.of(trial.user_attrs).describe()}) died"
        if settle_dead(books, trial, TrialEnding.worker_died(reason)):
            reaped.append(trial)
    return reaped


def reap_dead_invocations(tracker: Tracker, experiment_id: str, storage_url: str, study_name: str) -> int:
    """Close as KILLED the parent runs of invocations on this machine whose process is gone."""
    runs = tracker.client.search_runs(
        [experiment_id],
        filter_string=f"tags.{RunTag.KIND} = '{INVOCATION_KIND}' and attributes.status = 'RUNNING'",
        max_results=200,
    )
    closed = 0
    for run in runs:
        key = invocation_lease_key(run.info.run_id)
        if owner_is_dead(storage_url, study_name, key, Owner.of(run.data.tags)):
            tracker.set_tags(run.info.run_id, {RunTag.FAILURE_REASON: "its process died"})
            tracker.end_run(run.info.run_id, "KILLED")
            closed += 1
    return closed
