from pathlib import Path

import pytest

from vae_lab.errors import VaeLabError
from vae_lab.study.design.spec import load_study_spec

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "vae_lab" / "studies"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("name", sorted(p.stem for p in SHIPPED.glob("*.yaml")))
def test_shipped_studies_validate(name):
    spec, path = load_study_spec(name, Path("no-such-folder"))  # found among the shipped studies
    assert spec.name == name and path.parent == SHIPPED


def test_seed_grid_is_the_journals_four_configurations():
    spec, _ = load_study_spec("seed-grid", SHIPPED)
    assert spec.grid_size == 4 and spec.planned_trials == 4
    assert spec.space.latent_dim == [2, 4] and spec.space.loss == ["mse", "bce"] and spec.space.beta == [0.1]


def test_architecture_sweep_covers_every_family():
    from vae_lab.models import ARCHITECTURES

    spec, _ = load_study_spec("architecture-sweep", SHIPPED)
    assert set(spec.space.architecture) == set(ARCHITECTURES)


def test_deep_sweep_is_latent_by_beta():
    spec, _ = load_study_spec("deep-sweep", SHIPPED)
    assert spec.space.latent_dim == [4, 8, 16] and spec.space.beta == [0.1, 0.5, 1.0]
    assert spec.space.architecture == ["deep"] and spec.grid_size == 9


