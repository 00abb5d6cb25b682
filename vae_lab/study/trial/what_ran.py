"""The record of what ran, as run tags: the environment (`tracking.environment`) and the study.

Every parent run, trial run, evaluation, encoding and reproduction carries these tags; the
parent run also keeps the resolved study itself (`study.yaml`), and each of its trials the
hash of that text, so a trial says which study definition it ran without a copy of it.
"""

from __future__ import annotations

import hashlib
from typing import Any

import yaml

from vae_lab.study.design.spec import StudySpec
from vae_lab.study.trial.provenance import RunTag
from vae_lab.tracking import Tracker
from vae_lab.tracking.environment import WhatRan, log_source_diff, what_ran

STUDY_FILE = "study.yaml"  # the resolved study on each parent run (`study report` reads it back)

# RunTag of each version in WhatRan.versions(): what reproducing a trial compares.
VERSION_TAGS = {
    "vae-lab": RunTag.VAE_LAB_VERSION,
    "python": RunTag.PYTHON_VERSION,
    "torch": RunTag.TORCH_VERSION,
    "cuda": RunTag.CUDA_VERSION,
    "cudnn": RunTag.CUDNN_VERSION,
    "mlflow": RunTag.MLFLOW_VERSION,
    "optuna": RunTag.OPTUNA_VERSION,
    "numpy": RunTag.NUMPY_VERSION,
}


def study_yaml(spec: StudySpec) -> str:
    """The study as resolved (defaults left out), as YAML: the parent run's `study.yaml`."""
    return yaml.safe_dump(spec.model_dump(mode="json", exclude_defaults=True), sort_keys=False)


def study_hash(spec: StudySpec) -> str:
    return hashlib.sha256(study_yaml(spec).encode()).hexdigest()[:16]


def what_ran_tags(spec: StudySpec | None = None, record: WhatRan | None = None) -> dict[str, Any]:
    """The tags of a run made by this process (of `spec`'s study, when given); a value this
    process does not know (no git checkout, no CUDA) is left out rather than tagged empty."""
    record = record or what_ran()
    tags: dict[str, Any] = {VERSION_TAGS[name]: value for name, value in record.versions().items()}
    tags[RunTag.GIT_COMMIT] = record.commit
    tags[RunTag.GIT_DIRTY] = None if record.dirty is None else str(record.dirty).lower()
    if spec is not None:
        tags[RunTag.STUDY_YAML_SHA256] = study_hash(spec)
    return {name: value for name, value in tags.items() if value is not None}


def record_what_ran(tracker: Tracker, run_id: str) -> None:
    """What goes beside the tags: the source's diff, when the checkout is dirty."""
    log_source_diff(tracker, run_id)


def recorded_versions(tags: dict[str, str]) -> dict[str, str | None]:
    """The versions a run's tags recorded, by package name (None where it recorded none)."""
    return {name: tags.get(tag) for name, tag in VERSION_TAGS.items()}
