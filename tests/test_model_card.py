"""Model cards: each registered version's description says what the model is, what it was trained
on, how well it does, how it was chosen and how to use it; the registered model's lists its
aliases; crownings keep them current and write only the cards that change."""

from __future__ import annotations

import re
from collections import Counter
from types import SimpleNamespace

import mlflow
import pytest

from tests.test_registry_rules import CountingClient
from vae_lab.config import get_settings
from vae_lab.data import synthesize, write_dataset
from vae_lab.data.reference import DataRef
from vae_lab.errors import VaeLabError
from vae_lab.model_card import (
    CHOSEN_HEADING,
    DESCRIPTION_LIMIT,
    AliasLine,
    CardContext,
    RunFacts,
    SplitFacts,
    Standing,
    card,
    model_description,
    restand,
    usage,
)
from vae_lab.registry import Candidate, reconcile
from vae_lab.selection import make_rule
from vae_lab.tracking import Tracker

OBJECTIVES = {"val_f1": "maximize", "val_kl": "minimize"}
FACTS = RunFacts(
    latent_dim="16",
    parameters=1234567,
    device="cpu",
    settings={"loss": "focal", "beta": "0.5"},
    splits=(SplitFacts("training", "voxels", 9000, "51d6a5d81243"), SplitFacts("validation", "voxels", 1000, "47aa")),
    best={"val_f1": 0.91234, "val_f1_c1": 0.95, "val_f1_c2": 0.5, "val_kl": 12.5, "val_tradeoff": 0.8},
    best_epoch=7,
    epochs_run=10,
    select_metric="val_f1",
)


def candidate(trial: int = 12, values: dict[str, float] | None = None, architecture: str = "conv") -> Candidate:
    values = values if values is not None else {"val_f1": 0.91234}
    several = values if len(values) > 1 else {}
    return Candidate(
        "sweep", trial, architecture, values["val_f1"], f"run{trial}", f"m-{trial}", "val_f1", "maximize", several
    )


def section(text: str, heading: str) -> str:
    """The text under `### heading`, up to the next heading."""
    match = re.search(rf"^### {re.escape(heading)}\n(.*?)(?=^### |\Z)", text, re.S | re.M)
    assert match, f"no section {heading!r} in:\n{text}"
    return match.group(1)


# --- the card as text ----------------------------------------------------------------------------------


def test_a_champions_card_says_what_it_is_what_it_saw_how_well_how_chosen_and_how_to_use_it():
    context = CardContext("sweep", trials=40)
    standing = context.standing(["best-conv", "champion"], {"champion_rule": "best val_f1"})
    text = card(candidate(), FACTS, standing, context.how_to_use(standing, "3"))

    assert text.startswith(
        "**`conv` VAE, latent size 16, 1,234,567 parameters**: trial 12 of the vae-lab study `sweep`"
    )
    what = section(text, "What it is")
    assert "family `conv`" in what and "latent size 16" in what and "1,234,567 trainable parameters" in what
    assert "loss `focal`, beta `0.5`" in what and "trained 10 epochs on `cpu`" in what and "epoch 7" in what
    data = section(text, "What it was trained on")
    assert "- training: `voxels`, 9,000 rows, digest `51d6a5d81243`" in data
    assert "- validation: `voxels`, 1,000 rows, digest `47aa`" in data
    well = section(text, "How well it does")
    assert "**val_f1 = 0.9123** (maximize)" in well
    assert "| val_f1_c1 (class 1) | 0.95 | higher |" in well and "| val_kl | 12.5 | lower |" in well
    # The objective leads the table; the leaderboard's metrics follow; val_tradeoff, neither, is left out.
    rows = [line.split("|")[1].strip() for line in well.splitlines() if line.startswith("| val_")]
    assert rows == ["val_f1", "val_f1_c1 (class 1)", "val_f1_c2 (class 2)", "val_kl"]
    chosen = section(text, "How it was chosen")
    # champion first, whatever order the aliases come in; the rule and the study's trial count.
    assert chosen.strip().splitlines() == [
        "- `champion`: chosen by the rule **best val_f1** among the study's 40 completed trials.",
        "- `best-conv`: the best `conv` trial by val_f1.",
    ]
    use = section(text, "Use it")
    for line in (
        "vae-lab evaluate sweep --split test --alias champion",
        "vae-lab encode sweep --alias champion --data FILE.parquet --out latents.parquet",
        "mlflow models serve -m models:/sweep@champion --env-manager local --host 127.0.0.1 --port 5001",
        "model = mlflow.pyfunc.load_model('models:/sweep@champion')",
    ):
        assert line in use.splitlines()
    assert "set_tracking_uri" not in text  # a card names no store (nor its credentials)


