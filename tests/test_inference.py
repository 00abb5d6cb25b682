"""The champion used as a user would after a study: encode, generate, registry show, MLflow's
scoring server, and a model logged before models were pyfuncs, still evaluated."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import mlflow
import mlflow.pyfunc
import mlflow.pytorch
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from tests.conftest import copy_mlflow_store, free_port
from vae_lab.cli import app
from vae_lab.config import get_settings
from vae_lab.data import synthesize, write_dataset
from vae_lab.data.frames import frame_of_grids

pytestmark = pytest.mark.slow

STUDY = """
name: tiny
data: {toy_fraction: 1.0, seed: 0}
sampler: grid
training: {epochs: 2, patience: 5}
space:
  architecture: [fc, pointnet]
  latent_dim: [3]
  beta: [0.1]
artifacts: {reconstructions: 1, max_points: 50}
"""


def cli(*args: str):
    return CliRunner().invoke(app, list(args))


def cli_json(*args: str) -> dict:
    result = cli(*args, "--json")
    assert result.exit_code == 0, (result.output, result.exception)
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def study(tmp_path_factory, empty_mlflow_store):
    """A finished two-family study; yields (lab folder, its data file, its tracking URI)."""
    lab = tmp_path_factory.mktemp("use")
    copy_mlflow_store(empty_mlflow_store, lab)
    patch = pytest.MonkeyPatch()
    for key, value in {
        "MLFLOW_TRACKING_URI": f"sqlite:///{lab / 'mlflow.db'}",
        "VAE_LAB_ARTIFACT_ROOT": str(lab / "mlruns"),
        "VAE_LAB_OPTUNA_STORAGE": str(lab / ".vae-lab" / "optuna.log"),
        "VAE_LAB_CACHE_DIR": str(lab / ".vae-lab" / "cache"),
    }.items():
        patch.setenv(key, value)
    patch.chdir(lab)
    get_settings.cache_clear()
    (lab / "studies").mkdir()
    (lab / "studies" / "tiny.yaml").write_text(STUDY)
    data = write_dataset(synthesize(rows=1500, seed=2), lab / "voxels.parquet")
    cli_json("study", "run", "tiny", "--data", str(data))
    uri = get_settings().mlflow_tracking_uri
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    yield lab, data, uri
    patch.undo()
    get_settings.cache_clear()


@pytest.mark.parametrize("alias", ["best-fc", "best-pointnet"])
def test_encode_streams_the_file_and_agrees_with_the_pyfunc(study, alias):
    lab, data, _ = study
    report = cli_json(
        "encode",
        "tiny",
        "--data",
        str(data),
        "--out",
        str(lab / f"{alias}.parquet"),
        "--alias",
        alias,
        "--batch-rows",
        "256",
    )
    encoded = pd.read_parquet(lab / f"{alias}.parquet")
    source = pd.read_parquet(data)
    assert report["rows"] == len(encoded) == len(source)
    assert list(encoded.columns) == [
        "id",
        "label",
        "z0",
        "z1",
        "z2",
        "logvar0",
        "logvar1",
        "logvar2",
        "recon_f1",
        "exact_match",
    ]
    assert (encoded["id"].to_numpy() == source["id"].to_numpy()).all() and (encoded["label"] == source["label"]).all()
    pyfunc = mlflow.pyfunc.load_model(f"models:/tiny@{alias}")
    head = pyfunc.predict(source.head(300), params={"output": "latent_with_logvar"})
    np.testing.assert_allclose(
        encoded.head(300)[head.columns[1:]].to_numpy(), head[head.columns[1:]].to_numpy(), rtol=1e-5, atol=1e-6
    )
    scores = pyfunc.predict(source.head(300), params={"output": "scores"})
    np.testing.assert_allclose(encoded["recon_f1"].head(300).to_numpy(), scores["recon_f1"].to_numpy())


def test_encode_refuses_bad_input_in_one_line(study):
    lab, data, _ = study
    write_dataset(frame_of_grids(np.zeros((3, 7, 7, 7), dtype=np.uint8)), lab / "small.parquet")
    cases = [
        (["--data", str(lab / "missing.parquet")], "missing.parquet: file not found"),
        (["--data", str(lab / "small.parquet")], "343 voxel columns do not make a 11x11x11 grid"),
        (["--data", str(data), "--alias", "best-conv"], "no version has the alias 'best-conv'"),
        (["--data", str(data), "--version", "9"], "no version 9"),
    ]
    for args, reason in cases:
        result = cli("encode", "tiny", *args, "--out", str(lab / "never.parquet"))
        assert result.exit_code == 2, result.output
        assert reason in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert not (lab / "never.parquet").exists()


def test_generate_writes_a_dataset_that_vae_lab_data_reads_and_reports_emptiness_and_validity(study):
    lab, _, _ = study
    report = cli_json(
        "generate",
        "tiny",
        "--n",
        "40",
        "--out",
        str(lab / "samples.parquet"),
        "--seed",
        "3",
        "--alias",
        "best-pointnet",
    )
    summary = cli_json("data", "summarize", str(lab / "samples.parquet"))
    assert summary["rows"] == 40 and summary["grid"] == 11
    assert report["architecture"] == "pointnet" and 0 <= report["all_zero"] <= 40
    assert summary["all_zero_rows"] == report["all_zero"]
    assert report["training_mean_occupied"] > 0
    again = cli_json(
        "generate", "tiny", "--n", "40", "--out", str(lab / "again.parquet"), "--seed", "3", "--alias", "best-pointnet"
    )
    assert pd.read_parquet(lab / "samples.parquet").equals(pd.read_parquet(lab / "again.parquet"))
    assert again["mean_occupied"] == report["mean_occupied"]
    assert 0 <= report["gen_validity"] <= 1 and report["gen_validity_baseline"] >= 0.9  # real data passes its rules
    assert {k: v for k, v in again.items() if k.startswith("gen_")} == {
        k: v for k, v in report.items() if k.startswith("gen_")
    }


def test_registry_show_says_how_to_use_the_champion(study):
    _, _, uri = study
    shown = cli_json("registry", "show", "tiny")
    assert "model = mlflow.pyfunc.load_model('models:/tiny@champion')" in shown["usage"]["python"]
    assert shown["usage"]["serve"] == [
        f"MLFLOW_TRACKING_URI={uri} mlflow models serve -m models:/tiny@champion --env-manager local"
        " --host 127.0.0.1 --port 5001"
    ]
    printed = cli("registry", "show", "tiny").stdout
    assert "mlflow models serve -m models:/tiny@champion" in printed


def post(url: str, payload: dict) -> tuple[int, dict]:
    request = urllib.request.Request(url, json.dumps(payload).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def server_bin(lab: Path) -> Path:
    """A folder with `uvicorn`, which MLflow's server execs by name: the venv's own bin, or (in
    a venv that borrows its packages from another, as the helpers' worktrees do) a shim."""
    import shutil

    venv_bin = Path(sys.executable).parent
    if (venv_bin / "uvicorn").exists() or shutil.which("uvicorn"):
        return venv_bin
    shim = lab / "bin"
    shim.mkdir(exist_ok=True)
    (shim / "uvicorn").write_text(f'#!/bin/sh\nexec {sys.executable} -m uvicorn "$@"\n')
    (shim / "uvicorn").chmod(0o755)
    return shim


def test_mlflow_serves_the_champion_and_refuses_bad_payloads_with_a_400(study):
    lab, data, uri = study
    port = free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "PATH": f"{server_bin(lab)}:{os.environ.get('PATH', '')}"}
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "models",
        "serve",
        "-m",
        "models:/tiny@champion",
        "--env-manager",
        "local",
    ]
    server = subprocess.Popen(
        [*command, "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        cwd=lab,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                if urllib.request.urlopen(f"{url}/ping", timeout=2).status == 200:
                    break
            except OSError:
                assert server.poll() is None, server.stderr.read().decode()[-2000:]
                time.sleep(0.5)
        rows = pd.read_parquet(data).head(3)
        expected = mlflow.pyfunc.load_model("models:/tiny@champion").predict(rows)
        split = json.loads(rows.to_json(orient="split", index=False))
        status, answer = post(f"{url}/invocations", {"dataframe_split": split})
        assert status == 200, answer
        served = pd.DataFrame(answer["predictions"])
        assert list(served["id"]) == list(rows["id"])
        np.testing.assert_allclose(
            served[["z0", "z1", "z2"]].to_numpy(), expected[["z0", "z1", "z2"]].to_numpy(), rtol=1e-5
        )
        voxels = rows.drop(columns=["id", "label"])
        status, answer = post(f"{url}/invocations", {"instances": voxels.to_numpy().tolist()})
        assert status == 200 and len(answer["predictions"]) == 3
        status, answer = post(f"{url}/invocations", {"dataframe_split": split, "params": {"output": "scores"}})
        assert status == 200 and set(answer["predictions"][0]) == {"id", "recon_f1", "exact_match"}

        wrong_columns = json.loads(voxels.iloc[:, :-5].to_json(orient="split", index=False))
        nan = voxels.astype(float)
        nan.iloc[0, 10] = np.nan
        too_big = voxels.copy()
        too_big.iloc[1, 3] = 7
        for payload, reason in [
            ({"dataframe_split": wrong_columns}, "1326 voxel columns do not make a 11x11x11 grid"),
            ({"dataframe_split": json.loads(nan.to_json(orient="split", index=False))}, "missing (NaN) values"),
            ({"instances": too_big.to_numpy().tolist()}, "has value 7, outside 0-4"),
        ]:
            status, answer = post(f"{url}/invocations", payload)
            assert status == 400 and answer["error_code"] == "INVALID_PARAMETER_VALUE", answer
            reason_line = answer["message"].splitlines()[-1]  # MLflow prefixes the data it got
            assert reason in reason_line and "Traceback" not in answer["message"]
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_a_model_logged_before_pyfuncs_is_still_evaluated(study):
    """The old format: `mlflow.pytorch.save_model`, pickled, no code folder, MLflow's own pyfunc."""
    lab, _, uri = study
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    champion = client.get_model_version_by_alias("tiny", "champion")
    module = mlflow.pytorch.load_model("models:/tiny@champion", map_location="cpu")
    logged = client.create_logged_model(
        client.get_run(champion.run_id).info.experiment_id, name="old", source_run_id=champion.run_id
    )
    with tempfile.TemporaryDirectory() as folder:
        mlflow.pytorch.save_model(
            module, path=f"{folder}/model", pip_requirements=["torch", "vae-lab"], serialization_format="pickle"
        )
        assert (
            not Path(f"{folder}/model/code").exists()
            and "loader_module: mlflow.pytorch" in Path(f"{folder}/model/MLmodel").read_text()
        )
        client.log_model_artifacts(logged.model_id, f"{folder}/model")
    client.finalize_logged_model(logged.model_id, "READY")
    old = client.create_model_version(
        "tiny",
        source=client.get_logged_model(logged.model_id).artifact_location,
        run_id=champion.run_id,
        tags={"model_id": logged.model_id},
    )
    client.set_registered_model_alias("tiny", "old", old.version)
    old_result = cli_json("evaluate", "tiny", "--alias", "old", "--split", "val")
    new_result = cli_json("evaluate", "tiny", "--alias", "champion", "--split", "val")
    assert old_result["metrics"]["val_f1"] == pytest.approx(new_result["metrics"]["val_f1"])


def test_spark_udf_encodes_a_parquet_file_like_vae_lab_encode(study):
    """MLflow's batch scoring on Apache Spark: a local session, the champion as a pandas UDF."""
    import shutil

    pyspark = pytest.importorskip(
        "pyspark", reason="the `spark` extra (pip install -e '.[spark]'; .ci/run installs it)"
    )
    if shutil.which("java") is None:
        pytest.skip("Spark needs Java (apt-get install default-jre-headless; .ci/run installs it)")
    from pyspark.sql import SparkSession
    from pyspark.sql.functions import col, struct

    lab, data, _ = study
    sample = write_dataset(pd.read_parquet(data).head(200), lab / "spark-input.parquet")
    cli_json("encode", "tiny", "--data", str(sample), "--out", str(lab / "spark-expected.parquet"))
    os.environ["PYSPARK_PYTHON"] = sys.executable  # the workers run this interpreter
    spark = SparkSession.builder.master("local[1]").config("spark.ui.enabled", "false").getOrCreate()
    try:
        frame = spark.read.parquet(str(sample))
        voxels = [c for c in frame.columns if c not in ("id", "label")]
        encode = mlflow.pyfunc.spark_udf(spark, "models:/tiny@champion", result_type="z0 double, z1 double, z2 double")
        latents = (
            frame.select("id", encode(struct(*[col(c) for c in voxels])).alias("z")).select("id", "z.*").toPandas()
        )
    finally:
        spark.stop()
    expected = pd.read_parquet(lab / "spark-expected.parquet")
    latents = latents.sort_values("id").reset_index(drop=True)
    assert pyspark.__version__ and list(latents["id"]) == list(expected["id"])
    np.testing.assert_allclose(
        latents[["z0", "z1", "z2"]].to_numpy(), expected[["z0", "z1", "z2"]].to_numpy(), rtol=1e-5, atol=1e-6
    )