@pytest.mark.parametrize(
    "body, field, problem",
    [
        ("name: x\nepochs: 3\n", "epochs", "unknown key"),
        ("name: x\ntraining: {epochs: many}\n", "training.epochs", "integer"),
        ("name: x\nspace: {architecture: [resnet]}\n", "space.architecture", "unknown architecture 'resnet'"),
        (
            "name: x\nspace: {learning_rate: {low: 0.1, high: 0.01}}\nsampler: tpe\n",
            "space.learning_rate",
            "low must be below high",
        ),
        ("name: x\nspace: {learning_rate: {low: 0.001, high: 0.01}}\n", "(top level)", "needs lists"),
        ("name: x\nspace: {loss: [huber]}\n", "space.loss", "'weighted_ce', 'focal_ce' or 'set'"),
        ("name: x\nobjective: {metric: val_acc}\n", "objective.metric", "'val_knn_accuracy'"),
        ("name: x\ntraining: {device: tpu}\n", "training.device", "use auto, cpu, cuda or cuda:N"),
        ("name: x\nobjective: {metric: val_loss, direction: maximize}\n", "objective", "val_loss is minimized"),
        (
            "name: x\nspace: {output: [categorical], loss: [mse]}\n",
            "space.loss",
            "trains the scalar head, not the categorical head",
        ),
        (
            "name: x\nspace: {architecture: [fc, pointnet], loss: [mse]}\n",
            "space.loss",
            "does not fit architecture 'pointnet'",
        ),
        ("name: x\nspace: {loss: [mse], focal_gamma: [2.0]}\n", "space.focal_gamma", "never used"),
        ("name: x\nspace: {loss: [ce], class_weighting: [log]}\n", "space.class_weighting", "never used"),
        ("name: x\nspace: {architecture: [pointnet], output: [categorical]}\n", "space.output", "never used"),
        ("name: x\nspace: {kl_warmup_epochs: [3], kl_cycles: [2]}\n", "space.kl_cycles", "two KL schedules"),
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
    (tmp_path / "mine.yaml").write_text("name: mine\n")
    with pytest.raises(VaeLabError, match="use one of: .*mine.*quick"):
        load_study_spec("nope", tmp_path)


def test_a_local_study_overrides_a_shipped_one(tmp_path):
    (tmp_path / "quick.yaml").write_text("name: quick\ndescription: mine\n")
    spec, path = load_study_spec("quick", tmp_path)
    assert spec.description == "mine" and path.parent == tmp_path


def test_a_grid_is_its_distinct_configurations(tmp_path):
    body = "name: g\nspace: {architecture: [fc, pointnet], output: [scalar, categorical], latent_dim: [2, 4]}\n"
    spec, _ = load_study_spec(str(write(tmp_path, body)))
    assert spec.grid_size == 2 * 2 + 2  # pointnet has no head to choose


def test_tpe_accepts_ranges_and_defaults_to_twenty_trials(tmp_path):
    spec, _ = load_study_spec(
        str(
            write(
                tmp_path,
                "name: t\nsampler: tpe\n"
                "space: {learning_rate: {low: 1.0e-4, high: 1.0e-2, log: true}, latent_dim: {low: 2, high: 16}}\n",
            )
        )
    )
    assert spec.planned_trials == 20
    assert spec.space.ranges() == ["latent_dim", "learning_rate"]


def test_a_generation_metric_is_an_objective_with_its_own_direction(tmp_path):
    spec, _ = load_study_spec(
        str(
            write(
                tmp_path, "name: x\nobjective: {metrics: [gen_validity, gen_count_distance]}\nchampion: {rule: knee}\n"
            )
        )
    )
    assert spec.objective.directions == {"gen_validity": "maximize", "gen_count_distance": "minimize"}
    off, _ = load_study_spec(str(write(tmp_path, "name: x\ntraining: {generation_samples: 0}\n")))
    assert off.training.generation_samples == 0


TPE_SPACE = "sampler: tpe\nn_trials: 4\nspace: {loss: [mse, focal], focal_gamma: [1.0, 2.0], learning_rate: {low: 0.0001, high: 0.01}}\n"


@pytest.mark.parametrize(
    "points, field, problem",
    [
        ("[{loss: mse, learning_rate: 0.001, beta: 2}]", "warm_start[0]", "beta is not searched"),
        ("[{loss: mse, learning_rate: 0.5}]", "warm_start[0]", "learning_rate: 0.5 is outside [0.0001, 0.01]"),
        ("[{loss: huber, learning_rate: 0.001}]", "warm_start[0]", "loss: 'huber' is outside the choices mse, focal"),
        ("[{loss: mse}]", "warm_start[0]", "learning_rate is missing"),
        ("[{loss: focal, learning_rate: 0.001}]", "warm_start[0]", "focal_gamma is missing"),
        ("[{loss: mse, focal_gamma: 1.0, learning_rate: 0.001}]", "warm_start[0]", "focal_gamma does not apply"),
        (
            "[{loss: mse, learning_rate: 0.001}, {loss: mse, learning_rate: 1.0e-3}]",
            "warm_start[1]",
            "repeats warm_start[0]",
        ),
        (
            "[" + ", ".join(["{loss: mse, learning_rate: 0.00%d}" % i for i in range(1, 6)]) + "]",
            "warm_start",
            "5 points",
        ),
    ],
)
def test_bad_warm_start_points_name_the_file_the_entry_and_the_fix(tmp_path, points, field, problem):
    with pytest.raises(VaeLabError) as caught:
        load_study_spec(str(write(tmp_path, f"name: x\n{TPE_SPACE}warm_start: {points}\n")))
    message = str(caught.value)
    assert "s.yaml" in message and field in message and problem in message
    assert "\n" not in message


def test_warm_start_points_are_held_as_the_space_holds_its_values(tmp_path):
    # YAML reads 1e-3 (no dot) as text; the point still means the number, in the space's order.
    body = f"name: x\n{TPE_SPACE}warm_start: [{{learning_rate: 1e-3, focal_gamma: 2, loss: focal}}]\n"
    spec, _ = load_study_spec(str(write(tmp_path, body)))
    assert spec.warm_start == [{"architecture": "fc", "loss": "focal", "learning_rate": 0.001, "focal_gamma": 2.0}]
    assert list(spec.warm_start[0]) == ["architecture", "loss", "learning_rate", "focal_gamma"]


def test_a_grid_takes_warm_start_grid_points_but_no_learn_from(tmp_path):
    grid = "name: x\nspace: {latent_dim: [2, 4], beta: [0.5, 1.0]}\n"
    spec, _ = load_study_spec(str(write(tmp_path, grid + "warm_start: [{latent_dim: 4, beta: 1}]\n")))
    assert spec.warm_start == [{"architecture": "fc", "latent_dim": 4, "beta": 1.0}]
    with pytest.raises(VaeLabError, match="latent_dim: 3 is outside the choices 2, 4"):
        load_study_spec(str(write(tmp_path, grid + "warm_start: [{latent_dim: 3, beta: 1}]\n")))
    with pytest.raises(VaeLabError, match="learn_from informs a sampler"):
        load_study_spec(str(write(tmp_path, grid + "learn_from: [other]\n")))
