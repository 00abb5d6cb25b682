"""Helpers for tests/test_bad_input.py: a lab folder, malformed files, and a store snapshot.

The lab is a plain folder with its own MLflow SQLite store, artifact root, Optuna journal and
cache. Its settings live only in the environment dict handed to each command, a console process
(`run_vae_lab`) or the console entry point in this process (`run_vae_lab_here`), which puts the
test process's environment back afterwards.
"""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import mlflow
import numpy as np
import pytest

from tests.test_cli import VAE_LAB
from vae_lab.cli import main
from vae_lab.config import get_settings

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


def run_vae_lab_here(
    args: list[str], cwd: Path, env: dict[str, str], capture: pytest.CaptureFixture[str]
) -> subprocess.CompletedProcess:
    """`vae-lab ARGS` through the console entry point (`vae_lab.cli:main`) in this process, with
    exactly `env` as its environment, in `cwd`: what `run_vae_lab` does without ~5 s of imports.

    The process-wide state a console process starts without is reset first (the settings cache,
    MLflow's tracking and registry URIs) and everything the command may change is put back after
    (environment, working directory, argv, signal handlers). `capture` is pytest's `capfd`: it
    sees what the command writes to the file descriptors as well as to sys.stdout/sys.stderr.
    """
    saved_env, saved_cwd, saved_argv = dict(os.environ), Path.cwd(), sys.argv
    saved_handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    saved_hook = sys.unraisablehook
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)
    capture.readouterr()  # whatever the test printed before is not the command's
    os.environ.clear()
    os.environ.update(env)
    get_settings.cache_clear()
    os.chdir(cwd)
    sys.argv = ["vae-lab", *args]
    try:
        main()
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    finally:
        mlflow.set_tracking_uri(None)  # (this unsets MLFLOW_TRACKING_URI: before the environment comes back)
        mlflow.set_registry_uri(None)
        os.environ.clear()
        os.environ.update(saved_env)
        os.chdir(saved_cwd)
        sys.argv = saved_argv
        for signum, handler in saved_handlers.items():
            signal.signal(signum, handler)
        sys.unraisablehook = saved_hook
        get_settings.cache_clear()
    close_sqlite_stores()
    captured = capture.readouterr()
    return subprocess.CompletedProcess(["vae-lab", *args], code, captured.out, captured.err)


def close_sqlite_stores() -> None:
    """Close the connections MLflow keeps open to SQLite stores, as a console process's exit does.

    MLflow caches one engine per database URI for the life of the process; while a connection
    is open, an SQLite file in WAL mode keeps its -wal and -shm files beside it, and anything
    written may sit in the -wal file. Closing the last connection folds the log back into the
    database and removes both, so the store's files read as they would after a real command.
    (There is no public call for this: the engine maps are MLflow's store classes' own.)
    """
    from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore as RegistryStore
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore as TrackingStore

    for store in (TrackingStore, RegistryStore):
        for uri, engine in list(store._engine_map.items()):
            if uri.startswith("sqlite:"):
                engine.dispose()


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
    # Run as a real console process rather than through the entry point in the test's process:
    # a few cases keep that path covered (and `ui`, which execs the server once its checks pass).
    process: bool = False
