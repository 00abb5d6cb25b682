"""The multi-machine topology of docker-compose.yml, with native processes.

PostgreSQL holds the Optuna study and the MLflow store, an MLflow tracking server serves
tracking and artifacts, and two workers run the same study against both. Needs PostgreSQL's
server binaries (`initdb`, `pg_ctl`), which CI machines have.
"""

from __future__ import annotations

import json
import os
import subprocess

import mlflow
import optuna
import pytest

from tests.services import ADMIN, READER, WORKER, signed_in
from tests.test_cli import VAE_LAB
from vae_lab.config import get_settings
from vae_lab.data import synthesize, write_dataset

pytestmark = pytest.mark.slow


@pytest.fixture
def mlflow_server(login_server, monkeypatch):
    """The session's `mlflow server --app-name basic-auth` on PostgreSQL, as docker-compose.yml
    runs it; this process (and the workers it starts) signs in with the workers' account."""
    for name, value in signed_in(WORKER).items():
        monkeypatch.setenv(name, value)
    return login_server.url


KILL_STUDY = """
name: shared
data: {path: voxels.parquet}
training: {epochs: 25, patience: 25}
space: {architecture: [fc], latent_dim: [2, 3, 4, 5, 6]}
artifacts: {pca: true, reconstructions: 1, interpolation: false, plotlyjs: shared}
"""


