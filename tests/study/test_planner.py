"""`study plan`: its numbers, its warnings, and its estimate against a real (tiny) run."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from vae_lab.cli import app
from vae_lab.data import synthesize, write_dataset
from vae_lab.study.design.planner import STUDY_STARTUP_S, TRIAL_OVERHEAD_S, halving_share, plan_study, pruned_range
from vae_lab.study.design.spec import StudySpec


def tiny(lab, **overrides) -> StudySpec:
    raw = {
        "name": "tiny-plan",
        "data": {"path": str(lab / "voxels.parquet")},
        "training": {"epochs": 8, "patience": 8, "device": "cpu"},
        "space": {"architecture": ["fc"], "loss": ["weighted_ce"], "latent_dim": [2, 4]},
        "artifacts": {"pca": True, "reconstructions": 1},
    }
    return StudySpec.model_validate(raw | overrides)


@pytest.fixture
def data(lab):
    write_dataset(synthesize(rows=20_000, seed=2), lab / "voxels.parquet")
    return lab


def test_the_estimate_adds_up_calibrated_epochs_overheads_and_start_up(data, monkeypatch):
    # The mechanism, with a known throughput; how close it comes to a real run is a benchmark
    # (benchmarks/RESULTS.md), not a test: on a loaded machine the ratio says nothing.
    from vae_lab.training import calibrate

    monkeypatch.setattr(calibrate, "measure_throughput", lambda *a, **k: calibrate.Throughput(1000.0, 4000.0))
    spec = tiny(data)
    plan = plan_study(spec)
    assert plan.trials == 2 and plan.max_epochs == 8 and plan.rows_per_epoch > 1000
    assert plan.flops_per_trial > 0 and plan.estimated_s_pruned is None
    epoch_s = plan.rows_per_epoch / 1000.0 + plan.val_rows / 4000.0
    assert plan.estimated_s == pytest.approx(2 * (8 * epoch_s + TRIAL_OVERHEAD_S) + STUDY_STARTUP_S)
    assert [c.trials for c in plan.configs] == [2]  # latent_dim does not change the throughput key


def test_plan_json_has_the_documented_keys_and_calibrates_once(data, monkeypatch):
    from vae_lab.training import calibrate

    calls = []
    real = calibrate.measure_throughput
    monkeypatch.setattr(calibrate, "measure_throughput", lambda *a, **k: calls.append(a) or real(*a, **k))
    (data / "studies" / "p.yaml").write_text(
        tiny(data).model_copy(update={"name": "p"}).model_dump_json(exclude_none=True)
    )
    first = CliRunner().invoke(app, ["study", "plan", "p", "--json"])
    assert first.exit_code == 0, first.output
    plan = json.loads(first.stdout)
    assert {"trials", "max_epochs", "rows_per_epoch", "flops_per_trial", "estimated_s"} <= set(plan)
    assert "estimated_s_pruned" not in plan  # no pruner set
    assert len(calls) == 1  # one (architecture, head, loss, batch) in this study
    second = CliRunner().invoke(app, ["study", "plan", "p", "--json"])
    assert second.exit_code == 0 and json.loads(second.stdout)["estimated_s"] == plan["estimated_s"]
    assert len(calls) == 1  # the calibration is cached per machine: not measured again


def test_pruning_gives_a_range_below_the_full_estimate(data):
    spec = tiny(data, pruner={"kind": "hyperband", "min_epochs": 1, "reduction_factor": 3})
    low, high = pruned_range(spec, 100.0, trials=12)
    assert high == 100.0 and 10.0 < low < 60.0
    median = tiny(data, pruner={"kind": "median", "warmup_epochs": 2, "startup_trials": 2})
    low, high = pruned_range(median, 100.0, trials=10)
    assert low == pytest.approx(100.0 * (2 + 8 * 3 / 8) / 10)


def test_successive_halving_share_keeps_a_third_at_each_rung():
    # 9 trials, rungs at 1, 3 and 9 epochs: 6 stop at 1, 2 at 3, 1 runs all 9: 6 + 6 + 9 = 21 of 81.
    assert halving_share(9, 1, 9, 3) == pytest.approx(21 / 81)


def test_a_plan_past_a_working_day_warns_with_what_would_fit(data, monkeypatch):
    from vae_lab.training import calibrate

    monkeypatch.setattr(calibrate, "measure_throughput", lambda *a, **k: calibrate.Throughput(1.0, 10.0))
    spec = tiny(
        data, training={"epochs": 30, "device": "cpu"}, space={"architecture": ["fc"], "latent_dim": [2, 4, 8, 16]}
    )
    plan = plan_study(spec)
    assert plan.estimated_s > 8 * 3600
    [warning] = plan.warnings
    assert "past a working day" in warning and "toy_fraction" in warning and "tpe" in warning and "GPU" in warning


def test_a_ray_plan_prices_each_worker_as_this_machine_and_says_so(data, monkeypatch):
    import torch

    from vae_lab.study.design.planner import RAY_STARTUP_S, RayResources
    from vae_lab.training import calibrate

    monkeypatch.setattr(calibrate, "measure_throughput", lambda *a, **k: calibrate.Throughput(1000.0, 4000.0))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    spec = tiny(data)
    local = plan_study(spec, workers=2, threads=1)
    ray = plan_study(spec, workers=2, threads=1, ray=RayResources(cpus_per_worker=1, gpus_per_worker=0.5))
    # Two workers whose threads fit the cores here either way: the same trials, plus Ray's start-up.
    assert ray.engine == "ray" and ray.device == local.device == "cpu (1 thread)" and ray.workers == 2
    assert ray.estimated_s == pytest.approx(local.estimated_s + RAY_STARTUP_S)
    assumed = " ".join(ray.assumptions)
    assert "all 2 workers at once" in assumed and "no GPU here" in assumed and "sharing a GPU" in assumed
    assert "on Ray" in ray.headline() and not local.assumptions
    (data / "studies" / "r.yaml").write_text(spec.model_copy(update={"name": "r"}).model_dump_json(exclude_none=True))
    shown = CliRunner().invoke(app, ["study", "plan", "r", "--engine", "ray", "--workers", "2"])
    assert shown.exit_code == 0 and "assumed: Ray places all 2 workers at once" in shown.stderr, shown.stderr


def test_the_calibration_is_kept_apart_for_each_width_and_augmentation():
    """A width-512 model costs several times its width-256 twin and so3 re-voxelises every batch:
    one cached figure for both made `molecules` plan 61 min from a calibration of another run."""
    from vae_lab.models import ModelConfig
    from vae_lab.runtime import Runtime
    from vae_lab.training import TrainConfig
    from vae_lab.training.calibrate import config_key

    runtime = Runtime(device="cpu")
    narrow = ModelConfig(architecture="split", latent_dim=8, width=256)
    wide = ModelConfig(architecture="split", latent_dim=64, width=512)
    plain, turned = TrainConfig(loss="set"), TrainConfig(loss="set", augment="so3")
    keys = {config_key(m, t, runtime) for m in (narrow, wide) for t in (plain, turned)}
    assert len(keys) == 4
    assert config_key(narrow, plain, runtime) == config_key(
        narrow.model_copy(update={"latent_dim": 16}), plain, runtime
    )
