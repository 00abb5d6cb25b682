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
from typing import Any
from urllib.parse import urlsplit

from vae_lab.config import Settings, is_database_uri, mask_uri, sqlite_path, uri_scheme
from vae_lab.errors import VaeLabError

CONNECT_TIMEOUT_S = 8
READ_TIMEOUT_S = 12
SQLITE_HEADER = b"SQLite format 3\x00"


def check_stores(
    settings: Settings,
    *,
    optuna: bool = True,
    tracking: bool = True,
    experiment: str | None = None,
    model: str | None = None,
) -> None:
    """Raise a VaeLabError if a store is unreachable or unusable; change nothing. With `experiment`
    (and `model`, the registered model, by default the same name), a tracking server with logins
    must also let this user write them."""
    if tracking:
        check_tracking_store(settings, experiment, model)
    if optuna:
        check_optuna_storage(settings.optuna_storage)


def check_tracking_store(settings: Settings, experiment: str | None = None, model: str | None = None) -> None:
    uri = settings.mlflow_tracking_uri
    where = f"MLflow tracking store {mask_uri(uri)}"
    scheme = uri_scheme(uri)
    if scheme in ("http", "https"):
        _check_server(uri, where, experiment, model)
    elif scheme == "sqlite":
        _check_sqlite(uri, where)
    elif is_database_uri(uri):
        _check_database(uri, where)
    else:
        _check_writable_dir(Path(uri.removeprefix("file://").removeprefix("file:")), where)
    if is_database_uri(uri):
        _check_writable_dir(
            Path(settings.artifact_root), f"artifact root {settings.artifact_root} (VAE_LAB_ARTIFACT_ROOT)"
        )


def check_optuna_storage(url: str) -> None:
    where = f"Optuna storage {mask_uri(url)}"
    scheme = uri_scheme(url.removeprefix("journal:"))
    if scheme == "sqlite":
        _check_sqlite(url, where)
    elif scheme:
        _check_database(url, where)
    else:
        path = Path(url.removeprefix("journal:"))
        if path.exists() and (path.is_dir() or not os.access(path, os.R_OK | os.W_OK)):
            raise VaeLabError(
                where, "is not a readable and writable file", "point VAE_LAB_OPTUNA_STORAGE at a journal file path"
            )
        _check_writable_dir(path.parent, where)


def _check_sqlite(uri: str, where: str) -> None:
    path = sqlite_path(uri)
    if path is None:  # in memory: nothing to check
        return
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
        raise VaeLabError(
            where, f"needs a database driver that is not installed ({error.name or error})", fix
        ) from None
    except Exception as error:
        raise VaeLabError(
            where,
            f"is not a database URL SQLAlchemy understands ({type(error).__name__})",
            "use e.g. postgresql+psycopg2://user:password@host:5432/db",
        ) from None
    try:
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text("SELECT 1"))
    except Exception as error:
        raise VaeLabError(
            where,
            f"cannot be reached: {_database_reason(error)}",
            "check the host, port, database name and credentials",
        ) from None
    finally:
        engine.dispose()


def _database_reason(error: Exception) -> str:
    text = str(getattr(error, "orig", None) or error).strip().splitlines()
    first = text[0] if text else type(error).__name__
    for needle, reason in (
        ("password authentication failed", "credentials rejected"),
        ("does not exist", "the database does not exist"),
        ("Connection refused", "connection refused"),
        ("timeout", "no answer in time"),
        ("could not translate host name", "unknown host"),
    ):
        if needle.lower() in " ".join(text).lower():
            return reason
    return mask_uri(first)[:160]


