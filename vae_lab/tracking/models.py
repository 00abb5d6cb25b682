"""Trained models in MLflow: logged as MLflow 3 LoggedModels, and loaded back on the CPU.

A model is logged from a float32 CPU copy, whatever device and precision trained it, so the
registry serves it to any machine: `mlflow.pytorch.load_model` works on a laptop without a GPU
for a champion trained on CUDA in bf16. Logging goes through the `Tracker`'s client (no active
run, no process-wide tracking URI): the LoggedModel is created, linked to its run as an output
at the best epoch, its artifacts uploaded and its status set to READY.

Each model keeps MLflow's pytorch flavor and gets vae-lab's own python_function flavor
(`vae_lab.tracking.pyfunc`): a signature, an input example of real rows, and vae-lab's code as
one archive in the model folder (`code_archive`), so `mlflow.pyfunc.load_model` works where
vae-lab is not installed. Models logged before (pytorch flavor only, or the code as a folder of
files) still load through `load_model` and MLflow's loaders.
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
from vae_lab.tracking import code_archive, pyfunc
from vae_lab.tracking.client import Tracker

# The model is pickled with its class and carries vae-lab's code (`code_archive`), so reloading
# needs only these libraries, which MLflow installs from an index; vae-lab itself is never one
# of them. Passing them explicitly skips MLflow's ~12 s requirement inference.
RUNTIME_PACKAGES = ("torch", "numpy", "pandas", "pyarrow", "pydantic", "pydantic-settings", "pyyaml", "mlflow")


# Where a package is installed under another distribution's name, the same release pins it
# (a lean machine may hold mlflow-skinny, whose versions follow mlflow's).
SAME_RELEASE_AS = {"mlflow": "mlflow-skinny"}


def model_requirements() -> list[str]:
    """Pinned requirements of a logged model: the installed versions, without local tags (+cpu).

    A runtime package this environment lacks is left out rather than guessed (a GPU machine
    without pyarrow still logs its models)."""
    from importlib.metadata import PackageNotFoundError, version

    pins = []
    for name in RUNTIME_PACKAGES:
        for distribution in filter(None, (name, SAME_RELEASE_AS.get(name))):
            try:
                pins.append(f"{name}=={version(distribution).split('+')[0]}")
                break
            except PackageNotFoundError:
                continue
    return pins


@dataclass(frozen=True)
class LoggedModelRef:
    model_id: str
    uri: str  # models:/<model_id>


def portable_copy(model: BaseVAE) -> BaseVAE:
    """A float32 CPU copy in eval mode, free of compile wrappers: what any machine can load."""
    clone = copy.deepcopy(model).to(device="cpu", dtype=torch.float32)
    return clone.eval()


def log_model(
    tracker: Tracker,
    run_id: str,
    experiment_id: str,
    model: BaseVAE,
    *,
    step: int = 0,
    params: dict | None = None,
    tags: dict | None = None,
    examples: np.ndarray | None = None,
) -> LoggedModelRef:
    """Log `model` as a LoggedModel produced by `run_id` at `step`; returns its id and URI.

    `examples`: a few real grids (N, D, D, D) saved as the model's input example (default: the
    family's own small example batch). The model is a pyfunc (`vae_lab.tracking.pyfunc`) with a
    signature; logging fails if the first model of its family in this process does not
    round-trip its example through it (`pyfunc.install_pyfunc`).
    """
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
    description = Model(
        artifact_path=logged.artifact_location, model_uuid=logged.model_id, run_id=run_id, model_id=logged.model_id
    )
    if examples is None:
        examples = portable.example_input(batch_size=3).grid.numpy()
    quiet = _DropPickleWarning()
    logging.getLogger("mlflow.pytorch").addFilter(quiet)
    try:
        with tempfile.TemporaryDirectory() as folder:
            local = Path(folder) / "model"
            mlflow.pytorch.save_model(
                portable,
                path=str(local),
                mlflow_model=description,
                pip_requirements=model_requirements(),
                code_paths=[str(code_archive.write_archive(Path(folder)))],
                serialization_format="pickle",
                signature=pyfunc.signature(portable),
                input_example=pyfunc.example_frame(examples),
                metadata=pyfunc.describe(portable),
            )
            pyfunc.install_pyfunc(local, portable)
            client.log_model_artifacts(logged.model_id, str(local))
    except BaseException:
        client.finalize_logged_model(logged.model_id, LoggedModelStatus.FAILED)
        raise
    finally:
        logging.getLogger("mlflow.pytorch").removeFilter(quiet)
    client.finalize_logged_model(logged.model_id, LoggedModelStatus.READY)
    return LoggedModelRef(logged.model_id, f"models:/{logged.model_id}")


class _DropPickleWarning(logging.Filter):
    """Pickle is chosen on purpose (the model's class travels in its code archive), so MLflow's
    advice to use pt2 is noise for every trial; every other record passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Saving pytorch model by Pickle")


def load_model(tracker: Tracker, model_id: str) -> BaseVAE:
    """The logged model `model_id`, on the CPU in eval mode (downloaded through the tracker)."""
    import mlflow.artifacts
    import mlflow.pytorch

    location = tracker.client.get_logged_model(model_id).artifact_location
    with tempfile.TemporaryDirectory() as folder:
        local = mlflow.artifacts.download_artifacts(artifact_uri=location, dst_path=folder, tracking_uri=tracker.uri)
        model = mlflow.pytorch.load_model(local, map_location="cpu")
    return model.eval()
