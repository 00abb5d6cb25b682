"""Where Optuna keeps studies: a journal file on one machine, a database for many.

The default journal file is append-only with a file lock, so several local worker processes
can share one study safely (a single SQLite file is not safe for that). `sqlite:///` and
`postgresql://` URLs go to Optuna's RDB storage; PostgreSQL is the multi-machine setup.
"""

from __future__ import annotations

import contextlib
import fcntl
import zlib
from pathlib import Path
from typing import Iterator

import optuna
from optuna.storages import RDBStorage
from optuna.storages.journal import JournalFileBackend, JournalStorage

DATABASE_SCHEMES = ("sqlite", "postgresql", "mysql")


@contextlib.contextmanager
def schema_lock(url: str) -> Iterator[None]:
    """Hold a lock while Optuna creates its tables.

    Workers started together on a fresh database would otherwise race to create the schema
    and all but one crash ("duplicate key ... studydirection"). PostgreSQL gets an advisory
    lock, SQLite a lock file beside the database; other databases go unguarded.
    """
    scheme = url.split(":", 1)[0].split("+", 1)[0]
    if scheme == "sqlite":
        path = Path(url.split(":///", 1)[1])
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.with_name(path.name + ".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield
    elif scheme == "postgresql":
        import sqlalchemy

        key = zlib.crc32(b"vae-lab optuna schema")
        engine = sqlalchemy.create_engine(url)
        try:
            with engine.connect() as connection:
                connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"), {"key": key})
                try:
                    yield
                finally:
                    connection.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:key)"), {"key": key})
        finally:
            engine.dispose()
    else:
        yield


def open_storage(url: str) -> optuna.storages.BaseStorage:
    scheme = url.split(":", 1)[0].split("+", 1)[0] if "://" in url else ""
    if scheme in DATABASE_SCHEMES:
        engine_kwargs = {"connect_args": {"timeout": 60}} if scheme == "sqlite" else {"pool_pre_ping": True}
        with schema_lock(url):
            return RDBStorage(url, engine_kwargs=engine_kwargs)
    path = Path(url.removeprefix("journal:"))
    path.parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(path)))
