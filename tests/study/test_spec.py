from pathlib import Path

import pytest

from vae_lab.errors import VaeLabError
from vae_lab.study.spec import load_study_spec

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("name", ["quick", "seed-grid", "deep-sweep", "architecture-sweep"])
def test_shipped_studies_validate(name):
    spec, _ = load_study_spec(name, REPO / "studies")
    assert spec.name == name


def test_seed_grid_is_the_journals_four_configurations():
    spec, _ = load_study_spec("seed-grid", REPO / "studies")
    assert spec.grid_size == 4 and spec.planned_trials == 4
    assert spec.space.latent_dim == [2, 4] and spec.space.loss == ["mse", "bce"] and spec.space.beta == [0.1]


def test_architecture_sweep_covers_every_family():
    from vae_lab.models import ARCHITECTURES

    spec, _ = load_study_spec("architecture-sweep", REPO / "studies")
    assert set(spec.space.architecture) == set(ARCHITECTURES)


def test_deep_sweep_is_latent_by_beta():
    spec, _ = load_study_spec("deep-sweep", REPO / "studies")
    assert spec.space.latent_dim == [4, 8, 16] and spec.space.beta == [0.1, 0.5, 1.0]
    assert spec.space.architecture == ["deep"] and spec.grid_size == 9


@pytest.mark.parametrize(
    "body, field, problem",
    [
        ("name: x\nepochs: 3\n", "epochs", "unknown key"),
        ("name: x\ntraining: {epochs: many}\n", "training.epochs", "integer"),
        ("name: x\nspace: {architecture: [resnet]}\n", "space.architecture", "unknown architecture 'resnet'"),
        ("name: x\nspace: {learning_rate: {low: 0.1, high: 0.01}}\nsampler: tpe\n", "space.learning_rate", "low must be below high"),
        ("name: x\nspace: {learning_rate: {low: 0.001, high: 0.01}}\n", "(top level)", "needs lists"),
        ("name: x\nspace: {loss: [huber]}\n", "space.loss", "'mse' or 'bce'"),
        ("name: x\nobjective: {metric: val_acc}\n", "objective.metric", "'val_tradeoff'"),
        ("name: x\n  bad: [\n", "s.yaml:", "not valid YAML"),
    ],
)
def test_bad_studies_name_file_field_and_problem(tmp_path, body, field, problem):
    with pytest.raises(VaeLabError) as caught:
        load_study_spec(str(write(tmp_path, body)))
    message = str(caught.value)
    assert "s.yaml" in message and field in message and problem in message
    assert "\n" not in message


def test_unknown_study_name_lists_the_known_ones(tmp_path):
    (tmp_path / "quick.yaml").write_text("name: quick\n")
    with pytest.raises(VaeLabError, match="use one of: quick"):
        load_study_spec("nope", tmp_path)


def test_tpe_accepts_ranges_and_defaults_to_twenty_trials(tmp_path):
    spec, _ = load_study_spec(str(write(tmp_path, "name: t\nsampler: tpe\nspace: {learning_rate: {low: 1.0e-4, high: 1.0e-2, log: true}, latent_dim: {low: 2, high: 16}}\n")))
    assert spec.planned_trials == 20
    assert spec.space.ranges() == ["latent_dim", "learning_rate"]
