"""A worker on another machine that dies mid-trial: only its heartbeats can tell.

Its trial says it belongs to another host, so no lease or process id on this machine can be
asked; the next `vae-lab study run` must find it by the heartbeat it stopped sending (Optuna's
RDB storage, SQLite here as PostgreSQL in production), fail it, close its MLflow run as KILLED
and train its grid point again.
"""

from __future__ import annotations

import json
import warnings

import mlflow
import optuna
import pytest
import sqlalchemy
from typer.testing import CliRunner

from vae_lab.cli import app
from vae_lab.config import get_settings
from vae_lab.data import synthesize, write_dataset
from vae_lab.study.execution.reaper import HEARTBEAT_REASON
from vae_lab.study.trial.provenance import Owner, RunTag, TrialAttr, TrialOutcome
from vae_lab.study.trial.storage import HEARTBEAT_GRACE_S, open_storage, trial_id_of
from vae_lab.tracking import Tracker

pytestmark = pytest.mark.slow

STUDY = """
name: remote
data: {path: voxels.parquet}
training: {epochs: 1}
space: {architecture: [fc], latent_dim: [2, 3]}
artifacts: {pca: false, reconstructions: 0, interpolation: false}
"""
ELSEWHERE = Owner("a-machine-that-is-not-this-one", 4242)


def study_run(*args: str) -> dict:
    result = CliRunner().invoke(app, ["study", "run", "remote", "--json", *args])
    assert result.exit_code == 0, (result.output, result.exception)
    return json.loads(result.stdout)


def start_trial_elsewhere(storage_url: str, point: dict) -> optuna.trial.FrozenTrial:
    """What a worker on ELSEWHERE leaves behind when its machine is lost mid-trial: the point's
    trial RUNNING under its name, its open MLflow run, and a last heartbeat long ago."""
    storage = open_storage(storage_url)
    study = optuna.load_study(study_name="remote", storage=storage)
    study.enqueue_trial(point)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Heartbeat of storage", UserWarning)  # vae-lab beats itself, not optimize
        trial = study.ask()  # takes the queued point, as a worker does
    tracker = Tracker(get_settings())
    experiment_id = tracker.ensure_experiment(study.study_name)
    run_id = tracker.start_run(experiment_id, f"trial {trial.number}", tags={RunTag.TRIAL: trial.number})
    for key, value in (ELSEWHERE.attrs() | {TrialAttr.RUN_ID: run_id}).items():
        trial.set_user_attr(key, value)
    trial_id = trial_id_of(storage, study.study_name, trial.number)
    storage.record_heartbeat(trial_id)
    # Optuna's heartbeats are rows of its `trial_heartbeats` table; the lost machine's last one
    # is put an hour back (the grace period is HEARTBEAT_GRACE_S).
    engine = sqlalchemy.create_engine(storage_url)
    with engine.begin() as connection:
        connection.execute(
            sqlalchemy.text("UPDATE trial_heartbeats SET heartbeat = datetime('now', '-1 hour') WHERE trial_id = :id"),
            {"id": trial_id},
        )
    engine.dispose()
    assert HEARTBEAT_GRACE_S < 3600
    return study.trials[trial.number]


def test_a_dead_worker_on_another_machine_is_found_by_its_heartbeat_and_its_point_rerun(lab, monkeypatch):
    storage_url = f"sqlite:///{lab / '.vae-lab' / 'optuna.db'}"
    monkeypatch.setenv("VAE_LAB_OPTUNA_STORAGE", storage_url)
    get_settings.cache_clear()
    write_dataset(synthesize(rows=800, seed=4), lab / "voxels.parquet")
    (lab / "studies" / "remote.yaml").write_text(STUDY)
    first = study_run("--n-trials", "1")
    [done] = [t for t in first["trials"] if t["state"] == "complete"]
    [point] = [{"architecture": "fc", "latent_dim": d} for d in (2, 3) if d != done["params"]["latent_dim"]]

    lost = start_trial_elsewhere(storage_url, point)
    assert lost.state.name == "RUNNING" and not Owner.of(lost.user_attrs).is_local

    report = study_run()
    trials = {t.number: t for t in optuna.load_study(study_name="remote", storage=open_storage(storage_url)).trials}
    assert trials[lost.number].state.name == "FAIL"
    rerun = [t for t in trials.values() if t.number > lost.number and t.params == point]
    assert [t.state.name for t in rerun] == ["COMPLETE"]  # its point queued again and trained
    complete = [t for t in report["trials"] if t["state"] == "complete"]
    assert sorted(t["params"]["latent_dim"] for t in complete) == [2, 3]  # every point once

    client = mlflow.MlflowClient(get_settings().mlflow_tracking_uri)
    run = client.get_run(lost.user_attrs[TrialAttr.RUN_ID])
    assert run.info.status == "KILLED"
    assert run.data.tags[RunTag.TRIAL_STATE] == TrialOutcome.WORKER_DIED.value
    assert run.data.tags[RunTag.FAILURE_REASON] == HEARTBEAT_REASON  # found by the heartbeat, not a local check
