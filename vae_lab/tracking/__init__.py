"""MLflow tracking: the one place (with `vae_lab.registry`) where vae-lab talks to MLflow.

Layout of a study in MLflow: one experiment per study, opened in the UI's model-training view;
one parent run per `vae-lab study run` invocation (or worker), holding the study-level figures,
the leaderboard and the one copy of plotly.js; one nested child run per Optuna trial holding
the trial's params, per-epoch metrics (step = epoch), dataset inputs, figures, its record and
its LoggedModel. Everything goes through a `Tracker` made from the settings.
"""

from vae_lab.tracking.callbacks import MlflowEpochLogger
from vae_lab.tracking.client import Tracker, dataset_key, runs_link
from vae_lab.tracking.metric_names import mlflow_key, plain_metrics, plain_name
from vae_lab.tracking.models import LoggedModelRef, load_model, log_model, portable_copy
from vae_lab.tracking.plotly_html import PlotlyAssets

__all__ = [
    "LoggedModelRef",
    "MlflowEpochLogger",
    "PlotlyAssets",
    "Tracker",
    "dataset_key",
    "load_model",
    "log_model",
    "mlflow_key",
    "plain_metrics",
    "plain_name",
    "portable_copy",
    "runs_link",
]
