"""No secret from a store URI is ever printed, logged as a parameter or tag, or written to an artifact.

The session's PostgreSQL 15 cluster, with password authentication (role `vae` with a distinctive
password), holds both stores in databases of this test's own. A tiny study runs against it (a
real console process), then every read-only command and those that fail on a store (through the
console entry point in this process, but the wrong password: a real process again); afterwards
the password is looked for in everything the commands printed, in a dump of both databases, in
every file under the artifact root and the dataset cache, and anywhere else in the lab folder.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.bad_input_helpers import lab_env, run_vae_lab, run_vae_lab_here
from tests.services import ADMIN, PASSWORD, ROLE, WORKER, database_name, signed_in
from vae_lab.data import synthesize, write_dataset

pytestmark = pytest.mark.slow

STUDY = """\
name: secret
data: {path: voxels.parquet}
training: {epochs: 1}
space: {architecture: [fc], latent_dim: [2]}
artifacts: {pca: true, reconstructions: 1, interpolation: false, plotlyjs: cdn}
"""


def files_holding(folder: Path, secret: str) -> list[str]:
    needle = secret.encode()
    return [str(p) for p in sorted(folder.rglob("*")) if p.is_file() and needle in p.read_bytes()]


def test_no_password_is_printed_logged_or_stored(postgres, tmp_path, capfd):
    url = postgres.url
    mlflow_url, optuna_url = postgres.new_database("mlflow"), postgres.new_database("optuna")
    lab = tmp_path / "lab"
    (lab / "studies").mkdir(parents=True)
    (lab / "studies" / "secret.yaml").write_text(STUDY)
    write_dataset(synthesize(rows=1500, seed=1), lab / "voxels.parquet")
    env = lab_env(lab, MLFLOW_TRACKING_URI=mlflow_url, VAE_LAB_OPTUNA_STORAGE=optuna_url)
    outputs: dict[str, str] = {}

    def vae_lab(*args: str, code: int = 0, process: bool = False, **overrides: str) -> subprocess.CompletedProcess:
        if process:
            result = run_vae_lab(list(args), cwd=lab, env=env | overrides, timeout=600)
        else:
            result = run_vae_lab_here(list(args), cwd=lab, env=env | overrides, capture=capfd)
        outputs[" ".join(args) + (f" with {sorted(overrides)}" if overrides else "")] = result.stdout + result.stderr
        assert result.returncode == code, f"vae-lab {' '.join(args)}: exit {result.returncode}\n{result.stderr[-3000:]}"
        return result

    vae_lab("study", "run", "secret", process=True)
    vae_lab("study", "run", "secret", "--json")  # resumes with nothing left; the report names the stores
    vae_lab("study", "status", "secret")
    vae_lab("study", "status", "secret", "--json")
    vae_lab("registry", "show", "secret")
    vae_lab("registry", "show", "secret", "--json")
    vae_lab("evaluate", "secret", "--split", "val")
    vae_lab("evaluate", "secret", "--json")
    vae_lab("study", "plan", "secret")
    vae_lab("study", "plan", "secret", "--json")
    vae_lab("ui", "--dry-run")
    vae_lab("ui", "--json")

    # Stores that refuse: the error names the store with the password masked.
    wrong_db = vae_lab("study", "status", "secret", code=2, VAE_LAB_OPTUNA_STORAGE=f"{url}/no_such_db")
    assert "Optuna storage" in wrong_db.stderr and f"{ROLE}:***@" in wrong_db.stderr, wrong_db.stderr
    wrong_db = vae_lab("registry", "show", "secret", code=2, MLFLOW_TRACKING_URI=f"{url}/no_such_db")
    assert "MLflow tracking store" in wrong_db.stderr and f"{ROLE}:***@" in wrong_db.stderr, wrong_db.stderr
    wrong_password = vae_lab(
        "study",
        "run",
        "secret",
        code=2,
        process=True,
        MLFLOW_TRACKING_URI=mlflow_url.replace(PASSWORD, "not-" + PASSWORD),
    )
    assert "credentials" in wrong_password.stderr and "not-" not in wrong_password.stderr, wrong_password.stderr

    leaks = [f"output of `vae-lab {command}`" for command, text in outputs.items() if PASSWORD in text]
    databases = (database_name(optuna_url), database_name(mlflow_url))
    leaks += [f"pg_dump of {database}" for database in databases if PASSWORD in postgres.dump(database)]
    leaks += files_holding(lab, PASSWORD)  # the artifact root, the dataset cache, anything else written there
    assert (lab / "mlruns").is_dir() and any((lab / "mlruns").rglob("*.html")), "the study logged no artifacts to grep"
    assert any((lab / ".vae-lab" / "cache").rglob("*.npz")), "the study cached no dataset to grep"
    assert not leaks, "the password leaked into: " + "; ".join(leaks)


def test_no_mlflow_login_is_printed_logged_or_stored(postgres, login_server, tmp_path, capfd):
    """The same with an MLflow server that has a login: the workers' password (given only as
    MLFLOW_TRACKING_PASSWORD) is in no output, no database, no artifact and no lab file."""
    optuna_url = postgres.new_database("optuna")
    lab = tmp_path / "lab"
    (lab / "studies").mkdir(parents=True)
    (lab / "studies" / "served.yaml").write_text(STUDY.replace("name: secret", "name: served"))
    write_dataset(synthesize(rows=1500, seed=1), lab / "voxels.parquet")
    env = lab_env(lab, MLFLOW_TRACKING_URI=login_server.url, VAE_LAB_OPTUNA_STORAGE=optuna_url) | signed_in(WORKER)
    outputs = {}
    first = run_vae_lab(["study", "run", "served"], cwd=lab, env=env, timeout=600)
    outputs["study run served"] = first.stdout + first.stderr
    assert first.returncode == 0, f"vae-lab study run served: exit {first.returncode}\n{first.stderr[-3000:]}"
    for args in (
        ["study", "status", "served", "--json"],
        ["registry", "show", "served", "--json"],
        ["evaluate", "served", "--json"],
        ["study", "plan", "served"],
        ["ui", "--json"],
    ):
        result = run_vae_lab_here(args, cwd=lab, env=env, capture=capfd)
        outputs[" ".join(args)] = result.stdout + result.stderr
        assert result.returncode == 0, f"vae-lab {' '.join(args)}: exit {result.returncode}\n{result.stderr[-3000:]}"
    wrong = run_vae_lab_here(
        ["study", "run", "served"], cwd=lab, env=env | {"MLFLOW_TRACKING_PASSWORD": "not-" + WORKER[1]}, capture=capfd
    )
    assert wrong.returncode == 2 and "HTTP 401" in wrong.stderr, wrong.stderr
    outputs["study run with a wrong password"] = wrong.stdout + wrong.stderr

    artifacts = login_server.folder / "artifacts"
    for secret in (WORKER[1], ADMIN[1]):
        leaks = [f"output of `vae-lab {command}`" for command, text in outputs.items() if secret in text]
        databases = (database_name(optuna_url), database_name(login_server.backend))
        leaks += [f"pg_dump of {db}" for db in databases if secret in postgres.dump(db)]
        leaks += files_holding(lab, secret) + files_holding(artifacts, secret)
        assert not leaks, "an MLflow password leaked into: " + "; ".join(leaks)
    assert any(artifacts.rglob("*.html")), "the study logged no artifacts to grep"
