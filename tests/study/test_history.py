"""learn_from: other studies' complete trials as this study's history (added once, never its own),
and the objectives' names on the Optuna study."""

from __future__ import annotations

from types import SimpleNamespace

import optuna
import pytest
from optuna.trial import TrialState

from vae_lab.errors import VaeLabError
from vae_lab.study.design.space import suggest_params
from vae_lab.study.design.spec import StudySpec
from vae_lab.study.execution.admission import open_study
from vae_lab.study.execution.history import add_learned, learned_trials
from vae_lab.study.execution.queue import plan_remaining
from vae_lab.study.reading.trials import learned_counts, own_trials, trial_rows
from vae_lab.study.trial.provenance import TrialAttr

optuna.logging.set_verbosity(optuna.logging.ERROR)

DATA = SimpleNamespace(content_hash="h", toy_fraction=1.0, seed=0, source="voxels.parquet", grid=11)
SPACE = {"latent_dim": [2, 4, 8, 16], "learning_rate": {"low": 1e-4, "high": 1e-1, "log": True}}


def spec(name: str, learn_from=(), space=None, **fields) -> StudySpec:
    return StudySpec.model_validate(
        {
            "name": name,
            "sampler": "tpe",
            "n_trials": 6,
            "objective": {"metric": "val_f1"},
            "space": space or SPACE,
            "learn_from": list(learn_from),
            **fields,
        }
    )


def run_source(storage, source: StudySpec, n: int = 8) -> optuna.Study:
    """A finished study: its best trials have a large latent and a small learning rate."""
    study = open_study(storage, source, DATA)
    for _ in range(n):
        trial = study.ask()
        params = suggest_params(trial, source.space)
        study.tell(trial, params["latent_dim"] / 16 - params["learning_rate"])
    study.tell(study.ask(), state=TrialState.FAIL)  # not complete: never learned
    return study


def test_a_study_that_learned_starts_elsewhere_than_a_cold_one_with_the_same_seed():
    storage = optuna.storages.InMemoryStorage()
    run_source(storage, spec("last-week"))
    cold = open_study(storage, spec("cold"), DATA)
    warm_spec = spec("informed", learn_from=["last-week"])
    informed = open_study(storage, warm_spec, DATA)
    assert add_learned(informed, learned_trials(storage, warm_spec, "study")) == 8
    first = [suggest_params(s.ask(), warm_spec.space) for s in (cold, informed)]
    assert first[0] != first[1]  # the informed one is past TPE's startup trials: it models the 8


def test_learned_trials_are_added_once_marked_and_never_the_studys_own():
    storage = optuna.storages.InMemoryStorage()
    source = run_source(storage, spec("last-week"))
    target = spec("informed", learn_from=["last-week"])
    study = open_study(storage, target, DATA)
    add_learned(study, learned_trials(storage, target, "study"))
    assert add_learned(study, learned_trials(storage, target, "study")) == 0  # a resume adds nothing
    learned = study.get_trials(states=(TrialState.COMPLETE,))
    assert {(t.user_attrs[TrialAttr.LEARNED_FROM], t.user_attrs[TrialAttr.LEARNED_TRIAL]) for t in learned} == {
        ("last-week", t.number) for t in source.get_trials(states=(TrialState.COMPLETE,))
    }
    assert own_trials(study) == [] and trial_rows(study) == [] and learned_counts(study) == {"last-week": 8}
    assert plan_remaining(study, target, None) == (6, 0)  # none counts toward its 6 trials
    run_source(storage, spec("last-week"), n=2)  # the source went on: a resume adds what finished since
    assert add_learned(study, learned_trials(storage, target, "study")) == 2


@pytest.mark.parametrize(
    "target, problem",
    [
        (spec("t", learn_from=["nowhere"]), "no such study in the Optuna storage (fix: known studies: last-week"),
        (spec("t", learn_from=["t"]), "cannot learn from itself"),
        (
            spec("t", learn_from=["last-week"], objective={"metric": "val_loss"}),
            "it optimises val_f1 (maximize), this study val_loss (minimize)",
        ),
        (spec("t", learn_from=["last-week"], space={"latent_dim": [2, 4, 8, 16]}), "learning_rate in one space only"),
        (
            spec("t", learn_from=["last-week"], space={**SPACE, "latent_dim": [2, 4]}),
            "is outside the choices 2, 4 (fix: widen space.latent_dim to hold it)",
        ),
    ],
)
def test_an_incompatible_study_is_refused_in_one_line(target, problem):
    storage = optuna.storages.InMemoryStorage()
    run_source(storage, spec("last-week"), n=12)
    with pytest.raises(VaeLabError) as caught:
        learned_trials(storage, target, "t.yaml")
    assert problem in str(caught.value) and "t.yaml: learn_from" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_nothing_stored_yet_means_nothing_to_learn_from():
    with pytest.raises(VaeLabError, match="no such study"):
        learned_trials(None, spec("t", learn_from=["last-week"]), "study")


def test_nsga2_learns_its_first_generation():
    storage = optuna.storages.InMemoryStorage()
    run_source(storage, spec("last-week"))
    target = spec("front", learn_from=["last-week"], sampler="nsga2", n_trials=16)
    study = open_study(storage, target, DATA)
    add_learned(study, learned_trials(storage, target, "study"))
    trial = study.ask()
    suggest_params(trial, target.space)
    generation = optuna.samplers.NSGAIISampler._get_generation_key()
    assert study._storage.get_trial(trial._trial_id).system_attrs[generation] == 1  # its parents: the 8 learned


def test_the_objectives_names_are_on_the_optuna_study_once(monkeypatch):
    storage = optuna.storages.InMemoryStorage()
    open_study(storage, spec("named"), DATA)
    assert optuna.load_study(study_name="named", storage=storage).metric_names == ["val_f1"]
    two = spec("pair", objective={"metrics": ["val_f1", "val_kl"]})
    optuna.create_study(study_name="pair", storage=storage, directions=["maximize", "minimize"])  # made before names
    open_study(storage, two, DATA)
    assert optuna.load_study(study_name="pair", storage=storage).metric_names == ["val_f1", "val_kl"]
    calls, real = [], optuna.Study.set_metric_names
    monkeypatch.setattr(optuna.Study, "set_metric_names", lambda self, names: calls.append(names) or real(self, names))
    open_study(storage, two, DATA)
    assert calls == []  # already named: not written again
