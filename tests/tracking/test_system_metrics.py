"""MLflow's system metrics on a run: sampled while the block runs, stopped however it ends, none when off."""

from __future__ import annotations

import threading
import time

import optuna
import pytest
import torch

from vae_lab.config import get_settings
from vae_lab.tracking import Tracker
from vae_lab.tracking.system_metrics import PREFIX, SAMPLING_THREAD, sampling_thread_cpu_s, system_metrics

SAMPLED = f"{PREFIX}cpu_utilization_percentage"


def monitor_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == SAMPLING_THREAD]


def samples(tracker: Tracker, run_id: str) -> int:
    return len(tracker.client.get_metric_history(run_id, SAMPLED))


def open_run(name: str) -> tuple[Tracker, str]:
    tracker = Tracker(get_settings())
    return tracker, tracker.start_run(tracker.ensure_experiment("system-metrics"), name)


@pytest.fixture
def fast_sampling(lab, monkeypatch):
    """MLflow's own override of the sampling interval, so a test sees samples within a second."""
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.05")


@pytest.mark.parametrize(
    "ending",
    [RuntimeError("the disk is full"), optuna.TrialPruned("pruned at epoch 1"), KeyboardInterrupt()],
    ids=["failed", "pruned", "interrupted"],
)
def test_the_sampling_thread_stops_however_the_block_ends(fast_sampling, ending):
    tracker, run_id = open_run("ends")
    with pytest.raises(type(ending)):
        with system_metrics(tracker, run_id, torch.device("cpu")):
            assert len(monitor_threads()) == 1
            deadline = time.monotonic() + 20
            while samples(tracker, run_id) < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            raise ending
    assert not monitor_threads() and sampling_thread_cpu_s() == 0.0
    assert samples(tracker, run_id) >= 2
    metrics = tracker.client.get_run(run_id).data.metrics
    assert {f"{PREFIX}system_memory_usage_megabytes", f"{PREFIX}disk_usage_percentage"} <= set(metrics)
    assert not any("gpu" in key for key in metrics)  # a CPU block: no GPU's figures, even where one exists


def test_nothing_is_sampled_when_the_setting_is_off(fast_sampling, monkeypatch):
    monkeypatch.setenv("VAE_LAB_SYSTEM_METRICS", "false")
    get_settings.cache_clear()
    tracker, run_id = open_run("off")
    with system_metrics(tracker, run_id, torch.device("cpu")):
        assert not monitor_threads()
        time.sleep(0.2)
    assert not any(key.startswith(PREFIX) for key in tracker.client.get_run(run_id).data.metrics)
