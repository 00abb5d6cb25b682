"""Is a trial's worker still alive? One answer for workers here and workers elsewhere.

- File leases, for workers on this machine: a worker holds an OS file lock for each trial it
  runs (and one for its invocation's parent run), released by the kernel when the process
  dies, even by SIGKILL. A RUNNING trial of this host whose lease is free belongs to a dead
  worker. This is how the default journal-file storage (no heartbeats in Optuna 5) detects dead
  trials at once.
- Heartbeats, for RDB storages: a thread records a beat while the trial's objective runs, and
  Optuna's `fail_stale_trials` fails trials silent past the grace period, wherever their
  worker ran.

`Liveness.hold` takes both for one trial; `fail_stale_trials` and `dead_local_trials` ask them. What happens to a
dead trial (failed, its run closed, its point queued again) is the reaper's business.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import tempfile
import threading
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import optuna
from optuna.trial import TrialState

from vae_lab.study.trial.provenance import Owner, trial_lease_key
from vae_lab.study.trial.storage import trial_id_of

# A RUNNING trial that never said which worker owns it is treated as dead after this long
# (a worker killed in the instant between Optuna creating the trial and the objective starting).
UNOWNED_GRACE_S = 600


def lease_folder(storage_url: str) -> Path:
    """One folder per storage on this machine, shared by every local worker whatever its cwd."""
    key = hashlib.sha256(storage_url.encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"vae-lab-leases-{os.getuid()}" / key


def lease_path(storage_url: str, study_name: str, key: str) -> Path:
    return lease_folder(storage_url) / f"{_safe(study_name)}-{key}.lease"


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


class Lease:
    """An exclusive OS lock on a lease file for as long as this process holds it; `key` comes from
    `provenance.trial_lease_key` or `provenance.invocation_lease_key`."""

    def __init__(self, storage_url: str, study_name: str, key: str):
        self.path = lease_path(storage_url, study_name, key)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a")
        fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def release(self) -> None:
        if self._file is None:
            return
        self.path.unlink(missing_ok=True)
        fcntl.flock(self._file, fcntl.LOCK_UN)
        self._file.close()
        self._file = None


def lease_is_free(storage_url: str, study_name: str, key: str) -> bool | None:
    """True if nobody holds the lease (its process is gone), False if someone does, None if
    there is no lease file (released, or never taken)."""
    try:
        handle = open(lease_path(storage_url, study_name, key))
    except FileNotFoundError:
        return None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(handle, fcntl.LOCK_UN)
        return True


def owner_is_dead(storage_url: str, study_name: str, key: str, owner: Owner) -> bool:
    """Whether the process that owned lease `key` on this machine is gone (False for owners on
    other machines: only their heartbeats can tell)."""
    if not owner.is_local:
        return False
    free = lease_is_free(storage_url, study_name, key)
    return free is True or (free is None and not _alive(owner.pid))


def _alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Heartbeat:
    """Records a heartbeat for one trial every interval while it runs (RDB storages only)."""

    def __init__(self, storage: optuna.storages.RDBStorage, trial_id: int, interval_s: float):
        self._storage, self._trial_id, self._interval_s = storage, trial_id, interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="vae-lab-heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._storage.record_heartbeat(self._trial_id)  # beat once before the objective starts
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _beat(self) -> None:
        while not self._stop.wait(self._interval_s):
            self._storage.record_heartbeat(self._trial_id)


class Liveness:
    """The one liveness check of a study: file leases here, heartbeats for RDB storages."""

    def __init__(self, storage: optuna.storages.BaseStorage, storage_url: str, study_name: str):
        self.storage, self.storage_url, self.study_name = storage, storage_url, study_name
        interval = storage.get_heartbeat_interval() if isinstance(storage, optuna.storages.RDBStorage) else None
        self.heartbeat_interval_s: float | None = interval

    @contextlib.contextmanager
    def hold(self, trial: optuna.Trial) -> Iterator[None]:
        """Keep `trial` alive in the eyes of other workers until the block ends: its lease, and
        its heartbeat where the storage has them."""
        lease = Lease(self.storage_url, self.study_name, trial_lease_key(trial.number))
        try:
            if self.heartbeat_interval_s is None:
                yield
            else:
                trial_id = trial_id_of(self.storage, self.study_name, trial.number)
                with Heartbeat(self.storage, trial_id, self.heartbeat_interval_s):
                    yield
        finally:
            lease.release()  # only now: the trial is settled, so nobody can take it for dead

    def fail_stale_trials(self, study: optuna.Study) -> None:
        """Optuna's heartbeat check (a no-op without heartbeats): it fails silent trials and calls
        the storage's `heartbeat_stale_trial_callback` for each one."""
        if self.heartbeat_interval_s is None:
            return
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)

    def dead_local_trials(self, study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
        """RUNNING trials whose worker on this machine is gone (or that no worker ever owned)."""
        now = datetime.now(timezone.utc).replace(tzinfo=None)
        found = []
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            owner = Owner.of(trial.user_attrs)
            if owner.is_local:
                if owner_is_dead(self.storage_url, self.study_name, trial_lease_key(trial.number), owner):
                    found.append(trial)
            elif owner.host is None and trial.datetime_start is not None:
                if (now - trial.datetime_start.replace(tzinfo=None)).total_seconds() > UNOWNED_GRACE_S:
                    found.append(trial)
        return found
