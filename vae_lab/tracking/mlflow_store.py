"""Runs, metrics, artifacts and models in MLflow (see the package docstring for the layout)."""

from __future__ import annotations

import fcntl
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow
import numpy as np
import torch
from mlflow.entities import Metric, Param, RunStatus, RunTag

from vae_lab.config import Settings
from vae_lab.models.base import BaseVAE
from vae_lab.training.callbacks import Callback

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from vae_lab.training.trainer import Trainer

# The model is pickled with its class, so reloading needs the same libraries, not a solver run:
# passing them explicitly skips MLflow's ~12 s requirement inference.
MODEL_REQUIREMENTS = [f"torch=={torch.__version__.split('+')[0]}", f"numpy=={np.__version__}", "vae-lab"]


def configure_tracking(settings: Settings) -> None:
    """Point MLflow (tracking and registry) at the configured store, quietly."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    mlflow.set_registry_uri(settings.mlflow_tracking_uri)
    if settings.mlflow_tracking_uri.startswith("sqlite:///"):
        _initialise_sqlite_store(settings.mlflow_tracking_uri)


def _initialise_sqlite_store(uri: str) -> None:
    """Create or migrate the SQLite store under a file lock.

    Several local workers starting at once would otherwise each run MLflow's schema
    migrations on the new file, and all but one crash ("duplicate column name").
    """
    path = Path(uri.removeprefix("sqlite:///"))
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        client = mlflow.MlflowClient()
        client.search_experiments(max_results=1)
        client.search_registered_models(max_results=1)


def _is_database_store(uri: str) -> bool:
    return uri.split(":", 1)[0].split("+", 1)[0] in {"sqlite", "postgresql", "mysql", "mssql"}


def ensure_experiment(name: str, settings: Settings) -> str:
    """The id of the experiment called `name`, created on first use.

    With a database store, artifacts go under `settings.artifact_root` (./mlruns by default);
    with a tracking server the server decides where artifacts live.
    """
    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    location = None
    if _is_database_store(settings.mlflow_tracking_uri):
        location = Path(settings.artifact_root).resolve().as_uri()
    try:
        return client.create_experiment(name, artifact_location=location)
    except mlflow.exceptions.MlflowException:
        # Another worker created it between our lookup and create.
        return client.get_experiment_by_name(name).experiment_id


def start_run(experiment_id: str, run_name: str, *, parent_run_id: str | None = None, tags: dict[str, Any] | None = None, params: dict[str, Any] | None = None) -> str:
    """Create a run (nested under `parent_run_id` if given) and return its id; it is not made active."""
    client = mlflow.MlflowClient()
    all_tags = {k: str(v) for k, v in (tags or {}).items()}
    if parent_run_id:
        all_tags["mlflow.parentRunId"] = parent_run_id
    run = client.create_run(experiment_id, run_name=run_name, tags=all_tags)
    if params:
        client.log_batch(run.info.run_id, params=[Param(k, str(v)) for k, v in params.items()])
    return run.info.run_id


def end_run(run_id: str, status: str = "FINISHED") -> None:
    """Close a run as FINISHED, FAILED or KILLED (pruned and interrupted trials are KILLED)."""
    mlflow.MlflowClient().set_terminated(run_id, status=RunStatus.to_string(RunStatus.from_string(status)))


def log_metrics(run_id: str, metrics: dict[str, float], step: int | None = None) -> None:
    now = int(time.time() * 1000)
    batch = [Metric(k, float(v), now, step or 0) for k, v in metrics.items()]
    mlflow.MlflowClient().log_batch(run_id, metrics=batch)


def set_tags(run_id: str, tags: dict[str, Any]) -> None:
    mlflow.MlflowClient().log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])


class MlflowEpochLogger(Callback):
    """Log each epoch's metrics to a run, with step = epoch."""

    def __init__(self, run_id: str):
        self.run_id = run_id

    def on_epoch_end(self, trainer: "Trainer", epoch: int, metrics: dict[str, float]) -> None:
        log_metrics(self.run_id, metrics, step=epoch)


def log_figure(run_id: str, figure: "go.Figure", artifact_file: str, plotlyjs: str = "embed") -> None:
    """Save a plotly figure as an HTML artifact that opens in the MLflow UI.

    "embed" puts plotly.js (~3.5 MB) in the file so the plot renders offline, as most lab
    machines are; "cdn" keeps files small but needs the browser to reach the internet.
    """
    html = figure.to_html(include_plotlyjs=True if plotlyjs == "embed" else "cdn", full_html=True)
    mlflow.MlflowClient().log_text(run_id, html, artifact_file)


def log_model(run_id: str, model: BaseVAE, name: str = "model") -> str:
    """Log the trained model to the run; returns its model URI for registration.

    Pickle format keeps the whole `BaseVAE` (predict_grid, forward_batch) on reload; the input
    example documents the tensor a dense family reads.
    """
    import mlflow.pytorch

    model = model.eval()
    example = None
    if model.input_kind == "dense":
        x, _ = model.inputs(model.example_input(batch_size=1))
        example = x.numpy()
    # MLflow tries to serve the example through pyfunc, which expects a single output tensor; a
    # VAE returns several, so it warns. The warning is expected and says nothing to the user.
    mlflow_logger = logging.getLogger("mlflow")
    level = mlflow_logger.level
    mlflow_logger.setLevel(logging.ERROR)
    try:
        with mlflow.start_run(run_id=run_id, nested=True):
            info = mlflow.pytorch.log_model(
                model,
                name=name,
                pip_requirements=MODEL_REQUIREMENTS,
                serialization_format="pickle",
                input_example=example,
            )
    finally:
        mlflow_logger.setLevel(level)
    return info.model_uri
