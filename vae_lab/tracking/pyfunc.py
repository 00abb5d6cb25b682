"""The MLflow pyfunc of every logged VAE: grids in as the user holds them, a DataFrame out.

`mlflow.pyfunc.load_model(uri).predict(data, params={"output": ...})` takes a DataFrame with the
dataset's voxel columns (`label` and other non-voxel columns ignored, `id` carried through), a
(N, D**3) array or a (N, D, D, D) array, for every family (sparse ones build their point set
inside), and returns a DataFrame: `latent` (default) the means z0..; `latent_with_logvar` adds
logvar0..; `reconstruction` the decoded grid in the input's voxel columns; `scores` each row's
reconstruction F1 and exact match. A bad input raises MLflow's INVALID_PARAMETER_VALUE with
vae-lab's one-line reason, which MLflow's scoring server answers with HTTP 400.

The model directory keeps the pytorch flavor (`mlflow.pytorch.load_model` returns the module);
only its python_function flavor is replaced by this module as loader. The signature has params
and outputs but no input schema, on purpose: MLflow enforces an input schema before the model
sees the data, and one schema cannot say "these columns, or an array of either shape".
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import Model, ModelSignature
from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

from vae_lab.data.frames import frame_of_grids, grids_from_data
from vae_lab.errors import VaeLabError
from vae_lab.models.base import BaseVAE
from vae_lab.tracking import code_archive
from vae_lab.training.predict import OUTPUTS, latent_columns, output_frame, predict

LOADER_MODULE = __name__


class VoxelPyfunc:
    """What `mlflow.pyfunc.load_model` wraps: a VAE on the CPU and the reading of its inputs."""

    def __init__(self, model: BaseVAE):
        self.model = model.eval()

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> pd.DataFrame:
        output = (params or {}).get("output") or "latent"
        if output not in OUTPUTS:
            raise MlflowException.invalid_parameter_value(
                f"params.output: unknown output {output!r} (use one of: {', '.join(OUTPUTS)})"
            )
        try:
            read = grids_from_data(data, self.model.config.grid, where="input")
            result = predict(self.model, read.grids, keep_reconstruction=output == "reconstruction")
        except VaeLabError as error:
            raise MlflowException.invalid_parameter_value(str(error)) from None
        return output_frame(result, output, ids=read.ids, columns=read.columns)


def _load_pyfunc(path: str) -> VoxelPyfunc:
    """MLflow's loader hook: `path` is the model directory (the flavor names no `data`)."""
    import mlflow.pytorch

    return VoxelPyfunc(mlflow.pytorch.load_model(path, map_location="cpu"))


def signature(model: BaseVAE) -> ModelSignature:
    """Params (`output`) and the default output's columns; no input schema (module docstring)."""
    outputs = Schema([ColSpec("double", name) for name in latent_columns(model.config.latent_dim)])
    return ModelSignature(inputs=None, outputs=outputs, params=ParamSchema([ParamSpec("output", "string", "latent")]))


def example_frame(grids: np.ndarray) -> pd.DataFrame:
    """The input example: a few rows in the dataset's format, with ids."""
    return frame_of_grids(np.asarray(grids, dtype=np.uint8), ids=np.arange(len(grids), dtype=np.int64))


def describe(model: BaseVAE) -> dict[str, Any]:
    """The MLmodel `metadata` a reader of the model needs: what goes in, what comes out."""
    grid = model.config.grid
    return {
        "vae_lab_input": f"DataFrame with the dataset's {grid**3} voxel columns (label, id allowed), or an array "
        f"(N, {grid**3}) or (N, {grid}, {grid}, {grid}) of values 0-4",
        "vae_lab_outputs": ", ".join(OUTPUTS),
        "architecture": model.name,
        "latent_dim": model.config.latent_dim,
        "grid": grid,
    }


# The (family, output head) pairs whose logged model has round-tripped in this process. What
# the round trip proves (the code archive imports, the pickled class loads, the loader reads the
# saved example and answers in the signature's columns) holds alike for every model of a pair,
# and a full pyfunc load costs about a second a trial, so only a pair's first model pays it.
_ROUND_TRIPPED: set[tuple[str, str]] = set()


def install_pyfunc(local: Path, model: BaseVAE) -> None:
    """Make the saved `model` at `local` load through this module, carrying its code as one
    archive; for the first model of its family in this process, prove it (`check_round_trip`)."""
    import mlflow.pyfunc

    description = Model.load(local / "MLmodel")
    if description.signature is None or description.saved_input_example_info is None:
        raise RuntimeError(f"MLflow saved no signature or input example for the model at {local}")
    code_archive.point_flavors_at_archive(description)
    flavor = description.flavors[mlflow.pyfunc.FLAVOR_NAME]
    mlflow.pyfunc.add_to_model(
        description,
        loader_module=LOADER_MODULE,
        code=flavor.get("code"),
        conda_env=flavor.get("env", {}).get("conda"),
        python_env=flavor.get("env", {}).get("virtualenv"),
    )
    description.save(local / "MLmodel")
    family = (model.name, model.config.output)
    if family not in _ROUND_TRIPPED:
        check_round_trip(local)
        _ROUND_TRIPPED.add(family)


def check_round_trip(local: Path) -> None:
    """The saved input example must come back through `mlflow.pyfunc.load_model(...).predict`
    in the signature's columns, or logging fails: a model that cannot serve is never logged."""
    import mlflow.pyfunc

    description = Model.load(local / "MLmodel")
    paths = list(sys.path)
    try:
        loaded = mlflow.pyfunc.load_model(str(local))
        example = description.load_input_example(str(local))
        answer = loaded.predict(example)
    finally:
        sys.path[:] = paths  # loading prepends the model's code archive, in a temporary directory here
    wanted = ["id", *latent_columns(int(loaded.metadata.metadata["latent_dim"]))]
    if list(answer.columns) != wanted or len(answer) != len(example):
        raise RuntimeError(
            f"the input example did not round-trip through the pyfunc: got columns {list(answer.columns)[:4]}"
        )
