"""Several workers on one study with the default local stores (journal file + SQLite)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import mlflow
import optuna
import pytest

from tests.test_cli import VAE_LAB
from vae_lab.config import get_settings
from vae_lab.data import synthesize, write_dataset
from vae_lab.study.trial.storage import open_storage

pytestmark = pytest.mark.slow

STUDY = """
name: pair
data: {path: voxels.parquet}
training: {epochs: 2}
space: {architecture: [fc], latent_dim: [2, 3, 4, 5]}
artifacts: {pca: false, reconstructions: 0, interpolation: false}
"""

LONG_STUDY = """
name: kill
data: {path: voxels.parquet}
training: {epochs: 25, patience: 25}
space: {architecture: [fc], latent_dim: [2, 3, 4, 5, 6, 7]}
artifacts: {pca: false, reconstructions: 0, interpolation: false}
"""


def status(lab, name: str) -> dict:
    return json.loads(
        subprocess.run(
            [VAE_LAB, "study", "status", name, "--json"], cwd=lab, capture_output=True, text=True, check=True
        ).stdout
    )


def test_two_local_workers_share_a_study_and_agree_on_the_champion(lab):
    write_dataset(synthesize(rows=1500, seed=5), lab / "voxels.parquet")
    (lab / "studies" / "pair.yaml").write_text(STUDY)
    workers = [
        subprocess.Popen(
            [VAE_LAB, "study", "run", "pair", "--json"],
            cwd=lab,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=os.environ.copy(),
        )
        for _ in range(2)
    ]
    outputs = [w.communicate(timeout=300) for w in workers]
    for worker, (_, stderr) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, stderr
        assert "Traceback" not in stderr
    complete = [t for t in status(lab, "pair")["trials"] if t["state"] == "complete"]
    assert sorted(t["params"]["latent_dim"] for t in complete) == [2, 3, 4, 5]  # each point once
    best = max(complete, key=lambda t: t["value"])
    shown = json.loads(
        subprocess.run(
            [VAE_LAB, "registry", "show", "pair", "--json"], cwd=lab, capture_output=True, text=True, check=True
        ).stdout
    )
    assert float(shown["tags"]["value"]) == pytest.approx(best["value"])


def running_trial_of_a_worker(lab, name: str, parent_pid: int, seconds: float = 120) -> optuna.trial.FrozenTrial:
    """A RUNNING trial whose worker is a child process (not the parent), with its MLflow run."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            trials = optuna.load_study(study_name=name, storage=open_storage(get_settings().optuna_storage)).trials
        except KeyError:
            trials = []
        for trial in trials:
            pid = trial.user_attrs.get("worker_pid")
            if trial.state.name == "RUNNING" and pid not in (None, parent_pid) and "mlflow_run_id" in trial.user_attrs:
                return trial
        time.sleep(0.3)
    pytest.fail("no worker started a trial")


def test_a_worker_killed_mid_trial_loses_nothing_and_the_same_command_finishes_the_study(lab):
    write_dataset(synthesize(rows=3000, seed=6), lab / "voxels.parquet")
    (lab / "studies" / "kill.yaml").write_text(LONG_STUDY)
    command = [VAE_LAB, "study", "run", "kill", "--workers", "3", "--json"]
    parent = subprocess.Popen(command, cwd=lab, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    victim = running_trial_of_a_worker(lab, "kill", parent.pid)
    os.kill(victim.user_attrs["worker_pid"], signal.SIGKILL)
    stdout, stderr = parent.communicate(timeout=600)
    assert parent.returncode == 0, stderr
    assert "killed by signal 9" in stderr and "Traceback" not in stderr

    again = subprocess.run(command, cwd=lab, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr

    trials = {t["number"]: t for t in status(lab, "kill")["trials"]}
    assert trials[victim.number]["state"] == "failed" and "died" in trials[victim.number]["failure_reason"]
    complete = [t for t in trials.values() if t["state"] == "complete"]
    assert sorted(t["params"]["latent_dim"] for t in complete) == [2, 3, 4, 5, 6, 7]  # every point once
    client = mlflow.MlflowClient(get_settings().mlflow_tracking_uri)
    experiment = client.get_experiment_by_name("kill")
    runs = client.search_runs([experiment.experiment_id])
    assert all(r.info.status != "RUNNING" for r in runs)
    assert client.get_run(victim.user_attrs["mlflow_run_id"]).info.status == "KILLED"
    best = max(complete, key=lambda t: t["value"])
    assert client.get_model_version_by_alias("kill", "champion").run_id == best["mlflow_run_id"]


def test_ctrl_c_stops_every_worker_cleanly_and_the_same_command_resumes(lab):
    write_dataset(synthesize(rows=3000, seed=8), lab / "voxels.parquet")
    (lab / "studies" / "kill.yaml").write_text(LONG_STUDY)
    command = [VAE_LAB, "study", "run", "kill", "--workers", "2", "--json"]
    parent = subprocess.Popen(
        command, cwd=lab, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    running_trial_of_a_worker(lab, "kill", parent.pid)
    os.killpg(parent.pid, signal.SIGINT)  # what Ctrl-C does: every process of the terminal's group
    _, stderr = parent.communicate(timeout=300)
    assert parent.returncode == 130, stderr
    assert "Traceback" not in stderr and "resumes" in stderr

    client = mlflow.MlflowClient(get_settings().mlflow_tracking_uri)
    experiment = client.get_experiment_by_name("kill")
    runs = client.search_runs([experiment.experiment_id])
    assert all(r.info.status != "RUNNING" for r in runs)
    interrupted = [r for r in runs if r.data.tags.get("trial_state") == "INTERRUPTED"]
    assert interrupted and all(r.info.status == "KILLED" for r in interrupted)

    again = subprocess.run(command, cwd=lab, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    complete = [t for t in status(lab, "kill")["trials"] if t["state"] == "complete"]
    assert sorted(t["params"]["latent_dim"] for t in complete) == [2, 3, 4, 5, 6, 7]
