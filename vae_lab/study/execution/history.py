"""What a study learns from others (`learn_from:`): their complete trials, as its sampler's history.

A study that names other studies of the same Optuna storage starts its sampler (TPE, NSGA-II) from
their complete trials instead of from nothing. Each such trial is copied into this study's
history once, marked with where it came from (`TrialAttr.LEARNED_FROM`, `TrialAttr.LEARNED_TRIAL`);
it is never a trial of this study: not counted, not crowned, not in its tables (see
`reading.trials.own_trials`). A resumed study adds only source trials it does not hold yet (those
that finished since).

Compatible means:
- the same objectives, in the same order and directions;
- the same hyperparameters: the other study searched exactly the names this one does;
- every value a copied trial took lies in this study's space for that hyperparameter (a range
  contains it, a list lists it), since the sampler models this study's space.

Anything else refuses the study in one line before anything is written (`learned_trials` runs in
`admission.admit`).
"""

from __future__ import annotations

import json

import optuna
from optuna.trial import TrialState

from vae_lab.errors import VaeLabError
from vae_lab.study.design.space import distribution, space_value
from vae_lab.study.design.spec import StudySpec
from vae_lab.study.reading.trials import own_trials
from vae_lab.study.trial.provenance import StudyAttr, TrialAttr, learned_from


def learned_trials(storage: optuna.storages.BaseStorage | None, spec: StudySpec, where: str) -> list:
    """The trials of `spec.learn_from` to copy into this study's history (as `FrozenTrial`
    templates), or a VaeLabError naming the study that does not fit. `storage`: None when none
    exists yet."""
    templates: list[optuna.trial.FrozenTrial] = []
    for source in spec.learn_from:
        place = f"{where}: learn_from {source}"
        other = _load_source(storage, spec, source, place)
        _check_objectives(other, spec, place)
        _check_names(other, spec, place)
        templates += [_template(t, spec, source, place) for t in own_trials(other, states=(TrialState.COMPLETE,))]
    return templates


def add_learned(study: optuna.Study, templates: list[optuna.trial.FrozenTrial]) -> int:
    """Add the templates this study does not hold yet; returns how many were added. Under the lock."""
    held = {
        (learned_from(t), t.user_attrs.get(TrialAttr.LEARNED_TRIAL))
        for t in study.get_trials(deepcopy=False)
        if learned_from(t) is not None
    }
    new = [t for t in templates if (learned_from(t), t.user_attrs.get(TrialAttr.LEARNED_TRIAL)) not in held]
    study.add_trials(new)
    return len(new)


def _load_source(storage: optuna.storages.BaseStorage | None, spec: StudySpec, source: str, place: str) -> optuna.Study:
    if source == spec.name:
        raise VaeLabError(place, "a study cannot learn from itself", "name another study, or drop learn_from")
    try:
        if storage is None:
            raise KeyError(source)
        return optuna.load_study(study_name=source, storage=storage)
    except KeyError:
        known = [n for n in optuna.study.get_all_study_names(storage) if n != spec.name] if storage else []
        fix = f"known studies: {', '.join(known)}" if known else "run it first, or drop it from learn_from"
        raise VaeLabError(place, "no such study in the Optuna storage", fix) from None


def _check_objectives(other: optuna.Study, spec: StudySpec, place: str) -> None:
    attrs = other.user_attrs
    names = attrs.get(StudyAttr.OBJECTIVES) or [attrs.get(StudyAttr.OBJECTIVE)]
    directions = [d.name.lower() for d in other.directions]
    wanted = list(spec.objective.directions.values())
    if names != spec.objective.names or directions != wanted:
        raise VaeLabError(
            place,
            f"it optimises {', '.join(map(str, names))} ({', '.join(directions)}), "
            f"this study {', '.join(spec.objective.names)} ({', '.join(wanted)})",
            "learn only from studies with the same objective",
        )


def _check_names(other: optuna.Study, spec: StudySpec, place: str) -> None:
    wanted = {name for name, _ in spec.space.items()}
    recorded = other.user_attrs.get(StudyAttr.SEARCH_SPACE)
    searched = set(json.loads(recorded)) if recorded else {n for t in other.trials for n in t.params}
    if searched != wanted:
        differ = ", ".join(sorted(searched ^ wanted))
        raise VaeLabError(
            place, f"it searched other hyperparameters ({differ} in one space only)", "learn only from the same space"
        )


def _template(trial: optuna.trial.FrozenTrial, spec: StudySpec, source: str, place: str) -> optuna.trial.FrozenTrial:
    """`trial` as a complete trial of this study: its values and params on this space's distributions."""
    space = dict(spec.space.items())
    params = {}
    for name, value in trial.params.items():
        try:
            params[name] = space_value(space[name], value)
        except ValueError as error:
            raise VaeLabError(
                place, f"its trial {trial.number}: {name} {error}", f"widen space.{name} to hold it"
            ) from None
    # NSGA-II builds each generation from the last: the learned trials are generation 0, its parents.
    generation = {optuna.samplers.NSGAIISampler._get_generation_key(): 0} if spec.sampler == "nsga2" else {}
    return optuna.trial.create_trial(
        state=TrialState.COMPLETE,
        values=list(trial.values),
        params=params,
        distributions={name: distribution(space[name]) for name in params},
        user_attrs={TrialAttr.LEARNED_FROM: source, TrialAttr.LEARNED_TRIAL: trial.number},
        system_attrs=generation,
    )
