"""Real services for the tests and benchmarks that need them, as docker-compose.yml runs them.

`start_postgres`: a throwaway PostgreSQL 15 cluster on loopback (databases `optuna` and
`mlflow`), trusting every login or, given a password, asking for it over TCP (scram-sha-256).
`mlflow_login_server`: `mlflow server --app-name basic-auth` on a PostgreSQL database, with the
admin from `ADMIN`; `make_account` adds the other accounts as docker/mlflow-accounts.py does.
Needs PostgreSQL's server binaries (`initdb`, `pg_ctl`), which CI machines have. The tests get
one of each per session through tests/conftest.py (`postgres`, `login_server`).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import free_port, wait_for_mlflow

ROOT = Path(__file__).resolve().parents[1]
# The accounts of the login, as docker-compose.yml makes them: an admin from the environment, the
# workers' account (EDIT) and, in the tests, a read-only one.
ADMIN = ("admin", "Admin-pw-for-the-test-1")
WORKER = ("worker", "Worker-pw-for-the-test-2")
READER = ("reader", "Reader-pw-for-the-test-3")
# Three workers with their heartbeats and a login server ran out of PostgreSQL's default 100.
MAX_CONNECTIONS = 300
# The session's cluster (tests/conftest.py `postgres`) wants this role's password over TCP, as a
# production one does; tests/test_secrets.py looks for the password everywhere it must not be.
ROLE = "vae"
PASSWORD = "Sup3r-Secret-pw-4711"


def database_name(url: str) -> str:
    return url.rsplit("/", 1)[1]


def have_postgres() -> bool:
    return bool(shutil.which("initdb") and shutil.which("pg_ctl"))


def as_postgres(*command: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run a PostgreSQL tool as the `postgres` user when this process is root."""
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    done = subprocess.run([*prefix, *command], capture_output=True, text=True, errors="replace", timeout=120, cwd="/")
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(command)}: {done.stderr}")
    return done


@dataclass
class Postgres:
    """A running throwaway cluster. `url`: the server's URL without a database name."""

    url: str
    root: Path
    port: int
    role: str
    databases_made: int = 0

    @property
    def socket(self) -> Path:
        return self.root

    def createdb(self, name: str) -> None:
        as_postgres("createdb", "-h", str(self.socket), "-p", str(self.port), "-U", self.role, name)

    def new_database(self, prefix: str) -> str:
        """A new, empty database named after `prefix` (and a counter); returns its URL. One
        cluster serves the whole session (tests/conftest.py `postgres`), each test its own databases."""
        self.databases_made += 1
        name = f"{prefix}_{self.databases_made}"
        self.createdb(name)
        return f"{self.url}/{name}"

    def dump(self, database: str) -> str:
        return as_postgres("pg_dump", "-h", str(self.socket), "-p", str(self.port), "-U", self.role, database).stdout

    def stop(self) -> None:
        """Stop the cluster and delete its files; never fails (a test's result is not about this)."""
        data = self.root / "data"
        stopped = as_postgres("pg_ctl", "-D", str(data), "-m", "immediate", "stop", check=False)
        pid_file = data / "postmaster.pid"
        if stopped.returncode != 0 and pid_file.is_file():
            try:
                os.kill(int(pid_file.read_text().split()[0]), signal.SIGKILL)
            except (OSError, ValueError, IndexError):
                pass
        shutil.rmtree(self.root, ignore_errors=True)


def start_postgres(*, role: str = "postgres", password: str | None = None) -> Postgres:
    """A new cluster on a free loopback port with databases `optuna` and `mlflow`.

    With `password`, TCP logins (what vae-lab uses) need it and the socket (set-up, pg_dump)
    trusts; without, every login is trusted.
    """
    # Not under pytest's basetemp: another pytest run may chmod /tmp/pytest-of-<user> back to
    # 0700 at any time, and the postgres user would lose its way to the cluster mid-test.
    root = Path(tempfile.mkdtemp(prefix="vae-lab-pg-"))
    data = root / "data"
    if os.geteuid() == 0:
        os.chmod(root, 0o755)
        shutil.chown(root, "postgres")
    cluster = Postgres(url="", root=root, port=free_port(), role=role)
    try:
        if password is None:
            as_postgres("initdb", "-D", str(data), "--auth=trust", "-U", role)
        else:
            pwfile = root / "pwfile"
            pwfile.write_text(password + "\n")
            if os.geteuid() == 0:
                shutil.chown(pwfile, "postgres")
            auth = ("--auth-host=scram-sha-256", "--auth-local=trust")
            as_postgres("initdb", "-D", str(data), "-U", role, f"--pwfile={pwfile}", *auth)
            pwfile.unlink()
        options = f"-p {cluster.port} -k {root} -c listen_addresses=127.0.0.1 -c max_connections={MAX_CONNECTIONS}"
        as_postgres("pg_ctl", "-D", str(data), "-l", str(root / "log"), "-w", "-o", options, "start")
        for database in ("optuna", "mlflow"):
            cluster.createdb(database)
    except BaseException:
        cluster.stop()
        raise
    login = role if password is None else f"{role}:{password}"
    cluster.url = f"postgresql+psycopg2://{login}@127.0.0.1:{cluster.port}"
    return cluster


def signed_in(account: tuple[str, str]) -> dict[str, str]:
    """The environment that signs an MLflow client in as `account`."""
    return {"MLFLOW_TRACKING_USERNAME": account[0], "MLFLOW_TRACKING_PASSWORD": account[1]}


@contextmanager
def mlflow_login_server(
    backend_uri: str, folder: Path, *, log: Path | None = None, wait_s: float = 400
) -> Iterator[str]:
    """`mlflow server --app-name basic-auth` on `backend_uri`, its artifacts and login database in
    `folder`; yields its URL once it answers, and stops it afterwards."""
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "auth.ini"
    config.write_text(
        (ROOT / "docker" / "mlflow-auth.ini").read_text().replace("sqlite:////mlauth/", f"sqlite:///{folder}/")
    )
    env = os.environ | {
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        "MLFLOW_AUTH_CONFIG_PATH": str(config),
        "MLFLOW_AUTH_ADMIN_USERNAME": ADMIN[0],
        "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN[1],
        "MLFLOW_FLASK_SERVER_SECRET_KEY": "a-key-for-the-tests-only",
    }
    port = free_port()
    command = [sys.executable, "-m", "mlflow", "server", "--app-name", "basic-auth", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--backend-store-uri", backend_uri]
    command += ["--artifacts-destination", str(folder / "artifacts"), "--serve-artifacts"]
    output = open(log, "w") if log else subprocess.DEVNULL
    server = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_mlflow(url, seconds=wait_s)  # the login app's start is slow on a busy 2-core machine
        yield url
    finally:
        server.terminate()
        server.wait(timeout=60)
        if log:
            output.close()


def make_account(url: str, account: tuple[str, str], permission: str) -> None:
    """Add `account` with `permission` (READ, EDIT, ...) through docker/mlflow-accounts.py, as the admin."""
    env = (
        os.environ
        | signed_in(ADMIN)
        | {
            "MLFLOW_TRACKING_URI": url,
            "MLFLOW_ACCOUNT_USERNAME": account[0],
            "MLFLOW_ACCOUNT_PASSWORD": account[1],
            "MLFLOW_ACCOUNT_PERMISSION": permission,
        }
    )
    done = subprocess.run(
        [sys.executable, str(ROOT / "docker" / "mlflow-accounts.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
