"""The MLflow model registry: which model is each study's champion, and reloading it.

A study's best trial is registered under a registered model (named after the study unless the
study says otherwise); alias `champion` points at its version. Each version carries the tags a
researcher filters on (`best_architecture`, `study`, `trial`, `objective`, `value`) and the
ones `evaluate` needs to rebuild the data and the loss (`data_*`, `train_config`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import mlflow
from mlflow.exceptions import MlflowException

from vae_lab.errors import VaeLabError

CHAMPION = "champion"


@dataclass
class Candidate:
    """A finished trial offered to the registry."""

    model_uri: str
    run_id: str
    study: str
    trial: int
    architecture: str
    objective: str
    direction: str
    value: float
    extra_tags: dict[str, Any] = field(default_factory=dict)

    def tags(self) -> dict[str, str]:
        base = {
            "best_architecture": self.architecture,
            "study": self.study,
            "trial": str(self.trial),
            "objective": self.objective,
            "direction": self.direction,
            "value": repr(float(self.value)),
            "run_id": self.run_id,
        }
        return base | {k: str(v) for k, v in self.extra_tags.items()}


def _current_champion(client: mlflow.MlflowClient, name: str):
    try:
        return client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None


def _beats(value: float, incumbent: str | None, direction: str) -> bool:
    if incumbent is None:
        return True
    return value > float(incumbent) if direction == "maximize" else value < float(incumbent)


def promote_if_better(name: str, candidate: Candidate) -> str | None:
    """Register `candidate` and point `champion` at it if it beats the current one.

    Returns the new version, or None when the incumbent is at least as good (re-checked here so
    that several workers finishing at once cannot demote a better champion).
    """
    client = mlflow.MlflowClient()
    incumbent = _current_champion(client, name)
    if incumbent is not None and not _beats(candidate.value, incumbent.tags.get("value"), candidate.direction):
        return None
    # register_model (rather than create_model_version) links the version to its logged model,
    # which a tracking server requires for `models:/m-...` sources.
    version = mlflow.register_model(candidate.model_uri, name, tags=candidate.tags())
    client.set_registered_model_alias(name, CHAMPION, version.version)
    for key in ("study", "best_architecture", "objective", "value", "trial"):
        client.set_registered_model_tag(name, key, candidate.tags()[key])
    return version.version


def champion_info(name: str) -> dict[str, Any]:
    """The champion's version, tags and source run, or a VaeLabError saying how to get one."""
    client = mlflow.MlflowClient()
    try:
        client.get_registered_model(name)
    except MlflowException:
        raise VaeLabError(f"registry: {name}", "no registered model of that name", "run the study first: vae-lab study run NAME") from None
    version = _current_champion(client, name)
    if version is None:
        raise VaeLabError(f"registry: {name}", f"no version has the alias '{CHAMPION}'", "finish at least one trial of the study")
    return {
        "name": name,
        "alias": CHAMPION,
        "version": int(version.version),
        "run_id": version.run_id,
        "source": version.source,
        "uri": f"models:/{name}@{CHAMPION}",
        "tags": dict(version.tags),
    }


def load_champion(name: str):
    """(model in eval mode, champion_info) for `models:/NAME@champion`."""
    import mlflow.pytorch

    info = champion_info(name)
    model = mlflow.pytorch.load_model(info["uri"], map_location="cpu")
    return model.eval(), info


def train_config_of(info: dict[str, Any]) -> dict[str, Any]:
    return json.loads(info["tags"].get("train_config", "{}"))
