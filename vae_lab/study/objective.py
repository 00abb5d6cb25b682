"""One trial: sample a config, train a VAE, log it to MLflow, hand Optuna the objective.

`TrialObjective` is the function Optuna calls. It is the only place where a trial, an MLflow run
and a trained model meet; the runner around it deals with studies, workers and the registry.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import optuna
import torch

from vae_lab.data import PreparedDataset
from vae_lab.data.sparse import max_occupied
from vae_lab.errors import VaeLabError
from vae_lab.models import BaseVAE, ModelConfig, build_model, count_parameters
from vae_lab.study.artifacts import log_trial_figures
from vae_lab.study.interrupts import StopOnSignal
from vae_lab.study.report import summary_of
from vae_lab.study.coordination import Lease, StudyLock, owner_attrs
from vae_lab.study.space import build_configs, suggest_params
from vae_lab.study.spec import StudySpec
from vae_lab.tracking import MlflowEpochLogger, PlotlyAssets, Tracker, dataset_key, log_model
from vae_lab.training import Callback, NonFiniteError, TensorData, TrainConfig, Trainer
from vae_lab.training.record import RECORD_FILE, TrialRecord


class StudyObserver:
    """Hooks for a front end (the CLI's progress bars); every default does nothing."""

    def on_study_start(self, spec: StudySpec, remaining: int, done: int) -> None: ...

    def on_trial_start(self, number: int, model: ModelConfig, train: TrainConfig) -> None: ...

    def training_callback(self) -> Callback | None:
        return None

    def on_trial_end(self, trial: optuna.trial.FrozenTrial) -> None: ...


class PruneOnEpoch(Callback):
    """Report the objective to Optuna every epoch and stop the trial when the pruner says so."""

    def __init__(self, trial: optuna.Trial, metric: str):
        self.trial, self.metric = trial, metric
        self.epoch = -1

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: dict[str, float]) -> None:
        self.epoch = epoch
        if (value := metrics.get(self.metric)) is None:
            return
        self.trial.report(value, step=epoch)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned at epoch {epoch} ({self.metric}={value:.4f})")


class TimedLogger(MlflowEpochLogger):
    """Per-epoch MLflow logging that also counts the time it spends (the benchmark's split)."""

    spent_s = 0.0

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: dict[str, float]) -> None:
        started = time.perf_counter()
        super().on_epoch_end(trainer, epoch, metrics)
        self.spent_s += time.perf_counter() - started


@dataclass
class StudyContext:
    """What every trial of one worker shares: the study, its data (on the device), its stores."""

    spec: StudySpec
    data: PreparedDataset
    tracker: Tracker
    experiment_id: str
    parent_run_id: str
    storage_url: str
    lock: StudyLock
    device: torch.device
    assets: PlotlyAssets
    leases: dict[int, Lease] = field(default_factory=dict)
    stale: Any = None  # the runner's StaleTrialCloser (RDB heartbeats), if any


@dataclass
class TrialTimings:
    """Where a trial's wall time went, in seconds (the trainer's loops and everything around them)."""

    setup_s: float = 0.0
    train_s: float = 0.0
    val_s: float = 0.0
    tracking_s: float = 0.0
    projections_s: float = 0.0
    model_logging_s: float = 0.0

    @property
    def overhead_s(self) -> float:
        return self.setup_s + self.tracking_s + self.projections_s + self.model_logging_s


