"""Small stand-ins for the unit tests of the study runtime: an MLflow-free tracker and tiny specs."""

from __future__ import annotations

from typing import Any

from vae_lab.study.design.spec import StudySpec


class FakeTracker:
    """Records what the runtime writes to MLflow runs: their tags and how they ended."""

    def __init__(self) -> None:
        self.tags: dict[str, dict[str, Any]] = {}
        self.status: dict[str, str] = {}

    def open_run(self, run_id: str) -> str:
        self.status[run_id] = "RUNNING"
        self.tags[run_id] = {}
        return run_id

    def set_tags(self, run_id: str, tags: dict[str, Any]) -> None:
        self.tags.setdefault(run_id, {}).update(tags)

    def end_run(self, run_id: str, status: str) -> None:
        self.status[run_id] = status

    def run_status(self, run_id: str) -> str:
        return self.status[run_id]


def grid_spec(**space: Any) -> StudySpec:
    return StudySpec.model_validate({"name": "unit", "space": {"architecture": ["fc"], **space}})


def tpe_spec(n_trials: int, **space: Any) -> StudySpec:
    return StudySpec.model_validate(
        {"name": "unit", "sampler": "tpe", "n_trials": n_trials, "space": {"architecture": ["fc"], **space}}
    )
