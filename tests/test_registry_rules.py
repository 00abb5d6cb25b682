"""The registry follows the study's champion rule: Pareto aliases, rank and rule tags, re-crowning,
and a crowning writes only what changed."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from vae_lab.config import get_settings
from vae_lab.registry import CHAMPION, Candidate, reconcile
from vae_lab.selection import make_rule
from vae_lab.tracking import Tracker

OBJECTIVES = {"val_f1": "maximize", "val_kl": "minimize"}
VALUES = [(0.5, 5.0), (0.8, 20.0), (0.9, 40.0), (0.7, 30.0)]  # front: 0, 1, 2; knee 1
SINGLE = [("fc", 0.5), ("conv", 0.8), ("fc", 0.6)]  # champion 1


def logged_trial(tracker: Tracker, study: str, number: int, architecture: str, values: dict[str, float]) -> Candidate:
    """A trial's run and logged model, as the registry's candidate (several objectives when `values` has several)."""
    experiment = tracker.ensure_experiment(study)
    run_id = tracker.start_run(experiment, f"trial-{number}")
    model = tracker.client.create_logged_model(experiment, name="model", source_run_id=run_id)
    several = values if len(values) > 1 else {}
    return Candidate(
        study, number, architecture, values["val_f1"], run_id, model.model_id, "val_f1", "maximize", several
    )


@pytest.fixture
def entries(lab):
    tracker = Tracker(get_settings())
    made = [
        logged_trial(tracker, "two", number, ("fc", "conv")[number % 2], {"val_f1": f1, "val_kl": kl})
        for number, (f1, kl) in enumerate(VALUES)
    ]
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


class CountingClient:
    """An MlflowClient that counts the calls made through it, by method name."""

    def __init__(self, client: Any):
        self.client, self.calls = client, Counter()

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.client, name)

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            return method(*args, **kwargs)

        return counted

    def take(self) -> tuple[Counter, Counter]:
        """(reads, writes) since the last take."""
        reads = Counter({k: n for k, n in self.calls.items() if k.startswith(("get_", "search_"))})
        writes = self.calls - reads
        self.calls = Counter()
        return reads, writes


def test_a_crowning_writes_only_what_changed(lab):
    tracker = Tracker(get_settings())
    made = [logged_trial(tracker, "one", n, arch, {"val_f1": f1}) for n, (arch, f1) in enumerate(SINGLE)]
    counting = tracker.client = CountingClient(tracker.client)
    rule = make_rule("best", None, None, {"val_f1": "maximize"})

    reconcile(tracker, "one", made, rule)
    reads, writes = counting.take()
    # The model is new, so nothing more is read but the two new versions' runs, for their cards;
    # two trials hold the three aliases (1 is champion and best-conv); the model's description lists them.
    assert reads == Counter(get_registered_model=1, get_logged_model=2, get_run=2)
    assert writes == Counter(
        create_registered_model=1, create_model_version=2, set_registered_model_alias=3, update_registered_model=1
    )

    reconcile(tracker, "one", made, rule)
    assert counting.take() == (Counter(get_registered_model=1, search_model_versions=1), Counter())

    better = logged_trial(tracker, "one", 3, "fc", {"val_f1": 0.9})
    counting.take()
    reconcile(tracker, "one", [*made, better], rule)
    reads, writes = counting.take()
    assert reads == Counter(get_registered_model=1, search_model_versions=1, get_logged_model=1, get_run=1)
    # Its version (tagged and carded as it is made), champion and best-fc moved to it, the old
    # champion's rule tag dropped, the model's champion tags that differ (trial, value,
    # best_architecture), the cards of the two versions that lost an alias, and the model's list of aliases.
    assert writes == Counter(
        create_model_version=1,
        set_registered_model_alias=2,
        delete_model_version_tag=1,
        set_registered_model_tag=3,
        update_model_version=2,
        update_registered_model=1,
    )

    client = counting.client
    assert client.get_model_version_by_alias("one", CHAMPION).run_id == better.run_id
    assert client.get_model_version_by_alias("one", "best-fc").run_id == better.run_id
    versions = {v.run_id: v.tags for v in client.search_model_versions("name='one'")}
    assert versions[better.run_id]["champion_rule"] == "best val_f1"
    assert "champion_rule" not in versions[made[1].run_id]
    assert not any("pareto_rank" in tags for tags in versions.values())  # one objective: no Pareto ranks
    model_tags = client.get_registered_model("one").tags
    assert (model_tags["trial"], model_tags["best_architecture"], model_tags["champion_rule"]) == (
        "3",
        "fc",
        "best val_f1",
    )


def test_an_unchanged_multi_objective_crowning_only_reads(entries):
    tracker, made = entries
    rule = make_rule("knee", None, None, OBJECTIVES)
    reconcile(tracker, "two", made, rule)
    counting = tracker.client = CountingClient(tracker.client)
    reconcile(tracker, "two", made, rule)
    assert counting.take() == (Counter(get_registered_model=1, search_model_versions=1), Counter())
