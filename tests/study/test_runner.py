"""How trials end (pruned, failed, diverged, interrupted), and resuming them (dead workers: test_workers.py,
test_remote_worker.py)."""

from __future__ import annotations

import mlflow
import optuna
import pytest

from vae_lab.config import get_settings
from vae_lab.data import synthesize, write_dataset
from vae_lab.study.design.spec import StudySpec
from vae_lab.study.execution.run import run_study
from vae_lab.study.trial.storage import open_storage
from vae_lab.tracking import plain_metrics
from vae_lab.training import Trainer

pytestmark = pytest.mark.slow


@pytest.fixture
def spec(lab) -> StudySpec:
    write_dataset(synthesize(rows=1500, seed=3), lab / "voxels.parquet")
    return StudySpec.model_validate(
        {
            "name": "ends",
            "data": {"path": str(lab / "voxels.parquet")},
            "training": {"epochs": 2},
            "space": {"architecture": ["fc"], "latent_dim": [2, 3, 4]},
            "artifacts": {"pca": False, "reconstructions": 0, "interpolation": False},
        }
    )


def child_runs(study: str) -> dict[str, mlflow.entities.Run]:
    client = mlflow.MlflowClient(get_settings().mlflow_tracking_uri)
    experiment = client.get_experiment_by_name(study)
    runs = client.search_runs([experiment.experiment_id], filter_string="tags.trial != ''")
    return {r.info.run_id: r for r in runs if "trial" in r.data.tags}


def stored_trials(name: str, waiting: bool = False) -> list[optuna.trial.FrozenTrial]:
    trials = optuna.load_study(study_name=name, storage=open_storage(get_settings().optuna_storage)).trials
    return trials if waiting else [t for t in trials if t.state != optuna.trial.TrialState.WAITING]


def test_pruned_trial_is_killed_in_mlflow_and_pruned_in_optuna(spec, monkeypatch):
    monkeypatch.setattr(optuna.trial.Trial, "should_prune", lambda self: True)
    report = run_study(spec, n_trials=1)
    assert report.trials[0].state == "pruned"
    run = child_runs("ends")[report.trials[0].mlflow_run_id]
    assert run.info.status == "KILLED" and run.data.tags["trial_state"] == "PRUNED"
    assert plain_metrics(run.data.metrics)["epochs_run"] == 1  # pruned after its first epoch's report


def test_failed_trial_is_failed_and_the_study_goes_on(spec, monkeypatch):
    calls = {"n": 0}
    real_fit = Trainer.fit

    def fit_failing_once(self, train, val):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("the disk is full")
        return real_fit(self, train, val)

    monkeypatch.setattr(Trainer, "fit", fit_failing_once)
    report = run_study(spec)
    assert [t.state for t in report.trials] == ["failed", "complete", "complete"]
    failed = child_runs("ends")[report.trials[0].mlflow_run_id]
    assert failed.info.status == "FAILED" and "disk is full" in failed.data.tags["failure_reason"]
    assert report.champion is not None
    # The next run retries the failed point (and only it).
    monkeypatch.setattr(Trainer, "fit", real_fit)
    again = run_study(spec)
    assert [t.state for t in again.trials] == ["failed", "complete", "complete", "complete"]
    assert again.trials[3].params == again.trials[0].params


def test_a_diverging_trial_records_why_and_when_and_the_study_goes_on(spec, monkeypatch):
    real_epoch = Trainer.train_epoch

    def diverge_in_second_epoch(self, data, beta):
        metrics = real_epoch(self, data, beta)
        if self.epoch == 1 and self.config.seed == spec.training.seed:  # trial 0 only
            metrics["train_loss"] = float("nan")
        return metrics

    monkeypatch.setattr(Trainer, "train_epoch", diverge_in_second_epoch)
    report = run_study(spec)
    assert [t.state for t in report.trials] == ["failed", "complete", "complete"]
    run = child_runs("ends")[report.trials[0].mlflow_run_id]
    assert run.info.status == "FAILED"
    assert run.data.tags["failed_epoch"] == "1" and "NaN" in run.data.tags["failure_reason"]
    assert "NaN" in report.trials[0].failure_reason


