"""What ran: vae-lab's version and source, and the versions of what it runs on, gathered once.

A run read a month later should say with what it was made: vae-lab's version, and when vae-lab
runs from a git checkout of its own source, the commit and whether the tracked files differed
from it (the difference itself goes on the run as `source.diff`); Python, torch (with the CUDA
and cuDNN it was built with), MLflow, Optuna and numpy. `what_ran()` assembles this once per
process (git is a subprocess), and the study's provenance names the tags it becomes
(`vae_lab.study.trial.what_ran`). `vae-lab trial reproduce` compares these versions with the
ones a trial recorded.
"""

from __future__ import annotations

import platform
import subprocess
from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

import vae_lab

if TYPE_CHECKING:
    from vae_lab.tracking.client import Tracker

DIFF_FILE = "source.diff"
# A diff past this is cut: it records what changed, it is not a backup of the tree.
MAX_DIFF_CHARS = 1_000_000
GIT_TIMEOUT_S = 10


@dataclass(frozen=True)
class WhatRan:
    """The versions a run was made with (None: not known here, e.g. no CUDA or no git checkout)."""

    vae_lab: str
    commit: str | None
    dirty: bool | None
    diff: str | None  # the tracked files' difference from `commit`, when dirty (capped)
    python: str
    torch: str
    cuda: str | None
    cudnn: str | None
    mlflow: str
    optuna: str
    numpy: str

    def versions(self) -> dict[str, str | None]:
        """vae-lab's and each library's version, by package name: what must agree for a trial to
        be retrained to the same numbers."""
        return {
            "vae-lab": self.vae_lab,
            "python": self.python,
            "torch": self.torch,
            "cuda": self.cuda,
            "cudnn": self.cudnn,
            "mlflow": self.mlflow,
            "optuna": self.optuna,
            "numpy": self.numpy,
        }


@lru_cache(maxsize=1)
def what_ran() -> WhatRan:
    """This process's record (the code it imported at start is the code every run of it ran)."""
    import torch

    commit, dirty, diff = source_state(source_root())
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return WhatRan(
        vae_lab=_version("vae-lab"),
        commit=commit,
        dirty=dirty,
        diff=diff,
        python=platform.python_version(),
        torch=torch.__version__,
        cuda=torch.version.cuda,
        cudnn=str(cudnn) if cudnn is not None else None,
        mlflow=_version("mlflow"),
        optuna=_version("optuna"),
        numpy=_version("numpy"),
    )


def source_root() -> Path:
    """The folder holding the imported vae_lab package (a checkout's root, or site-packages)."""
    return Path(vae_lab.__file__).resolve().parent.parent


def source_state(root: Path) -> tuple[str | None, bool | None, str | None]:
    """(commit, dirty, diff) of the git checkout whose root is `root`; all None when `root` is
    not the top of a checkout (an installed vae-lab in a venv that sits inside some other
    repository is not that repository's code), or git is missing."""
    top = _git(root, "rev-parse", "--show-toplevel")
    if top is None or Path(top).resolve() != root:
        return None, None, None
    commit = _git(root, "rev-parse", "HEAD")
    if commit is None:  # a repository with no commit yet
        return None, None, None
    diff = _git(root, "diff", "HEAD", "--no-color", "--no-ext-diff")
    if diff is None:
        return commit, None, None
    if len(diff) > MAX_DIFF_CHARS:
        diff = diff[:MAX_DIFF_CHARS] + f"\n... cut at {MAX_DIFF_CHARS:,} characters\n"
    return commit, bool(diff), diff or None


def log_source_diff(tracker: Tracker, run_id: str, record: WhatRan | None = None) -> None:
    """The source's difference from its commit as the run's `source.diff`, when there is one."""
    record = record or what_ran()
    if record.diff:
        tracker.log_text(run_id, record.diff, DIFF_FILE)


def _git(root: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=GIT_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "unknown"
