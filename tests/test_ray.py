"""`study run --engine ray` on a multi-node Ray cluster of native processes on PostgreSQL and an
MLflow login server: a node with another vae-lab refused, Ctrl-C on the driver, and a node lost
mid-trial. The refusals and the local instance are in test_ray_local.py.

One Ray cluster serves the module's tests (its start is most of their cost on two cores).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import mlflow
import optuna
import pytest

from tests.ray_helpers import assert_refused, cli, write_study
from tests.services import WORKER, have_postgres, make_account, mlflow_login_server, signed_in, start_postgres
from tests.test_cli import VAE_LAB
from vae_lab.config import get_settings

# --- a cluster of three nodes on shared stores ------------------------------------------------------


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """PostgreSQL, an MLflow login server and a three-node Ray cluster whose nodes have the stores
    and the workers' account in their environment (as a compose file or a KubeRay manifest gives
    them); yields (cluster, the two nodes that may be removed, the stores' environment)."""
    pytest.importorskip("ray", reason="the `ray` extra is not installed (pip install -e '.[ray]')")
    if not have_postgres():
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    from ray.cluster_utils import Cluster

    postgres = start_postgres()
    try:
        with mlflow_login_server(f"{postgres.url}/mlflow", tmp_path_factory.mktemp("mlflow")) as url:
            make_account(url, WORKER, "EDIT")
            stores = {"MLFLOW_TRACKING_URI": url, "VAE_LAB_OPTUNA_STORAGE": f"{postgres.url}/optuna"}
            with pytest.MonkeyPatch.context() as patch:
                for name, value in (stores | signed_in(WORKER)).items():
                    patch.setenv(name, value)
                ray_cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
                try:
                    nodes = [ray_cluster.add_node(num_cpus=1) for _ in range(2)]
                    ray_cluster.wait_for_nodes()
                    yield ray_cluster, nodes, stores
                finally:
                    ray_cluster.shutdown()
    finally:
        postgres.stop()


def use_stores(monkeypatch, stores: dict[str, str]) -> None:
    for name, value in (stores | signed_in(WORKER)).items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()


@pytest.mark.slow
def test_a_node_with_another_vae_lab_is_refused_before_anything_is_written(lab, cluster, monkeypatch):
    ray_cluster, _, stores = cluster
    use_stores(monkeypatch, stores)
    write_study(lab, "versions")
    monkeypatch.setattr("vae_lab.__version__", "0.0.0-driver")  # the driver's only: the nodes import their own
    result = cli("study", "run", "versions", "--engine", "ray", "--ray-address", ray_cluster.address)
    assert_refused(result, "runs vae-lab", "the driver 0.0.0-driver")
    client = mlflow.MlflowClient(stores["MLFLOW_TRACKING_URI"])
    assert client.get_experiment_by_name("versions") is None
    assert "versions" not in [s.study_name for s in optuna.get_all_study_summaries(stores["VAE_LAB_OPTUNA_STORAGE"])]


def running_trial_on(driver, client: mlflow.MlflowClient, study: str, nodes: set[str] | None, timeout_s: float = 600):
    """The first trial run seen RUNNING on one of `nodes` (any node: None), after its first epoch."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if driver.poll() is not None:
            raise AssertionError(f"the driver ended first ({driver.returncode}): {driver.communicate()[1]}")
        experiment = client.get_experiment_by_name(study)
        for run in client.search_runs([experiment.experiment_id]) if experiment else []:
            on = run.data.tags.get("node_id")
            if (
                run.info.status == "RUNNING"
                and on
                and (nodes is None or on in nodes)
                and "losses/val_loss" in run.data.metrics
            ):
                return run
        time.sleep(0.5)
    raise AssertionError(f"no trial of {study} ran on {nodes} within {timeout_s} s")


@pytest.mark.slow
def test_ctrl_c_on_the_driver_stops_every_worker_and_the_same_command_resumes(lab, cluster, monkeypatch):
    ray_cluster, _, stores = cluster
    use_stores(monkeypatch, stores)
    write_study(lab, "halt", dims="2, 3, 4", epochs=20, rows=6000)
    command = [VAE_LAB, "study", "run", "halt", "--engine", "ray", "--workers", "2"]
    command += ["--ray-address", ray_cluster.address, "--json"]
    driver = subprocess.Popen(command, cwd=lab, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    client = mlflow.MlflowClient(stores["MLFLOW_TRACKING_URI"], stores["MLFLOW_TRACKING_URI"])
    running_trial_on(driver, client, "halt", None)
    driver.send_signal(signal.SIGINT)
    _, stderr = driver.communicate(timeout=300)
    assert driver.returncode == 130 and "resumes" in stderr, stderr
    runs = client.search_runs([client.get_experiment_by_name("halt").experiment_id])
    assert not [r.info.run_name for r in runs if r.info.status == "RUNNING"]
    study = optuna.load_study(study_name="halt", storage=stores["VAE_LAB_OPTUNA_STORAGE"])
    stopped = [t for t in study.trials if t.state.name == "FAIL"]
    assert stopped and all("interrupted" in t.user_attrs["failure_reason"] for t in stopped)
    assert {client.get_run(t.user_attrs["mlflow_run_id"]).info.status for t in stopped} == {"KILLED"}

    again = subprocess.run(command, cwd=lab, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    study = optuna.load_study(study_name="halt", storage=stores["VAE_LAB_OPTUNA_STORAGE"])
    assert sorted(t.params["latent_dim"] for t in study.trials if t.state.name == "COMPLETE") == [2, 3, 4]


@pytest.mark.slow
def test_a_grid_over_three_nodes_trains_every_point_once_though_a_node_is_lost(lab, cluster, monkeypatch):
    ray_cluster, nodes, stores = cluster
    use_stores(monkeypatch, stores)
    write_study(lab, "spread", dims="2, 3, 4, 5, 6", epochs=20, rows=6000)  # trials long enough to lose a node in
    command = [VAE_LAB, "study", "run", "spread", "--engine", "ray", "--workers", "3"]
    command += ["--ray-address", ray_cluster.address, "--json"]
    driver = subprocess.Popen(command, cwd=lab, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    client = mlflow.MlflowClient(stores["MLFLOW_TRACKING_URI"], stores["MLFLOW_TRACKING_URI"])
    victim = running_trial_on(driver, client, "spread", {node.node_id for node in nodes})
    ray_cluster.remove_node(next(node for node in nodes if node.node_id == victim.data.tags["node_id"]))
    stdout, stderr = driver.communicate(timeout=900)
    assert driver.returncode == 0, stderr
    assert "progress lines stop" not in stderr  # their queue lives on the head node, whichever node the driver joined
    report = json.loads(stdout)

    study = optuna.load_study(study_name="spread", storage=stores["VAE_LAB_OPTUNA_STORAGE"])
    killed = next(t for t in study.trials if t.user_attrs.get("mlflow_run_id") == victim.info.run_id)
    assert killed.state.name == "FAIL" and "died" in killed.user_attrs["failure_reason"]
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert sorted(t.params["latent_dim"] for t in complete) == [2, 3, 4, 5, 6]  # every point exactly once
    runs = client.search_runs([report["experiment_id"]])
    assert not [r.info.run_name for r in runs if r.info.status == "RUNNING"]
    assert client.get_run(victim.info.run_id).info.status == "KILLED"
    best = max(complete, key=lambda t: t.value)
    assert client.get_model_version_by_alias("spread", "champion").run_id == best.user_attrs["mlflow_run_id"]
    parent = client.get_run(report["parent_run_id"]).data.tags
    assert parent["engine"] == "ray" and parent["ray_address"] == ray_cluster.address
    assert len(parent["ray_nodes"].split(",")) >= 2

    again = subprocess.run(command, cwd=lab, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert len(optuna.load_study(study_name="spread", storage=stores["VAE_LAB_OPTUNA_STORAGE"]).trials) == len(
        study.trials
    )
    assert os.environ["MLFLOW_TRACKING_PASSWORD"] not in stdout + stderr + again.stdout + again.stderr