def test_three_workers_on_postgres_and_a_tracking_server_survive_a_sigkill(lab, postgres, mlflow_server, monkeypatch):
    """The docker-compose topology with native processes: three workers (as if on three
    machines) run one grid study; one is SIGKILLed mid-trial; the same command again finishes it."""
    import signal

    from tests.study.test_workers import running_trial_of_a_worker

    optuna_url = postgres.new_database("optuna")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    monkeypatch.setenv("VAE_LAB_OPTUNA_STORAGE", optuna_url)
    get_settings.cache_clear()
    write_dataset(synthesize(rows=3000, seed=7), lab / "voxels.parquet")
    (lab / "studies" / "shared.yaml").write_text(KILL_STUDY)
    command = [VAE_LAB, "study", "run", "shared", "--json"]
    workers = [
        subprocess.Popen(command, cwd=lab, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)
    ]
    try:
        victim = running_trial_of_a_worker(lab, "shared", parent_pid=-1, seconds=300)  # three cold starts
        victim_pid = victim.user_attrs["worker_pid"]
        os.kill(victim_pid, signal.SIGKILL)
        for worker in workers:
            _, stderr = worker.communicate(timeout=600)
            assert worker.returncode == (-9 if worker.pid == victim_pid else 0), stderr
    finally:
        for worker in workers:  # a failed test leaves no worker writing to the session's server
            if worker.poll() is None:
                worker.kill()
                worker.communicate()
    again = subprocess.run(command, cwd=lab, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr

    study = optuna.load_study(study_name="shared", storage=optuna_url)
    states = {t.number: t.state.name for t in study.trials}
    assert states[victim.number] == "FAIL"
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert sorted(t.params["latent_dim"] for t in complete) == [2, 3, 4, 5, 6]  # every point exactly once

    client = mlflow.MlflowClient(tracking_uri=mlflow_server, registry_uri=mlflow_server)
    experiment = client.get_experiment_by_name("shared")
    runs = client.search_runs([experiment.experiment_id])
    running = [(r.info.run_name, dict(r.data.tags)) for r in runs if r.info.status == "RUNNING"]
    assert not running, running
    assert client.get_run(victim.user_attrs["mlflow_run_id"]).info.status == "KILLED"
    trial_runs = {r.info.run_id for r in runs if r.data.tags.get("trial")}
    assert {t.user_attrs["mlflow_run_id"] for t in complete} <= trial_runs
    assert "latents_pca.html" in {a.path for a in client.list_artifacts(complete[0].user_attrs["mlflow_run_id"])}
    best = max(complete, key=lambda t: t.value)
    assert client.get_model_version_by_alias("shared", "champion").run_id == best.user_attrs["mlflow_run_id"]

    result = json.loads(
        subprocess.run(
            [VAE_LAB, "evaluate", "shared", "--json"], cwd=lab, capture_output=True, text=True, check=True
        ).stdout
    )
    assert result["rows"] > 0 and 0.0 <= result["metrics"]["test_f1"] <= 1.0


LOCKED_STUDY = """
name: locked
data: {path: voxels.parquet}
training: {epochs: 1}
space: {architecture: [fc], latent_dim: [2, 3]}
artifacts: {pca: true, reconstructions: 0, interpolation: false, plotlyjs: cdn}
"""


def stores_snapshot(optuna_url: str, url: str) -> dict:
    """Everything a study writes: its Optuna trials and every MLflow experiment, run and version."""
    studies = optuna.get_all_study_summaries(storage=optuna_url)
    trials = {
        s.study_name: [
            (t.number, t.state.name) for t in optuna.load_study(study_name=s.study_name, storage=optuna_url).trials
        ]
        for s in studies
    }
    client = mlflow.MlflowClient(tracking_uri=url, registry_uri=url)
    experiments = client.search_experiments()
    runs = sorted((r.info.run_id, r.info.status) for r in client.search_runs([e.experiment_id for e in experiments]))
    versions = sorted((v.name, v.version) for v in client.search_model_versions())
    return {"trials": trials, "experiments": sorted(e.name for e in experiments), "runs": runs, "versions": versions}


def test_only_the_workers_account_writes_to_a_server_with_a_login(lab, postgres, mlflow_server, monkeypatch):
    """With the workers' account a study runs; without credentials, with a wrong password or as a
    read-only user the same study stops in one line and neither store changes; an anonymous
    HTTP client is refused by the REST API and the artifact routes."""
    import requests

    optuna_url = postgres.new_database("optuna")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    monkeypatch.setenv("VAE_LAB_OPTUNA_STORAGE", optuna_url)
    get_settings.cache_clear()
    write_dataset(synthesize(rows=800, seed=3), lab / "voxels.parquet")
    (lab / "studies" / "locked.yaml").write_text(LOCKED_STUDY)
    first = subprocess.run(
        [VAE_LAB, "study", "run", "locked", "--n-trials", "1", "--json"],
        cwd=lab,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert first.returncode == 0, first.stderr

    for name, value in signed_in(ADMIN).items():  # the snapshot sees everything
        monkeypatch.setenv(name, value)
    before = stores_snapshot(optuna_url, mlflow_server)
    assert len(before["trials"]["locked"]) == 1 and before["runs"]
    # The trial's system metrics reached the server as its own metrics did: with the workers' login.
    reader = mlflow.MlflowClient(tracking_uri=mlflow_server)
    assert any(key.startswith("system/") for run_id, _ in before["runs"] for key in reader.get_run(run_id).data.metrics)
    without = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")}
    attempts = {
        "no credentials": (without | {"NETRC": "/nonexistent"}, "wants a login and none was given (HTTP 401)"),
        "wrong password": (
            without | signed_in((WORKER[0], "not-" + WORKER[1])),
            "refused the credentials of user 'worker' (HTTP 401)",
        ),
        "read-only user": (
            without | signed_in(READER),
            "would not allow user 'reader' to write runs to experiment 'locked' (HTTP 403",
        ),
    }
    for attempt, (env, said) in attempts.items():
        done = subprocess.run(
            [VAE_LAB, "study", "run", "locked"], cwd=lab, env=env, capture_output=True, text=True, timeout=600
        )
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        assert done.returncode == 2, f"{attempt}: exit {done.returncode}\n{done.stderr[-2000:]}"
        assert len(lines) == 1 and said in lines[0], f"{attempt}: {done.stderr}"
        assert WORKER[1] not in done.stderr and READER[1] not in done.stderr
    assert stores_snapshot(optuna_url, mlflow_server) == before

    client = mlflow.MlflowClient(tracking_uri=mlflow_server)
    experiment_id = client.get_experiment_by_name("locked").experiment_id
    run_id = client.search_runs([experiment_id], "tags.trial = '0'")[0].info.run_id
    artifact = "latents_pca.html"
    assert artifact in {a.path for a in client.list_artifacts(run_id)}  # the admin may read it
    anonymous = requests.Session()
    anonymous.trust_env = False  # no netrc, no proxy: a stranger on the network
    for path, params in (
        ("/api/2.0/mlflow/experiments/search", {"max_results": 1}),
        ("/api/2.0/mlflow/runs/get", {"run_id": run_id}),
        ("/get-artifact", {"path": artifact, "run_id": run_id}),
        (f"/api/2.0/mlflow-artifacts/artifacts/{experiment_id}/{run_id}/artifacts/{artifact}", {}),
        ("/ajax-api/2.0/mlflow/registered-models/search", {}),
    ):
        answer = anonymous.get(f"{mlflow_server}{path}", params=params, timeout=30)
        assert answer.status_code == 401, (path, answer.status_code)
    worker = requests.get(f"{mlflow_server}/api/2.0/mlflow/users/current", auth=WORKER, timeout=30).json()["user"]
    assert worker["username"] == WORKER[0] and worker["is_admin"] is False
