"""The search space: what a trial suggests (Optuna's FixedTrial), grid points, and the budget split."""

from __future__ import annotations

import optuna
import pytest

from tests.study.study_helpers import grid_spec, tpe_spec
from vae_lab.errors import VaeLabError
from vae_lab.study.design.planner import representative_points
from vae_lab.study.design.space import SearchSpace, check_space, distribution, grid_points, suggest_params
from vae_lab.study.design.spec import build_configs
from vae_lab.study.execution.workers import split_budget


def test_a_trial_suggests_only_what_applies_to_its_loss():
    space = SearchSpace.model_validate(
        {"architecture": ["fc"], "loss": ["mse", "focal"], "focal_gamma": [1.0, 2.0], "latent_dim": [2]}
    )
    focal = suggest_params(
        optuna.trial.FixedTrial({"architecture": "fc", "loss": "focal", "focal_gamma": 2.0, "latent_dim": 2}), space
    )
    assert focal == {"architecture": "fc", "loss": "focal", "latent_dim": 2, "focal_gamma": 2.0}
    # FixedTrial raises on a suggestion it was not given: mse must not ask for focal_gamma.
    mse = suggest_params(optuna.trial.FixedTrial({"architecture": "fc", "loss": "mse", "latent_dim": 2}), space)
    assert mse == {"architecture": "fc", "loss": "mse", "latent_dim": 2}


def test_ranges_are_suggested_within_their_bounds():
    space = SearchSpace.model_validate(
        {
            "architecture": ["fc"],
            "learning_rate": {"low": 1e-4, "high": 1e-2, "log": True},
            "latent_dim": {"low": 2, "high": 16, "step": 2},
        }
    )
    chosen = suggest_params(
        optuna.trial.FixedTrial({"architecture": "fc", "learning_rate": 1e-3, "latent_dim": 8}), space
    )
    assert chosen == {"architecture": "fc", "learning_rate": 1e-3, "latent_dim": 8}


def test_a_grid_is_its_distinct_configurations_and_each_builds():
    spec = grid_spec(loss=["mse", "focal"], focal_gamma=[1.0, 2.0], latent_dim=[2, 4])
    points = grid_points(spec.space)
    assert len(points) == 6  # (mse + focal x 2) x 2 latents, not 2 x 2 x 2
    for point in points:
        model, train = build_configs(point, spec, grid=11, max_points=8, seed=0)
        assert model.latent_dim == point["latent_dim"] and train.loss == point["loss"]
        assert (train.focal_gamma == point["focal_gamma"]) if "focal_gamma" in point else True


def test_a_value_no_trial_uses_is_an_error_naming_the_field():
    space = SearchSpace.model_validate({"architecture": ["fc"], "loss": ["mse"], "focal_gamma": [2.0]})
    with pytest.raises(VaeLabError, match=r"space\.focal_gamma"):
        check_space(space, "s.yaml")


@pytest.mark.parametrize(
    "total, workers, shares", [(None, 3, [None, None, None]), (7, 3, [3, 2, 2]), (2, 4, [1, 1, 0, 0]), (6, 2, [3, 3])]
)
def test_n_trials_is_split_across_workers_without_losing_one(total, workers, shares):
    assert split_budget(total, workers) == shares
    assert total is None or sum(shares) == total


def test_the_plan_weighs_each_point_by_the_trials_that_look_like_it():
    spec = grid_spec(latent_dim=[2, 4, 8, 16])
    assert [count for _, count in representative_points(spec)] == [1, 1, 1, 1]
    asked = spec.model_copy(update={"n_trials": 6})
    assert sum(count for _, count in representative_points(asked)) == pytest.approx(6)
    tpe = tpe_spec(10, architecture=["fc", "conv"], latent_dim={"low": 2, "high": 32})
    points = representative_points(tpe)
    assert [p["architecture"] for p, _ in points] == ["fc", "conv"] and [c for _, c in points] == [5, 5]
    assert points[0][0]["latent_dim"] == 8  # the geometric middle of 2..32


def test_the_distributions_of_a_space_are_those_its_trials_suggest_from():
    space = SearchSpace.model_validate(
        {
            "architecture": ["fc"],
            "latent_dim": {"low": 2, "high": 16, "step": 2},
            "learning_rate": {"low": 1e-4, "high": 1e-2, "log": True},
            "beta": [0.5, 1.0],
        }
    )
    trial = optuna.create_study().ask()
    suggest_params(trial, space)
    assert trial.distributions == {name: distribution(choice) for name, choice in space.items()}
