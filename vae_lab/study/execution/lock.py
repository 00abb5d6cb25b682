"""The study lock: one worker at a time through the moments that must not interleave.

Claiming the next trial (so two workers never take the last grid point twice; Optuna's
GridSampler can, optuna#5139), reaping and re-queuing dead trials, and moving registry aliases.
A file lock beside a journal-file or SQLite storage; a PostgreSQL advisory lock on a dedicated
connection for PostgreSQL. Re-entrant within a worker; every `acquire` has its `release` in the
same function (a `with` block).
"""

from __future__ import annotations

import fcntl
import hashlib
import zlib
from pathlib import Path

from vae_lab.config import uri_scheme


def local_storage_file(storage_url: str) -> Path | None:
    """The file behind a journal-file or SQLite storage, else None."""
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
        if self._depth == 0:
            raise RuntimeError(f"the lock of study {self.study_name} is released more often than taken")
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
        path = local_storage_file(self.storage_url)
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
