"""Workers sharing a machine: each gets its share of the cores as compute threads, the spawned
worker processes really run with it, and the plan prices `--workers N` at that thread count."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess

import mlflow
import pytest
import torch

from tests.test_cli import VAE_LAB
from tests.thread_probe import report_threads
from vae_lab import threads
from vae_lab.data import synthesize, write_dataset
from vae_lab.study.design.spec import StudySpec
from vae_lab.threads import THREAD_VARIABLES, thread_environment, using_threads, worker_threads


@pytest.mark.parametrize(
    ("workers", "given", "cores", "expected"),
    [
        (1, None, 2, 2),
        (2, None, 2, 1),
        (3, None, 2, 1),
        (4, None, 16, 4),
        (3, None, 16, 5),
        (2, 3, 2, 3),
        (8, 1, 64, 1),
    ],
)
def test_each_worker_gets_its_share_of_the_cores_unless_told(workers, given, cores, expected):
    assert worker_threads(workers, given, cores=cores) == expected


def test_the_share_follows_the_cores_this_process_may_use(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3, 4, 5})
    assert threads.available_cores() == 6
    assert worker_threads(2) == 3


def test_thread_variables_are_set_for_children_and_put_back(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    with thread_environment(1):
        assert all(os.environ[name] == "1" for name in THREAD_VARIABLES)
    assert os.environ["OMP_NUM_THREADS"] == "7" and "MKL_NUM_THREADS" not in os.environ


def test_using_threads_restores_the_pool():
    before = torch.get_num_threads()
    with using_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


@pytest.mark.slow  # seconds of real training, processes or waiting: `make test`, not the edit loop
def test_a_spawned_process_starts_with_the_thread_variables():
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    with thread_environment(1):
        process = context.Process(target=report_threads, args=(results,))
        process.start()
    process.join(timeout=120)
    assert process.exitcode == 0
    assert results.get(timeout=5) == (1, "1", "1")


# --- the plan -------------------------------------------------------------------------------------------


def tiny(lab) -> StudySpec:
    raw = {
        "name": "threads-plan",
        "data": {"path": str(lab / "voxels.parquet")},
        "training": {"epochs": 4, "device": "cpu"},
        "space": {"architecture": ["fc"], "latent_dim": [2, 3, 4, 5]},
        "artifacts": {"pca": False, "reconstructions": 0, "interpolation": False},
    }
    return StudySpec.model_validate(raw)


def test_the_plan_calibrates_at_each_workers_threads_and_divides_the_trials(lab, monkeypatch):
    from vae_lab.study.design import planner
    from vae_lab.training import calibrate

    write_dataset(synthesize(rows=1500, seed=3), lab / "voxels.parquet")
    monkeypatch.setattr(threads, "available_cores", lambda: 4)
    measured_at: list[int] = []

    def fake_measure(*args, **kwargs):
        measured_at.append(torch.get_num_threads())
        return calibrate.Throughput(1000.0 * torch.get_num_threads() ** 0.5, 4000.0)

    monkeypatch.setattr(calibrate, "measure_throughput", fake_measure)
    one = planner.plan_study(tiny(lab), workers=1)
    two = planner.plan_study(tiny(lab), workers=2)
    four = planner.plan_study(tiny(lab), workers=4, threads=2)  # 8 threads on 4 cores: oversubscribed
    assert measured_at == [4, 2]  # at the threads each run will have; 4 workers x 2 threads hit the cache
    assert "(4 threads)" in one.device and "(2 threads)" in two.device
    trial_s_one = (one.estimated_s - planner.STUDY_STARTUP_S) / 4
    trial_s_two = (two.estimated_s - planner.STUDY_STARTUP_S - planner.WORKER_STARTUP_S) / 2
    epoch_ratio = (trial_s_two - planner.TRIAL_OVERHEAD_S) / (trial_s_one - planner.TRIAL_OVERHEAD_S)
    assert epoch_ratio == pytest.approx(2**0.5, rel=0.05)  # half the threads, slower epochs, half the trials each
    assert four.estimated_s == pytest.approx(two.estimated_s, rel=0.01)  # 4 workers on 2 cores' worth of threads
    assert any("exceed" in w for w in four.warnings) and not any("exceed" in w for w in two.warnings)
    assert "x 2 workers" in two.headline()


# --- the real thing: spawned workers train with their share -------------------------------------------------


STUDY = """
name: shares
data: {path: voxels.parquet}
training: {epochs: 1}
space: {architecture: [fc], latent_dim: [2, 3]}
artifacts: {pca: false, reconstructions: 0, interpolation: false}
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    ("flags", "workers"), [(["--workers", "2"], 2), (["--threads", "1"], 1)], ids=["workers-2", "threads-1"]
)
def test_trials_train_with_the_threads_their_worker_was_given(lab, flags, workers):
    write_dataset(synthesize(rows=800, seed=5), lab / "voxels.parquet")
    (lab / "studies" / "shares.yaml").write_text(STUDY)
    done = subprocess.run(
        [VAE_LAB, "study", "run", "shares", "--json", *flags], cwd=lab, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr
    expected = worker_threads(workers, 1 if "--threads" in flags else None)
    assert f"({expected} thread" in done.stderr  # the plan's estimate was made at that count too
    runs = mlflow.MlflowClient().search_runs([json.loads(done.stdout)["experiment_id"]], "tags.trial != ''")
    assert len(runs) == 2
    assert {run.data.tags["compute_threads"] for run in runs} == {str(expected)}
