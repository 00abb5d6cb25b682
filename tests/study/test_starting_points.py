"""A study that starts from what is known, end to end: warm-start points run first, trials learned
from another study inform TPE but are never counted, shown or crowned, and a resume adds nothing."""

from __future__ import annotations

import mlflow
import optuna
import pytest

from vae_lab.config import get_settings
from vae_lab.data import synthesize, write_dataset
from vae_lab.errors import VaeLabError
from vae_lab.study.design.spec import StudySpec
from vae_lab.study.execution.run import run_study
from vae_lab.study.reading.status import study_status
from vae_lab.study.reading.story import write_report
from vae_lab.study.trial.provenance import TrialAttr
from vae_lab.study.trial.storage import open_storage

pytestmark = pytest.mark.slow


def tiny(lab, name: str, **fields) -> StudySpec:
    write_dataset(synthesize(rows=600, seed=3), lab / "voxels.parquet")
    return StudySpec.model_validate(
        {
            "name": name,
            "sampler": "tpe",
            "n_trials": 2,
            "data": {"path": str(lab / "voxels.parquet")},
            "training": {"epochs": 1},
            "space": {"architecture": ["fc"], "latent_dim": [2, 3, 4]},
            "artifacts": {"pca": False, "reconstructions": 0, "interpolation": False},
            **fields,
        }
    )


def stored(name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=open_storage(get_settings().optuna_storage))


def test_a_study_runs_its_warm_start_first_and_learns_without_counting_or_crowning(lab):
    run_study(tiny(lab, "last-week", n_trials=3))
    spec = tiny(lab, "this-week", learn_from=["last-week"], warm_start=[{"architecture": "fc", "latent_dim": 4}])
    report = run_study(spec)

    assert [t.number for t in report.trials] == [3, 4]  # its own two; 0-2 are last week's
    assert report.trials[0].params == {"architecture": "fc", "latent_dim": 4}  # the warm start ran first
    status = study_status("this-week")
    assert [t.number for t in status.trials] == [3, 4] and status.learned == {"last-week": 3}
    assert status.best.number in (3, 4)
    champion = mlflow.MlflowClient(get_settings().mlflow_tracking_uri).get_model_version_by_alias(
        "this-week", "champion"
    )
    assert int(champion.tags["trial"]) in (3, 4)
    assert stored("this-week").metric_names == ["val_tradeoff"]
    page = write_report("this-week", lab / "report.html").read_text()
    assert "also learned from 3 trial(s) of study last-week" in page

    assert len(run_study(spec).trials) == 2  # resumed: nothing owed, nothing learned or queued twice
    trials = stored("this-week").trials
    assert len(trials) == 5 and sum(TrialAttr.WARM_START in t.user_attrs for t in trials) == 1


def test_learning_from_a_study_that_does_not_exist_writes_nothing(lab):
    with pytest.raises(VaeLabError, match="learn_from nowhere: no such study"):
        run_study(tiny(lab, "hopeful", learn_from=["nowhere"]))
    client = mlflow.MlflowClient(get_settings().mlflow_tracking_uri)
    assert client.get_experiment_by_name("hopeful") is None
