"""Check the MLflow tracking store and the Optuna storage before anything touches them.

A study that finds out mid-run that its tracking server is down, or that writes half a study
into one store before the other refuses it, leaves the user a mess to repair. `check_stores`
runs first in every command that uses the stores: each check only reads (a connection, a
health request, a directory's permissions), finishes within seconds, and fails as one line
naming the store and its URI with any password masked.
"""

from __future__ import annotations

import importlib.util
import os
import socket
from pathlib import Path
from urllib.parse import urlsplit

from vae_lab.config import Settings, is_database_uri, mask_uri, uri_scheme
from vae_lab.errors import VaeLabError

CONNECT_TIMEOUT_S = 8
READ_TIMEOUT_S = 12
SQLITE_HEADER = b"SQLite format 3\x00"


def check_stores(settings: Settings, *, optuna: bool = True, tracking: bool = True) -> None:
    """Raise a VaeLabError if a store is unreachable or unusable; change nothing."""
    if tracking:
        check_tracking_store(settings)
    if optuna:
        check_optuna_storage(settings.optuna_storage)


def check_tracking_store(settings: Settings) -> None:
    uri = settings.mlflow_tracking_uri
    where = f"MLflow tracking store {mask_uri(uri)}"
    scheme = uri_scheme(uri)
    if scheme in ("http", "https"):
        _check_server(uri, where)
    elif scheme == "sqlite":
        _check_sqlite(_sqlite_path(uri), where)
    elif is_database_uri(uri):
        _check_database(uri, where)
    else:
        _check_writable_dir(Path(uri.removeprefix("file://").removeprefix("file:")), where)
    if is_database_uri(uri):
        _check_writable_dir(Path(settings.artifact_root), f"artifact root {settings.artifact_root} (VAE_LAB_ARTIFACT_ROOT)")


def check_optuna_storage(url: str) -> None:
    where = f"Optuna storage {mask_uri(url)}"
    scheme = uri_scheme(url.removeprefix("journal:"))
    if scheme == "sqlite":
        _check_sqlite(_sqlite_path(url), where)
    elif scheme:
        _check_database(url, where)
    else:
        path = Path(url.removeprefix("journal:"))
        if path.exists() and (path.is_dir() or not os.access(path, os.R_OK | os.W_OK)):
            raise VaeLabError(where, "is not a readable and writable file", "point VAE_LAB_OPTUNA_STORAGE at a journal file path")
        _check_writable_dir(path.parent, where)


def _sqlite_path(uri: str) -> Path:
    rest = uri.split(":", 1)[1].lstrip("/") if ":///" not in uri else uri.split(":///", 1)[1]
    return Path(rest.split("?", 1)[0])


def _check_sqlite(path: Path, where: str) -> None:
    if path.exists():
        if path.is_dir():
            raise VaeLabError(where, "is a folder, not an SQLite file", "name a file, e.g. sqlite:///mlflow.db")
        try:
            with open(path, "rb") as handle:
                header = handle.read(len(SQLITE_HEADER))
        except OSError as error:
            raise VaeLabError(where, f"cannot be read ({error.strerror})", "check the file's permissions") from None
        if header and header != SQLITE_HEADER:
            raise VaeLabError(where, "is not an SQLite database", "point the URI at an SQLite file or a new path")
        if not os.access(path, os.W_OK):
            raise VaeLabError(where, "is not writable", "check the file's permissions")
    _check_writable_dir(path.parent if str(path.parent) else Path("."), where)


