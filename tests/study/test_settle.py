"""Every way a trial ends is written once, to Optuna and MLflow together, and its lease let go."""

from __future__ import annotations

import math
from types import SimpleNamespace

import optuna
import pytest
from optuna.trial import TrialState

from tests.study.study_helpers import FakeTracker, grid_spec
from vae_lab.study.execution.liveness import Liveness, lease_is_free
from vae_lab.study.execution.loop import TrialLoop
from vae_lab.study.execution.reaper import StaleTrialCollector
from vae_lab.study.execution.session import StudySession
from vae_lab.study.execution.settle import TrialBooks, ending_of, settle, settle_dead
from vae_lab.study.trial.lock import StudyLock
from vae_lab.study.trial.provenance import INTERRUPTED_REASON, Owner, RunTag, TrialAttr, TrialEnding, TrialOutcome
from vae_lab.study.trial.storage import open_storage
from vae_lab.training import NonFiniteError

optuna.logging.set_verbosity(optuna.logging.ERROR)


@pytest.fixture
def books(tmp_path):
    storage = open_storage(str(tmp_path / "optuna.log"))
    study = optuna.create_study(study_name="unit", storage=storage)
    return TrialBooks(study, storage, FakeTracker())


def end(books: TrialBooks, ending: TrialEnding, run: str | None = "run-1"):
    trial = books.study.ask()
    if run:
        books.tracker.open_run(run)
    return settle(books, trial, run, ending)


def test_a_completed_trial_is_complete_with_its_value_and_its_run_finished(books):
    settled = end(books, TrialEnding.complete(0.25))
    assert settled.state == TrialState.COMPLETE and settled.value == 0.25
    assert books.tracker.status["run-1"] == "FINISHED" and RunTag.TRIAL_STATE not in books.tracker.tags["run-1"]
    assert TrialAttr.FAILURE_REASON not in settled.user_attrs


def test_a_pruned_trial_is_pruned_in_optuna_killed_in_mlflow_and_not_a_failure(books):
    settled = end(books, ending_of(optuna.TrialPruned("pruned at epoch 2 (val_f1=0.1)")))
    assert settled.state == TrialState.PRUNED
    assert books.tracker.status["run-1"] == "KILLED"
    assert books.tracker.tags["run-1"] == {
        RunTag.TRIAL_STATE: "PRUNED",
        RunTag.PRUNED_REASON: "pruned at epoch 2 (val_f1=0.1)",
    }
    assert TrialAttr.FAILURE_REASON not in settled.user_attrs


def test_a_failed_trial_keeps_its_reason_in_both_stores(books):
    settled = end(books, ending_of(RuntimeError("CUDA out of memory")))
    assert settled.state == TrialState.FAIL
    assert settled.user_attrs[TrialAttr.FAILURE_REASON] == "RuntimeError: CUDA out of memory"
    assert books.tracker.status["run-1"] == "FAILED"
    assert books.tracker.tags["run-1"] == {
        RunTag.TRIAL_STATE: "FAILED",
        RunTag.FAILURE_REASON: "RuntimeError: CUDA out of memory",
    }


def test_a_diverging_trial_says_in_which_epoch(books):
    settled = end(books, ending_of(NonFiniteError(3, "the loss")))
    assert settled.state == TrialState.FAIL
    assert books.tracker.tags["run-1"][RunTag.FAILED_EPOCH] == 3
    assert settled.user_attrs[TrialAttr.FAILURE_REASON] == "the loss became NaN or infinite in epoch 3"


def test_a_nan_objective_is_a_failure_not_a_result(books):
    settled = end(books, ending_of(ValueError(f"objective val_f1 is {math.nan} (is the data labelled?)")))
    assert settled.state == TrialState.FAIL and settled.value is None
    assert "is nan" in settled.user_attrs[TrialAttr.FAILURE_REASON]


def test_an_interrupted_trial_is_failed_with_the_reason_and_its_run_killed(books):
    settled = end(books, ending_of(KeyboardInterrupt()))
    assert settled.state == TrialState.FAIL and settled.user_attrs[TrialAttr.FAILURE_REASON] == INTERRUPTED_REASON
    assert (
        books.tracker.status["run-1"] == "KILLED" and books.tracker.tags["run-1"][RunTag.TRIAL_STATE] == "INTERRUPTED"
    )


