"""How trials end: pruned, failed and interrupted trials are recorded as such, and resumable."""

from __future__ import annotations

import mlflow
import optuna
import pytest

from vae_lab.config import get_settings
from vae_lab.data import synthesize, write_dataset
from vae_lab.study.runner import run_study
from vae_lab.study.spec import StudySpec
from vae_lab.study.storage import open_storage
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
            "artifacts": {"pca": False, "reconstructions": 0},
        }
    )


def child_runs(study: str) -> dict[str, mlflow.entities.Run]:
    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name(study)
    runs = client.search_runs([experiment.experiment_id], filter_string="tags.trial != ''")
    return {r.info.run_id: r for r in runs if "trial" in r.data.tags}


def stored_trials(name: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=name, storage=open_storage(get_settings().optuna_storage)).trials


def test_pruned_trial_is_killed_in_mlflow_and_pruned_in_optuna(spec, monkeypatch):
    monkeypatch.setattr(optuna.trial.Trial, "should_prune", lambda self: True)
    report = run_study(spec, n_trials=1)
    assert report.trials[0]["state"] == "PRUNED"
    run = child_runs("ends")[report.trials[0]["mlflow_run_id"]]
    assert run.info.status == "KILLED" and run.data.tags["trial_state"] == "PRUNED"


def test_failed_trial_is_failed_and_the_study_goes_on(spec, monkeypatch):
    calls = {"n": 0}
    real_fit = Trainer.fit

    def fit_failing_once(self, train, val):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("loss went NaN")
        return real_fit(self, train, val)

    monkeypatch.setattr(Trainer, "fit", fit_failing_once)
    report = run_study(spec)
    assert [t["state"] for t in report.trials] == ["FAIL", "COMPLETE", "COMPLETE"]
    runs = child_runs("ends")
    assert runs[report.trials[0]["mlflow_run_id"]].info.status == "FAILED"
    assert report.champion is not None


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
    complete = [t for t in report.trials if t["state"] == "COMPLETE"]
    assert len(complete) == 3  # the first trial kept, two more run
    assert {t["params"]["latent_dim"] for t in complete} == {2, 3, 4}  # every grid point, none twice


def test_tpe_study_samples_ranges_and_can_prune(spec):
    raw = spec.model_dump(mode="json") | {"name": "tpe", "sampler": "tpe", "n_trials": 4}
    raw["pruner"] = {"kind": "median", "warmup_epochs": 0, "startup_trials": 1}
    raw["space"] |= {"latent_dim": {"low": 2, "high": 6}, "learning_rate": {"low": 1e-4, "high": 1e-2, "log": True}}
    tpe = StudySpec.model_validate(raw)
    report = run_study(tpe)
    assert len(report.trials) == 4
    assert {t["state"] for t in report.trials} <= {"COMPLETE", "PRUNED"}
    for t in report.trials:
        assert 2 <= t["params"]["latent_dim"] <= 6 and 1e-4 <= t["params"]["learning_rate"] <= 1e-2
    # A second invocation owes nothing more: n_trials counts across invocations.
    assert len(run_study(tpe).trials) == 4


def test_n_trials_past_the_end_of_a_grid_runs_exactly_that_many(spec):
    assert len(run_study(spec).trials) == 3
    report = run_study(spec, n_trials=2)
    assert len(report.trials) == 5 and all(t["state"] == "COMPLETE" for t in report.trials)


def test_a_study_resumes_only_on_its_own_data(spec, lab):
    from vae_lab.errors import VaeLabError
    from vae_lab.study.spec import renamed

    run_study(spec, n_trials=1)
    write_dataset(synthesize(rows=1500, seed=4), lab / "other.parquet")
    with pytest.raises(VaeLabError, match="was run on other data"):
        run_study(spec, data_path=lab / "other.parquet")
    assert len(stored_trials("ends")) == 1  # nothing stored was touched
    report = run_study(renamed(spec, "ends-other"), n_trials=1, data_path=lab / "other.parquet")
    assert report.study == "ends-other" and len(report.trials) == 1
