"""The record of what ran: versions from the packages themselves, and the git state of vae-lab's
own checkout (never of a repository that merely contains an installed copy)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import mlflow
import numpy as np
import optuna
import pytest
import torch

from vae_lab.study.trial.provenance import RunTag
from vae_lab.study.trial.what_ran import what_ran_tags
from vae_lab.tracking import environment


def git(root: Path, *args: str) -> str:
    command = ["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@example.com", *args]
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A throwaway checkout shaped like vae-lab's: the package folder at its root."""
    root = tmp_path / "repo"
    (root / "vae_lab").mkdir(parents=True)
    (root / "vae_lab" / "__init__.py").write_text("x = 1\n")
    git(root, "init", "-q")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "first")
    return root.resolve()


def test_a_clean_checkout_gives_its_commit(checkout):
    assert environment.source_state(checkout) == (git(checkout, "rev-parse", "HEAD"), False, None)


def test_a_dirty_checkout_gives_its_diff(checkout):
    (checkout / "vae_lab" / "__init__.py").write_text("x = 2\n")
    commit, dirty, diff = environment.source_state(checkout)
    assert commit == git(checkout, "rev-parse", "HEAD") and dirty is True
    assert "-x = 1" in diff and "+x = 2" in diff


def test_a_long_diff_is_cut(checkout, monkeypatch):
    monkeypatch.setattr(environment, "MAX_DIFF_CHARS", 50)
    (checkout / "vae_lab" / "__init__.py").write_text("y = 3\n" * 100)
    _, dirty, diff = environment.source_state(checkout)
    assert dirty is True and diff.endswith("cut at 50 characters\n") and len(diff) < 100


def test_a_copy_inside_another_repository_is_not_that_repository(checkout):
    site_packages = checkout / "venv" / "site-packages"  # e.g. a venv inside some project's checkout
    site_packages.mkdir(parents=True)
    assert environment.source_state(site_packages) == (None, None, None)
    assert environment.source_state(Path("/")) == (None, None, None)


def test_the_source_root_is_the_imported_package_not_the_working_directory(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    import vae_lab

    assert environment.source_root() == Path(vae_lab.__file__).resolve().parent.parent


def test_tags_name_the_importable_versions():
    tags = what_ran_tags()
    assert tags[RunTag.TORCH_VERSION] == torch.__version__
    assert tags[RunTag.MLFLOW_VERSION] == mlflow.__version__
    assert tags[RunTag.OPTUNA_VERSION] == optuna.__version__
    assert tags[RunTag.NUMPY_VERSION] == np.__version__
    assert (RunTag.CUDA_VERSION in tags) == (torch.version.cuda is not None)


def test_unknown_git_state_is_left_out_not_tagged_empty(monkeypatch):
    record = environment.what_ran()
    plain = record.__class__(**{**record.__dict__, "commit": None, "dirty": None, "diff": None})
    tags = what_ran_tags(record=plain)
    assert RunTag.GIT_COMMIT not in tags and RunTag.GIT_DIRTY not in tags
    assert all(value is not None for value in tags.values())
