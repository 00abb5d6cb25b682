"""The multi-machine topology of docker-compose.yml, with native processes.

PostgreSQL holds the Optuna study and the MLflow store, an MLflow tracking server serves
tracking and artifacts, and two workers run the same study against both. Needs PostgreSQL's
server binaries (`initdb`, `pg_ctl`), which CI machines have.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import mlflow
import optuna
import pytest

from tests.conftest import free_port, wait_for_mlflow
from tests.test_cli import VAE_LAB
from vae_lab.config import get_settings
from vae_lab.data import synthesize, write_dataset

pytestmark = pytest.mark.slow


def as_postgres(*command: str, check: bool = True) -> subprocess.CompletedProcess:
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    return subprocess.run([*prefix, *command], check=check, capture_output=True, text=True, timeout=120)


def stop_postgres(data: Path) -> None:
    """Stop a throwaway cluster; if pg_ctl cannot, end its postmaster by pid (never fail a test on it)."""
    stopped = as_postgres("pg_ctl", "-D", str(data), "-m", "immediate", "stop", check=False)
    pid_file = data / "postmaster.pid"
    if stopped.returncode != 0 and pid_file.exists():
        try:
            os.kill(int(pid_file.read_text().split()[0]), 9)
        except (OSError, ValueError, IndexError):
            pass


@pytest.fixture(scope="module")
def postgres(tmp_path_factory):
    if not shutil.which("initdb") or not shutil.which("pg_ctl"):
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    root = tmp_path_factory.mktemp("pg")
    data = root / "data"
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        os.chmod(root, 0o755)
        for parent in root.parents:  # the postgres user must reach its data folder
            if str(parent).startswith(("/tmp", str(tmp_path_factory.getbasetemp()))):
                os.chmod(parent, os.stat(parent).st_mode | 0o755)
    port = free_port()
    as_postgres("initdb", "-D", str(data), "--auth=trust", "-U", "postgres")
    as_postgres("pg_ctl", "-D", str(data), "-l", str(root / "log"), "-w", "-o", f"-p {port} -k {root} -c listen_addresses=127.0.0.1", "start")
    try:
        for database in ("optuna", "mlflow"):
            as_postgres("createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", database)
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}"
    finally:
        stop_postgres(data)


@pytest.fixture
def mlflow_server(postgres, tmp_path):
    port = free_port()
    env = os.environ | {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    python = str(Path(VAE_LAB).with_name("python"))
    server = subprocess.Popen(
        [python, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--backend-store-uri", f"{postgres}/mlflow",
         "--artifacts-destination", str(tmp_path / "artifacts"), "--serve-artifacts"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_mlflow(url)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


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

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    monkeypatch.setenv("VAE_LAB_OPTUNA_STORAGE", f"{postgres}/optuna")
    get_settings.cache_clear()
    write_dataset(synthesize(rows=3000, seed=7), lab / "voxels.parquet")
    (lab / "studies" / "shared.yaml").write_text(KILL_STUDY)
    command = [VAE_LAB, "study", "run", "shared", "--json"]
    workers = [subprocess.Popen(command, cwd=lab, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    victim = running_trial_of_a_worker(lab, "shared", parent_pid=-1)
    victim_pid = victim.user_attrs["worker_pid"]
    os.kill(victim_pid, signal.SIGKILL)
    for worker in workers:
        _, stderr = worker.communicate(timeout=600)
        assert worker.returncode == (-9 if worker.pid == victim_pid else 0), stderr
    again = subprocess.run(command, cwd=lab, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr

    study = optuna.load_study(study_name="shared", storage=f"{postgres}/optuna")
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

    result = json.loads(subprocess.run([VAE_LAB, "evaluate", "shared", "--json"], cwd=lab, capture_output=True, text=True, check=True).stdout)
    assert result["rows"] > 0 and 0.0 <= result["metrics"]["test_f1"] <= 1.0
