"""Run a study: Optuna asks, the trainer fits, MLflow records, the registry crowns.

`run_study` is what `vae-lab study run` calls (once per worker). Running it again with the
same study name resumes: finished trials stay in the Optuna storage, a grid only runs its
missing points and a TPE study only the trials still owed. Any number of workers, on one
machine or many, may run the same study at once; see `vae_lab.study.coordination` for how they
share it, and `vae_lab.study.workers` for `--workers N`.

Order of work, so bad input never writes anything: settings and stores are checked, the data is
prepared and checked against the space, the device is resolved, and the stored study (if any)
is checked for compatibility; only then is anything created or logged.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import optuna
import yaml
from optuna.trial import TrialState

from vae_lab.config import Settings, get_settings, mask_uri, uri_scheme
from vae_lab.data import PreparedDataset, default_dataset, prepare_dataset
from vae_lab.device import resolve_device
from vae_lab.errors import VaeLabError
from vae_lab.models import ModelConfig, check_architecture
from vae_lab.registry import CHAMPION, Crowning, Entry, champion_info, reconcile
from vae_lab.stores import check_stores
from vae_lab.study import interrupts
from vae_lab.study.coordination import Lease, StudyLock, claim_and_run, owner_attrs, queue_grid, trial_point
from vae_lab.study.reaper import StaleTrialCloser, reap_dead_invocations, reap_dead_trials
from vae_lab.study.objective import StudyContext, StudyObserver, TrialObjective
from vae_lab.study.report import ReportRefresher
from vae_lab.study.story import StoryContext
from vae_lab.study.space import grid_points, make_pruner, make_sampler
from vae_lab.study.spec import StudySpec
from vae_lab.study.storage import open_storage
from vae_lab.tracking import PlotlyAssets, Tracker

# Optuna logs every failed trial with a traceback; vae-lab records the reason on the trial and
# its run and shows it in the trials table, so only Optuna's errors reach the terminal.
optuna.logging.set_verbosity(optuna.logging.ERROR)
logger = logging.getLogger(__name__)

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
# Trial failures that end one trial and let the study go on; anything else is a bug (or a
# VaeLabError) and stops the worker.
TRIAL_FAILURES = (RuntimeError, ValueError, FloatingPointError, ArithmeticError)


@dataclass
class StudyReport:
    study: str
    experiment_id: str
    parent_run_id: str | None  # None when there was nothing left to run
    trials: list[dict[str, Any]] = field(default_factory=list)
    champion: dict[str, Any] | None = None
    tracking_uri: str = ""  # masked: safe to print
    device: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class WorkerOptions:
    """How a worker process started by `--workers N` joins its siblings' invocation."""

    index: int = 0
    parent_run_id: str | None = None
    device: str | None = None


