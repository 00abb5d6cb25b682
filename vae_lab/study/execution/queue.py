"""The queue: every grid point no trial has taken, and the warm-start points, wait as WAITING trials.

Workers pop waiting trials (`study.ask()`, an atomic step in every Optuna storage), so each
point is trained once however many workers share the study. Failed and killed points are queued
again on the next run (Optuna would count a failed trial as a visited grid point and never rerun
it); a point whose trial completed, was pruned, runs now or waits already is not.

Warm-start points (`warm_start:` in the spec) are queued once, ahead of everything else: in a
grid they are grid points and move to the front of the queue (no second trial of the point); in a
sampled study they wait as fixed trials and Optuna hands them out before it samples.

Trials learned from other studies (`learn_from`) are history for the sampler, never trials of
this study: they are not counted as finished here and never take a grid point.
"""

from __future__ import annotations

import json
import random
from typing import Any, Sequence

import optuna
from optuna.trial import TrialState

from vae_lab.study.design.space import grid_points
from vae_lab.study.design.spec import StudySpec
from vae_lab.study.reading.trials import own_trials
from vae_lab.study.trial.provenance import TrialAttr, learned_from, planned_params

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
# States whose point needs no new trial: done, or in someone's hands.
TAKEN = (*FINISHED, TrialState.RUNNING, TrialState.WAITING)


def point_key(params: dict[str, Any]) -> str:
    return json.dumps(params, sort_keys=True, default=str)


def waiting_count(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))


def finished_count(study: optuna.Study) -> int:
    """The study's own finished trials (not those learned from other studies)."""
    return len(own_trials(study, states=FINISHED))


def queue_grid(
    study: optuna.Study,
    points: list[dict[str, Any]],
    repeats: int = 0,
    limit: int | None = None,
    first: Sequence[dict[str, Any]] = (),
) -> int:
    """Queue each point no trial has taken (until `limit` trials wait, if given), the points of
    `first` (the warm start) ahead in their order and the rest in a seeded random order, plus
    `repeats` random repeats; returns how many trials wait. Under the lock."""
    trials = study.get_trials(deepcopy=False)
    taken = {point_key(planned_params(t)) for t in trials if t.state in TAKEN and learned_from(t) is None}
    missing = [(index, point) for index, point in enumerate(points) if point_key(point) not in taken]
    # A seeded shuffle, as Optuna's GridSampler visits points in random order: the first trials
    # then span the grid (a pruner's first rungs compare like with like, and a long grid shows
    # its range early) instead of one corner of it, and a rerun queues in the same order.
    random.Random(len(points)).shuffle(missing)
    warm = {point_key(point): order for order, point in enumerate(first)}
    missing.sort(key=lambda item: warm.get(point_key(item[1]), len(warm)))  # stable: the rest keep their order
    if limit is not None:
        missing = missing[: max(limit - waiting_count(study), 0)]
    for index, point in missing:
        attrs = {TrialAttr.GRID_POINT: index}
        if point_key(point) in warm:
            attrs[TrialAttr.WARM_START] = warm[point_key(point)]
        study.enqueue_trial(point, user_attrs=attrs)
    rng = random.Random(len(trials))
    for _ in range(repeats):
        index = rng.randrange(len(points))
        study.enqueue_trial(points[index], user_attrs={TrialAttr.GRID_POINT: index, TrialAttr.REPEAT: True})
    return waiting_count(study)


def requeue(study: optuna.Study, dead: optuna.trial.FrozenTrial) -> None:
    """Queue a dead worker's point again (trials that failed in this run are not retried until
    the next run: a configuration that always fails must not loop)."""
    study.enqueue_trial(planned_params(dead), user_attrs={TrialAttr.REQUEUED_FROM: dead.number})


def queue_warm_start(study: optuna.Study, points: list[dict[str, Any]]) -> None:
    """Queue each warm-start point of a sampled study that no trial has run or queued yet (a
    resumed study does not queue them again). Under the lock."""
    queued = {
        point_key(planned_params(t)) for t in study.get_trials(deepcopy=False) if TrialAttr.WARM_START in t.user_attrs
    }
    for order, point in enumerate(points):
        if point_key(point) not in queued:
            study.enqueue_trial(point, user_attrs={TrialAttr.WARM_START: order})


def plan_remaining(
    study: optuna.Study, spec: StudySpec, n_trials: int | None, allow_repeats: bool = True
) -> tuple[int, int]:
    """(trials to run now, trials already finished); queues a grid's missing points, and repeats
    when `n_trials` asks for more than the grid has left (not for workers of `--workers`, whose
    parent queued them); the warm-start points wait first. Under the lock."""
    done = finished_count(study)
    if spec.is_grid:
        waiting = queue_grid(study, grid_points(spec.space), limit=n_trials, first=spec.warm_start)
        if n_trials is None:
            return waiting, done
        if n_trials > waiting and allow_repeats:
            queue_grid(study, grid_points(spec.space), repeats=n_trials - waiting, limit=0)
        return n_trials, done
    queue_warm_start(study, spec.warm_start)
    if n_trials is not None:
        return n_trials, done
    return max(spec.planned_trials - done, 0), done
