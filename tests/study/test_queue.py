"""The grid queue: each point queued once, taken points left alone, failed ones queued again."""

from __future__ import annotations

import optuna
from optuna.trial import TrialState

from tests.study.study_helpers import grid_spec, tpe_spec
from vae_lab.study.design.space import grid_points
from vae_lab.study.execution.queue import plan_remaining, point_key, queue_grid, requeue, waiting_count
from vae_lab.study.trial.provenance import TrialAttr, planned_params

optuna.logging.set_verbosity(optuna.logging.ERROR)


def points(n: int) -> list[dict]:
    return [{"architecture": "fc", "latent_dim": 2**i} for i in range(1, n + 1)]


def test_every_point_is_queued_once_in_a_seeded_order():
    study = optuna.create_study()
    assert queue_grid(study, points(5)) == 5
    assert queue_grid(study, points(5)) == 5  # nothing new: every point waits already
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert sorted(point_key(planned_params(t)) for t in waiting) == sorted(point_key(p) for p in points(5))
    assert {t.user_attrs[TrialAttr.GRID_POINT] for t in waiting} == set(range(5))
    again = optuna.create_study()
    queue_grid(again, points(5))
    order = [planned_params(t) for t in waiting]
    assert order == [planned_params(t) for t in again.get_trials(states=(TrialState.WAITING,))]


def test_a_limit_queues_only_as_many_as_asked_and_repeats_come_on_top():
    study = optuna.create_study()
    assert queue_grid(study, points(5), limit=2) == 2
    assert queue_grid(study, points(5), repeats=3, limit=0) == 5
    repeats = [t for t in study.get_trials(states=(TrialState.WAITING,)) if t.user_attrs.get(TrialAttr.REPEAT)]
    assert len(repeats) == 3


def test_completed_and_running_points_stay_taken_and_failed_ones_are_queued_again():
    study = optuna.create_study()
    queue_grid(study, points(3))
    done, failed, running = (study.ask() for _ in range(3))
    for trial in (done, failed, running):
        trial.suggest_int("latent_dim", 1, 64)  # what an objective would suggest
    study.tell(done, 1.0)
    study.tell(failed, state=TrialState.FAIL)
    assert waiting_count(study) == 0
    assert queue_grid(study, points(3)) == 1
    [waiting] = study.get_trials(states=(TrialState.WAITING,))
    assert planned_params(waiting) == planned_params(study.trials[failed.number])


def test_a_dead_trial_is_queued_again_with_its_origin():
    study = optuna.create_study()
    queue_grid(study, points(1))
    dead = study.ask()
    requeue(study, study.trials[dead.number])
    [waiting] = study.get_trials(states=(TrialState.WAITING,))
    assert waiting.user_attrs[TrialAttr.REQUEUED_FROM] == dead.number
    assert planned_params(waiting) == points(1)[0]


def test_plan_remaining_counts_what_is_left_and_what_is_done():
    spec = grid_spec(latent_dim=[2, 4, 8])
    study = optuna.create_study()
    assert plan_remaining(study, spec, None) == (3, 0)
    trial = study.ask()
    study.tell(trial, 0.5)
    assert plan_remaining(study, spec, None) == (2, 1)
    # --n-trials past the grid's end: exactly that many, the rest as repeats
    assert plan_remaining(study, spec, 5) == (5, 1)
    assert waiting_count(study) == 5
    # a worker of --workers N does not add repeats: its parent queued them
    assert plan_remaining(optuna.create_study(), spec, 5, allow_repeats=False) == (5, 0)


def test_a_tpe_study_owes_its_planned_trials_minus_the_finished_ones():
    spec = tpe_spec(4)
    study = optuna.create_study()
    study.tell(study.ask(), 1.0)
    study.tell(study.ask(), state=TrialState.PRUNED)
    study.tell(study.ask(), state=TrialState.FAIL)
    assert plan_remaining(study, spec, None) == (2, 2)
    assert plan_remaining(study, spec, 3) == (3, 2)
    assert len(grid_points(spec.space)) == 1


def test_warm_start_points_of_a_grid_go_first_and_are_not_queued_twice():
    warm = [points(5)[3], points(5)[0]]
    study = optuna.create_study()
    assert queue_grid(study, points(5), first=warm) == 5  # the grid's five points, no sixth
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert [planned_params(t) for t in waiting[:2]] == warm
    assert [t.user_attrs.get(TrialAttr.WARM_START) for t in waiting] == [0, 1, None, None, None]
    first = study.ask()  # Optuna hands out waiting trials in the order they were queued
    assert first.number == waiting[0].number
    study.tell(first, 1.0)
    assert queue_grid(study, points(5), first=warm) == 4  # its point is taken: not queued again


def test_warm_start_points_go_first_within_a_limit():
    study = optuna.create_study()
    queue_grid(study, points(5), limit=1, first=[points(5)[4]])
    assert [planned_params(t) for t in study.get_trials(states=(TrialState.WAITING,))] == [points(5)[4]]


def test_a_sampled_study_queues_its_warm_start_once():
    spec = tpe_spec(5, latent_dim=[2, 4, 8])
    spec = spec.model_copy(update={"warm_start": [{"architecture": "fc", "latent_dim": 8}]})
    study = optuna.create_study()
    assert plan_remaining(study, spec, None) == (5, 0)
    trial = study.ask()
    assert trial.suggest_categorical("latent_dim", [2, 4, 8]) == 8
    assert trial.user_attrs[TrialAttr.WARM_START] == 0
    study.tell(trial, 1.0)
    assert plan_remaining(study, spec, None) == (4, 1)  # resumed: not queued again
    assert waiting_count(study) == 0


def test_learned_trials_are_not_finished_trials_of_the_study_nor_take_grid_points():
    study = optuna.create_study()
    dist = optuna.distributions.CategoricalDistribution([2, 4, 8])
    learned = optuna.trial.create_trial(
        value=1.0,
        params={"latent_dim": 4},
        distributions={"latent_dim": dist},
        user_attrs={TrialAttr.LEARNED_FROM: "other", TrialAttr.LEARNED_TRIAL: 0},
    )
    study.add_trial(learned)
    assert plan_remaining(study, tpe_spec(5, latent_dim=[2, 4, 8]), None) == (5, 0)
    assert queue_grid(study, points(2) + [{"architecture": "fc", "latent_dim": 4}]) == 3