def test_a_pareto_versions_card_shows_its_rank_and_every_objective():
    context = CardContext("sweep", trials=9, objectives=("val_f1", "val_kl"))
    entry = candidate(values={"val_f1": 0.8, "val_kl": 20.0})
    standing = context.standing(["pareto-2", "champion"], {"champion_rule": "knee", "pareto_rank": "1"})
    text = card(entry, FACTS, standing, context.how_to_use(standing, "4"))
    assert "The study's objectives: **val_f1 = 0.8** (maximize), **val_kl = 20** (minimize)" in text
    chosen = section(text, "How it was chosen")
    assert "- `champion`: chosen by the rule **knee** among the study's 9 completed trials." in chosen
    assert "- `pareto-2`: point 2 of the Pareto front, ordered by val_f1." in chosen
    assert "- Pareto rank 1 on the objectives val_f1, val_kl." in chosen


def test_a_version_without_an_alias_says_so_and_is_used_by_its_number():
    context = CardContext("sweep", trials=9, objectives=("val_f1", "val_kl"))
    standing = context.standing([], {"pareto_rank": "3"})
    assert standing == Standing(objectives=("val_f1", "val_kl"))  # no rank without a role: ranks move every trial
    text = card(candidate(), FACTS, standing, context.how_to_use(standing, "4"))
    assert "It holds no alias since the last crowning" in text and "Pareto rank" not in text
    assert "vae-lab encode sweep --version 4 --data FILE.parquet --out latents.parquet" in text
    assert "models:/sweep/4" in text and "vae-lab evaluate" not in text  # evaluate takes an alias only


def test_a_kept_champion_says_the_rule_meets_no_trial():
    context = CardContext("sweep", trials=5, kept=True)
    standing = context.standing(["champion"], {"champion_rule": "best val_f1"})
    text = card(candidate(), FACTS, standing, context.how_to_use(standing, "1"))
    assert "crowned by the rule **best val_f1**; the study's rule now meets none of its 5 completed trials" in text


def test_restand_rebuilds_only_the_second_part_and_refuses_what_is_no_card():
    context = CardContext("sweep", trials=3)
    crowned = context.standing(["champion"], {"champion_rule": "best val_f1"})
    stored = card(candidate(), FACTS, crowned, context.how_to_use(crowned, "1"))
    # An edit above the heading (a note a colleague added) survives a new standing.
    stored = stored.replace("### What it is", "Note: retrain before May.\n\n### What it is")
    later = CardContext("sweep", trials=4)
    moved = later.standing(["best-conv"], {})
    text = restand(stored, candidate(), moved, later.how_to_use(moved, "1"))
    assert text.split(CHOSEN_HEADING)[0] == stored.split(CHOSEN_HEADING)[0]
    assert "`champion`" not in text and "- `best-conv`: the best `conv` trial by val_f1." in text
    assert "models:/sweep@best-conv" in text
    assert restand(text, candidate(), moved, later.how_to_use(moved, "1")) == text  # nothing new: the same text
    for foreign in (None, "", "Our best model so far."):
        assert restand(foreign, candidate(), moved, later.how_to_use(moved, "1")) is None