class TrialObjective:
    """The Optuna objective: one trial = one model trained, logged and recorded."""

    def __init__(self, context: StudyContext, observer: StudyObserver):
        self.context, self.observer = context, observer
        data = context.data
        self._tensors: dict[bool, tuple[TensorData, TensorData]] = {}
        # Sparse families pad every sample to the most occupied cells in the dataset (the journal's K).
        self.max_points = max(1, *(max_occupied(s.grids) for s in (data.train, data.val, data.test) if len(s.grids)))
        self.last_timings: TrialTimings | None = None

    def tensors(self, model: BaseVAE) -> tuple[TensorData, TensorData]:
        """Train and val tensors for what the family reads, on the worker's device, built once per worker."""
        key = model.reads_points
        if key not in self._tensors:
            data, device = self.context.data, self.context.device
            self._tensors[key] = tuple(
                TensorData.for_model(model, split.grids, split.labels, self.max_points).to(device) for split in (data.train, data.val)
            )
        return self._tensors[key]

    def __call__(self, trial: optuna.Trial) -> float | tuple[float, ...]:
        context, spec = self.context, self.context.spec
        context.lock.release()  # the trial is claimed: other workers may claim theirs
        context.leases[trial.number] = Lease(context.storage_url, trial.study.study_name, trial.number)
        for key, value in owner_attrs().items():
            trial.set_user_attr(key, value)
        started = time.perf_counter()
        chosen = suggest_params(trial, spec.space)
        model_config, train_config = build_configs(chosen, spec, context.data.grid, self.max_points, seed=spec.training.seed + trial.number)
        run_id = context.tracker.start_run(
            context.experiment_id,
            f"trial-{trial.number:03d}-{model_config.architecture}",
            parent_run_id=context.parent_run_id,
            tags={"study": spec.name, "trial": trial.number, "architecture": model_config.architecture, "optuna_study": trial.study.study_name, "device": str(context.device)},
            params=_run_params(model_config, train_config, spec),
        )
        trial.set_user_attr("mlflow_run_id", run_id)
        self.observer.on_trial_start(trial.number, model_config, train_config)
        status = "FAILED"
        try:
            value = self._fit_and_log(trial, run_id, model_config, train_config, started)
            status = "FINISHED"
            return value
        except optuna.TrialPruned as pruned:
            context.tracker.set_tags(run_id, {"trial_state": "PRUNED", "pruned_reason": str(pruned)})
            status = "KILLED"
            raise
        except KeyboardInterrupt:
            context.tracker.set_tags(run_id, {"trial_state": "INTERRUPTED"})
            trial.set_user_attr("failure_reason", "interrupted (Ctrl-C or SIGTERM)")
            status = "KILLED"
            raise
        except NonFiniteError as diverged:
            context.tracker.set_tags(run_id, {"trial_state": "FAILED", "failure_reason": str(diverged), "failed_epoch": diverged.epoch})
            trial.set_user_attr("failure_reason", str(diverged))
            raise
        except Exception as error:
            reason = f"{type(error).__name__}: {error}"[:500]
            context.tracker.set_tags(run_id, {"trial_state": "FAILED", "failure_reason": reason})
            trial.set_user_attr("failure_reason", reason)
            raise
        finally:
            context.tracker.end_run(run_id, status)

    def _fit_and_log(self, trial: optuna.Trial, run_id: str, model_config: ModelConfig, train_config: TrainConfig, started: float) -> float | tuple[float, ...]:
        context, spec, tracker = self.context, self.context.spec, self.context.tracker
        timings = TrialTimings()
        torch.manual_seed(train_config.seed)
        model = build_model(model_config)
        train, val = self.tensors(model)
        check_runs_on(model, context.device, spec.training.precision)
        reference = context.data.reference()
        tracker.set_tags(run_id, {"parameters": count_parameters(model)})
        tracker.log_dataset(run_id, reference, ("train", "val"))
        logger = TimedLogger(tracker, run_id)
        pruning = PruneOnEpoch(trial, spec.objective.metric)
        # Optuna cannot prune a study of several objectives (its report() refuses them).
        callbacks: list[Callback] = [logger, StopOnSignal()] if spec.objective.several else [logger, pruning, StopOnSignal()]
        if (progress := self.observer.training_callback()) is not None:
            callbacks.append(progress)
        timings.setup_s = time.perf_counter() - started
        trainer = Trainer(model, train_config, callbacks, runtime=spec.training.runtime().model_copy(update={"device": str(context.device)}))
        try:
            result = trainer.fit(train, val)
        except optuna.TrialPruned:
            tracker.log_metrics(run_id, {"epochs_run": pruning.epoch + 1})
            raise
        timings.train_s = sum(h["train_time_s"] for h in result.history)
        timings.val_s = sum(h["val_time_s"] for h in result.history)
        timings.tracking_s = logger.spent_s
        best = result.best_metrics
        values = [best.get(name) for name in spec.objective.names]
        for name, value in zip(spec.objective.names, values):
            if value is None or not math.isfinite(value):
                raise ValueError(f"objective {name} is {value} (is the data labelled?)")
        value = values[0]

        step = time.perf_counter()
        title = f"trial {trial.number} ({model_config.architecture}/{model_config.output}, latent {model_config.latent_dim})"
        extra = log_trial_figures(tracker, run_id, model, val, result.final, context.data, spec.artifacts, context.assets, title)
        timings.projections_s = time.perf_counter() - step

        step = time.perf_counter()
        summary = {f"best_{k}": v for k, v in {**best, **extra}.items()} | {"best_epoch": result.best_epoch, "epochs_run": len(result.history)}
        record = TrialRecord(
            study=spec.name, trial=trial.number, model=model_config, train=train_config, runtime=trainer.runtime, data=reference,
            objective=spec.objective.metric, direction=spec.direction, value=value, best_epoch=result.best_epoch, epochs_run=len(result.history),
        )
        tracker.log_text(run_id, record.model_dump_json(indent=2), RECORD_FILE)
        timings.tracking_s += time.perf_counter() - step

        step = time.perf_counter()
        ref = log_model(tracker, run_id, context.experiment_id, model, step=result.best_epoch, params={"architecture": model_config.architecture, "latent_dim": model_config.latent_dim, "output": model_config.output})
        tracker.log_metrics(run_id, summary, step=result.best_epoch, model_id=ref.model_id, dataset=dataset_key(reference, "val"))
        timings.model_logging_s = time.perf_counter() - step
        attrs = {"best_epoch": result.best_epoch, "epochs_run": len(result.history), "model_id": ref.model_id, "model_uri": ref.uri, "architecture": model_config.architecture, "summary": summary_of({**best, **extra}), "timings": timings.__dict__}
        for key, attr in attrs.items():
            trial.set_user_attr(key, attr)
        self.last_timings = timings
        return tuple(values) if spec.objective.several else value


def _run_params(model: ModelConfig, train: TrainConfig, spec: StudySpec) -> dict:
    """Every setting of the trial as MLflow params (the searched ones and the defaults it used)."""
    keep = train.model_dump(exclude={"select_mode"})
    return {**model.model_dump(), **keep, "precision": spec.training.precision}


def check_runs_on(model: BaseVAE, device: torch.device, precision: str) -> None:
    """One forward and backward pass on a tiny batch, so a family that cannot run on the device
    (an op missing for it or for the precision) is one clear line, not a traceback mid-study."""
    from vae_lab.device import autocast

    try:
        model.to(device).train()
        batch = _example_on(model, device)
        with autocast(device, precision):
            out = model.forward_batch(batch)
        (out.mu.float().sum() + out.recon.float().sum()).backward()
        model.zero_grad(set_to_none=True)
    except (RuntimeError, NotImplementedError) as error:
        reason = str(error).strip().splitlines()[0][:200]
        raise VaeLabError(f"architecture {model.name}", f"cannot run on {device} in {precision}: {reason}", "use another --device or training.precision, or drop the family from this study") from None


def _example_on(model: BaseVAE, device: torch.device):
    batch = model.example_input(batch_size=2)
    return batch.to(device)
