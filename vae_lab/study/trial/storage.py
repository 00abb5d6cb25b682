"""Where Optuna keeps studies: a journal file on one machine, a database for many.

(A "journal file" here is Optuna's `JournalStorage` log, not the research journal.) The default
journal file is append-only with a file lock, so several local worker processes
can share one study safely (a single SQLite file is not safe for that). `sqlite:///` and
`postgresql://` URLs go to Optuna's RDB storage, with Optuna's heartbeats switched on: a worker
that stops beating (killed, or its machine gone) has its trial failed by the next worker that
starts one. PostgreSQL is the multi-machine setup.
"""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path
from typing import Callable, Iterator

import optuna
from optuna.storages import RDBStorage
from optuna.storages.journal import JournalFileBackend, JournalStorage

from vae_lab.config import uri_scheme
from vae_lab.study.trial.lock import StorageLock

DATABASE_SCHEMES = ("sqlite", "postgresql", "mysql")
HEARTBEAT_INTERVAL_S = 10
HEARTBEAT_GRACE_S = 60  # a trial silent this long belongs to a dead worker

StaleTrialCallback = Callable[[optuna.Study, optuna.trial.FrozenTrial], None]


@contextlib.contextmanager
def schema_lock(url: str) -> Iterator[None]:
    """Hold a lock while Optuna creates its tables.

    Workers started together on a fresh database would otherwise race to create the schema
    and all but one crash ("duplicate key ... studydirection").
    """
    with contextlib.closing(StorageLock(url, "vae-lab optuna schema")) as lock, lock:
        yield


def open_storage(url: str, on_stale_trial: StaleTrialCallback | None = None) -> optuna.storages.BaseStorage:
    """The storage behind `url`; `on_stale_trial` runs for each trial a heartbeat check fails."""
    scheme = uri_scheme(url.removeprefix("journal:"))
    if scheme in DATABASE_SCHEMES:
        engine_kwargs = {"connect_args": {"timeout": 60}} if scheme == "sqlite" else {"pool_pre_ping": True}
        if scheme == "postgresql":
            engine_kwargs["connect_args"] = {"connect_timeout": 10}
        with schema_lock(url), warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeats are "experimental"
            return RDBStorage(
                url,
                engine_kwargs=engine_kwargs,
                heartbeat_interval=HEARTBEAT_INTERVAL_S,
                grace_period=HEARTBEAT_GRACE_S,
                heartbeat_stale_trial_callback=on_stale_trial,
            )
    path = Path(url.removeprefix("journal:"))
    path.parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(path)))


def trial_id_of(storage: optuna.storages.BaseStorage, study_name: str, number: int) -> int:
    """The storage's id of trial `number` (the public storage API's key for writing to a trial)."""
    study_id = storage.get_study_id_from_name(study_name)
    return storage.get_trial_id_from_study_id_trial_number(study_id, number)


def storage_exists(url: str) -> bool:
    """Whether `url` may hold studies already: a database, or a journal file that exists."""
    path = url.removeprefix("journal:")
    return bool(uri_scheme(path)) or Path(path).is_file()
