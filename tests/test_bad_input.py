"""A corpus of malformed inputs, each met by the `vae-lab` command line.

Data files, study YAML, command-line arguments, store URIs and environment values, and a
dataset whose grid differs from the stored study's: each must end in exactly one line on
stderr and exit code 2, with no traceback, and leave both stores (the MLflow SQLite database,
every file under the artifact root, the Optuna journal) byte-for-byte as they were. Store
checks must answer within 30 s, and a password in a URI must never be printed.

One tiny study runs first, so the stores exist and hold a study, a registered champion and
its artifacts: a bad input that wrote anything would show up as a changed file.

Most cases run through the console entry point in the test's own process (`run_vae_lab_here`:
the same `main`, without ~5 s of imports per case); those marked `process=True` run the real
console script, so that path (and `ui`, which execs a server once its checks pass) stays covered.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from tests.bad_input_helpers import (
    HEADER,
    TINY_STUDY,
    Case,
    closed_port,
    csv_with,
    diff,
    lab_env,
    run_vae_lab,
    run_vae_lab_here,
    snapshot,
    voxel_rows,
    write_csv,
)
from tests.conftest import copy_mlflow_store
from vae_lab.data import synthesize, write_dataset

pytestmark = pytest.mark.slow

STORE_DEADLINE_S = 30
PASSWORD = "pw-in-the-uri-0815"  # not a word the error messages use (they say "password" when explaining the fix)


@pytest.fixture(scope="module")
def lab(tmp_path_factory, empty_mlflow_store) -> Path:
    """A lab whose stores hold one finished study (`tiny`) with its champion."""
    lab = tmp_path_factory.mktemp("bad-input")
    copy_mlflow_store(empty_mlflow_store, lab)
    (lab / "studies").mkdir()
    (lab / "studies" / "tiny.yaml").write_text(TINY_STUDY)
    write_dataset(synthesize(rows=1500, seed=1), lab / "data.parquet")
    result = run_vae_lab(["study", "run", "tiny", "--json"], cwd=lab, env=lab_env(lab), timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (lab / "mlflow.db").is_file() and (lab / ".vae-lab" / "optuna.log").is_file()
    return lab


# --- the inputs -------------------------------------------------------------------------------------


def study_file(name: str, body: str):
    """A setup writing studies/<name>.yaml: the tiny study, renamed, with `body` appended."""

    def setup(lab: Path) -> None:
        (lab / "studies" / f"{name}.yaml").write_text(body)

    return setup


def tiny_with(name: str, extra: str) -> str:
    """The tiny study renamed, with YAML `extra` replacing or adding top-level sections."""
    sections = {
        "data": "{path: data.parquet}",
        "training": "{epochs: 1}",
        "space": "{architecture: [fc], latent_dim: [2]}",
        "artifacts": "{pca: false, reconstructions: 0, interpolation: false}",
    }
    lines = [f"name: {name}"]
    overridden = {line.split(":", 1)[0] for line in extra.splitlines() if line and not line.startswith(" ")}
    lines += [f"{key}: {value}" for key, value in sections.items() if key not in overridden]
    return "\n".join(lines) + "\n" + extra


def write_bytes(name: str, data: bytes):
    def setup(lab: Path) -> None:
        (lab / name).write_bytes(data)

    return setup


def write_text(name: str, text: str):
    def setup(lab: Path) -> None:
        (lab / name).write_text(text)

    return setup


def make_dir(name: str):
    def setup(lab: Path) -> None:
        (lab / name).mkdir(exist_ok=True)

    return setup


def grid9(lab: Path) -> None:
    write_dataset(synthesize(rows=1500, seed=1, grid=9), lab / "grid9.parquet")


def dotenv(lab: Path) -> None:
    """A folder whose .env file (read from the working directory) points MLflow at a dead server."""
    (lab / "dotenv").mkdir(exist_ok=True)
    (lab / "dotenv" / ".env").write_text("MLFLOW_TRACKING_URI=http://admin:dotenv-secret@127.0.0.1:9/\n")


def csv_cell(name: str, value: str):
    return lambda lab: csv_with(lab, name, value)


def not_a_cube(lab: Path) -> None:
    write_csv(lab / "ten.csv", np.ones((5, 10)), header=",".join(f"v{i}" for i in range(10)))


def all_zero(lab: Path) -> None:
    write_csv(lab / "zeros.csv", np.zeros((30, 11**3)), fmt="%d")


def header_only(lab: Path) -> None:
    (lab / "header-only.csv").write_text(HEADER + "\n")


def npz_without_x(lab: Path) -> None:
    np.savez(lab / "no-x.npz", grids=voxel_rows(5).reshape(5, 11, 11, 11))


RUN = ["study", "run", "tiny"]
FRESH = ["study", "run", "tiny", "--name", "tiny-fresh"]  # a new study name: nothing to resume

CASES = [
    # data files
    Case("data-missing", [*FRESH, "--data", "{lab}/nope.parquet"], "file not found"),
    Case(
        "data-unknown-extension",
        [*FRESH, "--data", "{lab}/data.txt"],
        "unknown dataset format",
        setup=write_text("data.txt", "1,2,3\n"),
    ),
    Case(
        "data-corrupt-parquet",
        [*FRESH, "--data", "{lab}/corrupt.parquet"],
        "unreadable parquet",
        setup=write_bytes("corrupt.parquet", b"PAR1" + bytes(range(256)) * 8 + b"PAR1"),
        process=True,
    ),
    Case("data-empty-file", [*FRESH, "--data", "{lab}/empty.csv"], "empty.csv", setup=write_text("empty.csv", "")),
    Case(
        "data-empty-parquet",
        [*FRESH, "--data", "{lab}/empty.parquet"],
        "empty.parquet",
        setup=write_text("empty.parquet", ""),
    ),
    Case("data-columns-not-a-cube", [*FRESH, "--data", "{lab}/ten.csv"], "not a cube", setup=not_a_cube),
    Case("data-nan", [*FRESH, "--data", "{lab}/nan.csv"], "missing (NaN)", setup=csv_cell("nan.csv", "")),
    Case("data-value-7", [*FRESH, "--data", "{lab}/seven.csv"], "value 7", setup=csv_cell("seven.csv", "7")),
    Case("data-negative", [*FRESH, "--data", "{lab}/negative.csv"], "value -1", setup=csv_cell("negative.csv", "-1")),
    Case(
        "data-non-integer",
        [*FRESH, "--data", "{lab}/half.csv"],
        "non-integer value 1.5",
        setup=csv_cell("half.csv", "1.5"),
    ),
    Case("data-text-value", [*FRESH, "--data", "{lab}/text.csv"], "text.csv", setup=csv_cell("text.csv", "two")),
    Case("data-all-rows-zero", [*FRESH, "--data", "{lab}/zeros.csv"], "nothing left after cleaning", setup=all_zero),
    Case("data-header-only", [*FRESH, "--data", "{lab}/header-only.csv"], "header-only.csv", setup=header_only),
    Case("data-npz-without-x", [*FRESH, "--data", "{lab}/no-x.npz"], "no array named 'X'", setup=npz_without_x),
    Case(
        "data-summarize-corrupt",
        ["data", "summarize", "{lab}/corrupt2.parquet"],
        "unreadable parquet",
        setup=write_bytes("corrupt2.parquet", b"not parquet at all"),
    ),
    Case("data-grid-differs-from-resumed-study", [*RUN, "--data", "{lab}/grid9.parquet"], "study tiny", setup=grid9),
    Case(
        "env-data-missing",
        ["study", "run", "{lab}/studies/no-data.yaml"],
        "file not found",
        env={"VAE_LAB_DATA": "{lab}/gone/voxels.parquet"},
        setup=study_file("no-data", tiny_with("no-data", "data: {path: null}\n")),
    ),
    # study YAML
    Case(
        "yaml-bad-syntax",
        ["study", "run", "syntax"],
        "not valid YAML",
        setup=study_file("syntax", "name: syntax\nspace: {architecture: [fc\n"),
    ),
    Case(
        "yaml-not-a-mapping",
        ["study", "run", "listy"],
        "must be a YAML mapping",
        setup=study_file("listy", "- name: listy\n- epochs: 1\n"),
    ),
    Case("yaml-empty", ["study", "run", "blank"], "must be a YAML mapping", setup=study_file("blank", "")),
    Case(
        "yaml-unknown-key",
        ["study", "run", "unknown-key"],
        "unknown key",
        setup=study_file("unknown-key", tiny_with("unknown-key", "trainig: {epochs: 1}\n")),
    ),
    Case(
        "yaml-wrong-type",
        ["study", "run", "wrong-type"],
        "training.epochs",
        setup=study_file("wrong-type", tiny_with("wrong-type", "training: {epochs: many}\n")),
    ),
    Case(
        "yaml-unknown-architecture",
        ["study", "run", "resnet"],
        "unknown architecture 'resnet'",
        setup=study_file("resnet", tiny_with("resnet", "space: {architecture: [resnet], latent_dim: [2]}\n")),
    ),
    Case(
        "yaml-loss-does-not-fit-head",
        ["study", "run", "head-loss"],
        "space.",
        setup=study_file(
            "head-loss",
            tiny_with(
                "head-loss", "space: {architecture: [fc], latent_dim: [2], output: [categorical], loss: [mse]}\n"
            ),
        ),
    ),
    Case(
        "yaml-value-no-trial-uses",
        ["study", "run", "unused"],
        "focal_gamma",
        setup=study_file(
            "unused",
            tiny_with("unused", "space: {architecture: [fc], latent_dim: [2], loss: [mse], focal_gamma: [2]}\n"),
        ),
    ),
    Case(
        "yaml-range-in-grid",
        ["study", "run", "grid-range"],
        "learning_rate",
        setup=study_file(
            "grid-range",
            tiny_with(
                "grid-range",
                "space: {architecture: [fc], latent_dim: [2], learning_rate: {low: 1.0e-4, high: 1.0e-2, log: true}}\n",
            ),
        ),
    ),
    Case(
        "yaml-direction-against-metric",
        ["study", "run", "maximize-loss"],
        "objective",
        setup=study_file(
            "maximize-loss", tiny_with("maximize-loss", "objective: {metric: val_loss, direction: maximize}\n")
        ),
    ),
    Case(
        "yaml-unknown-metric",
        ["study", "run", "metric"],
        "objective.metric",
        setup=study_file("metric", tiny_with("metric", "objective: {metric: val_accuracy}\n")),
    ),
    Case(
        "yaml-bad-device",
        ["study", "run", "tpu"],
        "training.device",
        setup=study_file("tpu", tiny_with("tpu", "training: {epochs: 1, device: tpu}\n")),
    ),
    Case(
        "yaml-bad-name",
        ["study", "run", "bad-name"],
        "name",
        setup=study_file("bad-name", tiny_with("x", "").replace("name: x", "name: 'has spaces!'")),
    ),
    Case("yaml-study-file-missing", ["study", "run", "{lab}/studies/absent.yaml"], "study file not found"),
    # command-line arguments
    Case("cli-unknown-study", ["study", "run", "no-such-study"], "no-such-study"),
    Case("cli-n-trials-0", [*RUN, "--n-trials", "0"], "--n-trials"),
    Case("cli-workers-0", [*RUN, "--workers", "0"], "--workers"),
    Case("cli-unknown-option", [*RUN, "--trials", "3"], "--trials", process=True),
    Case("cli-missing-argument", ["study", "run"], "study"),
    Case("cli-not-an-integer", [*RUN, "--n-trials", "two"], "--n-trials"),
    Case("cli-evaluate-bad-split", ["evaluate", "tiny", "--split", "nope"], "--split"),
    Case("cli-run-bad-device", [*RUN, "--device", "banana"], "--device"),
    Case("cli-evaluate-bad-device", ["evaluate", "tiny", "--device", "banana"], "--device"),
    Case("cli-bench-unknown-arch", ["bench", "--arch", "resnet"], "unknown architecture 'resnet'"),
    Case("cli-bench-bad-precision", ["bench", "--precision", "fp8"], "--precision"),
    Case("cli-bad-run-name", [*RUN, "--name", "bad name!"], "--name"),
    Case("cli-registry-unknown-model", ["registry", "show", "nobody"], "nobody"),
    Case("cli-registry-unknown-alias", ["registry", "show", "tiny", "--alias", "best-conv"], "best-conv"),
    Case("cli-evaluate-unknown-model", ["evaluate", "nobody"], "nobody"),
    Case("cli-status-unknown-study", ["study", "status", "never-ran"], "never-ran"),
    Case("cli-reproduce-unknown-study", ["trial", "reproduce", "never-ran", "0"], "never-ran"),
    Case("cli-reproduce-bad-device", ["trial", "reproduce", "tiny", "0", "--device", "banana"], "--device"),
    Case("cli-reproduce-negative-trial", ["trial", "reproduce", "tiny", "-1"], "-1"),
    # store URIs and environment values
    Case("env-tracking-unknown-scheme", RUN, "MLFLOW_TRACKING_URI", env={"MLFLOW_TRACKING_URI": "foo://x"}, store=True),
    Case(
        "env-tracking-unknown-scheme-evaluate",
        ["evaluate", "tiny"],
        "MLFLOW_TRACKING_URI",
        env={"MLFLOW_TRACKING_URI": "foo://x"},
        store=True,
    ),
    Case("env-tracking-empty", RUN, "MLFLOW_TRACKING_URI", env={"MLFLOW_TRACKING_URI": " "}, store=True),
    Case(
        "env-tracking-server-down",
        RUN,
        "MLflow tracking store",
        env={"MLFLOW_TRACKING_URI": f"http://user:{PASSWORD}@127.0.0.1:9/"},
        store=True,
        forbidden=(PASSWORD,),
    ),
    Case(
        "env-tracking-server-down-registry",
        ["registry", "show", "tiny"],
        "MLflow tracking store",
        env={"MLFLOW_TRACKING_URI": f"http://user:{PASSWORD}@127.0.0.1:9/"},
        store=True,
        forbidden=(PASSWORD,),
    ),
    Case(
        "env-tracking-postgres-closed-port",
        RUN,
        "MLflow tracking store",
        env={"MLFLOW_TRACKING_URI": "postgresql://user:pw-4711@127.0.0.1:{port}/db"},
        store=True,
        forbidden=("pw-4711",),
    ),
    Case(
        "env-tracking-postgres-psycopg2-closed-port",
        RUN,
        "connection refused",
        env={"MLFLOW_TRACKING_URI": "postgresql+psycopg2://user:pw-4711@127.0.0.1:{port}/db"},
        store=True,
        forbidden=("pw-4711",),
    ),
    Case(
        "env-tracking-sqlite-not-a-database",
        RUN,
        "not an SQLite database",
        env={"MLFLOW_TRACKING_URI": "sqlite:///{lab}/notes.txt"},
        setup=write_text("notes.txt", "these are notes, not a database\n"),
        store=True,
    ),
    Case(
        "env-tracking-sqlite-not-a-database-evaluate",
        ["evaluate", "tiny"],
        "not an SQLite database",
        env={"MLFLOW_TRACKING_URI": "sqlite:///{lab}/notes.txt"},
        setup=write_text("notes.txt", "these are notes, not a database\n"),
        store=True,
    ),
    Case(
        "env-artifact-root-under-a-file",
        RUN,
        "VAE_LAB_ARTIFACT_ROOT",
        env={"VAE_LAB_ARTIFACT_ROOT": "{lab}/notes.txt/artifacts"},
        setup=write_text("notes.txt", "a regular file\n"),
        store=True,
    ),
    Case(
        "env-optuna-unknown-scheme",
        RUN,
        "VAE_LAB_OPTUNA_STORAGE",
        env={"VAE_LAB_OPTUNA_STORAGE": "redis://localhost/0"},
        store=True,
    ),
    Case(
        "env-optuna-is-a-directory",
        RUN,
        "Optuna storage",
        env={"VAE_LAB_OPTUNA_STORAGE": "{lab}/a-folder"},
        setup=make_dir("a-folder"),
        store=True,
    ),
    Case(
        "env-optuna-is-a-directory-status",
        ["study", "status", "tiny"],
        "Optuna storage",
        env={"VAE_LAB_OPTUNA_STORAGE": "{lab}/a-folder"},
        setup=make_dir("a-folder"),
        store=True,
    ),
    Case(
        "env-optuna-under-a-file",
        RUN,
        "Optuna storage",
        env={"VAE_LAB_OPTUNA_STORAGE": "{lab}/notes.txt/optuna.log"},
        setup=write_text("notes.txt", "a regular file\n"),
        store=True,
    ),
    Case(
        "env-optuna-postgres-closed-port",
        RUN,
        "Optuna storage",
        env={"VAE_LAB_OPTUNA_STORAGE": "postgresql://user:pw-4711@127.0.0.1:{port}/db"},
        store=True,
        forbidden=("pw-4711",),
    ),
    Case(
        "env-optuna-postgres-psycopg2-closed-port",
        ["study", "status", "tiny"],
        "connection refused",
        env={"VAE_LAB_OPTUNA_STORAGE": "postgresql+psycopg2://user:pw-4711@127.0.0.1:{port}/db"},
        store=True,
        forbidden=("pw-4711",),
    ),
    Case(
        "env-optuna-sqlite-not-a-database",
        RUN,
        "not an SQLite database",
        env={"VAE_LAB_OPTUNA_STORAGE": "sqlite:///{lab}/notes.txt"},
        setup=write_text("notes.txt", "notes\n"),
        store=True,
    ),
    Case(
        "env-cache-dir-under-a-file",
        RUN,
        "VAE_LAB_CACHE_DIR",
        env={"VAE_LAB_CACHE_DIR": "{lab}/notes.txt/cache"},
        setup=write_text("notes.txt", "a regular file\n"),
        store=True,
    ),
    Case(
        "dotenv-tracking-server-down",
        ["registry", "show", "tiny"],
        "MLflow tracking store",
        unset=("MLFLOW_TRACKING_URI",),
        cwd="dotenv",
        setup=dotenv,
        store=True,
        forbidden=("dotenv-secret",),
    ),
    Case(
        "env-ui-unknown-scheme",
        ["ui", "--dry-run"],
        "MLFLOW_TRACKING_URI",
        env={"MLFLOW_TRACKING_URI": "foo://x"},
        store=True,
    ),
    Case(
        "env-ui-sqlite-not-a-database",
        ["ui"],
        "not an SQLite database",
        env={"MLFLOW_TRACKING_URI": "sqlite:///{lab}/notes.txt"},
        setup=write_text("notes.txt", "notes\n"),
        store=True,
        process=True,
    ),
    Case(
        "env-ui-server-down-password",
        ["ui"],
        "MLflow tracking store",
        env={"MLFLOW_TRACKING_URI": f"http://user:{PASSWORD}@127.0.0.1:9/"},
        store=True,
        forbidden=(PASSWORD,),
        process=True,
    ),
]


def fill(text: str, lab: Path, port: int) -> str:
    return text.replace("{lab}", str(lab)).replace("{port}", str(port))


def test_the_corpus_is_big_enough():
    assert len(CASES) >= 30 and len({c.id for c in CASES}) == len(CASES)
    assert any(c.process and c.args[0] == "ui" for c in CASES) and any(c.process and c.args[0] != "ui" for c in CASES)
    assert all(c.process for c in CASES if c.args[:1] == ["ui"] and "--dry-run" not in c.args)  # ui execs a server


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(c, id=c.id, marks=[pytest.mark.xfail(reason=c.xfail, strict=True)] if c.xfail else [])
        for c in CASES
    ],
)
def test_bad_input_is_one_line_exit_2_and_leaves_the_stores_alone(lab, case, capfd):
    if case.setup:
        case.setup(lab)
    port = closed_port()
    args = [fill(a, lab, port) for a in case.args]
    env = lab_env(lab, **{k: fill(v, lab, port) for k, v in case.env.items()})
    for name in case.unset:
        env.pop(name)
    before = snapshot(lab)

    start = time.monotonic()
    cwd = lab / case.cwd if case.cwd else lab
    if case.process:
        result = run_vae_lab(args, cwd=cwd, env=env, timeout=120 if case.store else 300)
    else:
        result = run_vae_lab_here(args, cwd=cwd, env=env, capture=capfd)
    elapsed = time.monotonic() - start

    after = snapshot(lab)
    output = result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    problems = []
    if result.returncode != 2:
        problems.append(f"exit code {result.returncode}, not 2")
    if "Traceback" in output:
        problems.append("a traceback")
    if len(lines) != 1:
        problems.append(f"{len(lines)} lines on stderr, not 1")
    if result.stdout.strip():
        problems.append("output on stdout")
    if lines and case.expect.lower() not in lines[-1].lower():
        problems.append(f"the error does not mention {case.expect!r}")
    problems += [f"printed the secret {secret!r}" for secret in case.forbidden if secret in output]
    problems += [f"store file {change}" for change in diff(before, after)]
    if case.store and elapsed >= STORE_DEADLINE_S:
        problems.append(f"took {elapsed:.1f} s (limit {STORE_DEADLINE_S} s)")
    assert not problems, (
        "; ".join(problems) + f"\n--- stdout:\n{result.stdout[-2000:]}\n--- stderr:\n{result.stderr[-3000:]}"
    )
