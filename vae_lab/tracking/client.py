"""`Tracker`: one MLflow client built from the settings, and the run API vae-lab uses.

Nothing here reads or sets MLflow's process-wide tracking URI: the client is made from
`Settings` and passed to whoever logs (studies, evaluation, the registry), so two labs in one
process (as in the tests) never see each other's runs.
"""

from __future__ import annotations

import io
import json
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow
from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param, RunStatus, RunTag
from mlflow.exceptions import MlflowException

from vae_lab.config import Settings, is_database_uri, sqlite_path
from vae_lab.data.reference import SPLIT_CONTEXT, DataRef
from vae_lab.tracking.metric_names import mlflow_key, plain_metrics
from vae_lab.tracking.plotly_html import PageParts, PlotlyAssets, figure_html
from vae_lab.tracking.sqlite_store import PatientClient, initialise_sqlite_store

if TYPE_CHECKING:
    import pandas as pd
    import plotly.graph_objects as go

# The experiment tag MLflow's UI reads to open an experiment in its model-training view rather
# than the GenAI one (`ExperimentKind.CUSTOM_MODEL_DEVELOPMENT` in MLflow's UI sources).
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
# Bounded retries for a tracking server: MLflow's defaults (7 retries with backoff, 120 s per
# request) can hang a worker for many minutes on a dead server. The user's values win.
HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "4",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}


def quiet_mlflow() -> None:
    """MLflow's info logs and progress bars are noise in a terminal that shows our own."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    for name, value in HTTP_DEFAULTS.items():
        os.environ.setdefault(name, value)
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)


class Tracker:
    """Runs, metrics, tags, artifacts and datasets, through one `MlflowClient`."""

    def __init__(self, settings: Settings):
        quiet_mlflow()
        self.settings = settings
        self.uri = settings.mlflow_tracking_uri
        sqlite_file = sqlite_path(self.uri)
        if sqlite_file is not None:
            initialise_sqlite_store(self.uri, sqlite_file)  # before any client opens the file: it may migrate it
            self.client = PatientClient(mlflow.MlflowClient(tracking_uri=self.uri, registry_uri=self.uri))
        else:
            self.client = mlflow.MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)

    # --- experiments and runs -------------------------------------------------------------------

    def ensure_experiment(self, name: str) -> str:
        """The id of the experiment called `name`, created on first use, in the UI's training view.

        With a database store, artifacts go under `settings.artifact_root` (./mlruns by default);
        with a tracking server the server decides where artifacts live.
        """
        experiment = self.client.get_experiment_by_name(name)
        if experiment is None:
            location = Path(self.settings.artifact_root).resolve().as_uri() if is_database_uri(self.uri) else None
            try:
                return self.client.create_experiment(
                    name, artifact_location=location, tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND}
                )
            except MlflowException:
                experiment = self.client.get_experiment_by_name(name)  # another worker made it first
                if experiment is None:
                    raise
        if experiment.tags.get(EXPERIMENT_KIND_TAG) != EXPERIMENT_KIND:
            self.client.set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
        return experiment.experiment_id

    def start_run(
        self,
        experiment_id: str,
        run_name: str,
        *,
        parent_run_id: str | None = None,
        tags: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
    ) -> str:
        """Create a run (nested under `parent_run_id` if given) and return its id; it is not made active."""
        all_tags = {k: str(v) for k, v in (tags or {}).items()}
        if parent_run_id:
            all_tags["mlflow.parentRunId"] = parent_run_id
        run = self.client.create_run(experiment_id, run_name=run_name, tags=all_tags)
        if params:
            self.log_params(run.info.run_id, params)
        return run.info.run_id

    def end_run(self, run_id: str, status: str = "FINISHED") -> None:
        """Close a run as FINISHED, FAILED or KILLED (pruned and interrupted trials are KILLED)."""
        self.client.set_terminated(run_id, status=RunStatus.to_string(RunStatus.from_string(status)))

    def run_status(self, run_id: str) -> str:
        return self.client.get_run(run_id).info.status

    # --- values ---------------------------------------------------------------------------------

    def log_params(self, run_id: str, params: dict[str, Any]) -> None:
        items = [Param(k, str(v)) for k, v in params.items()]
        for start in range(0, len(items), 100):  # MLflow takes at most 100 params per batch
            self.client.log_batch(run_id, params=items[start : start + 100])

    def log_metrics(
        self,
        run_id: str,
        metrics: dict[str, float],
        step: int | None = None,
        *,
        model_id: str | None = None,
        dataset: tuple[str, str] | None = None,
    ) -> None:
        """Log finite metrics at `step` (0 if None), optionally linked to a logged model and a dataset.
        The one place metric names meet MLflow: each goes under its chart section (see `metric_names`)."""
        now = int(time.time() * 1000)
        name, digest = dataset or (None, None)
        batch = [
            Metric(mlflow_key(k), float(v), now, step or 0, model_id=model_id, dataset_name=name, dataset_digest=digest)
            for k, v in metrics.items()
            if v is not None
        ]
        if batch:
            self.client.log_batch(run_id, metrics=batch)

    def run_metrics(self, run_id: str) -> dict[str, float]:
        """A run's latest metrics under vae-lab's plain names (`best_val_f1`, `val_f1`)."""
        return plain_metrics(self.client.get_run(run_id).data.metrics)

    def metric_history(self, run_id: str, name: str) -> list[tuple[int, float]]:
        """(step, value) of every logged value of the plain-named metric `name`, by step."""
        history = self.client.get_metric_history(run_id, mlflow_key(name))
        return sorted((m.step, m.value) for m in history)

    def set_tags(self, run_id: str, tags: dict[str, Any]) -> None:
        self.client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    # --- artifacts ------------------------------------------------------------------------------

    def log_text(self, run_id: str, text: str, artifact_file: str) -> None:
        self.client.log_text(run_id, text, artifact_file)

    def read_text(self, run_id: str, artifact_file: str) -> str:
        """An artifact's text, downloaded through the tracking store."""
        import tempfile

        with tempfile.TemporaryDirectory() as folder:
            path = self.client.download_artifacts(run_id, artifact_file, folder)
            return Path(path).read_text()

    def log_figure(
        self, run_id: str, figure: "go.Figure", artifact_file: str, assets: PlotlyAssets, parts: PageParts | None = None
    ) -> None:
        """A plotly figure as an HTML artifact that opens interactively in the MLflow UI
        (with `parts`: the page around it, e.g. the latent explorer's side panel)."""
        self.client.log_text(run_id, figure_html(figure, assets, title=artifact_file, parts=parts), artifact_file)

    def log_plotly_library(self, run_id: str) -> None:
        """The one copy of plotly.js that the run's (and its children's) figures load."""
        from vae_lab.tracking.plotly_html import LIBRARY_FILE, plotly_library

        self.client.log_text(run_id, plotly_library(), LIBRARY_FILE)

    def log_table(self, run_id: str, frame: "pd.DataFrame", name: str, title: str = "") -> None:
        """A table as `<name>.csv` (the UI shows it as a table) and `<name>.html` (sortable by eye)."""
        buffer = io.StringIO()
        frame.to_csv(buffer, index=False)
        self.client.log_text(run_id, buffer.getvalue(), f"{name}.csv")
        html = frame.to_html(index=False, na_rep="", float_format=lambda v: f"{v:.4f}", border=0)
        head = f"<meta charset='utf-8'><title>{title or name}</title><style>{TABLE_STYLE}</style>"
        page = f"<!doctype html><html><head>{head}</head><body><h3>{title}</h3>{html}</body></html>"
        self.client.log_text(run_id, page, f"{name}.html")

    # --- datasets -------------------------------------------------------------------------------

    def log_dataset(self, run_id: str, data: DataRef, splits: tuple[str, ...]) -> None:
        """Record the splits a run read as MLflow dataset inputs (the UI's Dataset column)."""
        inputs = [
            DatasetInput(dataset_entity(data, split), tags=[InputTag("mlflow.data.context", SPLIT_CONTEXT[split])])
            for split in splits
        ]
        try:
            self.client.log_inputs(run_id, datasets=inputs)
        except MlflowException as error:
            # Workers starting together all record the same dataset: MLflow checks, then inserts,
            # so all but one can hit the store's unique key. By now the dataset exists, and a
            # second call links this run to it.
            if not _is_duplicate_key(error):
                raise
            self.client.log_inputs(run_id, datasets=inputs)


