"""`study run --engine ray`: the refusals (one line, exit 2, nothing written), a local Ray instance
on the embedded stores, and a multi-node Ray cluster of native processes on PostgreSQL and an
MLflow login server, where a node is lost mid-trial.

One Ray cluster serves the module's cluster tests (its start is most of their cost on two cores).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import mlflow
import optuna
import pytest
from typer.testing import CliRunner

from tests.services import WORKER, have_postgres, make_account, mlflow_login_server, signed_in, start_postgres
from tests.test_cli import VAE_LAB
from vae_lab.cli import app
from vae_lab.config import get_settings
from vae_lab.data import synthesize, write_dataset

GRID = """
name: {name}
data: {{path: voxels.parquet}}
training: {{epochs: {epochs}, patience: {epochs}}}
space: {{architecture: [fc], latent_dim: [{dims}]}}
artifacts: {{pca: false, reconstructions: 0, interpolation: false, plotlyjs: cdn}}
"""


EMPTY_STORES: dict = {}  # lab -> its MLflow store's bytes before the command (the lab starts with an empty one)


def write_study(lab, name: str, dims: str = "2, 3, 4, 5", epochs: int = 1, rows: int = 1500) -> None:
    write_dataset(synthesize(rows=rows, seed=7), lab / "voxels.parquet")
    (lab / "studies" / f"{name}.yaml").write_text(GRID.format(name=name, dims=dims, epochs=epochs))
    EMPTY_STORES[lab] = (lab / "mlflow.db").read_bytes() if (lab / "mlflow.db").exists() else None


def cli(*args: str):
    return CliRunner().invoke(app, list(args))


def assert_refused(result, *words: str) -> None:
    """Exit 2 with one line of error naming `words`, and no traceback."""
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1, result.stderr
    assert all(word in lines[0] for word in words), lines[0]


def nothing_written(lab) -> bool:
    """No Optuna journal was created in the lab and its MLflow store is as it was."""
    store = (lab / "mlflow.db").read_bytes() if (lab / "mlflow.db").exists() else None
    return not (lab / ".vae-lab" / "optuna.log").exists() and store == EMPTY_STORES.get(lab)


# --- refusals before Ray starts --------------------------------------------------------------------


def test_without_ray_the_engine_names_the_install(lab, monkeypatch):
    write_study(lab, "pair")
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError, as without the extra
    assert_refused(cli("study", "run", "pair", "--engine", "ray"), "Ray is not installed", ".[ray]")
    assert nothing_written(lab)


def test_ray_options_without_the_ray_engine_are_refused(lab):
    write_study(lab, "pair")
    assert_refused(cli("study", "run", "pair", "--ray-address", "head:6379"), "only apply with --engine ray")
    assert nothing_written(lab)


def test_a_cluster_refuses_the_embedded_stores(lab, monkeypatch):
    pytest.importorskip("ray", reason="the `ray` extra is not installed (pip install -e '.[ray]')")
    write_study(lab, "pair")
    address = ("--engine", "ray", "--ray-address", "127.0.0.1:1")
    assert_refused(cli("study", "run", "pair", *address), "VAE_LAB_OPTUNA_STORAGE", "PostgreSQL")
    monkeypatch.setenv("VAE_LAB_OPTUNA_STORAGE", "postgresql+psycopg2://lab:secret-pw@127.0.0.1:1/optuna")
    get_settings.cache_clear()
    refused = cli("study", "run", "pair", *address)
    assert_refused(refused, "MLFLOW_TRACKING_URI", "MLflow server")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:1")
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:1")  # the default address, when no --ray-address is given
    get_settings.cache_clear()
    unreachable = cli("study", "run", "pair", "--engine", "ray")
    assert_refused(unreachable, "--ray-address", "no Ray cluster answers at 127.0.0.1:1")
    assert "secret-pw" not in refused.stderr + unreachable.stderr
    assert nothing_written(lab)


# --- a local Ray instance ------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_local_ray_instance_runs_a_grid_on_the_embedded_stores(lab):
    pytest.importorskip("ray", reason="the `ray` extra is not installed (pip install -e '.[ray]')")
    write_study(lab, "pair")
    result = cli("study", "run", "pair", "--engine", "ray", "--workers", "2", "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert sorted(t["state"] for t in report["trials"]) == ["complete"] * 4
    client = mlflow.MlflowClient(get_settings().mlflow_tracking_uri)
    runs = client.search_runs([report["experiment_id"]])
    parent = client.get_run(report["parent_run_id"]).data.tags
    assert (parent["engine"], parent["workers"], parent["ray_address"]) == ("ray", "2", "local")
    trials = [r for r in runs if "trial" in r.data.tags]
    assert {r.data.tags["node_id"] for r in trials} == {parent["ray_nodes"]}  # one node, recorded both ways
    assert {r.data.tags["gpu_ids"] for r in trials} == {"none"}
    assert all(r.info.status == "FINISHED" for r in runs)


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
