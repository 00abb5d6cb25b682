"""Locks shared by every worker of a storage, for the moments that must not interleave.

`StudyLock`: claiming the next trial (so two workers never take the last grid point twice;
Optuna's GridSampler can, optuna#5139), reaping and re-queuing dead trials, and moving registry
aliases. `storage.schema_lock`: creating Optuna's tables in a new database. Both are a
`StorageLock`: a file lock beside a journal-file or SQLite storage, a PostgreSQL advisory lock on
a dedicated connection for PostgreSQL, nothing for other databases. Re-entrant within a worker;
every `acquire` has its `release` in the same function (a `with` block).
"""

from __future__ import annotations

import fcntl
import hashlib
import zlib
from pathlib import Path

from vae_lab.config import sqlite_path, uri_scheme


def local_storage_file(storage_url: str) -> Path | None:
    """The file behind a journal-file or SQLite storage, else None."""
    if uri_scheme(storage_url.removeprefix("journal:")) == "":
        return Path(storage_url.removeprefix("journal:"))
    return sqlite_path(storage_url)


class StorageLock:
    """A mutual-exclusion lock called `name`, shared by every process that uses the storage at
    `storage_url` (re-entrant within one). `close` gives up its database engine."""

    def __init__(self, storage_url: str, name: str):
        self.storage_url, self.name = storage_url, name
        self._depth = 0
        self._file = None
        self._engine = None
        self._connection = None
        self._key = zlib.crc32(name.encode())

    def acquire(self) -> None:
        if self._depth == 0:
            self._acquire()
        self._depth += 1

    def release(self) -> None:
        if self._depth == 0:
            raise RuntimeError(f"the lock {self.name!r} is released more often than taken")
        self._depth -= 1
        if self._depth == 0:
            self._release()

    def __enter__(self) -> "StorageLock":
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def _acquire(self) -> None:
        path = local_storage_file(self.storage_url)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            suffix = hashlib.sha256(self.name.encode()).hexdigest()[:12]
            self._file = open(path.with_name(f"{path.name}.{suffix}.lock"), "a")
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


class StudyLock(StorageLock):
    """The lock of one study, shared by every worker of it."""

    def __init__(self, storage_url: str, study_name: str):
        super().__init__(storage_url, f"vae-lab study {study_name}")
