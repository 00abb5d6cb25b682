"""Typed settings, read from the environment or a `.env` file in the working directory.

Every setting is documented in `.env.example`. The defaults make a single machine work with no
setup: an SQLite MLflow store, artifacts under `./mlruns`, an Optuna journal file that several
local worker processes can share, and a bundled synthetic dataset made on first use.

Settings are validated like study fields: a store URI with a scheme vae-lab cannot use is a
one-line error naming the variable (with any password masked), before anything is touched.
Whether the stores answer is checked separately, by `vae_lab.stores.check_stores`.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from urllib.parse import unquote, urlsplit

from pydantic import AliasChoices, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from vae_lab.errors import VaeLabError

DATABASE_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")
TRACKING_SCHEMES = (*DATABASE_SCHEMES, "http", "https", "file")
OPTUNA_SCHEMES = ("sqlite", "postgresql", "mysql")  # anything without a scheme is a journal file
SECRET_QUERY_KEYS = re.compile(r"pass|token|secret|key|credential", re.IGNORECASE)
PASSWORD_IN_TEXT = re.compile(r"(//[^:/@]*:)[^@]*@")  # for a URI that urlsplit cannot take apart
ENV_NAMES = {
    "mlflow_tracking_uri": "MLFLOW_TRACKING_URI",
    "artifact_root": "VAE_LAB_ARTIFACT_ROOT",
    "optuna_storage": "VAE_LAB_OPTUNA_STORAGE",
    "data": "VAE_LAB_DATA",
    "cache_dir": "VAE_LAB_CACHE_DIR",
    "system_metrics": "VAE_LAB_SYSTEM_METRICS",
}


def uri_scheme(uri: str) -> str:
    """`postgresql` for postgresql+psycopg2://..., `` for a plain path."""
    if "://" not in uri and not uri.startswith(("sqlite:", "file:")):
        return ""
    return uri.split(":", 1)[0].split("+", 1)[0].lower()


def is_database_uri(uri: str) -> bool:
    return uri_scheme(uri) in DATABASE_SCHEMES


def sqlite_path(uri: str) -> Path | None:
    """The file an SQLite URI names, read as SQLAlchemy (and so MLflow and Optuna) reads it:
    `sqlite:///rel.db` is rel.db, `sqlite:////abs/x.db` is /abs/x.db, a ?query is not part of it.
    None for another scheme or an in-memory database."""
    if uri_scheme(uri) != "sqlite":
        return None
    from sqlalchemy.engine import make_url  # here: a command that opens no database skips its ~0.4 s import
    from sqlalchemy.exc import ArgumentError

    try:
        database = make_url(uri).database
    except ArgumentError:
        raise VaeLabError(
            f"SQLite URL {mask_uri(uri)}", "names no file", "write sqlite:///relative.db or sqlite:////absolute.db"
        ) from None
    return Path(database) if database and database != ":memory:" else None


def mask_uri(uri: str) -> str:
    """The URI with its password and secret-looking query values replaced by ***.

    A database URL is rendered again by SQLAlchemy, which finds the password as it would when
    connecting; any other URI keeps the rest as written (a query keeps its encoding). Either
    way the masked URI still names the same store.
    """
    masked = _without_password(uri)
    try:
        query = urlsplit(masked).query
    except ValueError:
        return masked
    if query:
        pieces = [_mask_query_piece(piece) for piece in query.split("&")]
        masked = masked.replace(f"?{query}", "?" + "&".join(pieces), 1)
    return masked


def _without_password(uri: str) -> str:
    if is_database_uri(uri):
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            return make_url(uri).render_as_string(hide_password=True)
        except ArgumentError:
            pass  # no URL SQLAlchemy could connect with either: masked as text below
    try:
        parts = urlsplit(uri)
    except ValueError:
        return re.sub(PASSWORD_IN_TEXT, r"\1***@", uri)
    if "@" in parts.netloc:
        credentials, host = parts.netloc.rsplit("@", 1)
        if ":" in credentials:
            return uri.replace(parts.netloc, f"{credentials.split(':', 1)[0]}:***@{host}", 1)
    elif "@" in uri.partition("//")[2]:  # an unencoded / ? or # in the password ends the netloc early
        return re.sub(PASSWORD_IN_TEXT, r"\1***@", uri)
    return uri


