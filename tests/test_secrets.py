"""No secret from a store URI is ever printed, logged as a parameter or tag, or written to an artifact.

A throwaway PostgreSQL 15 cluster with password authentication holds both stores (databases
`optuna` and `mlflow`, role `vae` with a distinctive password). A tiny study runs against it,
then every read-only command and one that fails on a store; afterwards the password is looked
for in everything the commands printed, in a dump of both databases, in every file under the
artifact root and the dataset cache, and anywhere else in the lab folder.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.bad_input_helpers import lab_env, run_vae_lab
from tests.conftest import free_port
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


def as_postgres(*command: str) -> subprocess.CompletedProcess:
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    result = subprocess.run([*prefix, *command], capture_output=True, timeout=120, cwd="/")
    assert result.returncode == 0, f"{' '.join(command)}: {result.stderr.decode(errors='replace')}"
    return result


@pytest.fixture(scope="module")
def postgres():
    """(URL prefix with the password, socket folder, port) of a cluster that wants the password over TCP."""
    if not shutil.which("initdb") or not shutil.which("pg_ctl"):
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    # Not under pytest's basetemp: another pytest run may chmod /tmp/pytest-of-<user> back to
    # 0700 at any time, and the postgres user would lose its way to the cluster.
    root = Path(tempfile.mkdtemp(prefix="vae-lab-pg-"))
    data = root / "data"
    pwfile = root / "pwfile"
    pwfile.write_text(PASSWORD + "\n")
    if os.geteuid() == 0:
        os.chmod(root, 0o755)
        shutil.chown(root, "postgres")
        shutil.chown(pwfile, "postgres")
    port = free_port()
    try:
        # TCP (what vae-lab uses) needs the password; the socket (set-up and pg_dump) trusts.
        as_postgres(
            "initdb",
            "-D",
            str(data),
            "-U",
            ROLE,
            f"--pwfile={pwfile}",
            "--auth-host=scram-sha-256",
            "--auth-local=trust",
        )
        pwfile.unlink()
        as_postgres(
            "pg_ctl",
            "-D",
            str(data),
            "-l",
            str(root / "log"),
            "-w",
            "-o",
            f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c max_connections=300",
            "start",
        )
        try:
            for database in ("optuna", "mlflow"):
                as_postgres("createdb", "-h", str(root), "-p", str(port), "-U", ROLE, database)
            yield f"postgresql+psycopg2://{ROLE}:{PASSWORD}@127.0.0.1:{port}", root, port
        finally:
            stop_cluster(data)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def stop_cluster(data: Path) -> None:
    try:
        as_postgres("pg_ctl", "-D", str(data), "-m", "immediate", "stop")
    except AssertionError:  # pg_ctl could not reach it: stop the postmaster it started by its pid
        pid_file = data / "postmaster.pid"
        if pid_file.is_file():
            os.kill(int(pid_file.read_text().split()[0]), signal.SIGQUIT)


def pg_dump(root: Path, port: int, database: str) -> str:
    return as_postgres("pg_dump", "-h", str(root), "-p", str(port), "-U", ROLE, database).stdout.decode(
        "utf-8", "replace"
    )


def files_holding(folder: Path, secret: str) -> list[str]:
    needle = secret.encode()
    return [str(p) for p in sorted(folder.rglob("*")) if p.is_file() and needle in p.read_bytes()]


def test_no_password_is_printed_logged_or_stored(postgres, tmp_path):
    url, socket_dir, port = postgres
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
    leaks += [
        f"pg_dump of {database}" for database in ("optuna", "mlflow") if PASSWORD in pg_dump(socket_dir, port, database)
    ]
    leaks += files_holding(lab, PASSWORD)  # the artifact root, the dataset cache, anything else written there
    assert (lab / "mlruns").is_dir() and any((lab / "mlruns").rglob("*.html")), "the study logged no artifacts to grep"
    assert any((lab / ".vae-lab" / "cache").rglob("*.npz")), "the study cached no dataset to grep"
    assert not leaks, "the password leaked into: " + "; ".join(leaks)


def test_no_mlflow_login_is_printed_logged_or_stored(postgres, tmp_path):
    """The same with an MLflow server that has a login: the workers' password (given only as
    MLFLOW_TRACKING_PASSWORD) is in no output, no database, no artifact and no lab file."""
    from tests.conftest import wait_for_mlflow
    from tests.test_distributed import ADMIN, ROOT, WORKER, make_account, signed_in

    url, socket_dir, port = postgres
    as_postgres("createdb", "-h", str(socket_dir), "-p", str(port), "-U", ROLE, "served")
    served = tmp_path / "server"
    served.mkdir()
    config = served / "auth.ini"
    config.write_text(
        (ROOT / "docker" / "mlflow-auth.ini").read_text().replace("sqlite:////mlauth/", f"sqlite:///{served}/")
    )
    server_env = os.environ | {
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        "MLFLOW_AUTH_CONFIG_PATH": str(config),
        "MLFLOW_AUTH_ADMIN_USERNAME": ADMIN[0],
        "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN[1],
        "MLFLOW_FLASK_SERVER_SECRET_KEY": "a-key-for-the-test-only",
    }
    server_port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--app-name",
            "basic-auth",
            "--host",
            "127.0.0.1",
            "--port",
            str(server_port),
            "--backend-store-uri",
            f"{url}/served",
            "--artifacts-destination",
            str(served / "artifacts"),
            "--serve-artifacts",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=server_env,
    )
    server_url = f"http://127.0.0.1:{server_port}"
    try:
        wait_for_mlflow(server_url, seconds=400)
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
    finally:
        server.terminate()
        server.wait(timeout=60)

    for secret in (WORKER[1], ADMIN[1]):
        leaks = [f"output of `vae-lab {command}`" for command, text in outputs.items() if secret in text]
        leaks += [f"pg_dump of {db}" for db in ("optuna", "served") if secret in pg_dump(socket_dir, port, db)]
        leaks += files_holding(lab, secret) + files_holding(served / "artifacts", secret)
        assert not leaks, "an MLflow password leaked into: " + "; ".join(leaks)
    assert any((served / "artifacts").rglob("*.html")), "the study logged no artifacts to grep"
