"""Helpers for tests/test_bad_input.py: a lab folder, malformed files, and a store snapshot.

The lab is a plain folder with its own MLflow SQLite store, artifact root, Optuna journal and
cache. Its settings live only in the environment dict handed to each subprocess, so the test
process itself never points MLflow or Optuna anywhere.
"""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from tests.test_cli import VAE_LAB

VOXELS = 11**3
HEADER = ",".join(f"v{i}" for i in range(VOXELS))
STORE_ENV = (
    "MLFLOW_TRACKING_URI",
    "MLFLOW_REGISTRY_URI",
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_TOKEN",
)

TINY_STUDY = """\
name: tiny
data: {path: data.parquet}
training: {epochs: 1}
space: {architecture: [fc], latent_dim: [2]}
artifacts: {pca: false, reconstructions: 0, interpolation: false}
"""


def lab_env(lab: Path, **overrides: str) -> dict[str, str]:
    """The process environment with every store setting pointing into `lab` (then `overrides`)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VAE_LAB_") and k not in STORE_ENV}
    env |= {
        "MLFLOW_TRACKING_URI": f"sqlite:///{lab / 'mlflow.db'}",
        "VAE_LAB_ARTIFACT_ROOT": str(lab / "mlruns"),
        "VAE_LAB_OPTUNA_STORAGE": str(lab / ".vae-lab" / "optuna.log"),
        "VAE_LAB_CACHE_DIR": str(lab / ".vae-lab" / "cache"),
        "VAE_LAB_DATA": str(lab / "data.parquet"),
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "COLUMNS": "80",  # a narrow terminal: long error lines must still come out as one line
        "NO_COLOR": "1",
    }
    return env | overrides


def run_vae_lab(args: list[str], cwd: Path, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([VAE_LAB, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


# --- a snapshot of both stores ----------------------------------------------------------------------


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def store_files(lab: Path) -> list[Path]:
    """Every file of the MLflow store (database, artifact root) and of the Optuna journal."""
    files = [p for p in lab.glob("mlflow.db*")]
    files += [p for p in (lab / "mlruns").rglob("*")]
    files += [p for p in (lab / ".vae-lab").glob("optuna.log*")]
    return sorted(p for p in files if p.is_file())


def snapshot(lab: Path) -> dict[str, str]:
    """relative path -> sha256 of every store file.

    Empty `*.lock` files are left out: they are flock targets holding no data, and opening the
    tracking store creates `mlflow.db.lock` beside the database even for a read.
    """
    return {
        str(p.relative_to(lab)): _digest(p)
        for p in store_files(lab)
        if not (p.suffix == ".lock" and p.stat().st_size == 0)
    }


def diff(before: dict[str, str], after: dict[str, str]) -> list[str]:
    changes = [f"new {k}" for k in after.keys() - before.keys()]
    changes += [f"removed {k}" for k in before.keys() - after.keys()]
    changes += [f"changed {k}" for k in before.keys() & after.keys() if before[k] != after[k]]
    return sorted(changes)


# --- malformed inputs ----------------------------------------------------------------------------------


def closed_port() -> int:
    """A local TCP port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def voxel_rows(n: int = 40, seed: int = 0) -> np.ndarray:
    """(n, 1331) float rows of a plausible sparse dataset (1-4 occupied cells, values 1-4)."""
    rng = np.random.default_rng(seed)
    rows = np.zeros((n, VOXELS))
    for row in rows:
        cells = rng.choice(VOXELS, size=rng.integers(1, 5), replace=False)
        row[cells] = rng.integers(1, 5, size=len(cells))
    return rows


def write_csv(path: Path, rows: np.ndarray, header: str = HEADER, fmt: str = "%g") -> None:
    np.savetxt(path, rows, delimiter=",", header=header, comments="", fmt=fmt)


def csv_with(lab: Path, name: str, value: str) -> Path:
    """A 1331-column CSV whose row 3, column 100 holds `value` as text ('' for a missing cell)."""
    lines = [HEADER]
    for i, row in enumerate(voxel_rows()):
        cells = [f"{v:g}" for v in row]
        if i == 3:
            cells[100] = value
        lines.append(",".join(cells))
    path = lab / name
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass
class Case:
    """One malformed input: how to make it, the command, the environment, what the line must say."""

    id: str
    args: list[str]
    expect: str  # a substring of the one error line (case-insensitive)
    env: dict[str, str] = field(default_factory=dict)
    setup: Callable[[Path], None] | None = None
    store: bool = False  # a storage or environment case: must finish within 30 s
    xfail: str | None = None
    forbidden: tuple[str, ...] = ()  # text that must not appear anywhere in the output (passwords)
    unset: tuple[str, ...] = ()  # environment variables to remove (so that a .env file sets them)
    cwd: str | None = None  # a folder of the lab to run in, instead of the lab itself
