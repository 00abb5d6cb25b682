"""Before anything is written: the checks a study must pass, made once per invocation.

Order of work, so bad input never writes anything: the stores are checked, the data is prepared
and checked against the space, the device is resolved, a stored study of the same name (if
any) is checked for compatibility, and so are the studies it learns from (`learn_from`). `admit` returns what it found (an `Admission`) so that
`StudySession.open` starts from it instead of checking again.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import optuna
import torch

from vae_lab.config import Settings, get_settings
from vae_lab.data import PreparedDataset, default_dataset
from vae_lab.device import resolve_device
from vae_lab.errors import VaeLabError
from vae_lab.models import ModelConfig, check_architecture
from vae_lab.stores import check_stores
from vae_lab.study.design.sampling import make_pruner, make_sampler
from vae_lab.study.design.spec import StudySpec
from vae_lab.study.execution.history import learned_trials
from vae_lab.study.trial.provenance import StudyAttr
from vae_lab.study.trial.storage import open_storage, storage_exists

LATENT_METRICS = {"val_silhouette", "val_knn_accuracy"}


@dataclass
class Admission:
    """A study that passed every check, with what the checks produced."""

    spec: StudySpec
    settings: Settings
    data: PreparedDataset
    device: torch.device
    where: str
    stored_study_checked: bool  # False when no storage existed yet: StudySession checks on open
    learned: list[optuna.trial.FrozenTrial] = field(default_factory=list)  # learn_from's trials, to add once


def admit(
    spec: StudySpec,
    *,
    data_path: Path | None = None,
    device: str | None = None,
    where: str = "study",
    settings: Settings | None = None,
    data: PreparedDataset | None = None,
) -> Admission:
    """Every check `run_study` makes before it writes anything (a VaeLabError for the first one
    that fails). `data`: the split the invocation's driver prepared and checked already (a worker
    on another node gets it through the engine instead of reading the user's file)."""
    settings = settings or get_settings()
    check_stores(settings, experiment=spec.name, model=spec.model_name)
    if data is None:
        data = prepare_study_data(spec, data_path, settings, where)
    torch_device = resolve_device(
        device or spec.training.device, where="--device" if device else f"{where}: training.device"
    )
    checked = storage_exists(settings.optuna_storage)
    storage = open_storage(settings.optuna_storage) if checked else None
    if storage is not None:  # nothing stored yet: nothing to resume, and no file is created here
        check_stored_study(storage, spec, data)
    learned = learned_trials(storage, spec, where) if spec.learn_from else []
    return Admission(spec, settings, data, torch_device, where, checked, learned)


def prepare_study_data(spec: StudySpec, data_path: Path | None, settings: Settings, where: str) -> PreparedDataset:
    path = default_dataset(data_path or spec.data.path).resolve()
    data = spec.data.prepare(path, settings.cache_dir)
    for name in spec.space.architecture:
        check_architecture(ModelConfig(architecture=name, grid=data.grid), where=f"{where}: space.architecture")
    latent_objectives = {spec.objective.metric, spec.training.early_stopping_metric} & LATENT_METRICS
    if latent_objectives and (data.val.labels < 0).all():
        raise VaeLabError(
            f"{where}: objective.metric",
            f"{sorted(latent_objectives)[0]} needs labelled data, and {path.name} has no label column",
            "add a `label` column or pick another metric",
        )
    return data


def data_key(data: PreparedDataset) -> str:
    return f"{data.content_hash}:{data.toy_fraction}:{data.seed}"


def space_key(spec: StudySpec) -> str:
    return json.dumps(spec.space.model_dump(mode="json", exclude_none=True), sort_keys=True)


def check_stored_study(storage: optuna.storages.BaseStorage, spec: StudySpec, data: PreparedDataset) -> bool:
    """Whether a stored study of this name exists; a VaeLabError if it cannot be resumed here."""
    try:
        study = optuna.load_study(study_name=spec.name, storage=storage)
    except KeyError:
        return False
    where = f"study {spec.name}"
    attrs = study.user_attrs
    stored_key = attrs.get(StudyAttr.DATA_KEY)
    if stored_key is not None and stored_key != data_key(data):
        raise VaeLabError(
            where,
            f"was run on other data ({attrs.get(StudyAttr.DATA_PATH, '?')}, or another split), "
            "so its trials do not compare",
            "pass --name NEW to run a separate study on this data",
        )
    stored_grid = attrs.get(StudyAttr.DATA_GRID)
    if stored_grid is not None and int(stored_grid) != data.grid:
        raise VaeLabError(
            where,
            f"was run on a {stored_grid}^3 grid, this data is {data.grid}^3",
            "pass --name NEW for a study on this data",
        )
    stored_space = attrs.get(StudyAttr.SEARCH_SPACE)
    if spec.is_grid and stored_space is not None and stored_space != space_key(spec):
        raise VaeLabError(
            where,
            "the stored study was run with a different search space, so its grid cannot be resumed",
            "give the study a new name (--name) to start afresh",
        )
    stored = [d.name.lower() for d in study.directions]
    wanted = list(spec.objective.directions.values())
    names = attrs.get(StudyAttr.OBJECTIVES, [attrs.get(StudyAttr.OBJECTIVE, spec.objective.metric)])
    if stored != wanted or (len(wanted) > 1 and names != spec.objective.names):
        raise VaeLabError(
            where,
            f"the stored study optimises {', '.join(names)} ({', '.join(stored)}), "
            f"this one {', '.join(spec.objective.names)} ({', '.join(wanted)})",
            "keep the objective, or pass --name NEW",
        )
    return True


def open_study(
    storage: optuna.storages.BaseStorage, spec: StudySpec, data: PreparedDataset, worker: int = 0
) -> optuna.Study:
    """Create the study, or load it, with worker `worker`'s sampler, and record what a later
    resume must agree with and the objectives' names (what Optuna's readers show)."""
    study = optuna.create_study(
        study_name=spec.name,
        storage=storage,
        sampler=make_sampler(spec, worker),
        pruner=make_pruner(spec),
        directions=list(spec.objective.directions.values()),
        load_if_exists=True,
    )
    recorded = {
        StudyAttr.DATA_KEY: data_key(data),
        StudyAttr.DATA_PATH: str(data.source),
        StudyAttr.DATA_GRID: data.grid,
        StudyAttr.SEARCH_SPACE: space_key(spec),
        StudyAttr.SAMPLER: spec.sampler,
        StudyAttr.OBJECTIVE: spec.objective.metric,
        StudyAttr.OBJECTIVES: spec.objective.names,
    }
    for key, value in recorded.items():
        if key not in study.user_attrs:
            study.set_user_attr(key, value)
    if study.metric_names is None:  # optuna-dashboard shows val_f1, not "Objective 0"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # stable since Optuna 3.2
            study.set_metric_names(spec.objective.names)
    return study
