"""Every family's logged model is a real MLflow pyfunc: the same checks for each, at tiny sizes."""

from __future__ import annotations

import mlflow
import mlflow.pyfunc
import mlflow.pytorch
import numpy as np
import pandas as pd
import pytest
import torch
from mlflow.exceptions import MlflowException
from mlflow.models import Model

from tests.conftest import copy_mlflow_store, sparse_grids
from tests.models.model_helpers import SAMPLE_FAMILIES, variant_params
from vae_lab.config import get_settings
from vae_lab.data.frames import frame_of_grids
from vae_lab.models import ModelConfig, build_model
from vae_lab.tracking import Tracker, log_model, pyfunc
from vae_lab.training.metrics import confusion_matrix, macro_f1

EDGE = 5


@pytest.fixture(scope="module")
def logged(tmp_path_factory, empty_mlflow_store):
    """log(model, examples) -> (its pyfunc, its URI). One store for the module (the models logged
    here never meet), copied from the session's empty one."""
    root = tmp_path_factory.mktemp("pyfunc-lab")
    copy_mlflow_store(empty_mlflow_store, root)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
        patch.setenv("VAE_LAB_ARTIFACT_ROOT", str(root / "mlruns"))
        get_settings.cache_clear()
        tracker = Tracker(get_settings())
        experiment = tracker.ensure_experiment("pyfunc")
        run_id = tracker.start_run(experiment, "pyfunc")

        def log(model, examples=None):
            ref = log_model(tracker, run_id, experiment, model, examples=examples)
            mlflow.set_tracking_uri(tracker.uri)
            return mlflow.pyfunc.load_model(ref.uri), ref.uri

        log.tracker, log.experiment, log.run_id = tracker, experiment, run_id
        yield log
        tracker.end_run(run_id)
    get_settings.cache_clear()


@pytest.mark.parametrize("name, head", variant_params(fast=SAMPLE_FAMILIES))
def test_every_family_is_a_pyfunc_on_frames_and_arrays(logged, name, head):
    torch.manual_seed(0)
    model = build_model(ModelConfig(architecture=name, output=head, grid=EDGE, latent_dim=3)).eval()
    grids = sparse_grids(4, edge=EDGE, seed=1)
    pyfunc, uri = logged(model, examples=grids[:3])
    frame = frame_of_grids(grids, columns=[f"vox{i:04d}" for i in range(EDGE**3)], ids=np.array(["a", "b", "c", "d"]))
    frame["label"] = "x"  # the dataset's other columns are ignored

    latent = pyfunc.predict(frame)
    assert list(latent.columns) == ["id", "z0", "z1", "z2"] and list(latent["id"]) == ["a", "b", "c", "d"]
    with torch.no_grad():
        mu = model(*model.inputs(make_batch(model, grids))).mu.numpy()
    np.testing.assert_allclose(latent[["z0", "z1", "z2"]].to_numpy(), mu, rtol=1e-5, atol=1e-6)
    for array in (grids.reshape(4, -1), grids, grids.astype(np.int64)):  # (N, D^3), (N, D, D, D)
        np.testing.assert_allclose(pyfunc.predict(array).to_numpy(), mu, rtol=1e-5, atol=1e-6)

    both = pyfunc.predict(grids, params={"output": "latent_with_logvar"})
    assert list(both.columns) == ["z0", "z1", "z2", "logvar0", "logvar1", "logvar2"]
    recon = pyfunc.predict(frame, params={"output": "reconstruction"})
    assert list(recon.columns) == ["id", *[f"vox{i:04d}" for i in range(EDGE**3)]]
    decoded = recon.drop(columns="id").to_numpy()
    assert decoded.min() >= 0 and decoded.max() <= 4
    expected = model.reconstruct(torch.from_numpy(grids)).reshape(4, -1).numpy()
    np.testing.assert_array_equal(decoded, expected)
    scores = pyfunc.predict(grids, params={"output": "scores"})
    assert list(scores.columns) == ["recon_f1", "exact_match"]
    for row in range(4):  # per-row F1 is the training metric on that one row
        pred, target = torch.from_numpy(expected[row]), torch.from_numpy(grids[row].reshape(-1))
        assert scores["recon_f1"][row] == pytest.approx(macro_f1(confusion_matrix(pred, target)))
        assert bool(scores["exact_match"][row]) == bool((pred == target.long()).all())

    # The input example: real rows, saved with the model, and it round-trips.
    description = Model.load(uri)
    example = description.load_input_example(mlflow.artifacts.download_artifacts(uri))
    np.testing.assert_array_equal(example.drop(columns="id").to_numpy(), grids[:3].reshape(3, -1))
    np.testing.assert_allclose(pyfunc.predict(example)[["z0", "z1", "z2"]].to_numpy(), mu[:3], rtol=1e-5, atol=1e-6)
    assert description.signature.params.to_dict()[0]["default"] == "latent"
    # The pytorch flavor is kept for those who want the module.
    module = mlflow.pytorch.load_model(uri, map_location="cpu")
    assert module.config == model.config


def make_batch(model, grids):
    from vae_lab.training.batches import TensorData

    return TensorData.for_model(model, grids, None, model.config.max_points).batch(slice(None))


