"""Liveness: leases tell a live local worker from a dead one, heartbeats do it for RDB storages."""

from __future__ import annotations

import subprocess
import time
import warnings

import optuna
import pytest
from optuna.trial import TrialState

from vae_lab.study.execution.liveness import Lease, Liveness, lease_is_free, lease_path, owner_is_dead
from vae_lab.study.execution.reaper import StaleTrialCollector
from vae_lab.study.trial.provenance import HOST, Owner, invocation_lease_key, trial_lease_key
from vae_lab.study.trial.storage import open_storage

optuna.logging.set_verbosity(optuna.logging.ERROR)


@pytest.fixture
def url(tmp_path):
    return str(tmp_path / "optuna.log")


def dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_a_held_lease_is_busy_a_released_one_is_gone(url):
    lease = Lease(url, "s", trial_lease_key(3))
    assert lease_is_free(url, "s", "3") is False
    lease.release()
    lease.release()  # twice is harmless: settle and the loop's finally may both get here
    assert lease_is_free(url, "s", "3") is None


def test_a_lease_file_nobody_holds_means_its_process_died(url):
    path = lease_path(url, "s", invocation_lease_key("abc"))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()  # what a SIGKILLed worker leaves: the file, no lock on it
    assert lease_is_free(url, "s", "run-abc") is True
    assert owner_is_dead(url, "s", "run-abc", Owner(HOST, None))


def test_without_a_lease_file_the_pid_decides_and_remote_owners_are_never_judged_here(url):
    assert owner_is_dead(url, "s", "7", Owner(HOST, dead_pid()))
    assert not owner_is_dead(url, "s", "7", Owner.this_process())
    assert not owner_is_dead(url, "s", "7", Owner("another-machine", dead_pid()))


def running_trial(study: optuna.Study, owner: Owner | None) -> optuna.Trial:
    trial = study.ask()
    for key, value in (owner.attrs() if owner else {}).items():
        trial.set_user_attr(key, value)
    return trial


def test_dead_local_trials_are_those_whose_worker_is_gone(url):
    storage = open_storage(url)
    study = optuna.create_study(study_name="s", storage=storage)
    liveness = Liveness(storage, url, "s")
    dead = running_trial(study, Owner(HOST, dead_pid()))
    alive = running_trial(study, Owner.this_process())
    held = running_trial(study, Owner(HOST, dead_pid()))
    remote = running_trial(study, Owner("another-machine", 1))
    unowned = running_trial(study, None)  # just created: within the grace period
    with liveness.hold(held):
        found = {t.number for t in liveness.dead_local_trials(study)}
    assert found == {dead.number}
    assert {alive.number, remote.number, unowned.number}.isdisjoint(found)
    assert lease_is_free(url, "s", trial_lease_key(held.number)) is None  # hold released it


def test_journal_storages_have_no_heartbeats(url):
    liveness = Liveness(open_storage(url), url, "s")
    assert liveness.heartbeat_interval_s is None
    liveness.fail_stale_trials(optuna.create_study())  # a no-op, not an error


@pytest.mark.slow  # seconds of real training, processes or waiting: `make test`, not the edit loop
def test_a_trial_whose_heartbeats_stop_is_failed_and_reported(tmp_path):
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    found = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeats are "experimental"
        storage = optuna.storages.RDBStorage(
            url, heartbeat_interval=1, grace_period=2, heartbeat_stale_trial_callback=lambda s, t: found.append(t)
        )
    study = optuna.create_study(study_name="s", storage=storage)
    liveness = Liveness(storage, url, "s")
    assert liveness.heartbeat_interval_s == 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "heartbeats are meant for Study.optimize": the loop beats itself
        trial = study.ask()
    with liveness.hold(trial):
        time.sleep(3)  # past the grace period, but beating
        liveness.fail_stale_trials(study)
        assert study.trials[trial.number].state == TrialState.RUNNING and not found
    time.sleep(3)  # silent now, as a killed worker is
    liveness.fail_stale_trials(study)
    assert study.trials[trial.number].state == TrialState.FAIL
    assert [t.number for t in found] == [trial.number]


def test_a_database_storage_hands_optuna_the_stale_trial_callback(tmp_path):
    """Under the test config's warnings-as-errors, Optuna's deprecated `failed_trial_callback` would fail here."""
    collector = StaleTrialCollector()
    storage = open_storage(f"sqlite:///{tmp_path / 'optuna.db'}", on_stale_trial=collector)
    assert storage.get_heartbeat_stale_trial_callback() is collector
