"""The storage lock: one holder at a time per name and storage, re-entrant within a holder."""

from __future__ import annotations

import threading

import pytest

from vae_lab.study.trial.lock import StorageLock, StudyLock, local_storage_file


@pytest.fixture(params=["journal", "sqlite"])
def url(request, tmp_path):
    return str(tmp_path / "optuna.log") if request.param == "journal" else f"sqlite:///{tmp_path}/optuna.db"


def taken_in_a_thread(lock: StorageLock) -> threading.Event:
    """Take `lock` on another thread (it blocks there while someone else holds it); set when taken."""
    taken = threading.Event()

    def take() -> None:
        with lock:
            taken.set()

    threading.Thread(target=take, daemon=True).start()
    return taken


def test_a_second_holder_waits_until_the_first_lets_go(url):
    first, second = StudyLock(url, "s"), StudyLock(url, "s")
    with first:
        taken = taken_in_a_thread(second)
        assert not taken.wait(0.3)
    assert taken.wait(10)


def test_locks_of_other_names_do_not_wait(url):
    with StudyLock(url, "s"):
        assert taken_in_a_thread(StudyLock(url, "other")).wait(10)
        assert taken_in_a_thread(StorageLock(url, "vae-lab optuna schema")).wait(10)


def test_re_entrant_and_released_as_often_as_taken(url):
    lock, other = StudyLock(url, "s"), StudyLock(url, "s")
    with lock, lock:
        pass
    assert taken_in_a_thread(other).wait(10)
    with pytest.raises(RuntimeError, match="released more often than taken"):
        lock.release()


def test_the_lock_file_lies_beside_a_local_storage(tmp_path):
    assert local_storage_file(f"sqlite:///{tmp_path}/optuna.db?timeout=60") == tmp_path / "optuna.db"
    assert local_storage_file(f"journal:{tmp_path}/optuna.log") == tmp_path / "optuna.log"
    assert local_storage_file("postgresql+psycopg2://u@h/optuna") is None
