"""How workers share a study without a scheduler of their own: a lock, leases and a queue.

The Optuna storage is the only shared state. On top of it:

- `StudyLock` serialises the few moments that must not interleave: claiming the next trial
  (so two workers never take the last grid point twice; Optuna's GridSampler can, optuna#5139),
  re-queuing failed points, and moving registry aliases. A file lock beside a journal or SQLite
  file; a PostgreSQL advisory lock on a dedicated connection for PostgreSQL.
- `Lease`: a worker holds an OS file lock for each trial it runs, released by the kernel when
  the process dies, even by SIGKILL. A RUNNING trial of this host whose lease is free belongs to
  a dead worker. This is how the embedded default (a journal file, which has no heartbeats in
  Optuna 5) detects dead trials at once; RDB storages also get Optuna's heartbeats, which cover
  workers on other machines.
- The grid queue: every grid point no trial has settled is queued as a WAITING trial, and
  workers pop them (an atomic step in every Optuna storage), so each point is trained once.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import random
import socket
import tempfile
import time
import zlib
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import optuna
from optuna.trial import TrialState

from vae_lab.config import uri_scheme

HOST = socket.gethostname()
SETTLED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)
# A RUNNING trial that never said which worker owns it is treated as dead after this long
# (a worker killed in the instant between Optuna creating the trial and the objective starting).
UNOWNED_GRACE_S = 600


def _local_path(storage_url: str) -> Path | None:
    """The file behind a journal or SQLite storage, else None."""
    scheme = uri_scheme(storage_url.removeprefix("journal:"))
    if scheme == "sqlite":
        return Path(storage_url.split(":///", 1)[1])
    if scheme == "":
        return Path(storage_url.removeprefix("journal:"))
    return None


class StudyLock:
    """A mutual-exclusion lock shared by every worker of a study (re-entrant within a worker)."""

    def __init__(self, storage_url: str, study_name: str):
        self.storage_url, self.study_name = storage_url, study_name
        self._depth = 0
        self._file = None
        self._engine = None
        self._connection = None
        self._key = zlib.crc32(f"vae-lab study {study_name}".encode())

    def acquire(self) -> None:
        if self._depth == 0:
            self._acquire()
        self._depth += 1

    def release(self) -> None:
        """Release if held (extra releases are harmless: the objective releases a claim early)."""
        if self._depth == 0:
            return
        self._depth -= 1
        if self._depth == 0:
            self._release()

    @property
    def held(self) -> bool:
        return self._depth > 0

    def __enter__(self) -> "StudyLock":
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def _acquire(self) -> None:
        path = _local_path(self.storage_url)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            name = hashlib.sha256(self.study_name.encode()).hexdigest()[:12]
            self._file = open(path.with_name(f"{path.name}.{name}.lock"), "a")
            fcntl.flock(self._file, fcntl.LOCK_EX)
        elif uri_scheme(self.storage_url) == "postgresql":
            import sqlalchemy

            if self._engine is None:
                self._engine = sqlalchemy.create_engine(self.storage_url, poolclass=sqlalchemy.pool.NullPool)
            self._connection = self._engine.connect()
            self._connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"), {"key": self._key})

    def _release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None
        if self._connection is not None:
            import sqlalchemy

            try:
                self._connection.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:key)"), {"key": self._key})
            finally:
                self._connection.close()
                self._connection = None

    def close(self) -> None:
        while self._depth:
            self.release()
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None


# --- leases ----------------------------------------------------------------------------------------


def lease_folder(storage_url: str) -> Path:
    """One folder per storage on this machine, shared by every local worker whatever its cwd."""
    key = hashlib.sha256(storage_url.encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"vae-lab-leases-{os.getuid()}" / key


class Lease:
    """An exclusive OS lock on `<study>-<key>.lease` for as long as this process holds it: the
    key is a trial number (while a worker runs it) or `run-<id>` (an invocation's parent run)."""

    def __init__(self, storage_url: str, study_name: str, key: int | str):
        folder = lease_folder(storage_url)
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f"{_safe(study_name)}-{key}.lease"
        self._file = open(self.path, "a")
        fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def release(self) -> None:
        if self._file is None:
            return
        self.path.unlink(missing_ok=True)
        fcntl.flock(self._file, fcntl.LOCK_UN)
        self._file.close()
        self._file = None


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def lease_is_free(storage_url: str, study_name: str, key: int | str) -> bool | None:
    """True if nobody holds the lease (its process is gone), False if someone does, None if
    there is no lease file (released, or never taken)."""
    path = lease_folder(storage_url) / f"{_safe(study_name)}-{key}.lease"
    try:
        handle = open(path, "r")
    except FileNotFoundError:
        return None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(handle, fcntl.LOCK_UN)
        return True


def owner_attrs() -> dict[str, Any]:
    return {"worker_host": HOST, "worker_pid": os.getpid()}


def dead_trials(study: optuna.Study, storage_url: str) -> list[optuna.trial.FrozenTrial]:
    """RUNNING trials whose worker on this machine is gone (or that no worker ever owned)."""
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    found = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        host = trial.user_attrs.get("worker_host")
        if host == HOST:
            if owner_is_dead(storage_url, study.study_name, trial.number, trial.user_attrs):
                found.append(trial)
        elif host is None and trial.datetime_start is not None:
            if (now - trial.datetime_start.replace(tzinfo=None)).total_seconds() > UNOWNED_GRACE_S:
                found.append(trial)
    return found


def owner_is_dead(storage_url: str, study_name: str, key: int | str, owner: dict[str, Any]) -> bool:
    """Whether the process that owned lease `key` on this machine is gone (False for owners on
    other machines: only their heartbeats can tell)."""
    if owner.get("worker_host") != HOST:
        return False
    free = lease_is_free(storage_url, study_name, key)
    return free is True or (free is None and not _alive(_as_int(owner.get("worker_pid"))))


def _as_int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def fail_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial, reason: str) -> bool:
    """Mark a RUNNING trial FAIL with `reason` (False if it finished meanwhile)."""
    storage = study._storage  # the storage API is how Optuna itself fails stale trials
    try:
        storage.set_trial_user_attr(trial._trial_id, "failure_reason", reason)
        return storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)
    except (RuntimeError, ValueError):  # finished by its worker after all
        return False


