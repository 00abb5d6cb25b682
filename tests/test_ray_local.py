"""`study run --engine ray` on one machine: the refusals before Ray starts (one line, exit 2,
nothing written) and a local Ray instance on the embedded stores, end to end. The multi-node
cluster tests are in test_ray.py (a file of their own, so pytest-xdist runs the two files on
different workers)."""

from __future__ import annotations

import json
import sys

import mlflow
import pytest

from tests.ray_helpers import assert_refused, cli, nothing_written, write_study
from vae_lab.config import get_settings

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