def test_the_registered_models_description_lists_its_aliases_in_order():
    lines = [
        AliasLine("pareto-10", "7", candidate(7, {"val_f1": 0.5, "val_kl": 3.0}, "fc")),
        AliasLine("pareto-2", "5", candidate(5, {"val_f1": 0.9, "val_kl": 30.0})),
        AliasLine("best-fc", "7", candidate(7, {"val_f1": 0.5, "val_kl": 3.0}, "fc")),
        AliasLine("champion", "5", candidate(5, {"val_f1": 0.9, "val_kl": 30.0})),
    ]
    text = model_description(lines, "knee")
    assert "VAEs of the vae-lab study `sweep`" in text and "(rule: **knee**)" in text and "`pareto-<k>`" in text
    table = [line for line in text.splitlines() if line.startswith("| `")]
    assert table == [
        "| `champion` | 5 | 5 | `conv` | 0.9 | 30 |",
        "| `best-fc` | 7 | 7 | `fc` | 0.5 | 3 |",
        "| `pareto-2` | 5 | 5 | `conv` | 0.9 | 30 |",
        "| `pareto-10` | 7 | 7 | `fc` | 0.5 | 3 |",
    ]
    assert "| alias | version | trial | family | val_f1 | val_kl |" in text


def test_descriptions_stay_within_mlflows_limit():
    many = [AliasLine(f"pareto-{k}", str(k), candidate(k, {"val_f1": 0.5, "val_kl": 3.0})) for k in range(1, 400)]
    text = model_description(many, "knee")
    assert len(text) <= DESCRIPTION_LIMIT and text.endswith("(cut to fit MLflow's description limit)")
    long_name = "a-registered-model-with-a-long-name-" * 5
    context = CardContext(long_name, trials=40)
    standing = context.standing(["champion", "best-conv", "pareto-1"], {"champion_rule": "knee", "pareto_rank": "1"})
    wide = RunFacts(best={f"val_f1_c{k}": 0.5 for k in range(1, 200)}, epochs_run=3, best_epoch=1)
    text = card(candidate(), wide, standing, context.how_to_use(standing, "1"))
    assert len(text) <= DESCRIPTION_LIMIT and CHOSEN_HEADING in text and text.endswith("```")


def test_usage_with_a_tracking_uri_is_what_registry_show_prints():
    info = {"name": "tiny", "uri": "models:/tiny@best-fc", "alias": "best-fc", "version": 2}
    shown = usage(info, "sqlite:///lab/mlflow.db")
    assert "mlflow.set_tracking_uri('sqlite:///lab/mlflow.db')" in shown["python"]
    assert shown["serve"][0].startswith(
        "MLFLOW_TRACKING_URI=sqlite:///lab/mlflow.db mlflow models serve -m models:/tiny@best-fc"
    )
    assert shown["vae_lab"][0] == "vae-lab evaluate tiny --split test --alias best-fc"


def test_run_facts_read_what_a_trial_run_records():
    run = SimpleNamespace(
        data=SimpleNamespace(
            params={"architecture": "fc", "latent_dim": "3", "loss": "mse", "beta": "1.0", "select_metric": "val_f1"},
            tags={"parameters": "1630265", "device": "cpu"},
            metrics={
                "summary/best_val_f1": 0.5,
                "summary/best_epoch": 2.0,
                "summary/epochs_run": 3.0,
                "losses/val_kl": 1.0,
            },
        ),
        inputs=SimpleNamespace(
            dataset_inputs=[
                SimpleNamespace(
                    dataset=SimpleNamespace(name="voxels/train", digest="abc", profile='{"rows": 40, "grid": 11}'),
                    tags=[SimpleNamespace(key="mlflow.data.context", value="training")],
                )
            ]
        ),
    )
    facts = RunFacts.of_run(run)
    assert (facts.latent_dim, facts.parameters, facts.device, facts.best_epoch, facts.epochs_run) == (
        "3",
        1630265,
        "cpu",
        2,
        3,
    )
    assert facts.best == {"val_f1": 0.5} and facts.settings == {"loss": "mse", "beta": "1.0"}
    assert facts.splits == (SplitFacts("training", "voxels", 40, "abc"),)


# --- the registry keeps them current ---------------------------------------------------------------


