"""A two-objective study end to end: Optuna's front, the champion rule in the registry, the
report on the parent run, re-crowning on resume, and the rules' one-line errors."""

from __future__ import annotations

import mlflow
import optuna
import pytest
import yaml

from vae_lab.config import get_settings
from vae_lab.data import synthesize, write_dataset
from vae_lab.errors import VaeLabError
from vae_lab.selection import choose_champion, knee, make_rule, pareto_front
from vae_lab.study.design.spec import StudySpec, parse_study
from vae_lab.study.execution.events import SilentSink
from vae_lab.study.execution.run import run_study
from vae_lab.study.execution.workers import run_study_workers
from vae_lab.study.trial.storage import open_storage

pytestmark = pytest.mark.slow
OBJECTIVES = {"val_f1": "maximize", "val_kl": "minimize"}


def two_objectives(lab, **champion) -> StudySpec:
    return StudySpec.model_validate(
        {
            "name": "two",
            "data": {"path": str(lab / "voxels.parquet")},
            "training": {"epochs": 2},
            "objective": {"metrics": ["val_f1", "val_kl"]},
            "champion": champion or {"rule": "knee"},
            "space": {"architecture": ["fc"], "latent_dim": [2, 3, 4], "beta": [0.1, 1.0]},
            "artifacts": {"max_points": 200, "reconstructions": 1, "interpolation": False},
        }
    )


def stored_points() -> dict[int, dict[str, float]]:
    study = optuna.load_study(study_name="two", storage=open_storage(get_settings().optuna_storage))
    return {
        t.number: dict(zip(OBJECTIVES, t.values, strict=True))
        for t in study.trials
        if t.state == optuna.trial.TrialState.COMPLETE
    }


def champion() -> tuple[int, dict[str, str]]:
    version = mlflow.MlflowClient(get_settings().mlflow_tracking_uri).get_model_version_by_alias("two", "champion")
    return int(version.tags["trial"]), dict(version.tags)


def test_a_two_objective_grid_crowns_by_its_rule_and_re_crowns_on_resume(lab):
    write_dataset(synthesize(rows=1200, seed=3), lab / "voxels.parquet")
    report = run_study(two_objectives(lab))
    assert [t.state for t in report.trials] == ["complete"] * 6 and all(len(t.values) == 2 for t in report.trials)
    points = stored_points()
    front = pareto_front(points, OBJECTIVES)
    number, tags = champion()
    assert number == knee(points, OBJECTIVES) and tags["champion_rule"] == "knee" and tags["pareto_rank"] == "1"

    client = mlflow.MlflowClient(get_settings().mlflow_tracking_uri)
    aliases = client.get_registered_model("two").aliases
    assert {a for a in aliases if a.startswith("pareto-")} == {f"pareto-{k}" for k in range(1, len(front) + 1)}
    pareto_trials = {
        int(client.get_model_version("two", v).tags["trial"]) for a, v in aliases.items() if a.startswith("pareto-")
    }
    assert pareto_trials == set(front)
    artifacts = {a.path for a in client.list_artifacts(report.parent_run_id)}
    assert {"report.html", "pareto.html", "study.yaml", "leaderboard.csv"} <= artifacts

    # The report offline, and the comparison (here of the study with itself).
    from typer.testing import CliRunner

    from vae_lab.cli import app

    made = CliRunner().invoke(app, ["study", "report", "two", "--out", str(lab / "report.html")])
    assert made.exit_code == 0, made.output
    page = (lab / "report.html").read_text()
    assert "<h2>Pareto front</h2>" in page and "<h2>Champion</h2>" in page and f"trial {number} by rule knee" in page
    assert 'id="vae-lab-page-data"' in page and '"ids":[0,1,2' in page  # the champion's explorer
    compared = CliRunner().invoke(app, ["study", "compare", "two", "two", "--out", str(lab / "compare.html"), "--json"])
    assert compared.exit_code == 0, compared.output
    assert "<h1>two vs two</h1>" in (lab / "compare.html").read_text() and '"champion"' in compared.stdout
    missing = CliRunner().invoke(app, ["study", "report", "nope"])
    assert missing.exit_code == 2 and "study nope: not found" in missing.output

    # Resuming with another rule re-crowns from the stored trials: no trial runs again.
    loosest = max(p["val_kl"] for p in points.values())
    rule = {"rule": "constrained", "metric": "val_f1", "where": {"val_kl": f"<= {loosest}"}}
    again = run_study(two_objectives(lab, **rule))
    assert again.parent_run_id is None and len(again.trials) == 6
    expected = choose_champion(
        make_rule("constrained", "val_f1", {"val_kl": f"<= {loosest}"}, OBJECTIVES), points, OBJECTIVES
    )
    assert champion()[0] == expected

    # A constraint no trial meets: one line, and the champion stays.
    with pytest.raises(VaeLabError) as error:
        run_study(two_objectives(lab, rule="constrained", metric="val_f1", where={"val_kl": "<= -1"}))
    assert "no trial meets val_kl <= -1" in str(error.value) and "\n" not in str(error.value)
    assert champion()[0] == expected

    # Several workers share the one invocation lifecycle: a changed rule re-crowns without training...
    again = run_study_workers(two_objectives(lab, rule="knee"), 2, sink=SilentSink())
    assert again.parent_run_id is None and champion()[0] == knee(points, OBJECTIVES)
    # ...and an unmet rule is the same one line with exit code 2 from the command.
    unmet = two_objectives(lab, rule="constrained", metric="val_f1", where={"val_kl": "<= -1"})
    (lab / "studies" / "two.yaml").write_text(yaml.safe_dump(unmet.model_dump(mode="json")))
    ran = CliRunner().invoke(app, ["study", "run", "two", "--workers", "2"])
    assert ran.exit_code == 2 and "no trial meets val_kl <= -1" in ran.output, ran.output
    assert champion()[0] == knee(points, OBJECTIVES)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"pruner": {"kind": "median"}}, "pruner median needs one objective"),
        (
            {"champion": {"rule": "constrained", "metric": "val_f1", "where": {"val_kl": "below 3"}}},
            "cannot read the condition 'below 3'",
        ),
        ({"champion": {"rule": "best"}}, "rule best needs a metric"),
        ({"objective": {"metric": "val_kl", "metrics": ["val_f1", "val_kl"]}}, "not both"),
    ],
)
def test_bad_multi_objective_studies_are_one_line(extra, message):
    raw = {"name": "bad", "objective": {"metrics": ["val_f1", "val_kl"]}, "space": {"architecture": ["fc"]}} | extra
    with pytest.raises(VaeLabError) as error:
        parse_study(raw, "studies/bad.yaml")
    assert (
        message in str(error.value) and "\n" not in str(error.value) and str(error.value).startswith("studies/bad.yaml")
    )
