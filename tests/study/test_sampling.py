"""Each worker's sampler: seeded from the study's seed and the worker's index; TPE's constant liar."""

from __future__ import annotations

import optuna

from tests.study.study_helpers import tpe_spec
from vae_lab.study.design.sampling import make_sampler, worker_seed
from vae_lab.study.design.space import suggest_params

optuna.logging.set_verbosity(optuna.logging.ERROR)


def first_proposals(sampler: optuna.samplers.BaseSampler, spec, n: int = 3) -> list[dict]:
    study = optuna.create_study(sampler=sampler, direction="maximize")
    proposals = []
    for _ in range(n):
        trial = study.ask()
        proposals.append(suggest_params(trial, spec.space))
        study.tell(trial, 0.0)
    return proposals


def test_workers_propose_differently_and_each_index_reproduces():
    spec = tpe_spec(20, learning_rate={"low": 1e-4, "high": 1e-1, "log": True}, latent_dim=[2, 4, 8, 16])
    one, two = first_proposals(make_sampler(spec, 1), spec), first_proposals(make_sampler(spec, 2), spec)
    assert one != two
    assert first_proposals(make_sampler(spec, 1), spec) == one
    assert first_proposals(make_sampler(spec, 2), spec) == two


def test_worker_zero_samples_as_a_single_worker_always_did():
    spec = tpe_spec(20, learning_rate={"low": 1e-4, "high": 1e-1, "log": True})
    before = optuna.samplers.TPESampler(seed=spec.training.seed, n_startup_trials=6)  # the sampler until issue 24
    assert first_proposals(make_sampler(spec), spec) == first_proposals(before, spec)
    assert worker_seed(spec.training.seed, 0) == spec.training.seed
    assert len({worker_seed(0, i) for i in range(64)}) == 64


def test_tpe_lies_about_running_trials_and_nsga2_seeds_per_worker_too():
    spec = tpe_spec(20, learning_rate={"low": 1e-4, "high": 1e-1})
    assert make_sampler(spec, 3)._constant_liar
    nsga2 = spec.model_copy(update={"sampler": "nsga2"})
    assert first_proposals(make_sampler(nsga2, 1), nsga2) != first_proposals(make_sampler(nsga2, 2), nsga2)
    assert first_proposals(make_sampler(nsga2, 1), nsga2) == first_proposals(make_sampler(nsga2, 1), nsga2)
