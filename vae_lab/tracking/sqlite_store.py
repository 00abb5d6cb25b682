"""The embedded MLflow store (one SQLite file) made safe for several local workers.

SQLite lets one writer in at a time, and MLflow gives each session 20 s to get the lock before
it fails the call with "database is locked". Eight workers on two busy cores, each logging
metrics, waited longer than that often enough to fail trials (`benchmarks/RESULTS.md`, "Load on
the shared stores"). Two changes here:
- the file is switched to write-ahead logging once: a commit appends to the log instead of
  rewriting pages under an exclusive lock, so writes are shorter and readers (the UI,
  `vae-lab status`) never block a writer;
- `PatientClient` retries a call that failed on the lock, for up to `LOCK_PATIENCE_S`. A failed
  call was rolled back whole by MLflow, so retrying it cannot write anything twice.
"""

from __future__ import annotations

import fcntl
import functools
import logging
import random
import sqlite3
import time
from pathlib import Path
from typing import Any

import mlflow
from mlflow.exceptions import MlflowException

# Longer than any queue of writers a machine meets (eight workers at load 20 waited over 20 s),
# short enough that a store truly stuck (a crashed process holding the lock) surfaces.
LOCK_PATIENCE_S = 300
LOCKED = "database is locked"


def initialise_sqlite_store(uri: str, path: Path) -> None:
    """Create or migrate the SQLite store at `uri` (the file `path`) under a file lock, and put
    it in write-ahead-log mode.

    Several local workers starting at once would otherwise each run MLflow's schema
    migrations on the new file, and all but one crash ("duplicate column name").
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
        client.search_experiments(max_results=1)
        client.search_registered_models(max_results=1)
        _write_ahead_log(path)


def _write_ahead_log(path: Path) -> None:
    """Switch the file to WAL (it stays so); left as it is if another process holds it now."""
    connection = sqlite3.connect(path, timeout=5)
    try:
        connection.execute("PRAGMA journal_mode = WAL")
    except sqlite3.OperationalError:
        pass  # busy: a later start switches it; the retries below hold either way
    finally:
        connection.close()


def is_locked(error: BaseException) -> bool:
    return isinstance(error, MlflowException) and LOCKED in str(error)


class _RetriedLockErrors(logging.Filter):
    """MLflow logs each lock failure with a traceback before raising it; the retry decides."""

    def filter(self, record: logging.LogRecord) -> bool:
        return LOCKED not in record.getMessage()


logging.getLogger("mlflow.store.db.utils").addFilter(_RetriedLockErrors())


class PatientClient:
    """An `MlflowClient` over an SQLite store whose calls wait out a held write lock.

    Every method of the wrapped client is offered as is, retried with jittered back-off while
    it fails on the lock; after `LOCK_PATIENCE_S` the lock error is raised as MLflow raised it.
    """

    def __init__(self, client: mlflow.MlflowClient, patience_s: float = LOCK_PATIENCE_S):
        self._client, self._patience_s = client, patience_s

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if not callable(attribute):
            return attribute

        @functools.wraps(attribute)
        def patient(*args: Any, **kwargs: Any) -> Any:
            deadline, pause = time.monotonic() + self._patience_s, 0.1
            while True:
                try:
                    return attribute(*args, **kwargs)
                except MlflowException as error:
                    if not is_locked(error) or time.monotonic() + pause > deadline:
                        raise
                time.sleep(pause * random.uniform(1, 2))
                pause = min(pause * 2, 5.0)

        return patient