def trial_rows(study: optuna.Study) -> list[dict[str, Any]]:
    """One plain dict per trial: number, state, value, params, run id, duration."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        duration = (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete and t.datetime_start else None
        values = [v if v is not None and math.isfinite(v) else None for v in (t.values or [])]
        rows.append(
            {
                "number": t.number,
                "state": t.state.name,
                "value": values[0] if values else None,  # the first objective's, with several
                **({"values": values} if len(values) > 1 else {}),
                "params": dict(t.params) or dict(t.system_attrs.get("fixed_params", {})),
                "mlflow_run_id": t.user_attrs.get("mlflow_run_id"),
                "best_epoch": t.user_attrs.get("best_epoch"),
                "duration_s": duration,
                "failure_reason": t.user_attrs.get("failure_reason"),
            }
        )
    return rows


# --- before anything is written ---------------------------------------------------------------------


def prepare_study_data(spec: StudySpec, data_path: Path | None, settings: Settings, where: str) -> PreparedDataset:
    path = default_dataset(data_path or spec.data.path).resolve()
    data = prepare_dataset(path, toy_fraction=spec.data.toy_fraction, seed=spec.data.seed, grid=spec.data.grid, cache_dir=settings.cache_dir)
    for name in spec.space.architecture:
        check_architecture(ModelConfig(architecture=name, grid=data.grid), where=f"{where}: space.architecture")
    latent_objectives = {spec.objective.metric, spec.training.early_stopping_metric} & {"val_silhouette", "val_knn_accuracy"}
    if latent_objectives and (data.val.labels < 0).all():
        raise VaeLabError(f"{where}: objective.metric", f"{sorted(latent_objectives)[0]} needs labelled data, and {path.name} has no label column", "add a `label` column or pick another metric")
    return data


def _data_key(data: PreparedDataset) -> str:
    return f"{data.content_hash}:{data.toy_fraction}:{data.seed}"


def _space_key(spec: StudySpec) -> str:
    return json.dumps(spec.space.model_dump(mode="json", exclude_none=True), sort_keys=True)


def check_stored_study(storage: optuna.storages.BaseStorage, spec: StudySpec, data: PreparedDataset) -> bool:
    """Whether a stored study of this name exists; a VaeLabError if it cannot be resumed here."""
    try:
        study = optuna.load_study(study_name=spec.name, storage=storage)
    except KeyError:
        return False
    where = f"study {spec.name}"
    stored_key = study.user_attrs.get("data_key")
    if stored_key is not None and stored_key != _data_key(data):
        raise VaeLabError(where, f"was run on other data ({study.user_attrs.get('data_path', '?')}, or another split), so its trials do not compare", "pass --name NEW to run a separate study on this data")
    stored_grid = study.user_attrs.get("data_grid")
    if stored_grid is not None and int(stored_grid) != data.grid:
        raise VaeLabError(where, f"was run on a {stored_grid}^3 grid, this data is {data.grid}^3", "pass --name NEW for a study on this data")
    stored_space = study.user_attrs.get("search_space")
    if spec.sampler == "grid" and stored_space is not None and stored_space != _space_key(spec):
        raise VaeLabError(where, "the stored study was run with a different search space, so its grid cannot be resumed", "give the study a new name (--name) to start afresh")
    stored = [d.name.lower() for d in study.directions]
    wanted = list(spec.objective.directions.values())
    names = study.user_attrs.get("objectives", [study.user_attrs.get("objective", spec.objective.metric)])
    if stored != wanted or (len(wanted) > 1 and names != spec.objective.names):
        raise VaeLabError(where, f"the stored study optimises {', '.join(names)} ({', '.join(stored)}), this one {', '.join(spec.objective.names)} ({', '.join(wanted)})", "keep the objective, or pass --name NEW")
    return True


def open_study(storage: optuna.storages.BaseStorage, spec: StudySpec, data: PreparedDataset) -> optuna.Study:
    directions = list(spec.objective.directions.values())
    study = optuna.create_study(study_name=spec.name, storage=storage, sampler=make_sampler(spec), pruner=make_pruner(spec), directions=directions, load_if_exists=True)
    for key, value in (("data_key", _data_key(data)), ("data_path", str(data.source)), ("data_grid", data.grid), ("search_space", _space_key(spec)), ("sampler", spec.sampler), ("objective", spec.objective.metric), ("objectives", spec.objective.names)):
        if key not in study.user_attrs:
            study.set_user_attr(key, value)
    return study


def preflight_study(spec: StudySpec, *, data_path: Path | None = None, device: str | None = None, where: str = "study", settings: Settings | None = None) -> None:
    """Every check `run_study` makes before it writes anything, for the CLI to run before it
    prints the plan's estimate (so a bad input is one line, not an estimate and then a line)."""
    settings = settings or get_settings()
    check_stores(settings)
    data = prepare_study_data(spec, data_path, settings, where)
    resolve_device(device or spec.training.device, where="--device" if device else f"{where}: training.device")
    journal = settings.optuna_storage.removeprefix("journal:")
    if uri_scheme(journal) or Path(journal).is_file():  # nothing stored yet: nothing to resume
        check_stored_study(open_storage(settings.optuna_storage), spec, data)


# --- the run ---------------------------------------------------------------------------------------------


@dataclass
class Session:
    """A worker's open study: its stores, lock and what it has left to run."""

    tracker: Tracker
    stale: StaleTrialCloser
    study: optuna.Study
    lock: StudyLock
    experiment_id: str
    remaining: int
    done: int

    def report(self, spec: StudySpec, parent_run_id: str | None, device: str) -> StudyReport:
        champion = _champion_or_none(self.tracker, spec.model_name)
        return StudyReport(spec.name, self.experiment_id, parent_run_id, trial_rows(self.study), champion, mask_uri(self.tracker.uri), device)


def open_session(spec: StudySpec, data: PreparedDataset, settings: Settings, n_trials: int | None, allow_repeats: bool = True) -> Session:
    """Open (or create) the stored study, reap dead workers' trials and runs, queue a grid's
    missing points; the caller closes `session.lock`."""
    tracker = Tracker(settings)
    stale = StaleTrialCloser(tracker)
    storage = open_storage(settings.optuna_storage, on_stale_trial=stale)
    check_stored_study(storage, spec, data)
    study = open_study(storage, spec, data)
    lock = StudyLock(settings.optuna_storage, spec.name)
    try:
        with lock:
            reap_dead_trials(study, settings.optuna_storage, tracker, stale)
            remaining, done = plan_remaining(study, spec, n_trials, allow_repeats=allow_repeats)
        experiment_id = tracker.ensure_experiment(spec.name)
        reap_dead_invocations(tracker, experiment_id, settings.optuna_storage, spec.name)
    except BaseException:
        lock.close()
        raise
    return Session(tracker, stale, study, lock, experiment_id, remaining, done)


