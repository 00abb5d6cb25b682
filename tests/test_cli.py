"""The command line as a user meets it: one JSON document with --json, one-line errors, exit 2."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from vae_lab.cli import app

VAE_LAB = shutil.which("vae-lab", path=os.path.dirname(sys.executable)) or "vae-lab"


def cli(*args: str):
    return CliRunner().invoke(app, list(args))


def run_console(*args: str, cwd) -> subprocess.CompletedProcess:
    """The installed console script, so exit codes and stderr are exactly what a user sees."""
    return subprocess.run([VAE_LAB, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_data_commands_print_one_json_document_each(lab):
    synth = cli("data", "synth", "--out", "raw.parquet", "--rows", "3000", "--seed", "2", "--json")
    assert synth.exit_code == 0 and json.loads(synth.stdout)["rows"] == 3000

    summary = json.loads(cli("data", "summarize", "raw.parquet", "--json").stdout)
    assert set(summary) == {
        "rows",
        "duplicate_rows",
        "all_zero_rows",
        "clean_rows",
        "grid",
        "class_counts",
        "max_occupied",
        "label_counts",
    }
    assert summary["rows"] == 3000 and summary["grid"] == 11 and 1 <= summary["max_occupied"] <= 8
    assert summary["clean_rows"] < 0.2 * summary["rows"]  # ~90% of raw rows are duplicates or empty

    prepared = json.loads(cli("data", "prepare", "raw.parquet", "--toy-fraction", "0.5", "--json").stdout)
    assert set(prepared) == {"rows", "clean_rows", "train", "val", "test", "toy_fraction"}
    assert prepared["clean_rows"] == summary["clean_rows"]
    assert prepared["test"] == -(-prepared["clean_rows"] * 2 // 10)


def test_models_list_json_is_a_list_of_families():
    families = json.loads(cli("models", "list", "--json").stdout)
    assert {f["name"] for f in families} >= {"fc", "conv", "pointnet"}
    assert {"name", "params", "input"} <= set(families[0])
    shown = json.loads(cli("models", "show", "conv", "--json").stdout)
    assert shown["params"] == 1_825_285 and shown["layers"][0]["output_shape"] == [128, 6, 6, 6]


def test_user_errors_inside_commands_exit_2_in_process():
    result = cli("models", "show", "resnet")
    assert result.exit_code == 2 and "unknown architecture" in result.stderr


def test_ui_dry_run_points_at_the_configured_store(lab):
    result = json.loads(cli("ui", "--json").stdout)
    assert result["command"][1:4] == ["-m", "mlflow", "ui"]
    assert (
        str(lab / "mlflow.db") in result["env"]["MLFLOW_BACKEND_STORE_URI"]
    )  # not on the command line, where ps shows it


@pytest.mark.parametrize(
    "make_input, args, expected",
    [
        (None, ["data", "summarize", "missing.csv"], "missing.csv: file not found"),
        (lambda p: (p / "x.txt").write_text("1,2\n"), ["data", "summarize", "x.txt"], "x.txt"),
        (
            lambda p: np.savetxt(
                p / "bad.csv",
                np.full((2, 1331), 5),
                delimiter=",",
                header=",".join(f"v{i}" for i in range(1331)),
                comments="",
            ),
            ["data", "prepare", "bad.csv"],
            "bad.csv",
        ),
        (
            lambda p: (p / "studies" / "s.yaml").write_text("name: s\ntraining: {epochs: 0}\n"),
            ["study", "run", "s"],
            "training.epochs",
        ),
        (None, ["study", "run", "no-such-study"], "study 'no-such-study': not found"),
        (None, ["study", "run", "quick", "--device", "tpu"], "--device: unknown device 'tpu'"),
        (None, ["evaluate", "quick", "--split", "nope"], "--split: unknown split 'nope'"),
        (None, ["bench", "--arch", "resnet"], "--arch: unknown architecture 'resnet'"),
        (None, ["study", "status", "never-ran"], "never-ran"),
        (None, ["registry", "show", "nobody"], "no registered model"),
        (None, ["models", "show", "resnet"], "unknown architecture 'resnet'"),
    ],
)
def test_user_errors_are_one_line_and_exit_2(lab, make_input, args, expected):
    if make_input:
        make_input(lab)
    result = run_console(*args, cwd=lab)
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_a_bad_study_leaves_stored_trials_alone(lab):
    """A failed validation must not touch the Optuna storage or MLflow store."""
    (lab / "studies" / "s.yaml").write_text("name: s\nspace: {architecture: [nope]}\n")
    store = (lab / "mlflow.db").read_bytes()  # the lab's empty store
    assert run_console("study", "run", "s", cwd=lab).returncode == 2
    assert (lab / "mlflow.db").read_bytes() == store and not (lab / "mlflow.db-wal").exists()
    assert not (lab / ".vae-lab" / "optuna.log").exists()


def test_help_teaches_the_first_steps():
    result = cli("--help")
    assert "vae-lab study run quick" in result.stdout
    assert "study run" in cli("study", "run", "--help").stdout or "resume" in cli("study", "run", "--help").stdout


def test_study_list_and_show_find_the_shipped_studies_from_any_folder(lab):
    listed = json.loads(cli("study", "list", "--json").stdout)
    assert {"quick", "seed-grid", "deep-sweep", "architecture-sweep"} <= {s["name"] for s in listed}
    shown = json.loads(cli("study", "show", "seed-grid", "--json").stdout)
    assert shown["trials"] == 4 and shown["spec"]["space"]["loss"] == ["mse", "bce"]


@pytest.mark.slow
def test_bench_json_has_the_documented_shape_and_sane_values(lab):
    result = cli(
        "bench",
        "--arch",
        "fc",
        "--arch",
        "pointnet",
        "--batch-size",
        "32",
        "--rows",
        "256",
        "--device",
        "cpu",
        "--no-trial",
        "--no-system-metrics",  # its own test: tests/test_benchmark.py
        "--json",
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert {"device", "peak_gflops", "archs", "trial", "system_metrics"} <= set(report) and report["peak_gflops"] > 0
    assert report["trial"] is None and report["system_metrics"] is None
    for arch in report["archs"]:
        assert {"arch", "batch_size", "samples_per_s", "bare_samples_per_s", "ratio", "flops_per_sample", "mfu"} <= set(
            arch
        )
        assert arch["ratio"] > 0 and arch["samples_per_s"] > 0 and 0 < arch["mfu"] < 1.5
    fc = report["archs"][0]
    # By hand, fc at latent 8 on an 11^3 grid with its default scalar head (1 channel):
    cells = 11**3
    macs = cells * 512 + 512 * 256 + 2 * 256 * 8 + 8 * 256 + 256 * 512 + 512 * cells
    assert fc["flops_per_sample"] == 3 * 2 * macs


def test_cli_default_rows_match_the_data_layer():
    from vae_lab.cli.data import DEFAULT_ROWS
    from vae_lab.data.synth import DEFAULT_ROWS as SYNTH_DEFAULT

    assert DEFAULT_ROWS == SYNTH_DEFAULT
