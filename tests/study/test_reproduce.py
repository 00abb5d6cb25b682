"""What ran, on every run a tiny study makes (parent, trials, evaluation, encoding), and
`vae-lab trial reproduce`: a finished trial retrained from its record, bit for bit on the CPU,
and refused in one line (before anything is written) when what it ran with has changed."""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess

import mlflow
import numpy as np
import optuna
import pytest
import torch
from typer.testing import CliRunner

from tests.test_cli import VAE_LAB
from vae_lab.cli import app
from vae_lab.config import get_settings
from vae_lab.data import synthesize, write_dataset
from vae_lab.study.trial.provenance import ENCODING_KIND, EVALUATION_KIND, INVOCATION_KIND, REPRODUCTION_KIND, RunTag
from vae_lab.study.trial.storage import open_storage
from vae_lab.study.trial.what_ran import VERSION_TAGS
from vae_lab.tracking import Tracker, environment

pytestmark = pytest.mark.slow

# quick's shape (pointnet, the set loss, cosine schedule, figures), at a toy size.
STUDY = """
name: tiny
data: {toy_fraction: 1.0, seed: 0}
sampler: grid
training: {epochs: 2, patience: 5, device: cpu}
space:
  architecture: [pointnet]
  latent_dim: [4, 8]
  width: [32]
  loss: [set]
  class_weighting: [log]
  batch_size: [128]
  learning_rate: [0.003]
  lr_schedule: [cosine]
  beta: [0.01]
artifacts: {reconstructions: 1, max_points: 100}
"""


def cli(*args: str):
    return CliRunner().invoke(app, list(args))


