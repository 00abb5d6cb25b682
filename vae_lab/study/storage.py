"""Where Optuna keeps studies: a journal file on one machine, a database for many.

The default journal file is append-only with a file lock, so several local worker processes
can share one study safely (a single SQLite file is not safe for that). `sqlite:///` and
`postgresql://` URLs go to Optuna's RDB storage; PostgreSQL is the multi-machine setup.
"""

from __future__ import annotations

from pathlib import Path

import optuna
from optuna.storages import RDBStorage
from optuna.storages.journal import JournalFileBackend, JournalStorage

DATABASE_SCHEMES = ("sqlite", "postgresql", "mysql")


def open_storage(url: str) -> optuna.storages.BaseStorage:
    scheme = url.split(":", 1)[0].split("+", 1)[0] if "://" in url else ""
    if scheme in DATABASE_SCHEMES:
        engine_kwargs = {"connect_args": {"timeout": 60}} if scheme == "sqlite" else {"pool_pre_ping": True}
        return RDBStorage(url, engine_kwargs=engine_kwargs)
    path = Path(url.removeprefix("journal:"))
    path.parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(path)))
