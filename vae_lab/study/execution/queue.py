"""The grid queue: every grid point no trial has taken waits as a WAITING trial.

Workers pop waiting trials (`study.ask()`, an atomic step in every Optuna storage), so each
point is trained once however many workers share the study. Failed and killed points are queued
again on the next run (Optuna would count a failed trial as a visited grid point and never rerun
it); a point whose trial completed, was pruned, runs now or waits already is not.
"""

from __future__ import annotations

import json
import random
from typing import Any

import optuna
from optuna.trial import TrialState

from vae_lab.study.design.space import grid_points
from vae_lab.study.design.spec import StudySpec
from vae_lab.study.trial.provenance import TrialAttr, planned_params

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
# States whose point needs no new trial: done, or in someone's hands.
TAKEN = (*FINISHED, TrialState.RUNNING, TrialState.WAITING)


def point_key(params: dict[str, Any]) -> str:
    return json.dumps(params, sort_keys=True, default=str)


def waiting_count(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))


def finished_count(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=FINISHED))


def queue_grid(study: optuna.Study, points: list[dict[str, Any]], repeats: int = 0, limit: int | None = None) -> int:
    """Queue each point no trial has taken (until `limit` trials wait, if given), in a seeded
    random order, plus `repeats` random repeats; returns how many trials wait. Under the lock."""
    trials = study.get_trials(deepcopy=False)
    taken = {point_key(planned_params(t)) for t in trials if t.state in TAKEN}
    missing = [(index, point) for index, point in enumerate(points) if point_key(point) not in taken]
    # A seeded shuffle, as Optuna's GridSampler visits points in random order: the first trials
    # then span the grid (a pruner's first rungs compare like with like, and a long grid shows
    # its range early) instead of one corner of it, and a rerun queues in the same order.
    random.Random(len(points)).shuffle(missing)
    if limit is not None:
        missing = missing[: max(limit - waiting_count(study), 0)]
    for index, point in missing:
        study.enqueue_trial(point, user_attrs={TrialAttr.GRID_POINT: index})
    rng = random.Random(len(trials))
    for _ in range(repeats):
        index = rng.randrange(len(points))
        study.enqueue_trial(points[index], user_attrs={TrialAttr.GRID_POINT: index, TrialAttr.REPEAT: True})
    return waiting_count(study)


def requeue(study: optuna.Study, dead: optuna.trial.FrozenTrial) -> None:
    """Queue a dead worker's point again (trials that failed in this run are not retried until
    the next run: a configuration that always fails must not loop)."""
    study.enqueue_trial(planned_params(dead), user_attrs={TrialAttr.REQUEUED_FROM: dead.number})


def plan_remaining(
    study: optuna.Study, spec: StudySpec, n_trials: int | None, allow_repeats: bool = True
) -> tuple[int, int]:
    """(trials to run now, trials already finished); queues a grid's missing points, and repeats
    when `n_trials` asks for more than the grid has left (not for workers of `--workers`, whose
    parent queued them). Under the lock."""
    done = finished_count(study)
    if spec.is_grid:
        waiting = queue_grid(study, grid_points(spec.space), limit=n_trials)
        if n_trials is None:
            return waiting, done
        if n_trials > waiting and allow_repeats:
            queue_grid(study, grid_points(spec.space), repeats=n_trials - waiting, limit=0)
        return n_trials, done
    if n_trials is not None:
        return n_trials, done
    return max(spec.planned_trials - done, 0), done