def logged_trial(tracker: Tracker, study: str, number: int, family: str, values: dict[str, float]) -> Candidate:
    """A finished trial's run as a study logs it (params, parameter count, best metrics, data) and its model."""
    experiment = tracker.ensure_experiment(study)
    run_id = tracker.start_run(experiment, f"trial-{number}")
    tracker.log_params(run_id, {"architecture": family, "latent_dim": 4 + number, "loss": "mse"})
    tracker.set_tags(run_id, {"parameters": 1000 + number, "device": "cpu"})
    tracker.log_metrics(run_id, {f"best_{m}": v for m, v in values.items()} | {"best_epoch": 1, "epochs_run": 2})
    reference = DataRef(
        path="voxels.parquet", content_hash="f" * 16, toy_fraction=1.0, seed=0, grid=11, rows={"train": 90}
    )
    tracker.log_dataset(run_id, reference, ("train",))
    model = tracker.client.create_logged_model(experiment, name="model", source_run_id=run_id)
    several = values if len(values) > 1 else {}
    return Candidate(study, number, family, values["val_f1"], run_id, model.model_id, "val_f1", "maximize", several)


def descriptions(client, name: str) -> tuple[str, dict[int, str]]:
    """(the registered model's description, each version's by trial)."""
    versions = client.search_model_versions(f"name='{name}'")
    return client.get_registered_model(name).description, {int(v.tags["trial"]): v.description for v in versions}


def test_crownings_write_cards_keep_them_current_and_write_nothing_when_nothing_changed(lab):
    tracker = Tracker(get_settings())
    values = [(0.5, 5.0), (0.8, 20.0), (0.9, 40.0)]
    made = [
        logged_trial(tracker, "two", n, ("fc", "conv")[n % 2], {"val_f1": f, "val_kl": k})
        for n, (f, k) in enumerate(values)
    ]
    client = tracker.client
    # Trials 0 (fc) and 1 (conv): 1 is champion, best-conv and pareto-1 (version 1), 0 best-fc and pareto-2.
    reconcile(tracker, "two", made[:2], make_rule("best", "val_f1", None, OBJECTIVES))
    model, cards = descriptions(client, "two")
    assert "| `champion` | 1 | 1 | `conv` | 0.8 | 20 |" in model and "| `best-fc` | 2 | 0 | `fc` | 0.5 | 5 |" in model
    assert "**`conv` VAE, latent size 5, 1,001 parameters**: trial 1" in cards[1]
    assert "- training: `voxels`, 90 rows" in cards[1] and "| val_f1 | 0.8 | higher |" in cards[1]
    assert "rule **best val_f1** among the study's 2 completed trials" in cards[1]
    assert "- Pareto rank 1 on the objectives val_f1, val_kl." in cards[1]

    # Trial 2 (fc) takes champion and best-fc: trial 1's card loses champion, trial 0's best-fc,
    # and the new champion's card counts three trials.
    reconcile(tracker, "two", made, make_rule("best", "val_f1", None, OBJECTIVES))
    model, cards = descriptions(client, "two")
    assert "among the study's 3 completed trials" in cards[2] and "`champion`" not in cards[1]
    assert "- `best-conv`" in cards[1] and "- `pareto-2`" in cards[1]
    assert "`best-fc`" not in cards[0] and "- `pareto-3`" in cards[0]
    assert "| `champion` | 3 | 2 | `fc` | 0.9 | 40 |" in model

    # Another rule re-crowns trial 0: the two cards that change are rewritten on their stored first part.
    first_part = cards[0].split(CHOSEN_HEADING)[0]
    counting = tracker.client = CountingClient(client)
    reconcile(tracker, "two", made, make_rule("constrained", "val_f1", {"val_kl": "<= 10"}, OBJECTIVES))
    reads, writes = counting.take()
    assert reads == Counter(get_registered_model=1, search_model_versions=1)  # no run read: the first parts are kept
    assert writes["update_model_version"] == 2 and writes["update_registered_model"] == 1
    model, cards = descriptions(client, "two")
    assert cards[0].startswith(first_part)
    assert "rule **constrained val_f1 where val_kl <= 10** among the study's 3 completed trials" in cards[0]
    assert "`champion`" not in cards[2] and "- `best-fc`" in cards[2]
    assert "(rule: **constrained val_f1 where val_kl <= 10**)" in model and "| `champion` | 2 | 0 | `fc` |" in model

    # The same crowning again writes nothing, descriptions included.
    reconcile(tracker, "two", made, make_rule("constrained", "val_f1", {"val_kl": "<= 10"}, OBJECTIVES))
    assert counting.take() == (Counter(get_registered_model=1, search_model_versions=1), Counter())

    # An unmet rule keeps the champion, and its card says why.
    reconcile(tracker, "two", made, make_rule("constrained", "val_f1", {"val_kl": "<= 1"}, OBJECTIVES))
    assert "the study's rule now meets none of its 3 completed trials, so it stays" in descriptions(client, "two")[1][0]