DUPLICATE_KEY = ("duplicate key value", "UNIQUE constraint failed", "Duplicate entry")


def _is_duplicate_key(error: MlflowException) -> bool:
    return any(marker in str(error) for marker in DUPLICATE_KEY)


def runs_link(base: str, experiment_id: str) -> str:
    """The UI page of an experiment's runs, in the model-training view.

    MLflow 3.17's UI picks its view from a browser-wide switch (GenAI by default) rather than
    the experiment's kind tag; `workflowType=machine_learning` in the link selects the
    training view, so a researcher lands on the runs table. Credentials in `base` are dropped.
    """
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(base.rstrip("/"))
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return f"{urlunsplit((parts.scheme, netloc, parts.path, '', ''))}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"


def dataset_entity(data: DataRef, split: str) -> Dataset:
    source = json.dumps({"uri": Path(data.path).resolve().as_uri() if "://" not in data.path else data.path})
    profile = json.dumps(
        {"rows": data.rows.get(split, 0), "grid": data.grid, "toy_fraction": data.toy_fraction, "seed": data.seed}
    )
    return Dataset(
        name=f"{data.name}/{split}", digest=data.digest(split), source_type="local", source=source, profile=profile
    )


def dataset_key(data: DataRef, split: str) -> tuple[str, str]:
    """(name, digest) that links a metric to the dataset input it was measured on."""
    entity = dataset_entity(data, split)
    return entity.name, entity.digest


TABLE_STYLE = (
    "body{font-family:system-ui,sans-serif;font-size:13px;margin:12px}"
    "table{border-collapse:collapse}th,td{padding:4px 8px;border-bottom:1px solid #ddd;text-align:right}"
    "th{background:#f4f4f4;position:sticky;top:0}td:first-child,th:first-child{text-align:left}"
)