def _check_server(uri: str, where: str, experiment: str | None = None, model: str | None = None) -> None:
    """An MLflow tracking server: it must answer its REST API with the credentials given and, when
    it has MLflow's login (`--app-name basic-auth`), let this user write `experiment` and `model`."""
    import requests

    parts = urlsplit(uri)
    if parts.username or parts.password:
        said = "holds a user name or password, which MLflow would show and log with the URI"
        raise VaeLabError(where, said, f"remove it from MLFLOW_TRACKING_URI and {LOGIN_FIX}")
    user = os.environ.get("MLFLOW_TRACKING_USERNAME")
    # With no user set, requests (like MLflow's client) falls back to a netrc entry for the host.
    auth = (user, os.environ.get("MLFLOW_TRACKING_PASSWORD", "")) if user else None
    token = os.environ.get("MLFLOW_TRACKING_TOKEN")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    base = uri.rstrip("/")

    def get(path: str, **params: str) -> Any:
        timeout = (CONNECT_TIMEOUT_S, READ_TIMEOUT_S)
        return requests.get(f"{base}{path}", params=params, auth=auth, headers=headers, timeout=timeout)

    start_it = "start the server (docker compose up -d mlflow) or fix MLFLOW_TRACKING_URI"
    try:
        _check_answer(get("/api/2.0/mlflow/experiments/search", max_results="1"), where, parts.hostname or "", user)
        if experiment is not None:
            _check_write_permission(get, where, user, experiment, model or experiment)
    except requests.exceptions.ConnectTimeout:
        raise VaeLabError(where, f"is not answering (no connection within {CONNECT_TIMEOUT_S} s)", start_it) from None
    except requests.exceptions.ReadTimeout:
        said = f"accepted the connection but sent no answer within {READ_TIMEOUT_S} s"
        raise VaeLabError(where, said, "check that an MLflow server runs there") from None
    except requests.exceptions.SSLError:
        raise VaeLabError(
            where, "TLS handshake failed", "check the certificate, or use http:// if the server has no TLS"
        ) from None
    except requests.exceptions.ConnectionError as error:
        reason = getattr(error.args[0], "reason", None) if error.args else None
        unknown = isinstance(reason, socket.gaierror) or "Name or service not known" in str(error)
        said = f"is not answering ({'unknown host' if unknown else 'connection refused'})"
        raise VaeLabError(where, said, start_it) from None


LOGIN_FIX = "set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (or a netrc entry for the host)"
WRITERS = ("EDIT", "MANAGE")


def _check_answer(response: Any, where: str, host: str, user: str | None) -> None:
    if response.status_code == 403 and "host" in response.text.lower():
        said = f"refused the host name {host!r} (MLflow's DNS-rebinding guard)"
        fix = "start the server with --allowed-hosts naming it (MLFLOW_ALLOWED_HOSTS in docker compose)"
        raise VaeLabError(where, said, fix)
    if response.status_code == 401 and user:
        said = f"refused the credentials of user {user!r} (HTTP 401)"
        raise VaeLabError(where, said, "check MLFLOW_TRACKING_PASSWORD (or the netrc entry) for that user")
    if response.status_code == 401:
        said = "wants a login and none was given (HTTP 401)"
        raise VaeLabError(where, said, f"{LOGIN_FIX}, an account of the server")
    if response.status_code == 403:
        said = f"does not allow user {user or '(netrc)'!r} to read experiments (HTTP 403)"
        raise VaeLabError(where, said, "ask the server's admin for a worker account (READ and EDIT)")
    if response.status_code != 200 or "json" not in response.headers.get("Content-Type", ""):
        said = f"answered HTTP {response.status_code}, not like an MLflow tracking server"
        raise VaeLabError(where, said, "check the URL (host, port and path)")


def _check_write_permission(get: Any, where: str, user: str | None, experiment: str, model: str) -> None:
    """Refuse up front what the server would refuse (HTTP 403) after a study had started writing.

    Only reads: who this user is, and their effective permission on the study's experiment and
    registered model where those exist (any user may create new ones: MLflow's rule when its
    workspaces are off)."""
    me = get("/api/2.0/mlflow/users/current")
    if me.status_code == 404:  # a server without MLflow's login: everyone may write
        return
    _check_answer(me, where, "", user)
    account = me.json().get("user", {})
    if account.get("is_admin"):
        return
    name = account.get("username", "")
    targets = []
    found = get("/api/2.0/mlflow/experiments/get-by-name", experiment_name=experiment)
    if found.status_code == 200:
        experiment_id = found.json()["experiment"]["experiment_id"]
        targets.append(("experiment", experiment_id, f"experiment {experiment!r}", "write runs to"))
    if get("/api/2.0/mlflow/registered-models/get", name=model).status_code == 200:
        targets.append(("registered_model", model, f"registered model {model!r}", "register versions of"))
    for kind, key, named, act in targets:
        answer = get("/api/3.0/mlflow/users/permissions/get", username=name, resource_type=kind, resource_id=key)
        permission = answer.json().get("permission", "?") if answer.status_code == 200 else f"HTTP {answer.status_code}"
        if permission not in WRITERS:
            said = f"would not allow user {name!r} to {act} {named} (HTTP 403: it may only {permission})"
            raise VaeLabError(where, said, f"use a worker account, or have the admin grant it EDIT on {named}")
