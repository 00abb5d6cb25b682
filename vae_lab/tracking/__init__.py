"""MLflow tracking: the one place vae-lab talks to MLflow's run API.

Layout of a study in MLflow: one experiment per study; one parent run per `vae-lab study run`
invocation; one nested child run per Optuna trial holding the trial's params, per-epoch
metrics (step = epoch), tags, artifacts and the logged model. The registry side lives in
`vae_lab.registry`.
"""

from vae_lab.tracking.mlflow_store import (
    MlflowEpochLogger,
    configure_tracking,
    end_run,
    ensure_experiment,
    log_figure,
    log_metrics,
    log_model,
    set_tags,
    start_run,
)

__all__ = [
    "MlflowEpochLogger",
    "configure_tracking",
    "end_run",
    "ensure_experiment",
    "log_figure",
    "log_metrics",
    "log_model",
    "set_tags",
    "start_run",
]