@pytest.fixture(scope="module")
def study(tmp_path_factory, empty_mlflow_store):
    """A finished two-trial study; yields its lab folder and data file."""
    from tests.conftest import copy_mlflow_store

    lab = tmp_path_factory.mktemp("reproduce")
    copy_mlflow_store(empty_mlflow_store, lab)
    patch = pytest.MonkeyPatch()
    for key, value in {
        "MLFLOW_TRACKING_URI": f"sqlite:///{lab / 'mlflow.db'}",
        "VAE_LAB_ARTIFACT_ROOT": str(lab / "mlruns"),
        "VAE_LAB_OPTUNA_STORAGE": str(lab / ".vae-lab" / "optuna.log"),
        "VAE_LAB_CACHE_DIR": str(lab / ".vae-lab" / "cache"),
    }.items():
        patch.setenv(key, value)
    patch.chdir(lab)
    get_settings.cache_clear()
    (lab / "studies").mkdir()
    (lab / "studies" / "tiny.yaml").write_text(STUDY)
    data = write_dataset(synthesize(rows=600, seed=2), lab / "voxels.parquet")
    # In its own process, as a user's study runs: the reproduction must not lean on what this one holds.
    result = subprocess.run(
        [VAE_LAB, "study", "run", "tiny", "--data", str(data), "--json"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    yield lab, data
    patch.undo()
    get_settings.cache_clear()


def runs(kind: str | None = None) -> list:
    tracker = Tracker(get_settings())
    experiment = tracker.client.get_experiment_by_name("tiny")
    found = tracker.client.search_runs([experiment.experiment_id], max_results=500)
    return [r for r in found if kind is None or r.data.tags.get(RunTag.KIND) == kind]


def stored_trials() -> list:
    study = optuna.load_study(study_name="tiny", storage=open_storage(get_settings().optuna_storage))
    return [(t.number, t.state, t.values, dict(t.user_attrs)) for t in study.get_trials()]


def expected_tags() -> dict[str, str]:
    """What every run of this process must say it ran with, from the packages themselves."""
    expected = {
        RunTag.PYTHON_VERSION: platform.python_version(),
        RunTag.TORCH_VERSION: torch.__version__,
        RunTag.MLFLOW_VERSION: mlflow.__version__,
        RunTag.OPTUNA_VERSION: optuna.__version__,
        RunTag.NUMPY_VERSION: np.__version__,
        RunTag.VAE_LAB_VERSION: environment.what_ran().vae_lab,
    }
    if torch.version.cuda:
        expected[RunTag.CUDA_VERSION] = torch.version.cuda
    commit, dirty, _ = environment.source_state(environment.source_root())
    if commit is not None:  # the suite runs from a git checkout of vae-lab
        expected |= {RunTag.GIT_COMMIT: commit, RunTag.GIT_DIRTY: str(dirty).lower()}
    return expected


def test_every_run_says_what_ran(study):
    lab, data = study
    assert cli("evaluate", "tiny", "--split", "val").exit_code == 0
    assert cli("encode", "tiny", "--data", str(data), "--out", str(lab / "z.parquet")).exit_code == 0
    expected = expected_tags()
    (parent,) = runs(INVOCATION_KIND)
    trials = [r for r in runs() if r.data.tags.get(RunTag.TRIAL) and RunTag.KIND not in r.data.tags]
    assert len(trials) == 2
    for run in [parent, *trials, *runs(EVALUATION_KIND), *runs(ENCODING_KIND)]:
        assert {k: run.data.tags.get(k) for k in expected} == expected, run.info.run_name
    # The study's hash names the parent's study.yaml, which the trials do not copy.
    tracker = Tracker(get_settings())
    text = tracker.read_text(parent.info.run_id, "study.yaml")
    digest = parent.data.tags[RunTag.STUDY_YAML_SHA256]
    assert hashlib.sha256(text.encode()).hexdigest().startswith(digest)
    assert {t.data.tags[RunTag.STUDY_YAML_SHA256] for t in trials} == {digest}


def test_a_cpu_trial_comes_back_bit_for_bit_in_a_linked_run(study):
    before = stored_trials()
    # A new process, as a month later: nothing of the original's process (threads, caches) is left.
    result = subprocess.run([VAE_LAB, "trial", "reproduce", "tiny", "1", "--json"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["held"] and report["promise"].startswith("bit for bit")
    names = {m["name"] for m in report["metrics"]}
    assert {"best_val_f1", "best_val_loss", "best_epoch", "epochs_run"} <= names
    for metric in report["metrics"]:
        assert metric["original"] == metric["reproduced"], metric  # exactly, not approximately
    learned = {m["name"]: m["original"] for m in report["metrics"]}
    assert learned["best_val_loss"] > 0 and learned["best_val_pose_invariance"] > 0  # numbers a model made
    (run,) = [r for r in runs(REPRODUCTION_KIND) if r.info.run_id == report["run_id"]]
    assert run.data.tags[RunTag.REPRODUCES] == report["original_run_id"]
    assert run.data.tags[RunTag.TRIAL] == "1"
    assert stored_trials() == before  # no trial added, none changed: the study does not count it
    table = cli("trial", "reproduce", "tiny", "0")
    assert table.exit_code == 0, table.output
    assert "best_val_f1" in table.stdout and "bit for bit (CPU): held" in table.stdout


def test_unknown_study_and_trial_and_a_trial_without_a_model_are_one_line(study):
    stored = optuna.load_study(study_name="tiny", storage=open_storage(get_settings().optuna_storage))
    stored.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL))  # as a crashed trial leaves it
    failed = stored.trials[-1]
    cases = [
        (("nope", "0"), "study nope"),
        (("tiny", "7"), "no such trial"),
        (("tiny", str(failed.number)), "the trial is failed and trained no model"),
    ]
    for args, words in cases:
        result = cli("trial", "reproduce", *args)
        assert result.exit_code == 2
        assert words in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_a_changed_data_file_is_refused_in_one_line_and_anyway_names_it(study):
    lab, data = study
    original = data.read_bytes()
    write_dataset(synthesize(rows=600, seed=9), data)
    try:
        count, before = len(runs()), stored_trials()
        result = cli("trial", "reproduce", "tiny", "0")
        assert result.exit_code == 2
        assert "voxels.parquet changed" in result.stderr and "--anyway" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
        assert len(runs()) == count and stored_trials() == before  # nothing written
        anyway = cli("trial", "reproduce", "tiny", "0", "--anyway", "--json")
        assert anyway.exit_code in (0, 1), anyway.output  # other rows: the numbers may or may not agree
        assert "voxels.parquet changed" in anyway.stderr
        assert json.loads(anyway.stdout)["differences"]
    finally:
        data.write_bytes(original)


def test_a_version_change_is_refused(study, monkeypatch):
    recorded = environment.what_ran()
    monkeypatch.setattr(
        "vae_lab.study.execution.reproduce.what_ran",
        lambda: recorded.__class__(**{**recorded.__dict__, "torch": "0.0.1"}),
    )
    count = len(runs())
    result = cli("trial", "reproduce", "tiny", "0")
    assert result.exit_code == 2
    assert f"torch {recorded.torch} then, 0.0.1 now" in result.stderr
    assert len(runs()) == count


def test_a_trial_from_before_versions_were_recorded_is_refused(study):
    (trial,) = [r for r in runs() if r.data.tags.get(RunTag.TRIAL) == "0" and RunTag.KIND not in r.data.tags]
    tracker = Tracker(get_settings())
    saved = {tag: trial.data.tags[tag] for tag in VERSION_TAGS.values() if tag in trial.data.tags}
    for tag in saved:
        tracker.client.delete_tag(trial.info.run_id, tag)
    try:
        result = cli("trial", "reproduce", "tiny", "0")
        assert result.exit_code == 2
        assert "recorded no versions" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    finally:
        tracker.set_tags(trial.info.run_id, saved)