@pytest.mark.parametrize(
    "bad, reason",
    [
        (pd.DataFrame(np.zeros((2, EDGE**3 - 1), dtype=np.uint8)), "124 voxel columns do not make a 5x5x5 grid"),
        (frame_of_grids(np.full((2, EDGE, EDGE, EDGE), 5, dtype=np.uint8)), "outside 0-4"),
        (frame_of_grids(np.zeros((2, EDGE, EDGE, EDGE))).replace(0.0, np.nan), "missing (NaN) values"),
        (np.zeros((2, 6, 6, 6)), "an array of shape (2, 6, 6, 6)"),
        (np.zeros((2, 7)), "an array of shape (2, 7)"),
    ],
    ids=["columns", "range", "nan", "shape", "width"],
)
def test_bad_input_is_an_invalid_parameter_with_one_line(logged, bad, reason):
    pyfunc, _ = logged(build_model(ModelConfig(architecture="fc", grid=EDGE, latent_dim=2)))
    with pytest.raises(MlflowException) as caught:
        pyfunc.predict(bad)
    assert caught.value.error_code == "INVALID_PARAMETER_VALUE"
    assert reason in caught.value.message and "\n" not in caught.value.message


def test_unknown_output_is_refused(logged):
    pyfunc, _ = logged(build_model(ModelConfig(architecture="fc", grid=EDGE, latent_dim=2)))
    with pytest.raises(MlflowException, match="unknown output 'mean'"):
        pyfunc.predict(sparse_grids(1, edge=EDGE), params={"output": "mean"})


LOAD_WITHOUT_VAE_LAB = """
import importlib.util, json, sys
import numpy as np
assert importlib.util.find_spec("vae_lab") is None, "vae_lab is importable before loading"
import mlflow.pyfunc
model = mlflow.pyfunc.load_model(sys.argv[1])
grids = np.zeros((2, 5, 5, 5), dtype=np.uint8)
grids[0, 1, 2, 3] = 2
latent = model.predict(grids)
import vae_lab
print(json.dumps({"columns": list(latent.columns), "vae_lab": vae_lab.__file__}))
"""


@pytest.mark.slow  # seconds of real training, processes or waiting: `make test`, not the edit loop
def test_the_model_carries_its_code_and_loads_where_vae_lab_is_not_installed(logged, tmp_path):
    """MLflow's own `code_paths`, given one archive: the model folder holds vae_lab as one zip
    (one upload, not one per module), its requirements name only packages an index serves. A
    Python without site (no .pth files, so no editable vae-lab finder), with the installed
    libraries on its path but not the source tree, loads it."""
    import json
    import subprocess
    import sys
    import zipfile
    from pathlib import Path

    _, uri = logged(build_model(ModelConfig(architecture="pointnet", grid=EDGE, latent_dim=2)))
    local = Path(mlflow.artifacts.download_artifacts(uri, dst_path=str(tmp_path / "model")))
    assert [p.name for p in (local / "code").iterdir()] == ["vae_lab.zip"]
    files = [p for p in local.rglob("*") if p.is_file()]
    assert len(files) < 15, f"the model folder holds {len(files)} files: {sorted(map(str, files))[:20]}"
    flavors = Model.load(str(local)).flavors
    assert flavors["python_function"]["code"] == flavors["pytorch"]["code"] == "code/vae_lab.zip"
    with zipfile.ZipFile(local / "code" / "vae_lab.zip") as archive:
        names = archive.namelist()
    assert "vae_lab/tracking/pyfunc.py" in names and not any("__pycache__" in n for n in names)
    requirements = (local / "requirements.txt").read_text().split()
    assert requirements and not any(r.lower().startswith(("vae-lab", "vae_lab")) for r in requirements)
    # Every installed library, but no folder holding a vae_lab package (the source tree, or the
    # code folders of models loaded earlier in this process, which MLflow put on sys.path).
    libraries = [p for p in sys.path if p and Path(p).is_dir() and not (Path(p) / "vae_lab").exists()]
    env = {"PYTHONPATH": ":".join(libraries), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-S", "-c", LOAD_WITHOUT_VAE_LAB, str(local)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["columns"] == ["z0", "z1"]
    assert Path(answer["vae_lab"]).is_relative_to(local / "code" / "vae_lab.zip")  # imported from the archive


def test_the_first_model_of_each_family_round_trips_and_the_rest_do_not(logged, monkeypatch):
    """The full pyfunc round trip proves what is alike for a family (its code, class, loader),
    so a study pays it once per family and process, not once per trial."""
    checked = []
    monkeypatch.setattr(pyfunc, "_ROUND_TRIPPED", set())
    real = pyfunc.check_round_trip
    monkeypatch.setattr(pyfunc, "check_round_trip", lambda local: checked.append(local) or real(local))
    for name, latent_dim in (("fc", 2), ("fc", 3), ("conv", 2), ("fc", 4)):
        logged(build_model(ModelConfig(architecture=name, grid=EDGE, latent_dim=latent_dim)))
    assert len(checked) == 2
    logged(build_model(ModelConfig(architecture="fc", output="categorical", grid=EDGE, latent_dim=2)))
    assert len(checked) == 3  # another output head is another family


def test_a_model_whose_example_does_not_round_trip_is_not_logged(logged, monkeypatch):
    """The check still refuses the model its pyfunc cannot serve: logging fails, the model FAILED."""
    from mlflow.entities import LoggedModelStatus

    tracker, experiment = logged.tracker, logged.experiment
    monkeypatch.setattr(pyfunc, "_ROUND_TRIPPED", set())
    monkeypatch.setattr(pyfunc.VoxelPyfunc, "predict", lambda self, data, params=None: pd.DataFrame({"id": [0]}))

    def failed() -> int:
        return sum(m.status == LoggedModelStatus.FAILED for m in tracker.client.search_logged_models([experiment]))

    before = failed()
    with pytest.raises(RuntimeError, match="did not round-trip"):
        log_model(
            tracker, logged.run_id, experiment, build_model(ModelConfig(architecture="fc", grid=EDGE, latent_dim=2))
        )
    assert failed() == before + 1
    assert pyfunc._ROUND_TRIPPED == set()  # a failed family is checked again next time
