"""One trial: sample a config, train a VAE, log it to MLflow, hand Optuna the objective.

`TrialObjective` is where a trial, an MLflow run and a trained model meet: `start` suggests the
configuration and opens the run, `fit` trains, logs and records. It knows nothing of locks,
leases or how a trial ends: the trial loop (`execution.loop`) claims the trial, and `settle`
records its ending in Optuna and MLflow together.
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
from vae_lab.study.design.space import suggest_params
from vae_lab.study.design.spec import StudySpec, build_configs
from vae_lab.study.trial.artifacts import log_trial_figures
from vae_lab.study.trial.provenance import Owner, RunTag, TrialAttr, summary_of
from vae_lab.study.trial.what_ran import record_what_ran, what_ran_tags
from vae_lab.tracking import MlflowEpochLogger, PlotlyAssets, Tracker, dataset_key, log_model
from vae_lab.tracking.system_metrics import system_metrics
from vae_lab.training import Callback, TensorData, TrainConfig, Trainer
from vae_lab.training.generation import GENERATION_PREFIX, GenerationCheck, GenerationReference
from vae_lab.training.memory import PeakMemory
from vae_lab.training.record import RECORD_FILE, TrialRecord


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
class TrialSetup:
    """What every trial of one worker shares: the study, its data (on the device), its stores."""

    spec: StudySpec
    data: PreparedDataset
    tracker: Tracker
    experiment_id: str
    parent_run_id: str
    device: torch.device
    assets: PlotlyAssets
    placement: dict[str, Any] = field(default_factory=dict)  # tags saying where the worker runs (node, GPUs)


@dataclass
class StartedTrial:
    """A trial whose configuration is chosen and whose MLflow run is open."""

    run_id: str
    model: ModelConfig
    train: TrainConfig
    started: float  # perf_counter at the start


@dataclass
class TrialTimings:
    """Where a trial's wall time went, in seconds (the trainer's loops and everything around them)."""

    setup_s: float = 0.0
    train_s: float = 0.0
    val_s: float = 0.0
    tracking_s: float = 0.0
    projections_s: float = 0.0
    model_logging_s: float = 0.0


class TrialObjective:
    """One trial = one model trained, logged and recorded."""

    def __init__(self, setup: TrialSetup):
        self.setup = setup
        data = setup.data
        self._tensors: dict[bool, tuple[TensorData, TensorData]] = {}
        # Sparse families pad every sample to the most occupied cells in the dataset (the research journal's K).
        self.max_points = max(1, *(max_occupied(s.grids) for s in (data.train, data.val, data.test) if len(s.grids)))
        self._generation: GenerationReference | None = None

    def generation(self, seed: int) -> GenerationCheck | None:
        """What the trainer scores generation against (the reference is built once per worker, ~1 s)."""
        samples = self.setup.spec.training.generation_samples
        if not samples:
            return None
        if self._generation is None:
            data = self.setup.data
            self._generation = GenerationReference.from_splits(data.train.grids, data.val.grids)
        return GenerationCheck(self._generation, samples, seed)

    def tensors(self, model: BaseVAE) -> tuple[TensorData, TensorData]:
        """Train and val tensors for what the family reads, on the worker's device, built once per worker."""
        key = model.reads_points
        if key not in self._tensors:
            data, device = self.setup.data, self.setup.device
            self._tensors[key] = tuple(
                TensorData.for_model(model, split.grids, split.labels, self.max_points).to(device)
                for split in (data.train, data.val)
            )
        return self._tensors[key]

    def start(self, trial: optuna.Trial) -> StartedTrial:
        """Suggest the trial's configuration and open its MLflow run under the invocation's."""
        setup, spec = self.setup, self.setup.spec
        started = time.perf_counter()
        chosen = suggest_params(trial, spec.space)
        seed = spec.training.seed + trial.number
        model_config, train_config = build_configs(chosen, spec, setup.data.grid, self.max_points, seed=seed)
        run_id = setup.tracker.start_run(
            setup.experiment_id,
            f"trial-{trial.number:03d}-{model_config.architecture}",
            parent_run_id=setup.parent_run_id,
            tags={
                RunTag.STUDY: spec.name,
                RunTag.TRIAL: trial.number,
                RunTag.ARCHITECTURE: model_config.architecture,
                RunTag.OPTUNA_STUDY: trial.study.study_name,
                RunTag.DEVICE: str(setup.device),
                RunTag.COMPUTE_THREADS: torch.get_num_threads(),
                **what_ran_tags(spec),
                **setup.placement,
            },
            params=run_params(model_config, train_config, spec),
        )
        trial.set_user_attr(TrialAttr.RUN_ID, run_id)
        record_what_ran(setup.tracker, run_id)
        return StartedTrial(run_id, model_config, train_config, started)

    def fit(self, trial: optuna.Trial, run: StartedTrial, callbacks: list[Callback] = ()) -> float | tuple[float, ...]:
        """Train, log and record the trial, the machine's system metrics sampled onto its run
        meanwhile; returns the objective. Raises `optuna.TrialPruned` when the pruner stops it,
        and whatever training raises when it fails."""
        with system_metrics(self.setup.tracker, run.run_id, self.setup.device):
            return self._train_and_record(trial, run, callbacks)

    def _train_and_record(
        self, trial: optuna.Trial, run: StartedTrial, callbacks: list[Callback]
    ) -> float | tuple[float, ...]:
        setup, spec, tracker = self.setup, self.setup.spec, self.setup.tracker
        run_id, model_config, train_config = run.run_id, run.model, run.train
        timings = TrialTimings()
        memory = PeakMemory(setup.device).start()
        torch.manual_seed(train_config.seed)
        model = build_model(model_config)
        train, val = self.tensors(model)
        check_runs_on(model, setup.device, spec.training.precision)
        reference = setup.data.reference()
        # The worker's host says whose machine the run's system metrics describe (Ray adds its node id).
        tracker.set_tags(run_id, {RunTag.PARAMETERS: count_parameters(model), **Owner.this_process().attrs()})
        tracker.log_dataset(run_id, reference, ("train", "val"))
        logger = TimedLogger(tracker, run_id)
        pruning = PruneOnEpoch(trial, spec.objective.metric)
        timings.setup_s = time.perf_counter() - run.started
        runtime = spec.training.runtime().model_copy(update={"device": str(setup.device)})
        # Optuna cannot prune a study of several objectives (its report() refuses them).
        hooks = [logger, *callbacks] if spec.objective.several else [logger, pruning, *callbacks]
        trainer = Trainer(model, train_config, hooks, runtime=runtime, generation=self.generation(train_config.seed))
        try:
            result = trainer.fit(train, val)
        except optuna.TrialPruned:
            tracker.log_metrics(run_id, {"epochs_run": pruning.epoch + 1, **memory.megabytes()})
            raise
        timings.train_s = sum(h["train_time_s"] for h in result.history)
        timings.val_s = sum(h["val_time_s"] for h in result.history)
        timings.tracking_s = logger.spent_s
        best = result.best_metrics
        values = [best.get(name) for name in spec.objective.names]
        for name, value in zip(spec.objective.names, values, strict=True):
            if value is None or not math.isfinite(value):
                raise ValueError(f"objective {name} is {value} (is the data labelled?)")
        value = values[0]

        step = time.perf_counter()
        shape = f"{model_config.architecture}/{model_config.output}, latent {model_config.latent_dim}"
        title = f"trial {trial.number} ({shape})"
        extra = log_trial_figures(
            tracker, run_id, model, val, result.final, setup.data, spec.artifacts, setup.assets, title
        )
        timings.projections_s = time.perf_counter() - step

        step = time.perf_counter()
        peaks = memory.megabytes()  # training and the figures
        # Generation is measured once, on the restored model: its own section, not a "best" of a curve.
        summary = {(k if k.startswith(GENERATION_PREFIX) else f"best_{k}"): v for k, v in {**best, **extra}.items()} | {
            "best_epoch": result.best_epoch,
            "epochs_run": len(result.history),
            **peaks,
        }
        record = TrialRecord(
            study=spec.name,
            trial=trial.number,
            model=model_config,
            train=train_config,
            runtime=trainer.runtime,
            data=reference,
            objective=spec.objective.metric,
            direction=spec.direction,
            value=value,
            best_epoch=result.best_epoch,
            epochs_run=len(result.history),
        )
        tracker.log_text(run_id, record.model_dump_json(indent=2), RECORD_FILE)
        timings.tracking_s += time.perf_counter() - step

        step = time.perf_counter()
        ref = log_model(
            tracker,
            run_id,
            setup.experiment_id,
            model,
            step=result.best_epoch,
            params={
                "architecture": model_config.architecture,
                "latent_dim": model_config.latent_dim,
                "output": model_config.output,
            },
            examples=setup.data.val.grids[:3],  # real rows: the logged model's input example
        )
        tracker.log_metrics(
            run_id, summary, step=result.best_epoch, model_id=ref.model_id, dataset=dataset_key(reference, "val")
        )
        timings.model_logging_s = time.perf_counter() - step
        attrs = {
            TrialAttr.BEST_EPOCH: result.best_epoch,
            TrialAttr.EPOCHS_RUN: len(result.history),
            TrialAttr.MODEL_ID: ref.model_id,
            TrialAttr.MODEL_URI: ref.uri,
            TrialAttr.ARCHITECTURE: model_config.architecture,
            TrialAttr.SUMMARY: summary_of({**best, **extra}) | peaks,
            TrialAttr.TIMINGS: timings.__dict__,
        }
        for key, attr in attrs.items():
            trial.set_user_attr(key, attr)
        return tuple(values) if spec.objective.several else value


def run_params(model: ModelConfig, train: TrainConfig, spec: StudySpec) -> dict:
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
        raise VaeLabError(
            f"architecture {model.name}",
            f"cannot run on {device} in {precision}: {reason}",
            "use another --device or training.precision, or drop the family from this study",
        ) from None


def _example_on(model: BaseVAE, device: torch.device):
    batch = model.example_input(batch_size=2)
    return batch.to(device)