def run_study(
    spec: StudySpec,
    *,
    n_trials: int | None = None,
    data_path: Path | None = None,
    settings: Settings | None = None,
    observer: StudyObserver | None = None,
    where: str = "study",
    device: str | None = None,
    worker: WorkerOptions | None = None,
) -> StudyReport:
    """Run (or resume) `spec` and return its trials and champion. See the module docstring."""
    settings = settings or get_settings()
    observer = observer or StudyObserver()
    worker = worker or WorkerOptions()
    check_stores(settings)
    data = prepare_study_data(spec, data_path, settings, where)
    torch_device = resolve_device(worker.device or device or spec.training.device, where="--device" if device else f"{where}: training.device")
    session = open_session(spec, data, settings, n_trials, allow_repeats=worker.parent_run_id is None)
    tracker, study = session.tracker, session.study
    try:
        # The stored trials crowned by this spec's rule: a changed rule re-crowns without retraining.
        crowning = crown(study, spec, tracker, session.lock)
        observer.on_study_start(spec, session.remaining, session.done)
        if session.remaining == 0:
            if crowning is not None and crowning.unmet is not None:
                raise crowning.unmet
            return session.report(spec, None, str(torch_device))
        parent_run_id = worker.parent_run_id or start_parent_run(tracker, session.experiment_id, spec, data, settings)
        invocation = None if worker.parent_run_id else Lease(settings.optuna_storage, spec.name, f"run-{parent_run_id}")
        assets = PlotlyAssets(spec.artifacts.plotlyjs, parent_run_id)
        context = StudyContext(spec, data, tracker, session.experiment_id, parent_run_id, settings.optuna_storage, session.lock, torch_device, assets, stale=session.stale)
        objective = TrialObjective(context, observer)
        refresher = ReportRefresher(tracker, parent_run_id, study, spec.objective.metric, assets, story=StoryContext(spec, data))
        status = "FAILED"
        try:
            after_trial = _after_trial(context, refresher, observer)
            _optimize(study, objective, spec, session.remaining, context, callbacks=[after_trial], explicit=n_trials is not None)
            status = "FINISHED"
        except KeyboardInterrupt:
            status = "KILLED"
            raise
        finally:
            refresher.close()
            for lease in context.leases.values():
                lease.release()
            if invocation is not None:
                _summarise_parent(tracker, study, parent_run_id)
                tracker.end_run(parent_run_id, status)
                invocation.release()
        if (crowning := crown(study, spec, tracker, session.lock)) is not None and crowning.unmet is not None:
            raise crowning.unmet  # the trials are kept, and the previous champion
        return session.report(spec, parent_run_id, str(torch_device))
    finally:
        session.lock.close()


def start_parent_run(tracker: Tracker, experiment_id: str, spec: StudySpec, data: PreparedDataset, settings: Settings) -> str:
    """The run of one `vae-lab study run` invocation: its trials nest under it."""
    run_id = tracker.start_run(
        experiment_id,
        f"{spec.name} @ {time.strftime('%Y-%m-%d %H:%M:%S')}",
        tags={"study": spec.name, "kind": "study-invocation", "sampler": spec.sampler, "objective": ",".join(spec.objective.names), "champion_rule": spec.champion_rule().describe(), **owner_attrs()},
        params={"data": data.source, "toy_fraction": data.toy_fraction, "train_rows": len(data.train.grids), "val_rows": len(data.val.grids), "planned_trials": spec.planned_trials, "objective": spec.objective.metric, "direction": spec.direction, "pruner": spec.pruner.kind},
    )
    tracker.log_dataset(run_id, data.reference(), ("train", "val"))
    tracker.log_text(run_id, yaml.safe_dump(spec.model_dump(mode="json", exclude_defaults=True), sort_keys=False), "study.yaml")
    if spec.artifacts.plotlyjs == "shared":
        tracker.log_plotly_library(run_id)
    return run_id


def plan_remaining(study: optuna.Study, spec: StudySpec, n_trials: int | None, allow_repeats: bool = True) -> tuple[int, int]:
    """(trials to run now, trials already finished); queues a grid's missing points, and repeats
    when `n_trials` asks for more than the grid has left (not for workers of `--workers`, whose
    parent queued them). Under the lock."""
    trials = study.get_trials(deepcopy=False)
    done = sum(t.state in FINISHED for t in trials)
    if spec.sampler == "grid":
        waiting = queue_grid(study, grid_points(spec.space), limit=n_trials)
        if n_trials is None:
            return waiting, done
        if n_trials > waiting and allow_repeats:
            queue_grid(study, grid_points(spec.space), repeats=n_trials - waiting, limit=0)
        return n_trials, done
    if n_trials is not None:
        return n_trials, done
    return max(spec.planned_trials - done, 0), done


