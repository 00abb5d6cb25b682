"""Trained models in MLflow: logged as MLflow 3 LoggedModels, and loaded back on the CPU.

A model is logged from a float32 CPU copy, whatever device and precision trained it, so the
registry serves it to any machine: `mlflow.pytorch.load_model` works on a laptop without a GPU
for a champion trained on CUDA in bf16. Logging goes through the `Tracker`'s client (no active
run, no process-wide tracking URI): the LoggedModel is created, linked to its run as an output
at the best epoch, its artifacts uploaded and its status set to READY.
"""

from __future__ import annotations

import copy
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from mlflow.entities import LoggedModelOutput, LoggedModelStatus

from vae_lab.models.base import BaseVAE
from vae_lab.tracking.client import Tracker

# The model is pickled with its class, so reloading needs the same libraries, not a solver run:
# passing them explicitly skips MLflow's ~12 s requirement inference.
MODEL_REQUIREMENTS = [f"torch=={torch.__version__.split('+')[0]}", f"numpy=={np.__version__}", "vae-lab"]


@dataclass(frozen=True)
class LoggedModelRef:
    model_id: str
    uri: str  # models:/<model_id>


def portable_copy(model: BaseVAE) -> BaseVAE:
    """A float32 CPU copy in eval mode, free of compile wrappers: what any machine can load."""
    clone = copy.deepcopy(model).to(device="cpu", dtype=torch.float32)
    return clone.eval()


def log_model(tracker: Tracker, run_id: str, experiment_id: str, model: BaseVAE, *, step: int = 0, params: dict | None = None, tags: dict | None = None) -> LoggedModelRef:
    """Log `model` as a LoggedModel produced by `run_id` at `step`; returns its id and URI."""
    import mlflow.pytorch
    from mlflow.models import Model

    client = tracker.client
    portable = portable_copy(model)
    logged = client.create_logged_model(
        experiment_id,
        name="model",
        source_run_id=run_id,
        params={k: str(v) for k, v in (params or {}).items()},
        tags={k: str(v) for k, v in (tags or {}).items()},
        model_type=f"vae/{portable.name}",
    )
    client.log_outputs(run_id, [LoggedModelOutput(logged.model_id, step=step)])
    description = Model(artifact_path=logged.artifact_location, model_uuid=logged.model_id, run_id=run_id, model_id=logged.model_id)
    # MLflow tries to serve the example through pyfunc, which expects a single output tensor; a
    # VAE returns several, so it warns. The warning is expected and says nothing to the user.
    mlflow_logger = logging.getLogger("mlflow")
    level = mlflow_logger.level
    mlflow_logger.setLevel(logging.ERROR)
    try:
        with tempfile.TemporaryDirectory() as folder:
            local = Path(folder) / "model"
            mlflow.pytorch.save_model(
                portable,
                path=str(local),
                mlflow_model=description,
                pip_requirements=MODEL_REQUIREMENTS,
                serialization_format="pickle",
                input_example=portable.example_array(),
            )
            client.log_model_artifacts(logged.model_id, str(local))
    except BaseException:
        client.finalize_logged_model(logged.model_id, LoggedModelStatus.FAILED)
        raise
    finally:
        mlflow_logger.setLevel(level)
    client.finalize_logged_model(logged.model_id, LoggedModelStatus.READY)
    return LoggedModelRef(logged.model_id, f"models:/{logged.model_id}")


def load_model(tracker: Tracker, model_id: str) -> BaseVAE:
    """The logged model `model_id`, on the CPU in eval mode (downloaded through the tracker)."""
    import mlflow.artifacts
    import mlflow.pytorch

    location = tracker.client.get_logged_model(model_id).artifact_location
    with tempfile.TemporaryDirectory() as folder:
        local = mlflow.artifacts.download_artifacts(artifact_uri=location, dst_path=folder, tracking_uri=tracker.uri)
        model = mlflow.pytorch.load_model(local, map_location="cpu")
    return model.eval()
