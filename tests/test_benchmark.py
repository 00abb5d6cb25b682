"""`vae-lab bench`'s measurement of what system metrics cost the trainer, at a tiny size."""

from __future__ import annotations

import threading

import pytest
import torch

from tests.conftest import sparse_grids
from vae_lab.benchmark import bench_system_metrics, small_trainer
from vae_lab.config import get_settings
from vae_lab.tracking import Tracker
from vae_lab.tracking.system_metrics import SAMPLING_THREAD


def test_the_system_metrics_cost_is_measured_in_interleaved_pairs(lab, monkeypatch):
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.05")
    device = torch.device("cpu")
    trainer, data = small_trainer("fc", sparse_grids(64), batch_size=16, device=device, precision="fp32", rows=64)
    cost = bench_system_metrics(trainer, data, tracker=Tracker(get_settings()), rounds=2, window_s=0.3)

    assert cost["rounds"] == 2 and len(cost["ratios"]) == 2 and all(ratio > 0 for ratio in cost["ratios"])
    assert cost["ratio"] == pytest.approx(cost["on_samples_per_s"] / cost["off_samples_per_s"])
    assert cost["off_samples_per_s"] > 0 and cost["on_samples_per_s"] > 0
    assert cost["epochs"]["off"] >= 2 and cost["epochs"]["on"] >= 2  # whole epochs filled each window
    assert all(n >= 1 for n in cost["samples_logged"])  # the monitor really sampled in each "on" window
    assert 0 <= cost["monitor_cpu_share"] < 1 and len(cost["load_average"]) == 2
    assert cost["rows"] == 64
    assert not [t for t in threading.enumerate() if t.name == SAMPLING_THREAD]
