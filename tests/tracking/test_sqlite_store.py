"""The embedded MLflow store under several local writers: a held lock is waited for, not fatal."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import TEMPORARILY_UNAVAILABLE

from vae_lab.config import get_settings
from vae_lab.tracking.client import Tracker
from vae_lab.tracking.sqlite_store import PatientClient

HELD_S = 24  # longer than the 20 s MLflow's SQLite sessions wait for a lock


@pytest.mark.slow
def test_a_write_waits_out_a_lock_held_longer_than_mlflow_waits(lab: Path) -> None:
    tracker = Tracker(get_settings())
    run_id = tracker.start_run(tracker.ensure_experiment("busy"), "writer")
    holder = sqlite3.connect(lab / "mlflow.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another worker in the middle of a write
    outcome: dict[str, object] = {}

    def write() -> None:
        started = time.perf_counter()
        try:
            tracker.log_metrics(run_id, {"train_loss": 1.5}, step=3)
            outcome["waited"] = time.perf_counter() - started
        except Exception as error:  # noqa: BLE001 - the failure is what the test reports
            outcome["error"] = error

    writer = threading.Thread(target=write)
    writer.start()
    time.sleep(HELD_S)
    holder.execute("COMMIT")
    holder.close()
    writer.join(timeout=60)
    assert "error" not in outcome, outcome.get("error")
    assert outcome["waited"] >= HELD_S - 0.5
    assert tracker.metric_history(run_id, "train_loss") == [(3, 1.5)]


def test_the_store_is_in_write_ahead_log_mode(lab: Path) -> None:
    Tracker(get_settings())
    mode = sqlite3.connect(lab / "mlflow.db").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


class Flaky:
    """Fails its first `failures` calls with `message`, then answers."""

    def __init__(self, failures: int, message: str = "(sqlite3.OperationalError) database is locked"):
        self.calls, self.failures, self.message = 0, failures, message
        self.name = "not a method"

    def get_run(self, run_id: str) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise MlflowException(self.message, error_code=TEMPORARILY_UNAVAILABLE)
        return f"run {run_id}"


def test_lock_failures_are_retried_until_the_call_goes_through() -> None:
    flaky = Flaky(failures=3)
    assert PatientClient(flaky).get_run("r1") == "run r1"
    assert flaky.calls == 4
    assert PatientClient(flaky).name == "not a method"


def test_other_errors_and_a_lock_past_patience_are_raised_as_they_were() -> None:
    other = Flaky(failures=1, message="RESOURCE_DOES_NOT_EXIST: run r1 not found")
    with pytest.raises(MlflowException, match="not found"):
        PatientClient(other).get_run("r1")
    assert other.calls == 1
    stuck = Flaky(failures=1000)
    started = time.monotonic()
    with pytest.raises(MlflowException, match="database is locked"):
        PatientClient(stuck, patience_s=1.0).get_run("r1")
    assert time.monotonic() - started < 3
    assert 2 <= stuck.calls < 20


@pytest.mark.slow  # seconds of real training, processes or waiting: `make test`, not the edit loop
def test_mlflow_telemetry_is_off_unless_the_user_turns_it_on() -> None:
    """MLflow's telemetry thread rewrites the environment while other threads read it (a worker
    died of it under load): vae-lab switches it off before MLflow is imported."""
    import os
    import subprocess
    import sys

    ci_markers = ("PYTEST_CURRENT_TEST", "CI", "GITHUB_ACTIONS", "MLFLOW_DISABLE_TELEMETRY", "DO_NOT_TRACK")
    env = {k: v for k, v in os.environ.items() if k not in ci_markers}
    probe = "import vae_lab, mlflow.telemetry as t; print(t.get_telemetry_client() is None)"
    # Both interpreters at once: each spends seconds importing MLflow.
    default, kept = (
        subprocess.Popen(
            [sys.executable, "-c", probe], env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for e in (env, env | {"MLFLOW_DISABLE_TELEMETRY": "false"})
    )
    default_out, default_err = default.communicate(timeout=120)
    kept_out, kept_err = kept.communicate(timeout=120)
    assert default_out.strip() == "True", default_err
    assert kept_out.strip() == "False", kept_err


class RacingInputs:
    """`log_inputs` as a worker meets it when others record the same dataset at the same moment."""

    def __init__(self, message: str):
        self.message, self.calls = message, 0

    def log_inputs(self, run_id: str, datasets: list) -> None:
        self.calls += 1
        if self.calls == 1:
            raise MlflowException(self.message)


def test_a_dataset_another_worker_just_recorded_is_linked_not_fatal(lab: Path) -> None:
    from vae_lab.data.reference import DataRef

    tracker = Tracker(get_settings())
    data = DataRef(
        path=str(lab / "voxels.parquet"),
        content_hash="ee558dc37f24",
        toy_fraction=1.0,
        seed=0,
        grid=11,
        rows={"train": 10, "val": 2},
    )
    racing = RacingInputs('duplicate key value violates unique constraint "dataset_pk"')
    tracker.client = racing
    tracker.log_dataset("run", data, ("train", "val"))
    assert racing.calls == 2
    tracker.client = RacingInputs("INVALID_PARAMETER_VALUE: no such run")
    with pytest.raises(MlflowException, match="no such run"):
        tracker.log_dataset("run", data, ("train",))
