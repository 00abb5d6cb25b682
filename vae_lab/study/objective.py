"""One trial: sample a config, train a VAE, log it to MLflow, hand Optuna the objective.

`TrialObjective` is the function Optuna calls. It is the only place where a trial, an MLflow run
and a trained model meet; the runner around it deals with studies, resuming and the registry.
"""

from __future__ import annotations

import math

import optuna
import torch

from vae_lab import tracking, viz
from vae_lab.data import PreparedDataset
from vae_lab.data.sparse import max_occupied
from vae_lab.models import BaseVAE, ModelConfig, build_model, count_parameters
from vae_lab.study.space import suggest_configs
from vae_lab.study.spec import StudySpec
from vae_lab.training import Callback, TensorData, TrainConfig, Trainer


class StudyObserver:
    """Hooks for a front end (the CLI's progress bars); every default does nothing."""

    def on_study_start(self, spec: StudySpec, remaining: int, done: int) -> None: ...

    def on_trial_start(self, number: int, model: ModelConfig, train: TrainConfig) -> None: ...

    def training_callback(self) -> Callback | None:
        return None

    def on_trial_end(self, trial: optuna.trial.FrozenTrial) -> None: ...


class PruneOnPlateau(Callback):
    """Report the objective to Optuna every epoch and stop the trial when the pruner says so."""

    def __init__(self, trial: optuna.Trial, metric: str):
        self.trial, self.metric = trial, metric

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: dict[str, float]) -> None:
        self.trial.report(metrics[self.metric], step=epoch)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned at epoch {epoch} ({self.metric}={metrics[self.metric]:.4f})")


class TrialObjective:
    """The Optuna objective: one trial = one model trained, logged and offered to the registry."""

    def __init__(self, spec: StudySpec, data: PreparedDataset, experiment_id: str, parent_run_id: str, observer: StudyObserver):
        self.spec, self.data, self.observer = spec, data, observer
        self.experiment_id, self.parent_run_id = experiment_id, parent_run_id
        self._tensors: dict[str, tuple[TensorData, TensorData]] = {}
        # Sparse families pad every sample to the most occupied cells in the dataset (the journal's K).
        self.max_points = max(1, *(max_occupied(s.grids) for s in (data.train, data.val, data.test) if len(s.grids)))

    def tensors(self, model: BaseVAE) -> tuple[TensorData, TensorData]:
        """Train and val tensors for the model's input kind, built once per study run."""
        kind = model.input_kind
        if kind not in self._tensors:
            k = model.config.max_points if kind == "sparse" else None
            self._tensors[kind] = tuple(
                TensorData.from_arrays(split.grids, split.labels, sparse_points=k) for split in (self.data.train, self.data.val)
            )
        return self._tensors[kind]

    def __call__(self, trial: optuna.Trial) -> float:
        model_config, train_config = suggest_configs(trial, self.spec, self.data.grid, self.max_points)
        run_id = tracking.start_run(
            self.experiment_id,
            f"trial-{trial.number:03d}-{model_config.architecture}",
            parent_run_id=self.parent_run_id,
            tags={"study": self.spec.name, "trial": trial.number, "architecture": model_config.architecture, "optuna_study": trial.study.study_name},
            params=trial.params | {"epochs": train_config.epochs, "patience": train_config.patience, "seed": train_config.seed, "data": self.data.source, "toy_fraction": self.data.toy_fraction},
        )
        trial.set_user_attr("mlflow_run_id", run_id)
        self.observer.on_trial_start(trial.number, model_config, train_config)
        status = "FAILED"
        try:
            value = self._fit_and_log(trial, run_id, model_config, train_config)
            status = "FINISHED"
            return value
        except optuna.TrialPruned:
            tracking.set_tags(run_id, {"trial_state": "PRUNED"})
            status = "KILLED"
            raise
        except KeyboardInterrupt:
            tracking.set_tags(run_id, {"trial_state": "INTERRUPTED"})
            status = "KILLED"
            raise
        finally:
            tracking.end_run(run_id, status)

    def _fit_and_log(self, trial: optuna.Trial, run_id: str, model_config: ModelConfig, train_config: TrainConfig) -> float:
        torch.manual_seed(train_config.seed)
        model = build_model(model_config)
        tracking.set_tags(run_id, {"parameters": count_parameters(model), "model_config": model_config.model_dump_json()})
        train, val = self.tensors(model)
        callbacks: list[Callback] = [tracking.MlflowEpochLogger(run_id), PruneOnPlateau(trial, self.spec.objective.metric)]
        if (progress := self.observer.training_callback()) is not None:
            callbacks.append(progress)
        result = Trainer(model, train_config, callbacks).fit(train, val)
        best = result.best_metrics
        value = best[self.spec.objective.metric]
        if not math.isfinite(value):
            raise ValueError(f"objective {self.spec.objective.metric} is {value}")
        tracking.log_metrics(run_id, {f"best_{k}": v for k, v in best.items()} | {"best_epoch": result.best_epoch, "epochs_run": len(result.history)})
        trial.set_user_attr("best_epoch", result.best_epoch)
        self._log_artifacts(run_id, model, val, title=f"trial {trial.number} ({model_config.architecture}, latent {model_config.latent_dim})")
        model_uri = tracking.log_model(run_id, model)
        trial.set_user_attr("model_uri", model_uri)
        trial.set_user_attr("model_config", model_config.model_dump())
        trial.set_user_attr("train_config", train_config.model_dump())
        return value

    @torch.no_grad()
    def _log_artifacts(self, run_id: str, model: BaseVAE, val: TensorData, title: str) -> None:
        art = self.spec.artifacts
        sample = val.head(min(art.max_points, len(val)))
        latents = torch.cat([model.forward_batch(b).mu for b in sample.batches(512)]).numpy()
        labels = sample.labels.numpy()
        for method, wanted in (("pca", art.pca), ("umap", art.umap)):
            if wanted and len(latents) >= 3:
                figure = viz.latent_projection_figure(latents, labels, self.data.label_names, method=method, title=f"{title}: validation latents, {method.upper()}")
                tracking.log_figure(run_id, figure, f"latents_{method}.html", art.plotlyjs)
        if art.reconstructions:
            shown = val.head(art.reconstructions)
            predicted = model.predict_grid(model.forward_batch(shown.batch(slice(None)))).numpy()
            figure = viz.reconstruction_figure(shown.grid.numpy(), predicted, title=f"{title}: validation reconstructions")
            tracking.log_figure(run_id, figure, "reconstructions.html", art.plotlyjs)
