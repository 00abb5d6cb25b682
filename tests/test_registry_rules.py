"""The registry follows the study's champion rule: Pareto aliases, rank and rule tags, re-crowning."""

from __future__ import annotations

import pytest

from vae_lab.config import get_settings
from vae_lab.registry import CHAMPION, Candidate, reconcile
from vae_lab.selection import make_rule
from vae_lab.tracking import Tracker

OBJECTIVES = {"val_f1": "maximize", "val_kl": "minimize"}
VALUES = [(0.5, 5.0), (0.8, 20.0), (0.9, 40.0), (0.7, 30.0)]  # front: 0, 1, 2; knee 1


@pytest.fixture
def entries(lab):
    tracker = Tracker(get_settings())
    experiment = tracker.ensure_experiment("two")
    made = []
    for number, (f1, kl) in enumerate(VALUES):
        run_id = tracker.start_run(experiment, f"trial-{number}")
        model = tracker.client.create_logged_model(experiment, name="model", source_run_id=run_id)
        made.append(
            Candidate(
                "two",
                number,
                ("fc", "conv")[number % 2],
                f1,
                run_id,
                model.model_id,
                "val_f1",
                "maximize",
                {"val_f1": f1, "val_kl": kl},
            )
        )
    return tracker, made


def aliased(tracker: Tracker, alias: str) -> tuple[str, dict]:
    version = tracker.client.get_model_version_by_alias("two", alias)
    return version.run_id, version.tags


def test_knee_champion_pareto_aliases_and_tags(entries):
    tracker, made = entries
    crowning = reconcile(tracker, "two", made, make_rule("knee", None, None, OBJECTIVES))
    assert crowning.unmet is None and crowning.ranks == {0: 1, 1: 1, 2: 1, 3: 2}
    run, tags = aliased(tracker, CHAMPION)
    assert run == made[1].run_id and tags["champion_rule"] == "knee" and tags["pareto_rank"] == "1"
    # pareto-1 is the front's best val_f1, then down the front.
    assert [aliased(tracker, f"pareto-{k}")[0] for k in (1, 2, 3)] == [made[2].run_id, made[1].run_id, made[0].run_id]
    assert set(tracker.client.get_registered_model("two").aliases) == {
        "champion",
        "best-fc",
        "best-conv",
        "pareto-1",
        "pareto-2",
        "pareto-3",
    }


def test_a_changed_rule_re_crowns_without_new_runs_and_an_unmet_one_keeps_the_champion(entries):
    tracker, made = entries
    reconcile(tracker, "two", made, make_rule("knee", None, None, OBJECTIVES))
    crowning = reconcile(tracker, "two", made, make_rule("constrained", "val_f1", {"val_kl": "<= 10"}, OBJECTIVES))
    run, tags = aliased(tracker, CHAMPION)
    assert run == made[0].run_id and tags["champion_rule"] == "constrained val_f1 where val_kl <= 10"

    crowning = reconcile(tracker, "two", made, make_rule("constrained", "val_f1", {"val_kl": "<= 1"}, OBJECTIVES))
    assert crowning.unmet is not None and "no trial meets val_kl <= 1" in str(crowning.unmet)
    assert aliased(tracker, CHAMPION)[0] == made[0].run_id  # kept
    versions = tracker.client.search_model_versions("name='two'")
    assert len({v.run_id for v in versions}) == len(versions)  # one version per trial, never re-registered


def test_the_front_shrinking_drops_stale_pareto_aliases(entries):
    tracker, made = entries
    reconcile(tracker, "two", made, make_rule("knee", None, None, OBJECTIVES))
    dominating = Candidate(
        "two", 9, "fc", 0.95, made[3].run_id, made[3].model_id, "val_f1", "maximize", {"val_f1": 0.95, "val_kl": 1.0}
    )
    reconcile(tracker, "two", [*made[:3], dominating], make_rule("knee", None, None, OBJECTIVES))
    aliases = tracker.client.get_registered_model("two").aliases
    assert {a for a in aliases if a.startswith("pareto-")} == {"pareto-1"}
    assert aliased(tracker, CHAMPION)[0] == made[3].run_id