def _check_writable_dir(folder: Path, where: str) -> None:
    """`folder` exists and is writable, or could be created in a writable ancestor."""
    folder = folder if str(folder) else Path(".")
    probe = folder
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise VaeLabError(where, f"{probe} is a file, not a folder", "choose a path inside a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise VaeLabError(where, f"{probe} is not writable", "choose a writable location")


def _check_database(url: str, where: str) -> None:
    import sqlalchemy

    scheme = uri_scheme(url)
    connect_args = {"connect_timeout": CONNECT_TIMEOUT_S} if scheme in ("postgresql", "mysql") else {}
    try:
        engine = sqlalchemy.create_engine(url, connect_args=connect_args, poolclass=sqlalchemy.pool.NullPool)
    except (ImportError, ModuleNotFoundError) as error:
        fix = "pip install vae-lab[postgres] (psycopg2) or the driver the URI names"
        if scheme == "postgresql" and "+" not in url.split(":", 1)[0] and importlib.util.find_spec("psycopg2"):
            # SQLAlchemy 2.1 reads a bare postgresql:// as psycopg 3; vae-lab installs psycopg2.
            fix = "name the installed driver: postgresql+psycopg2://..."
        raise VaeLabError(where, f"needs a database driver that is not installed ({error.name or error})", fix) from None
    except Exception as error:
        raise VaeLabError(where, f"is not a database URL SQLAlchemy understands ({type(error).__name__})", "use e.g. postgresql+psycopg2://user:password@host:5432/db") from None
    try:
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text("SELECT 1"))
    except Exception as error:
        raise VaeLabError(where, f"cannot be reached: {_database_reason(error)}", "check the host, port, database name and credentials") from None
    finally:
        engine.dispose()


def _database_reason(error: Exception) -> str:
    text = str(getattr(error, "orig", None) or error).strip().splitlines()
    first = text[0] if text else type(error).__name__
    for needle, reason in (("password authentication failed", "credentials rejected"), ("does not exist", "the database does not exist"), ("Connection refused", "connection refused"), ("timeout", "no answer in time"), ("could not translate host name", "unknown host")):
        if needle.lower() in " ".join(text).lower():
            return reason
    return mask_uri(first)[:160]


def _check_server(uri: str, where: str) -> None:
    """An MLflow tracking server: it must answer its REST API with the credentials given."""
    import requests

    parts = urlsplit(uri)
    auth = None
    if parts.username or os.environ.get("MLFLOW_TRACKING_USERNAME"):
        auth = (parts.username or os.environ.get("MLFLOW_TRACKING_USERNAME", ""), parts.password or os.environ.get("MLFLOW_TRACKING_PASSWORD", ""))
    headers = {"Authorization": f"Bearer {os.environ['MLFLOW_TRACKING_TOKEN']}"} if os.environ.get("MLFLOW_TRACKING_TOKEN") else {}
    netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
    base = f"{parts.scheme}://{netloc}{parts.path.rstrip('/')}"
    try:
        response = requests.get(f"{base}/api/2.0/mlflow/experiments/search", params={"max_results": 1}, auth=auth, headers=headers, timeout=(CONNECT_TIMEOUT_S, READ_TIMEOUT_S))
    except requests.exceptions.ConnectTimeout:
        raise VaeLabError(where, f"does not answer (no connection within {CONNECT_TIMEOUT_S} s)", "start the server (docker compose up -d mlflow) or fix MLFLOW_TRACKING_URI") from None
    except requests.exceptions.ReadTimeout:
        raise VaeLabError(where, f"accepted the connection but sent no answer within {READ_TIMEOUT_S} s", "check that an MLflow server runs there") from None
    except requests.exceptions.SSLError:
        raise VaeLabError(where, "TLS handshake failed", "check the certificate, or use http:// if the server has no TLS") from None
    except requests.exceptions.ConnectionError as error:
        reason = "unknown host" if isinstance(getattr(error.args[0], "reason", None), socket.gaierror) or "Name or service not known" in str(error) else "connection refused"
        raise VaeLabError(where, f"is not answering ({reason})", "start the server (docker compose up -d mlflow) or fix MLFLOW_TRACKING_URI") from None
    if response.status_code == 403 and "host" in response.text.lower():
        raise VaeLabError(where, f"refused the host name {parts.hostname!r} (MLflow's DNS-rebinding guard)", "start the server with --allowed-hosts naming it (MLFLOW_ALLOWED_HOSTS in docker compose)")
    if response.status_code in (401, 403):
        raise VaeLabError(where, f"rejected the credentials (HTTP {response.status_code})", "set MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN) to an account of the server")
    if response.status_code != 200 or "json" not in response.headers.get("Content-Type", ""):
        raise VaeLabError(where, f"answered HTTP {response.status_code}, not like an MLflow tracking server", "check the URL (host, port and path)")
