"""Fixtures shared across the suite: an isolated lab (stores, cache, data) per test."""

from __future__ import annotations

import contextlib
import socket
import sqlite3
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pytest

from vae_lab.config import get_settings
from vae_lab.tracking.sqlite_store import initialise_sqlite_store


@pytest.fixture(scope="session")
def empty_mlflow_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty MLflow SQLite store, created and migrated once per session: MLflow's migrations
    take ~10 s on a new file, and about 40 tests each want a fresh store (see `copy_mlflow_store`)."""
    folder = tmp_path_factory.mktemp("empty-mlflow-store")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)  # MLflow puts the Default experiment's artifacts under the working directory
        initialise_sqlite_store(f"sqlite:///{folder / 'mlflow.db'}", folder / "mlflow.db")
    return folder / "mlflow.db"


def copy_mlflow_store(empty_store: Path, lab: Path) -> None:
    """Give `lab` the MLflow store MLflow would have created at lab/mlflow.db, from `empty_store`.

    SQLite's backup API copies a consistent snapshot (the template is in WAL mode, and its
    engine may still be open in this process). The copy is put back in rollback-journal mode, as
    a new file is, so `initialise_sqlite_store` still has its work to do, and its Default
    experiment points at lab/mlruns/0 as if it had been created there.
    """
    target = lab / "mlflow.db"
    with (
        contextlib.closing(sqlite3.connect(empty_store)) as source,
        contextlib.closing(sqlite3.connect(target)) as copy,
    ):
        source.backup(copy)
        copy.execute("PRAGMA journal_mode = DELETE")
        copy.execute(
            "UPDATE experiments SET artifact_location = ? WHERE experiment_id = 0", (str(lab / "mlruns" / "0"),)
        )
        copy.commit()


@pytest.fixture
def lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, empty_mlflow_store: Path) -> Path:
    """A working directory with its own MLflow store (empty, migrated), Optuna journal, cache and studies/."""
    copy_mlflow_store(empty_mlflow_store, tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("VAE_LAB_ARTIFACT_ROOT", str(tmp_path / "mlruns"))
    monkeypatch.setenv("VAE_LAB_OPTUNA_STORAGE", str(tmp_path / ".vae-lab" / "optuna.log"))
    monkeypatch.setenv("VAE_LAB_CACHE_DIR", str(tmp_path / ".vae-lab" / "cache"))
    monkeypatch.setenv("VAE_LAB_DATA", str(tmp_path / "data" / "synthetic.parquet"))
    (tmp_path / "studies").mkdir()
    get_settings.cache_clear()
    # MLflow keeps its URIs process-wide: point both at this lab so no earlier test leaks in.
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlflow.set_registry_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    yield tmp_path
    get_settings.cache_clear()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_mlflow(url: str, seconds: float = 120) -> None:
    """Block until an MLflow server at `url` answers its health check, or fail the test."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/health", timeout=2).read() == b"OK":
                return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"no MLflow server came up at {url}")


def sparse_grids(n: int, edge: int = 11, seed: int = 0, max_cells: int = 6) -> np.ndarray:
    """(n, edge, edge, edge) uint8 grids with 1..max_cells random occupied cells of classes 1-4."""
    rng = np.random.default_rng(seed)
    grids = np.zeros((n, edge**3), dtype=np.uint8)
    for i in range(n):
        cells = rng.choice(edge**3, size=rng.integers(1, max_cells + 1), replace=False)
        grids[i, cells] = rng.choice([1, 2, 3, 4], size=len(cells), p=[0.6, 0.25, 0.1, 0.05])
    return grids.reshape(n, edge, edge, edge)


# --- real services, one per session ------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres():
    """One PostgreSQL cluster for the session, with a password as in production (tests/services.py);
    each test takes its own databases with `postgres.new_database(...)`."""
    from tests import services  # (services imports this module)

    if not services.have_postgres():
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    cluster = services.start_postgres(role=services.ROLE, password=services.PASSWORD)
    try:
        yield cluster
    finally:
        cluster.stop()


@dataclass
class LoginServer:
    """The session's `mlflow server --app-name basic-auth`: its URL, its folder (artifacts and
    login database) and the URL of its PostgreSQL backend database."""

    url: str
    folder: Path
    backend: str


@pytest.fixture(scope="session")
def login_server(postgres, tmp_path_factory) -> LoginServer:
    """One MLflow server with logins for the session (its start takes a minute on a busy 2-core
    machine), with the workers' account (EDIT) and a read-only one; each test uses its own
    experiment. Signing in is up to each test (`services.signed_in`)."""
    from tests import services

    folder = tmp_path_factory.mktemp("mlflow-login-server")
    backend = postgres.new_database("served")
    with services.mlflow_login_server(backend, folder) as url:
        services.make_account(url, services.WORKER, "EDIT")
        services.make_account(url, services.READER, "READ")
        yield LoginServer(url, folder, backend)
