"""A tiny study from YAML to the registry, checked only through the public mlflow and optuna APIs."""

from __future__ import annotations

import json

import mlflow
import mlflow.pytorch
import optuna
import pytest
import torch
from typer.testing import CliRunner

from vae_lab.cli import app
from vae_lab.config import get_settings
from vae_lab.data import synthesize, write_dataset
from vae_lab.study.storage import open_storage

pytestmark = pytest.mark.slow

STUDY = """
name: tiny
data: {toy_fraction: 1.0, seed: 0}
sampler: grid
training: {epochs: 3, patience: 5}
space:
  architecture: [fc, conv, pointnet]
  latent_dim: [2]
  beta: [0.1]
artifacts: {reconstructions: 2, max_points: 200}
"""


def run_cli(*args: str) -> dict:
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 0, (result.output, result.exception)
    return json.loads(result.stdout)


@pytest.fixture
def finished_study(lab):
    write_dataset(synthesize(rows=2000, seed=1), lab / "voxels.parquet")
    (lab / "studies" / "tiny.yaml").write_text(STUDY)
    report = run_cli("study", "run", "tiny", "--data", str(lab / "voxels.parquet"))
    return lab, report


def test_study_logs_runs_metrics_artifacts_and_registers_a_champion(finished_study):
    lab, report = finished_study
    assert [t["state"] for t in report["trials"]] == ["COMPLETE"] * 3

    mlflow.set_tracking_uri(get_settings().mlflow_tracking_uri)
    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name("tiny")
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if r.data.tags.get("kind") == "study-invocation"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert len(parents) == 1 and len(children) == 3
    assert {r.data.tags["architecture"] for r in children} == {"fc", "conv", "pointnet"}

    study = optuna.load_study(study_name="tiny", storage=open_storage(get_settings().optuna_storage))
    assert {t.user_attrs["mlflow_run_id"] for t in study.trials} == {r.info.run_id for r in children}

    for run in children:
        assert run.info.status == "FINISHED"
        assert run.data.params["latent_dim"] == "2" and run.data.params["architecture"] in {"fc", "conv", "pointnet"}
        for metric in ("train_loss", "val_loss", "train_kl", "val_kl", "val_f1", "val_tradeoff", "train_time_s", "val_time_s"):
            history = client.get_metric_history(run.info.run_id, metric)
            assert [m.step for m in history] == [0, 1, 2], metric
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"latents_pca.html", "reconstructions.html"} <= artifacts

    best = study.best_trial
    version = client.get_model_version_by_alias("tiny", "champion")
    assert version.run_id == best.user_attrs["mlflow_run_id"]
    assert version.tags["best_architecture"] == best.params["architecture"]
    assert version.tags["study"] == "tiny" and version.tags["trial"] == str(best.number)
    assert version.tags["objective"] == "val_tradeoff" and float(version.tags["value"]) == pytest.approx(best.value)

    model = mlflow.pytorch.load_model("models:/tiny@champion").eval()
    grid = torch.zeros(1, 11, 11, 11, dtype=torch.uint8)
    grid[0, 5, 5, 5] = 2
    reconstructed = model.reconstruct(grid)
    assert reconstructed.shape == (1, 11, 11, 11)
    assert reconstructed.dtype == torch.int64 and 0 <= int(reconstructed.min()) <= int(reconstructed.max()) <= 4


def test_rerun_resumes_without_repeating_the_grid(finished_study):
    lab, first = finished_study
    again = run_cli("study", "run", "tiny", "--data", str(lab / "voxels.parquet"))
    assert len(again["trials"]) == 3
    status = run_cli("study", "status", "tiny")
    assert [t["number"] for t in status["trials"]] == [0, 1, 2]


def test_registry_show_and_evaluate_the_champion(finished_study):
    lab, report = finished_study
    shown = run_cli("registry", "show", "tiny")
    assert shown["alias"] == "champion" and shown["tags"]["study"] == "tiny"
    result = run_cli("evaluate", "tiny", "--split", "test")
    assert result["split"] == "test" and result["rows"] > 0
    assert 0.0 <= result["metrics"]["test_f1"] <= 1.0
    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name("tiny")
    runs = client.search_runs([experiment.experiment_id], filter_string="tags.kind = 'evaluation'")
    assert len(runs) == 1 and runs[0].data.metrics["test_f1"] == pytest.approx(result["metrics"]["test_f1"])


def test_ui_serves_the_study_runs_and_their_plots(finished_study):
    """`vae-lab ui` starts the MLflow UI on the configured store; its API lists the runs and serves the plots."""
    import subprocess
    import urllib.request

    from tests.conftest import free_port, wait_for_mlflow
    from tests.test_cli import VAE_LAB

    lab, report = finished_study
    port = free_port()
    server = subprocess.Popen([VAE_LAB, "ui", "--port", str(port)], cwd=lab, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_mlflow(base)
        body = json.dumps({"experiment_ids": [report["experiment_id"]], "max_results": 50}).encode()
        request = urllib.request.Request(f"{base}/api/2.0/mlflow/runs/search", data=body, headers={"Content-Type": "application/json"})
        runs = json.loads(urllib.request.urlopen(request, timeout=30).read())["runs"]
        assert len(runs) == 1 + len(report["trials"])
        trial_run = report["trials"][0]["mlflow_run_id"]
        page = urllib.request.urlopen(f"{base}/get-artifact?path=latents_pca.html&run_uuid={trial_run}", timeout=30).read()
        assert b"<html" in page and b"plotly" in page.lower()
    finally:
        server.terminate()
        server.wait(timeout=30)