def _optimize(study: optuna.Study, objective: TrialObjective, spec: StudySpec, count: int, context: StudyContext, callbacks: list, explicit: bool) -> None:
    """Run the trials: a grid's one claim at a time until its queue is empty (or `count` of them
    when the user asked for a number), TPE trials until the study has its trials (Optuna's
    MaxTrialsCallback, so parallel workers stop together)."""
    if spec.sampler != "grid":
        # --n-trials: exactly that many (a worker's share). Otherwise until the study as a whole
        # has its planned trials, counted across every worker.
        stop = [] if explicit else [optuna.study.MaxTrialsCallback(spec.planned_trials, states=FINISHED)]
        study.optimize(objective, n_trials=count, catch=TRIAL_FAILURES, callbacks=[*callbacks, *stop])
        return
    for _ in range(count) if explicit else itertools.count():
        if interrupts.last_signal() is not None:
            raise KeyboardInterrupt
        with context.lock:
            # A dead worker's point goes back in the queue. (Trials that failed in this run are
            # not retried until the next run: a configuration that always fails must not loop.)
            for dead in reap_dead_trials(study, context.storage_url, context.tracker, context.stale):
                study.enqueue_trial(trial_point(dead), user_attrs={"requeued_from": dead.number})
                reap_dead_invocations(context.tracker, context.experiment_id, context.storage_url, spec.name)
        ran = claim_and_run(study, context.lock, lambda: study.optimize(objective, n_trials=1, catch=TRIAL_FAILURES, callbacks=callbacks))
        if not ran:
            return


def _after_trial(context: StudyContext, refresher: ReportRefresher, observer: StudyObserver):
    def after(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        lease = context.leases.pop(trial.number, None)
        if lease is not None:
            lease.release()  # only now: the trial is told, so nobody can take it for dead
        if trial.state == TrialState.COMPLETE:
            crown(study, context.spec, context.tracker, context.lock)
        observer.on_trial_end(trial)
        refresher.request()

    return after


def crown(study: optuna.Study, spec: StudySpec, tracker: Tracker, lock: StudyLock) -> Crowning | None:
    """Point champion (by the study's rule), best-<family> and pareto-<k> at the study's trials as
    stored in Optuna; None before any trial completes. A warning when the rule is unmet."""
    names = spec.objective.names
    with lock:
        trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        entries = [
            Entry(spec.name, t.number, t.params.get("architecture") or t.user_attrs.get("architecture", "?"), float(t.values[0]), t.user_attrs["mlflow_run_id"], t.user_attrs["model_id"], spec.objective.metric, spec.direction,
                  dict(zip(names, map(float, t.values))) if spec.objective.several else {})
            for t in trials
            if "model_id" in t.user_attrs and t.values and len(t.values) == len(names) and all(map(math.isfinite, t.values))
        ]
        if not entries:
            return None
        crowning = reconcile(tracker, spec.model_name, entries, spec.champion_rule())
    if crowning.unmet is not None:
        logger.warning("%s", crowning.unmet)
    return crowning


def _champion_or_none(tracker: Tracker, model_name: str) -> dict[str, Any] | None:
    try:
        return champion_info(tracker, model_name, CHAMPION)
    except VaeLabError:
        return None


def _summarise_parent(tracker: Tracker, study: optuna.Study, run_id: str) -> None:
    states = [t.state for t in study.get_trials(deepcopy=False)]
    metrics = {f"trials_{s.name.lower()}": float(states.count(s)) for s in set(states)}
    try:
        metrics["best_value"] = study.best_value
    except (ValueError, RuntimeError):  # no trial finished, or several objectives (no one best)
        pass
    if metrics:
        tracker.log_metrics(run_id, metrics)


def study_status(name: str, settings: Settings | None = None) -> dict[str, Any]:
    """Trials of a stored study, without running anything."""
    settings = settings or get_settings()
    check_stores(settings, tracking=False)
    storage = open_storage(settings.optuna_storage)
    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        known = optuna.study.get_all_study_names(storage)
        fix = f"known studies: {', '.join(known)}" if known else "run it first: vae-lab study run NAME"
        raise VaeLabError(f"study {name}", "not found in the Optuna storage", fix) from None
    rows = trial_rows(study)
    best = None
    directions = [d.name.lower() for d in study.directions]
    if len(directions) > 1:
        front = [{"number": t.number, "values": t.values, "params": t.params} for t in study.best_trials]
        return {"study": name, "directions": directions, "trials": rows, "best": None, "pareto_front": sorted(front, key=lambda f: f["number"])}
    try:
        bt = study.best_trial
        best = {"number": bt.number, "value": bt.value, "params": bt.params}
    except ValueError:
        pass
    return {"study": name, "direction": directions[0], "trials": rows, "best": best}

