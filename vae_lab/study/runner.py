"""Run a study: Optuna asks, the trainer fits, MLflow records, the registry crowns.

`run_study` is what `vae-lab study run` calls. Running it again with the same study name
resumes: finished trials stay in the Optuna storage, a grid only runs its missing points and a
TPE study only the trials still owed. Several processes (or machines, with PostgreSQL) may run
the same study at once; each trial is claimed through Optuna's storage, not by this code.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import optuna

from vae_lab import tracking
from vae_lab.config import Settings, get_settings
from vae_lab.data import PreparedDataset, default_dataset, prepare_dataset
from vae_lab.errors import VaeLabError
from vae_lab.models import ModelConfig, check_architecture
from vae_lab.registry import Candidate, champion_info, promote_if_better
from vae_lab.study.objective import StudyObserver, TrialObjective
from vae_lab.study.space import make_pruner, make_sampler
from vae_lab.study.spec import StudySpec
from vae_lab.study.storage import open_storage

optuna.logging.set_verbosity(optuna.logging.WARNING)


@dataclass
class StudyReport:
    study: str
    experiment_id: str
    parent_run_id: str | None  # None when there was nothing left to run
    trials: list[dict[str, Any]] = field(default_factory=list)
    champion: dict[str, Any] | None = None
    tracking_uri: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def trial_rows(study: optuna.Study) -> list[dict[str, Any]]:
    """One plain dict per trial: number, state, value, params, run id, duration."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        duration = (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete and t.datetime_start else None
        value = t.value if t.value is not None and math.isfinite(t.value) else None
        rows.append(
            {
                "number": t.number,
                "state": t.state.name,
                "value": value,
                "params": dict(t.params),
                "mlflow_run_id": t.user_attrs.get("mlflow_run_id"),
                "best_epoch": t.user_attrs.get("best_epoch"),
                "duration_s": duration,
            }
        )
    return rows


def _check_space_fits_data(spec: StudySpec, data: PreparedDataset, where: str) -> None:
    for name in spec.space.architecture:
        check_architecture(ModelConfig(architecture=name, grid=data.grid), where=f"{where}: space.architecture")


FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)


def _params_key(params: dict[str, Any]) -> str:
    return json.dumps(params, sort_keys=True)


def _requeue_failed_grid_points(study: optuna.Study) -> None:
    """Queue again every grid point whose only trials failed or were interrupted.

    Optuna's GridSampler counts a failed trial as a visited point, so without this an
    interrupted trial's configuration would never run on resume. The queued trial keeps the
    failed one's grid id (as Optuna's own retry callbacks do): the sampler needs it.
    """
    trials = study.get_trials(deepcopy=False)
    settled = {_params_key(t.params) for t in trials if t.state in FINISHED or t.state == optuna.trial.TrialState.WAITING}
    failed = {_params_key(t.params): t for t in trials if t.state == optuna.trial.TrialState.FAIL and t.params}
    for key, trial in failed.items():
        if key in settled:
            continue
        grid = {k: trial.system_attrs[k] for k in ("grid_id", "search_space") if k in trial.system_attrs}
        retry = optuna.trial.create_trial(state=optuna.trial.TrialState.WAITING, system_attrs={"fixed_params": trial.params, **grid})
        study.add_trial(retry)


def _remaining_trials(study: optuna.Study, spec: StudySpec, n_trials: int | None) -> tuple[int, int]:
    """(trials to run now, trials already finished)."""
    trials = study.get_trials(deepcopy=False)
    done = sum(t.state in FINISHED for t in trials)
    if n_trials is not None:
        return n_trials, done
    if spec.sampler == "grid":
        covered = {_params_key(t.params) for t in trials if t.state in FINISHED}
        return max(spec.grid_size - len(covered), 0), done
    return max(spec.planned_trials - done, 0), done


