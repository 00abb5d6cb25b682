"""No secret from a store URI is ever printed, logged as a parameter or tag, or written to an artifact.

A throwaway PostgreSQL 15 cluster with password authentication holds both stores (databases
`optuna` and `mlflow`, role `vae` with a distinctive password). A tiny study runs against it,
then every read-only command and one that fails on a store; afterwards the password is looked
for in everything the commands printed, in a dump of both databases, in every file under the
artifact root and the dataset cache, and anywhere else in the lab folder.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.bad_input_helpers import lab_env, run_vae_lab
from tests.services import ADMIN, WORKER, have_postgres, make_account, mlflow_login_server, signed_in, start_postgres
from vae_lab.data import synthesize, write_dataset

pytestmark = pytest.mark.slow

PASSWORD = "Sup3r-Secret-pw-4711"
ROLE = "vae"

STUDY = """\
name: secret
data: {path: voxels.parquet}
training: {epochs: 1}
space: {architecture: [fc], latent_dim: [2]}
artifacts: {pca: true, reconstructions: 1, interpolation: false, plotlyjs: cdn}
"""


@pytest.fixture(scope="module")
def postgres():
    """A cluster that wants the password over TCP (what vae-lab uses); set-up and pg_dump use the socket."""
    if not have_postgres():
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    cluster = start_postgres(role=ROLE, password=PASSWORD)
    try:
        yield cluster
    finally:
        cluster.stop()


def files_holding(folder: Path, secret: str) -> list[str]:
    needle = secret.encode()
    return [str(p) for p in sorted(folder.rglob("*")) if p.is_file() and needle in p.read_bytes()]


def test_no_password_is_printed_logged_or_stored(postgres, tmp_path):
    url = postgres.url
    lab = tmp_path / "lab"
    (lab / "studies").mkdir(parents=True)
    (lab / "studies" / "secret.yaml").write_text(STUDY)
    write_dataset(synthesize(rows=1500, seed=1), lab / "voxels.parquet")
    env = lab_env(lab, MLFLOW_TRACKING_URI=f"{url}/mlflow", VAE_LAB_OPTUNA_STORAGE=f"{url}/optuna")
    outputs: dict[str, str] = {}

    def vae_lab(*args: str, code: int = 0, **overrides: str) -> subprocess.CompletedProcess:
        result = run_vae_lab(list(args), cwd=lab, env=env | overrides, timeout=600)
        outputs[" ".join(args) + (f" with {sorted(overrides)}" if overrides else "")] = result.stdout + result.stderr
        assert result.returncode == code, f"vae-lab {' '.join(args)}: exit {result.returncode}\n{result.stderr[-3000:]}"
        return result

    vae_lab("study", "run", "secret")
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
        "study", "run", "secret", code=2, MLFLOW_TRACKING_URI=f"{url}/mlflow".replace(PASSWORD, "not-" + PASSWORD)
    )
    assert "credentials" in wrong_password.stderr and "not-" not in wrong_password.stderr, wrong_password.stderr

    leaks = [f"output of `vae-lab {command}`" for command, text in outputs.items() if PASSWORD in text]
    leaks += [f"pg_dump of {database}" for database in ("optuna", "mlflow") if PASSWORD in postgres.dump(database)]
    leaks += files_holding(lab, PASSWORD)  # the artifact root, the dataset cache, anything else written there
    assert (lab / "mlruns").is_dir() and any((lab / "mlruns").rglob("*.html")), "the study logged no artifacts to grep"
    assert any((lab / ".vae-lab" / "cache").rglob("*.npz")), "the study cached no dataset to grep"
    assert not leaks, "the password leaked into: " + "; ".join(leaks)


def test_no_mlflow_login_is_printed_logged_or_stored(postgres, tmp_path):
    """The same with an MLflow server that has a login: the workers' password (given only as
    MLFLOW_TRACKING_PASSWORD) is in no output, no database, no artifact and no lab file."""
    url = postgres.url
    postgres.createdb("served")
    served = tmp_path / "server"
    with mlflow_login_server(f"{url}/served", served) as server_url:
        make_account(server_url, WORKER, "EDIT")
        lab = tmp_path / "lab"
        (lab / "studies").mkdir(parents=True)
        (lab / "studies" / "served.yaml").write_text(STUDY.replace("name: secret", "name: served"))
        write_dataset(synthesize(rows=1500, seed=1), lab / "voxels.parquet")
        env = lab_env(lab, MLFLOW_TRACKING_URI=server_url, VAE_LAB_OPTUNA_STORAGE=f"{url}/optuna") | signed_in(WORKER)
        outputs = {}
        for args, code in (
            (["study", "run", "served"], 0),
            (["study", "status", "served", "--json"], 0),
            (["registry", "show", "served", "--json"], 0),
            (["evaluate", "served", "--json"], 0),
            (["study", "plan", "served"], 0),
            (["ui", "--json"], 0),
        ):
            result = run_vae_lab(args, cwd=lab, env=env, timeout=600)
            outputs[" ".join(args)] = result.stdout + result.stderr
            assert result.returncode == code, (
                f"vae-lab {' '.join(args)}: exit {result.returncode}\n{result.stderr[-3000:]}"
            )
        wrong = run_vae_lab(
            ["study", "run", "served"], cwd=lab, env=env | {"MLFLOW_TRACKING_PASSWORD": "not-" + WORKER[1]}
        )
        assert wrong.returncode == 2 and "HTTP 401" in wrong.stderr, wrong.stderr
        outputs["study run with a wrong password"] = wrong.stdout + wrong.stderr

    for secret in (WORKER[1], ADMIN[1]):
        leaks = [f"output of `vae-lab {command}`" for command, text in outputs.items() if secret in text]
        leaks += [f"pg_dump of {db}" for db in ("optuna", "served") if secret in postgres.dump(db)]
        leaks += files_holding(lab, secret) + files_holding(served / "artifacts", secret)
        assert not leaks, "an MLflow password leaked into: " + "; ".join(leaks)
    assert any((served / "artifacts").rglob("*.html")), "the study logged no artifacts to grep"
