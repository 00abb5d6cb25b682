"""Pareto fronts, ranks and champion rules on trials with known values."""

from __future__ import annotations

import pytest

from vae_lab.errors import VaeLabError
from vae_lab.selection import (
    ChampionRule,
    choose_champion,
    dominates,
    knee,
    make_rule,
    pareto_front,
    pareto_ranks,
    parse_condition,
)

F1_KL = {"val_f1": "maximize", "val_kl": "minimize"}
# Trials 0-5 on (val_f1 up, val_kl down). Front: 0 (low KL), 1 (middle), 2 (high F1). 5 ties 1's
# KL with less F1 and 4 has less F1 and more KL than 2: rank 2. 3 is dominated by 5 too: rank 3.
TRIALS = {
    0: {"val_f1": 0.50, "val_kl": 5.0},
    1: {"val_f1": 0.80, "val_kl": 20.0},
    2: {"val_f1": 0.90, "val_kl": 40.0},
    3: {"val_f1": 0.70, "val_kl": 30.0},
    4: {"val_f1": 0.85, "val_kl": 45.0},
    5: {"val_f1": 0.75, "val_kl": 20.0},
}


def test_the_front_and_the_ranks_of_non_dominated_sorting():
    assert pareto_front(TRIALS, F1_KL) == [0, 1, 2]
    assert pareto_ranks(TRIALS, F1_KL) == {0: 1, 1: 1, 2: 1, 3: 3, 4: 2, 5: 2}


def test_ranks_go_deeper_and_skip_trials_missing_an_objective():
    chain = {i: {"a": float(i), "b": float(i)} for i in range(4)}  # each dominates the next (both minimised)
    chain[9] = {"a": 1.0}
    ranks = pareto_ranks(chain, {"a": "minimize", "b": "minimize"})
    assert ranks == {0: 1, 1: 2, 2: 3, 3: 4}


def test_three_objectives_and_directions():
    directions = {"x": "maximize", "y": "maximize", "z": "minimize"}
    points = {
        0: {"x": 1, "y": 0, "z": 0},
        1: {"x": 0, "y": 1, "z": 0},
        2: {"x": 1, "y": 1, "z": 1},
        3: {"x": 0, "y": 0, "z": 1},
    }
    assert pareto_front(points, directions) == [0, 1, 2]
    assert dominates(points[0], points[3], directions) and not dominates(points[3], points[0], directions)
    assert not dominates(points[0], points[0], directions)  # equal is not better


def test_knee_is_the_front_point_nearest_the_scaled_ideal():
    # Scaled over the front: f1 0.5..0.9, kl 5..40. Trial 1 is (0.25, 0.43) from the ideal,
    # trial 0 (1.0, 0) and trial 2 (0, 1.0): trial 1 is nearest.
    assert knee(TRIALS, F1_KL) == 1
    assert choose_champion(ChampionRule("knee"), TRIALS, F1_KL) == 1
    # Scaling matters: in raw units the KL gaps would swamp F1 and pick the lowest-KL trial.
    stretched = {k: {"val_f1": v["val_f1"], "val_kl": v["val_kl"] * 1000} for k, v in TRIALS.items()}
    assert knee(stretched, F1_KL) == 1


def test_best_and_constrained_champions():
    assert choose_champion(make_rule("best", "val_f1", None, F1_KL), TRIALS, F1_KL) == 2
    assert choose_champion(make_rule("best", "val_kl", None, F1_KL), TRIALS, F1_KL) == 0
    rule = make_rule("constrained", "val_f1", {"val_kl": "<= 25"}, F1_KL)
    assert choose_champion(rule, TRIALS, F1_KL) == 1
    assert rule.describe() == "constrained val_f1 where val_kl <= 25"
    two = make_rule("constrained", "val_kl", {"val_f1": ">= 0.8", "val_kl": "> 30"}, F1_KL)
    assert choose_champion(two, TRIALS, F1_KL) == 2  # 2 and 4 qualify; 2 has the lower KL


def test_ties_go_to_the_earlier_trial():
    points = {3: {"val_f1": 0.5}, 1: {"val_f1": 0.5}, 2: {"val_f1": 0.4}}
    assert choose_champion(make_rule("best", None, None, {"val_f1": "maximize"}), points, {"val_f1": "maximize"}) == 1


def test_a_constraint_no_trial_meets_is_one_line():
    rule = make_rule("constrained", "val_f1", {"val_kl": "<= 1"}, F1_KL)
    with pytest.raises(VaeLabError) as error:
        choose_champion(rule, TRIALS, F1_KL)
    message = str(error.value)
    assert "\n" not in message and "val_kl <= 1" in message and "closest val_kl 5" in message


@pytest.mark.parametrize("text", ["25", "=< 25", "<= twenty", "", "<= 2 5", "~ 3"])
def test_malformed_conditions_are_one_line_errors(text):
    with pytest.raises(VaeLabError) as error:
        parse_condition("val_kl", text)
    assert "\n" not in str(error.value) and "val_kl" in str(error.value) and "<= 25" in str(error.value)


@pytest.mark.parametrize(
    ("text", "op", "bound"),
    [("<= 25", "<=", 25.0), (">=0.8", ">=", 0.8), ("< -1e-3", "<", -0.001), (" > .5 ", ">", 0.5)],
)
def test_conditions_parse(text, op, bound):
    condition = parse_condition("m", text)
    assert (condition.op, condition.bound) == (op, bound)


def test_rules_are_checked_against_the_objectives():
    with pytest.raises(VaeLabError, match="knee needs several objectives"):
        make_rule("knee", None, None, {"val_f1": "maximize"})
    with pytest.raises(VaeLabError, match="needs a metric"):
        make_rule("best", None, None, F1_KL)
    with pytest.raises(VaeLabError, match="at least one condition"):
        make_rule("constrained", "val_f1", None, F1_KL)
    with pytest.raises(VaeLabError, match="unknown rule"):
        make_rule("fastest", "val_f1", None, F1_KL)
    assert make_rule("best", None, None, {"val_f1": "maximize"}).metric == "val_f1"