def _mask_query_piece(piece: str) -> str:
    key, sep, _ = piece.partition("=")
    return f"{key}=***" if sep and SECRET_QUERY_KEYS.search(unquote(key)) else piece


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    mlflow_tracking_uri: str = Field(
        default="sqlite:///mlflow.db",
        validation_alias=AliasChoices("MLFLOW_TRACKING_URI", "mlflow_tracking_uri"),
        description="MLflow tracking store: sqlite:///mlflow.db, postgresql+psycopg2://..., or http://server:5000.",
    )
    artifact_root: Path = Field(
        default=Path("mlruns"),
        validation_alias=AliasChoices("VAE_LAB_ARTIFACT_ROOT", "artifact_root"),
        description="Where new experiments keep artifacts when the tracking store is a database URI.",
    )
    optuna_storage: str = Field(
        default=".vae-lab/optuna-journal.log",
        validation_alias=AliasChoices("VAE_LAB_OPTUNA_STORAGE", "optuna_storage"),
        description="Optuna storage: a journal file path, sqlite:///..., or postgresql+psycopg2://...",
    )
    data: Path = Field(
        default=Path("data/synthetic.parquet"),
        validation_alias=AliasChoices("VAE_LAB_DATA", "data"),
        description="Dataset used when a study names none; the synthetic one is generated if absent.",
    )
    cache_dir: Path = Field(
        default=Path(".vae-lab/cache"),
        validation_alias=AliasChoices("VAE_LAB_CACHE_DIR", "cache_dir"),
        description="Where cleaned and split datasets are cached, keyed by content and options.",
    )
    system_metrics: bool = Field(
        default=True,
        validation_alias=AliasChoices("VAE_LAB_SYSTEM_METRICS", "system_metrics"),
        description="Log MLflow's system metrics (CPU, memory, disk, network, GPU) on every trial run.",
    )

    @field_validator("mlflow_tracking_uri")
    @classmethod
    def _tracking_scheme(cls, uri: str) -> str:
        uri = uri.strip()
        if not uri:
            raise ValueError("is empty; use sqlite:///mlflow.db, postgresql+psycopg2://..., or http://host:5000")
        if uri_scheme(uri) not in (*TRACKING_SCHEMES, ""):
            raise ValueError(
                f"has the scheme {uri_scheme(uri)!r}, which MLflow cannot track to; use one of {', '.join(TRACKING_SCHEMES)}"
            )
        if uri_scheme(uri) in ("http", "https") and not urlsplit(uri).hostname:
            raise ValueError("names no host; use http://host:port")
        return uri

    @field_validator("optuna_storage")
    @classmethod
    def _optuna_scheme(cls, url: str) -> str:
        url = url.strip()
        if not url:
            raise ValueError("is empty; use a journal file path, sqlite:///optuna.db or postgresql+psycopg2://...")
        scheme = uri_scheme(url.removeprefix("journal:"))
        if scheme and scheme not in OPTUNA_SCHEMES:
            raise ValueError(
                f"has the scheme {scheme!r}, which Optuna cannot store studies in; use a journal file path or one of {', '.join(OPTUNA_SCHEMES)}"
            )
        return url

    @field_validator("artifact_root", "cache_dir", "data")
    @classmethod
    def _path(cls, path: Path) -> Path:
        if "\x00" in str(path) or not str(path).strip():
            raise ValueError("is not a usable path")
        return path

    def masked(self) -> dict[str, str]:
        """Every setting as text, passwords masked: safe to print, log or tag."""
        return {ENV_NAMES[name]: mask_uri(str(value)) for name, value in self.model_dump().items()}


def load_settings() -> Settings:
    """Read the settings; a bad value is a VaeLabError naming the variable (value masked)."""
    try:
        return Settings()
    except ValidationError as exc:
        error = exc.errors()[0]
        field = str(error["loc"][0]) if error["loc"] else ""
        name = ENV_NAMES.get(field, field.upper())
        value = error.get("input")
        shown = f" ({mask_uri(value)})" if isinstance(value, str) and value.strip() else ""
        problem = error["msg"].removeprefix("Value error, ")
        raise VaeLabError(
            f"setting {name}{shown}", problem, f"fix {name} in the environment or .env (see .env.example)"
        ) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (tests clear the cache with `get_settings.cache_clear()`)."""
    return load_settings()