def test_a_version_registered_before_cards_gets_one_at_the_next_crowning(lab):
    tracker = Tracker(get_settings())
    made = [logged_trial(tracker, "old", n, "fc", {"val_f1": f}) for n, f in enumerate((0.4, 0.6))]
    rule = make_rule("best", None, None, {"val_f1": "maximize"})
    reconcile(tracker, "old", made, rule)
    client = tracker.client
    client.update_model_version("old", "1", description="")
    client.update_registered_model("old", description="VAEs of a vae-lab study.")
    counting = tracker.client = CountingClient(client)
    reconcile(tracker, "old", made, rule)
    reads, writes = counting.take()
    assert reads["get_run"] == 1 and writes == Counter(update_model_version=1, update_registered_model=1)
    model, cards = descriptions(client, "old")
    assert "**`fc` VAE, latent size 5, 1,001 parameters**" in cards[1] and "| `champion` | 1 | 1 |" in model


# --- a real study ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_studys_champion_carries_its_card_and_a_new_rule_rewrites_the_cards(lab):
    from vae_lab.study.design.spec import StudySpec
    from vae_lab.study.execution.run import run_study

    write_dataset(synthesize(rows=900, seed=3), lab / "voxels.parquet")

    def spec(**champion) -> StudySpec:
        return StudySpec.model_validate(
            {
                "name": "carded",
                "data": {"path": str(lab / "voxels.parquet")},
                "training": {"epochs": 1},
                "objective": {"metrics": ["val_f1", "val_kl"]},
                "champion": champion,
                "space": {"architecture": ["fc"], "latent_dim": [2, 3]},
                "artifacts": {"pca": False, "reconstructions": 0, "interpolation": False},
            }
        )

    report = run_study(spec(rule="best", metric="val_f1"))
    client = mlflow.MlflowClient(get_settings().mlflow_tracking_uri)
    champion = client.get_model_version_by_alias("carded", "champion")
    run = client.get_run(champion.run_id)
    text = champion.description
    assert (
        f"{int(run.data.tags['parameters']):,} parameters" in text
        and f"latent size {run.data.params['latent_dim']}" in text
    )
    for split in run.inputs.dataset_inputs:
        assert f"`{split.dataset.digest}`" in text
    assert f"**val_f1 = {float(champion.tags['value']):.4g}** (maximize)" in text
    assert "rule **best val_f1** among the study's 2 completed trials" in text
    assert f"Pareto rank {champion.tags['pareto_rank']} on the objectives val_f1, val_kl." in text
    assert "mlflow models serve -m models:/carded@champion" in text
    model = client.get_registered_model("carded").description
    for alias, version in client.get_registered_model("carded").aliases.items():
        assert f"| `{alias}` | {version} |" in model

    # Resumed with another rule: nothing trains, the champion's card (wherever it now is) says the new rule.
    run_study(spec(rule="best", metric="val_kl"))
    champion = client.get_model_version_by_alias("carded", "champion")
    assert "rule **best val_kl** among the study's 2 completed trials" in champion.description
    others = [v for v in client.search_model_versions("name='carded'") if v.version != champion.version]
    assert all("`champion`" not in v.description for v in others)
    assert "(rule: **best val_kl**)" in client.get_registered_model("carded").description
    assert len(report.trials) == 2
    with pytest.raises(VaeLabError):
        run_study(spec(rule="constrained", metric="val_f1", where={"val_kl": "<= -1"}))
    assert "so it stays" in client.get_model_version_by_alias("carded", "champion").description
