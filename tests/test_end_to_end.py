"""A tiny study from YAML to the registry, checked only through the public mlflow and optuna APIs."""

from __future__ import annotations

import csv
import io
import json

import mlflow
import mlflow.pytorch
import optuna
import pytest
import torch
from typer.testing import CliRunner

from tests.conftest import copy_mlflow_store
from vae_lab.cli import app
from vae_lab.config import get_settings
from vae_lab.data import synthesize, write_dataset
from vae_lab.study.trial.storage import open_storage
from vae_lab.tracking import mlflow_key, plain_metrics, plain_name
from vae_lab.training.record import TrialRecord

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
artifacts: {reconstructions: 1, max_points: 200}
"""
TRIAL_FIGURES = {
    "latents_pca.html",
    "reconstructions.html",
    "confusion_matrix.html",
    "kl_per_dimension.html",
    "interpolation.html",
}
EPOCH_METRICS = (
    "train_loss",
    "val_loss",
    "train_kl",
    "val_kl",
    "val_f1",
    "val_tradeoff",
    "train_time_s",
    "val_time_s",
    "val_f1_c1",
    "val_occupancy_precision",
    "val_occupancy_recall",
    "val_occupancy_iou",
    "val_exact_match",
    "val_active_units",
    "val_kl_dim_max",
    "val_kl_dims_used",
    "beta",
)


def run_cli(*args: str) -> dict:
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 0, (result.output, result.exception)
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def finished_study(tmp_path_factory, empty_mlflow_store):
    lab = tmp_path_factory.mktemp("e2e")
    copy_mlflow_store(empty_mlflow_store, lab)
    monkeypatch = pytest.MonkeyPatch()
    for key, value in {
        "MLFLOW_TRACKING_URI": f"sqlite:///{lab / 'mlflow.db'}",
        "VAE_LAB_ARTIFACT_ROOT": str(lab / "mlruns"),
        "VAE_LAB_OPTUNA_STORAGE": str(lab / ".vae-lab" / "optuna.log"),
        "VAE_LAB_CACHE_DIR": str(lab / ".vae-lab" / "cache"),
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(lab)
    get_settings.cache_clear()
    (lab / "studies").mkdir()
    write_dataset(synthesize(rows=2000, seed=1), lab / "voxels.parquet")
    (lab / "studies" / "tiny.yaml").write_text(STUDY)
    report = run_cli("study", "run", "tiny", "--data", str(lab / "voxels.parquet"))
    uri = get_settings().mlflow_tracking_uri
    yield lab, report, mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    monkeypatch.undo()
    get_settings.cache_clear()


def figure_payload(client, run_id: str, name: str) -> dict:
    path = client.download_artifacts(run_id, name)
    html = open(path).read()
    start = html.index('id="vae-lab-figure-data">') + len('id="vae-lab-figure-data">')
    return json.loads(html[start : html.index("</script>", start)])


def test_every_trial_logs_params_metrics_datasets_figures_record_and_model(finished_study):
    lab, report, client = finished_study
    assert [t["state"] for t in report["trials"]] == ["complete"] * 3
    experiment = client.get_experiment_by_name("tiny")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if r.data.tags.get("kind") == "study-invocation"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert len(parents) == 1 and len(children) == 3
    assert {r.data.tags["architecture"] for r in children} == {"fc", "conv", "pointnet"}

    study = optuna.load_study(study_name="tiny", storage=open_storage(get_settings().optuna_storage))
    assert {t.user_attrs["mlflow_run_id"] for t in study.trials} == {r.info.run_id for r in children}

    for run in children:
        assert run.info.status == "FINISHED"
        assert run.data.params["latent_dim"] == "2" and run.data.params["loss"] in {"mse", "set"}
        for metric in EPOCH_METRICS:
            history = client.get_metric_history(run.info.run_id, mlflow_key(metric))
            assert [m.step for m in history] == [0, 1, 2], metric
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert TRIAL_FIGURES | {"trial_record.json"} <= artifacts
        for figure in TRIAL_FIGURES:
            assert figure_payload(client, run.info.run_id, figure)["data"], figure
        record = TrialRecord.model_validate_json(
            open(client.download_artifacts(run.info.run_id, "trial_record.json")).read()
        )
        assert record.study == "tiny" and record.model.architecture == run.data.tags["architecture"]
        contexts = {i.dataset.name: [t.value for t in i.tags] for i in run.inputs.dataset_inputs}
        assert contexts == {"voxels/train": ["training"], "voxels/val": ["validation"]}
        [output] = run.outputs.model_outputs
        model = client.get_logged_model(output.model_id)
        assert model.source_run_id == run.info.run_id
        assert {plain_name(m.key) for m in model.metrics} >= {
            "best_val_f1",
            "best_val_knn_accuracy",
            "best_val_active_units",
        }
        generation = {m.key: m.value for m in model.metrics if m.key.startswith("generation/")}
        assert set(generation) >= {f"generation/gen_{name}" for name in ("validity", "uniqueness", "novelty")}
        assert set(generation) >= {"generation/gen_count_distance", "generation/gen_count_distance_baseline"}
        assert all(0 <= generation[f"generation/gen_{name}"] <= 1 for name in ("validity", "uniqueness", "novelty"))


def test_the_parent_run_holds_the_leaderboard_and_the_study_figures(finished_study):
    lab, report, client = finished_study
    parent = report["parent_run_id"]
    artifacts = {a.path for a in client.list_artifacts(parent)}
    assert {
        "plotly.min.mjs",
        "leaderboard.csv",
        "leaderboard.html",
        "optimization_history.html",
        "intermediate_values.html",
        "parallel_coordinate.html",
    } <= artifacts
    rows = list(csv.DictReader(io.StringIO(open(client.download_artifacts(parent, "leaderboard.csv")).read())))
    assert len(rows) == 3 and {
        "val_tradeoff",
        "val_f1",
        "val_f1_c1",
        "val_kl",
        "val_active_units",
        "val_knn_accuracy",
        "gen_validity",
        "gen_novelty",
        "time_s",
        "architecture",
        "state",
    } <= set(rows[0])
    values = [float(r["val_tradeoff"]) for r in rows]
    assert values == sorted(values, reverse=True)  # best first
    assert figure_payload(client, parent, "optimization_history.html")["data"]


def test_champion_and_best_of_each_family_are_registry_aliases(finished_study):
    lab, report, client = finished_study
    study = optuna.load_study(study_name="tiny", storage=open_storage(get_settings().optuna_storage))
    best = study.best_trial
    version = client.get_model_version_by_alias("tiny", "champion")
    assert version.run_id == best.user_attrs["mlflow_run_id"]
    assert version.tags["best_architecture"] == best.params["architecture"]
    assert version.tags["study"] == "tiny" and version.tags["trial"] == str(best.number)
    assert version.tags["objective"] == "val_tradeoff" and float(version.tags["value"]) == pytest.approx(best.value)
    for trial in study.trials:
        family = client.get_model_version_by_alias("tiny", f"best-{trial.params['architecture']}")
        assert family.run_id == trial.user_attrs["mlflow_run_id"]  # one trial per family here
    shown = run_cli("registry", "show", "tiny")
    assert set(shown["aliases"]) == {"champion", "best-fc", "best-conv", "best-pointnet"}

    mlflow.set_tracking_uri(get_settings().mlflow_tracking_uri)
    mlflow.set_registry_uri(get_settings().mlflow_tracking_uri)
    model = mlflow.pytorch.load_model("models:/tiny@best-conv").eval()
    grid = torch.zeros(1, 11, 11, 11, dtype=torch.uint8)
    grid[0, 5, 5, 5] = 2
    reconstructed = model.reconstruct(grid)
    assert reconstructed.shape == (1, 11, 11, 11)
    assert reconstructed.dtype == torch.int64 and 0 <= int(reconstructed.min()) <= int(reconstructed.max()) <= 4


def test_evaluate_on_val_reproduces_the_champions_best_val_metrics(finished_study):
    lab, report, client = finished_study
    result = run_cli("evaluate", "tiny", "--split", "val")
    run = client.get_run(client.get_model_version_by_alias("tiny", "champion").run_id)
    for name in ("val_f1", "val_loss", "val_kl", "val_occupancy_iou", "val_active_units", "val_knn_accuracy"):
        assert result["metrics"][name] == pytest.approx(
            plain_metrics(run.data.metrics)[f"best_{name}"], rel=1e-5, abs=1e-9
        ), name
    evaluations = client.search_runs(
        [client.get_experiment_by_name("tiny").experiment_id], filter_string="tags.kind = 'evaluation'"
    )
    assert len(evaluations) == 1 and evaluations[0].inputs.dataset_inputs[0].dataset.name == "voxels/val"


def test_rerun_resumes_without_repeating_the_grid(finished_study):
    lab, first, client = finished_study
    again = run_cli("study", "run", "tiny", "--data", str(lab / "voxels.parquet"))
    assert len(again["trials"]) == 3
    status = run_cli("study", "status", "tiny")
    assert [t["number"] for t in status["trials"]] == [0, 1, 2]


def test_evaluate_on_test_logs_an_evaluation_run(finished_study):
    lab, report, client = finished_study
    result = run_cli("evaluate", "tiny", "--split", "test", "--alias", "best-fc")
    assert result["split"] == "test" and result["rows"] > 0 and result["alias"] == "best-fc"
    assert 0.0 <= result["metrics"]["test_f1"] <= 1.0


def test_ui_serves_the_study_runs_and_their_plots(finished_study):
    """`vae-lab ui` starts the MLflow UI on the configured store; its API lists the runs and serves the plots."""
    import subprocess
    import urllib.request

    from tests.conftest import free_port, wait_for_mlflow
    from tests.test_cli import VAE_LAB

    lab, report, client = finished_study
    port = free_port()
    server = subprocess.Popen(
        [VAE_LAB, "ui", "--port", str(port)], cwd=lab, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_mlflow(base)
        body = json.dumps({"experiment_ids": [report["experiment_id"]], "max_results": 50}).encode()
        request = urllib.request.Request(
            f"{base}/api/2.0/mlflow/runs/search", data=body, headers={"Content-Type": "application/json"}
        )
        runs = json.loads(urllib.request.urlopen(request, timeout=30).read())["runs"]
        assert len(runs) >= 1 + len(report["trials"])
        trial_run = report["trials"][0]["mlflow_run_id"]
        page = urllib.request.urlopen(
            f"{base}/get-artifact?path=latents_pca.html&run_uuid={trial_run}", timeout=30
        ).read()
        assert b"<html" in page and b"vae-lab-figure-data" in page
        with urllib.request.urlopen(
            f"{base}/get-artifact?path=plotly.min.mjs&run_uuid={report['parent_run_id']}", timeout=30
        ) as library:
            assert "javascript" in library.headers["Content-Type"]  # browsers refuse to run text/plain
            assert b"Plotly" in library.read(200_000)
    finally:
        server.terminate()
        server.wait(timeout=30)