def _offer_to_registry(spec: StudySpec, data: PreparedDataset):
    def offer(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if trial.state != optuna.trial.TrialState.COMPLETE or "model_uri" not in trial.user_attrs:
            return
        if study.best_trial.number != trial.number:
            return
        candidate = Candidate(
            model_uri=trial.user_attrs["model_uri"],
            run_id=trial.user_attrs["mlflow_run_id"],
            study=spec.name,
            trial=trial.number,
            architecture=trial.params["architecture"],
            objective=spec.objective.metric,
            direction=spec.objective.direction,
            value=trial.value,
            extra_tags={
                "data_path": data.source,
                "data_hash": data.content_hash,
                "data_toy_fraction": data.toy_fraction,
                "data_seed": data.seed,
                "data_grid": data.grid,
                "train_config": json.dumps(trial.user_attrs["train_config"]),
            },
        )
        promote_if_better(spec.model_name, candidate)

    return offer


def _check_same_data(study: optuna.Study, spec: StudySpec, data: PreparedDataset) -> None:
    """A stored study resumes only on the data it started with (same file content and split)."""
    key = f"{data.content_hash}:{data.toy_fraction}:{data.seed}"
    stored = study.user_attrs.get("data_key")
    if stored is None:
        study.set_user_attr("data_key", key)
        study.set_user_attr("data_path", str(data.source))
    elif stored != key:
        raise VaeLabError(
            f"study {spec.name}",
            f"was run on other data ({study.user_attrs.get('data_path', '?')}, or another split), so its trials do not compare",
            "pass --name NEW to run a separate study on this data",
        )


def _optimize(study: optuna.Study, objective: TrialObjective, spec: StudySpec, count: int, *, explicit: bool, callbacks: list) -> None:
    """Run up to `count` trials.

    Optuna's GridSampler stops a study as soon as its last unvisited point is taken, so a grid
    runs one trial per `optimize` call: `--n-trials N` past the end of a grid then repeats N
    configurations (with new seeds) instead of one. Without `--n-trials` a grid stops as soon
    as every point is covered, by this worker or another.
    """
    catch = (RuntimeError, ValueError, FloatingPointError)
    if spec.sampler != "grid":
        study.optimize(objective, n_trials=count, catch=catch, callbacks=callbacks)
        return
    for _ in range(count):
        if not explicit and _remaining_trials(study, spec, None)[0] == 0:
            return
        study.optimize(objective, n_trials=1, catch=catch, callbacks=callbacks)


def _load_or_create_study(spec: StudySpec, storage_url: str) -> optuna.Study:
    storage = open_storage(storage_url)
    direction = spec.objective.direction
    study = optuna.create_study(
        study_name=spec.name, storage=storage, sampler=make_sampler(spec), pruner=make_pruner(spec), direction=direction, load_if_exists=True
    )
    space = json.dumps(spec.space.model_dump(mode="json"), sort_keys=True)
    stored = study.user_attrs.get("search_space")
    if stored is None:
        study.set_user_attr("search_space", space)
        study.set_user_attr("sampler", spec.sampler)
    elif stored != space and spec.sampler == "grid":
        raise VaeLabError(
            f"study {spec.name}",
            "the stored study was run with a different search space, so its grid cannot be resumed",
            "give the study a new name in its YAML to start afresh",
        )
    if study.direction.name.lower() != direction:
        raise VaeLabError(f"study {spec.name}", f"stored study maximises/minimises differently ({study.direction.name.lower()})", "keep objective.direction or rename the study")
    return study


def run_study(spec: StudySpec, *, n_trials: int | None = None, data_path: Path | None = None, settings: Settings | None = None, observer: StudyObserver | None = None, where: str = "study") -> StudyReport:
    """Run (or resume) `spec` and return its trials and champion. See the module docstring."""
    settings = settings or get_settings()
    observer = observer or StudyObserver()
    tracking.configure_tracking(settings)
    path = default_dataset(data_path or spec.data.path).resolve()
    data = prepare_dataset(path, toy_fraction=spec.data.toy_fraction, seed=spec.data.seed, grid=spec.data.grid, cache_dir=settings.cache_dir)
    _check_space_fits_data(spec, data, where)
    study = _load_or_create_study(spec, settings.optuna_storage)
    _check_same_data(study, spec, data)
    if spec.sampler == "grid":
        _requeue_failed_grid_points(study)
    remaining, done = _remaining_trials(study, spec, n_trials)
    experiment_id = tracking.ensure_experiment(spec.name, settings)
    observer.on_study_start(spec, remaining, done)
    if remaining == 0:
        return StudyReport(spec.name, experiment_id, None, trial_rows(study), _champion_or_none(spec.model_name), settings.mlflow_tracking_uri)
    parent_run_id = tracking.start_run(
        experiment_id,
        f"{spec.name} @ {time.strftime('%Y-%m-%d %H:%M:%S')}",
        tags={"study": spec.name, "kind": "study-invocation", "sampler": spec.sampler},
        params={"data": data.source, "toy_fraction": data.toy_fraction, "train_rows": len(data.train.grids), "val_rows": len(data.val.grids), "planned_trials": spec.planned_trials, "objective": spec.objective.metric},
    )
    objective = TrialObjective(spec, data, experiment_id, parent_run_id, observer)
    status = "FAILED"
    try:
        callbacks = [_offer_to_registry(spec, data), lambda s, t: observer.on_trial_end(t)]
        _optimize(study, objective, spec, remaining, explicit=n_trials is not None, callbacks=callbacks)
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        _summarise_parent(study, parent_run_id)
        tracking.end_run(parent_run_id, status)
    return StudyReport(spec.name, experiment_id, parent_run_id, trial_rows(study), _champion_or_none(spec.model_name), settings.mlflow_tracking_uri)


def _champion_or_none(model_name: str) -> dict[str, Any] | None:
    try:
        return champion_info(model_name)
    except VaeLabError:
        return None


def _summarise_parent(study: optuna.Study, run_id: str) -> None:
    states = [t.state for t in study.get_trials(deepcopy=False)]
    metrics = {f"trials_{s.name.lower()}": float(states.count(s)) for s in set(states)}
    try:
        metrics["best_value"] = study.best_value
    except ValueError:
        pass
    if metrics:
        tracking.log_metrics(run_id, metrics)


def study_status(name: str, settings: Settings | None = None) -> dict[str, Any]:
    """Trials of a stored study, without running anything."""
    settings = settings or get_settings()
    storage = open_storage(settings.optuna_storage)
    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        known = optuna.study.get_all_study_names(storage)
        fix = f"known studies: {', '.join(known)}" if known else "run it first: vae-lab study run NAME"
        raise VaeLabError(f"study {name}", "not found in the Optuna storage", fix) from None
    rows = trial_rows(study)
    best = None
    try:
        bt = study.best_trial
        best = {"number": bt.number, "value": bt.value, "params": bt.params}
    except ValueError:
        pass
    return {"study": name, "direction": study.direction.name.lower(), "trials": rows, "best": best}