# --- the grid queue ---------------------------------------------------------------------------------


def point_key(params: dict[str, Any]) -> str:
    return json.dumps(params, sort_keys=True, default=str)


def trial_point(trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
    """The configuration a trial runs: its queued point if it has one, else its params."""
    return trial.system_attrs.get("fixed_params") or dict(trial.params)


def queue_grid(study: optuna.Study, points: list[dict[str, Any]], repeats: int = 0, limit: int | None = None) -> int:
    """Queue each point no trial has settled (until `limit` trials wait, if given), in a seeded
    random order, plus `repeats` random repeats; returns how many trials wait.

    Call under the study lock. Failed and killed points are queued again (Optuna would count a
    failed trial as a visited grid point and never rerun it).
    """
    trials = study.get_trials(deepcopy=False)
    settled = {point_key(trial_point(t)) for t in trials if t.state in SETTLED}
    missing = [(index, point) for index, point in enumerate(points) if point_key(point) not in settled]
    # A seeded shuffle, as Optuna's GridSampler visits points in random order: the first trials
    # then span the grid (a pruner's first rungs compare like with like, and a long grid shows
    # its range early) instead of one corner of it, and a rerun queues in the same order.
    random.Random(len(points)).shuffle(missing)
    if limit is not None:
        missing = missing[: max(limit - waiting_count(study), 0)]
    for index, point in missing:
        study.enqueue_trial(point, user_attrs={"grid_point": index})
    rng = random.Random(len(trials))
    for _ in range(repeats):
        index = rng.randrange(len(points))
        study.enqueue_trial(points[index], user_attrs={"grid_point": index, "repeat": True})
    return waiting_count(study)


def waiting_count(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))


def claim_and_run(study: optuna.Study, lock: StudyLock, run_one: Callable[[], None]) -> bool:
    """Run one queued trial if there is one: the pop happens under the lock, which the
    objective releases as soon as it starts (`TrialObjective.on_claimed`). False if the queue
    was empty."""
    lock.acquire()
    try:
        if waiting_count(study) == 0:
            return False
        run_one()
        return True
    finally:
        lock.release()


def wait_for(predicate: Callable[[], bool], seconds: float, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