def test_a_trial_that_failed_before_its_run_opened_is_settled_in_optuna_alone(books):
    settled = end(books, ending_of(RuntimeError("no run yet")), run=None)
    assert settled.state == TrialState.FAIL and books.tracker.status == {}


def test_a_dead_workers_trial_is_failed_and_its_open_run_killed(books):
    trial = books.study.ask()
    trial.set_user_attr(TrialAttr.RUN_ID, books.tracker.open_run("run-dead"))
    frozen = books.study.trials[trial.number]
    assert settle_dead(books, frozen, TrialEnding.worker_died("its worker (pid 1 on h) died"))
    stored = books.study.trials[trial.number]
    assert (
        stored.state == TrialState.FAIL
        and stored.user_attrs[TrialAttr.FAILURE_REASON] == "its worker (pid 1 on h) died"
    )
    assert books.tracker.status["run-dead"] == "KILLED"
    assert books.tracker.tags["run-dead"][RunTag.TRIAL_STATE] == TrialOutcome.WORKER_DIED.value


def test_a_trial_that_finished_meanwhile_is_left_as_it_is(books):
    trial = books.study.ask()
    trial.set_user_attr(TrialAttr.RUN_ID, books.tracker.open_run("run-late"))
    frozen = books.study.trials[trial.number]  # read while RUNNING
    books.tracker.end_run("run-late", "FINISHED")
    books.study.tell(trial, 1.0)  # its worker was alive after all
    assert not settle_dead(books, frozen, TrialEnding.worker_died("died"))
    assert books.study.trials[trial.number].state == TrialState.COMPLETE
    assert books.tracker.status["run-late"] == "FINISHED" and books.tracker.tags["run-late"] == {}


class StandInObjective:
    """An objective that ends the way it is told to."""

    def __init__(self, books: TrialBooks, outcome):
        self.books, self.outcome = books, outcome

    def start(self, trial):
        run_id = self.books.tracker.open_run(f"run-{trial.number}")
        trial.set_user_attr(TrialAttr.RUN_ID, run_id)
        return SimpleNamespace(run_id=run_id, model=None, train=None)

    def fit(self, trial, started, callbacks):
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        return self.outcome


class RecordingSession(StudySession):
    """A real session over the test's stores whose crowning is only recorded."""

    crowned: list

    def crown(self):
        self.crowned.append(True)


def loop_for(books: TrialBooks, tmp_path, outcome) -> tuple[TrialLoop, list]:
    url = str(tmp_path / "optuna.log")
    spec = grid_spec()
    admission = SimpleNamespace(spec=spec, settings=SimpleNamespace(optuna_storage=url))
    session = RecordingSession(
        admission,
        books.tracker,
        books.storage,
        books.study,
        books,
        Liveness(books.storage, url, "unit"),
        StudyLock(url, "unit"),
        StaleTrialCollector(),
    )
    session.crowned = []
    observer = SimpleNamespace(
        on_trial_start=lambda *a: None, training_callback=lambda: None, on_trial_end=lambda t: None
    )
    loop = TrialLoop(
        session,
        StandInObjective(books, outcome),
        observer,
        SimpleNamespace(request=lambda: None),
        grid=True,
        planned=spec.planned_trials,
    )
    return loop, session.crowned


@pytest.mark.parametrize(
    "outcome, state, goes_on",
    [
        (0.5, TrialState.COMPLETE, True),
        (optuna.TrialPruned("pruned"), TrialState.PRUNED, True),
        (RuntimeError("a trial failure"), TrialState.FAIL, True),
        (KeyError("a bug"), TrialState.FAIL, False),
        (KeyboardInterrupt(), TrialState.FAIL, False),
    ],
)
def test_run_trial_settles_every_ending_and_lets_go_of_the_lease(books, tmp_path, outcome, state, goes_on):
    loop, crowned = loop_for(books, tmp_path, outcome)
    trial = books.study.ask()
    if goes_on:
        loop.run_trial(trial)
    else:
        with pytest.raises(type(outcome)):
            loop.run_trial(trial)
    stored = books.study.trials[trial.number]
    assert stored.state == state
    assert Owner.of(stored.user_attrs) == Owner.this_process()
    assert books.tracker.status[f"run-{trial.number}"] != "RUNNING"
    assert lease_is_free(str(tmp_path / "optuna.log"), "unit", str(trial.number)) is None
    assert crowned == ([True] if state == TrialState.COMPLETE else [])
