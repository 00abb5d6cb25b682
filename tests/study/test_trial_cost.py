"""What a trial cost, on its run: the machine's system metrics while it trained, its peak memory,
and the host they describe; none of the metrics when the setting is off, and no sampling thread
left behind by a trial however it ended."""

from __future__ import annotations

import threading
import time

import mlflow
import optuna
import pytest

from vae_lab.config import get_settings
from vae_lab.data import synthesize, write_dataset
from vae_lab.study.design.spec import StudySpec
from vae_lab.study.execution.run import run_study
from vae_lab.study.trial.provenance import HOST, TrialAttr
from vae_lab.study.trial.storage import open_storage
from vae_lab.tracking import mlflow_key
from vae_lab.tracking.system_metrics import PREFIX, SAMPLING_THREAD
from vae_lab.training import Trainer
from vae_lab.training.memory import PEAK_RSS

pytestmark = pytest.mark.slow

SYSTEM_METRICS = ("cpu_utilization_percentage", "system_memory_usage_megabytes", "system_memory_usage_percentage")


@pytest.fixture
def spec(lab, monkeypatch) -> StudySpec:
    write_dataset(synthesize(rows=600, seed=3), lab / "voxels.parquet")
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.1")
    real_epoch = Trainer.train_epoch

    def epoch_of_a_third_of_a_second(self, data, beta):  # longer than a few samples, on any machine
        time.sleep(0.3)
        return real_epoch(self, data, beta)

    monkeypatch.setattr(Trainer, "train_epoch", epoch_of_a_third_of_a_second)
    return StudySpec.model_validate(
        {
            "name": "cost",
            "data": {"path": str(lab / "voxels.parquet")},
            "training": {"epochs": 3},
            "space": {"architecture": ["fc"], "latent_dim": [2, 3, 4]},
            "artifacts": {"pca": False, "reconstructions": 0, "interpolation": False},
        }
    )


def trial_run(run_id: str) -> mlflow.entities.Run:
    return mlflow.MlflowClient(get_settings().mlflow_tracking_uri).get_run(run_id)


def last_trial() -> optuna.trial.FrozenTrial:
    return optuna.load_study(study_name="cost", storage=open_storage(get_settings().optuna_storage)).trials[-1]


def sampling_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == SAMPLING_THREAD]


def test_a_trial_run_holds_what_it_cost_unless_the_setting_is_off(spec, monkeypatch):
    report = run_study(spec, n_trials=1)
    run = trial_run(report.trials[0].mlflow_run_id)
    history = mlflow.MlflowClient(get_settings().mlflow_tracking_uri).get_metric_history(
        run.info.run_id, PREFIX + SYSTEM_METRICS[0]
    )
    assert len({m.step for m in history}) > 1  # three epochs of 0.3 s, sampled every 0.1 s
    assert {PREFIX + name for name in SYSTEM_METRICS} <= set(run.data.metrics)
    assert run.data.tags[TrialAttr.WORKER_HOST] == HOST
    peak = last_trial().user_attrs[TrialAttr.SUMMARY][PEAK_RSS]
    assert peak > 50  # a Python process with torch loaded
    assert run.data.metrics[mlflow_key(PEAK_RSS)] == peak
    assert not sampling_threads()

    monkeypatch.setenv("VAE_LAB_SYSTEM_METRICS", "false")
    get_settings.cache_clear()
    report = run_study(spec, n_trials=1)
    quiet = trial_run(report.trials[-1].mlflow_run_id)
    assert not any(key.startswith(PREFIX) for key in quiet.data.metrics)
    assert quiet.data.metrics[mlflow_key(PEAK_RSS)] > 50  # the peak costs nothing: always kept


def test_a_pruned_trial_keeps_its_peak_and_leaves_no_sampling_thread(spec, monkeypatch):
    monkeypatch.setattr(optuna.trial.Trial, "should_prune", lambda self: True)
    report = run_study(spec, n_trials=1)
    assert report.trials[0].state == "pruned"
    run = trial_run(report.trials[0].mlflow_run_id)
    assert run.data.metrics[mlflow_key(PEAK_RSS)] > 50
    assert any(key.startswith(PREFIX) for key in run.data.metrics)
    assert not sampling_threads()