def test_interrupted_study_keeps_finished_trials_and_resumes_the_grid(spec, monkeypatch):
    calls = {"n": 0}
    real_fit = Trainer.fit

    def fit_interrupted_second(self, train, val):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real_fit(self, train, val)

    monkeypatch.setattr(Trainer, "fit", fit_interrupted_second)
    with pytest.raises(KeyboardInterrupt):
        run_study(spec)
    trials = stored_trials("ends")
    assert [t.state.name for t in trials] == ["COMPLETE", "FAIL"]
    interrupted = child_runs("ends")[trials[1].user_attrs["mlflow_run_id"]]
    assert interrupted.info.status == "KILLED" and interrupted.data.tags["trial_state"] == "INTERRUPTED"

    monkeypatch.setattr(Trainer, "fit", real_fit)
    report = run_study(spec)
    complete = [t for t in report.trials if t.state == "complete"]
    assert len(complete) == 3  # the first trial kept, two more run
    assert sorted(t.params["latent_dim"] for t in complete) == [2, 3, 4]  # every grid point, none twice


def test_tpe_study_samples_ranges_and_can_prune(spec):
    raw = spec.model_dump(mode="json") | {"name": "tpe", "sampler": "tpe", "n_trials": 4}
    raw["pruner"] = {"kind": "median", "warmup_epochs": 0, "startup_trials": 1}
    raw["space"] |= {"latent_dim": {"low": 2, "high": 6}, "learning_rate": {"low": 1e-4, "high": 1e-2, "log": True}}
    tpe = StudySpec.model_validate(raw)
    report = run_study(tpe)
    assert len(report.trials) == 4
    assert {t.state for t in report.trials} <= {"complete", "pruned"}
    for t in report.trials:
        assert 2 <= t.params["latent_dim"] <= 6 and 1e-4 <= t.params["learning_rate"] <= 1e-2
    # A second invocation owes nothing more: n_trials counts across invocations.
    assert len(run_study(tpe).trials) == 4


def test_hyperband_prunes_in_a_tiny_tpe_study(spec):
    raw = spec.model_dump(mode="json") | {"name": "hyper", "sampler": "tpe", "n_trials": 8}
    raw["training"] = {"epochs": 6, "patience": 6}
    raw["pruner"] = {"kind": "hyperband", "min_epochs": 1, "reduction_factor": 3}
    raw["space"] |= {"learning_rate": {"low": 1e-5, "high": 1e-2, "log": True}}
    report = run_study(StudySpec.model_validate(raw))
    states = [t.state for t in report.trials]
    assert "pruned" in states and "complete" in states
    pruned = [r for r in child_runs("hyper").values() if r.data.tags.get("trial_state") == "PRUNED"]
    assert pruned and all(plain_metrics(r.data.metrics)["epochs_run"] < 6 for r in pruned)


def test_n_trials_past_the_end_of_a_grid_runs_exactly_that_many(spec):
    assert len(run_study(spec).trials) == 3
    report = run_study(spec, n_trials=2)
    assert len(report.trials) == 5 and all(t.state == "complete" for t in report.trials)


def test_a_grid_point_is_trained_once_with_conditional_hyperparameters(spec):
    raw = spec.model_dump(mode="json") | {"name": "cond"}
    raw["space"] = {
        "architecture": ["fc"],
        "loss": ["weighted_ce", "focal_ce"],
        "focal_gamma": [1.0, 2.0],
        "latent_dim": [2],
    }
    report = run_study(StudySpec.model_validate(raw))
    params = sorted((t.params["loss"], t.params.get("focal_gamma")) for t in report.trials)
    assert params == [("focal_ce", 1.0), ("focal_ce", 2.0), ("weighted_ce", None)]


def test_a_study_resumes_only_on_its_own_data(spec, lab):
    from vae_lab.errors import VaeLabError
    from vae_lab.study.design.spec import renamed

    run_study(spec, n_trials=1)
    write_dataset(synthesize(rows=1500, seed=4), lab / "other.parquet")
    with pytest.raises(VaeLabError, match="was run on other data"):
        run_study(spec, data_path=lab / "other.parquet")
    assert len(stored_trials("ends", waiting=True)) == 1  # nothing stored was touched
    report = run_study(renamed(spec, "ends-other"), n_trials=1, data_path=lab / "other.parquet")
    assert report.study == "ends-other" and len(report.trials) == 1


def test_the_objective_direction_follows_the_metric(spec):
    raw = spec.model_dump(mode="json") | {"name": "loss-study", "objective": {"metric": "val_loss"}}
    loss_spec = StudySpec.model_validate(raw)
    assert loss_spec.direction == "minimize"
    report = run_study(loss_spec, n_trials=2)
    study = optuna.load_study(study_name="loss-study", storage=open_storage(get_settings().optuna_storage))
    assert study.direction == optuna.study.StudyDirection.MINIMIZE
    assert report.champion["tags"]["value"] == repr(min(t.value for t in report.trials))
