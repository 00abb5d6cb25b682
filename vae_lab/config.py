"""Typed settings, read from the environment or a `.env` file in the working directory.

Every setting is documented in `.env.example`. The defaults make a single machine work with no
setup: an SQLite MLflow store, artifacts under `./mlruns`, an Optuna journal file that several
local worker processes can share, and a bundled synthetic dataset made on first use.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    mlflow_tracking_uri: str = Field(
        default="sqlite:///mlflow.db",
        validation_alias=AliasChoices("MLFLOW_TRACKING_URI", "mlflow_tracking_uri"),
        description="MLflow tracking store: sqlite:///mlflow.db, postgresql://..., or http://server:5000.",
    )
    artifact_root: Path = Field(
        default=Path("mlruns"),
        validation_alias=AliasChoices("VAE_LAB_ARTIFACT_ROOT", "artifact_root"),
        description="Where new experiments keep artifacts when the tracking store is a database URI.",
    )
    optuna_storage: str = Field(
        default=".vae-lab/optuna-journal.log",
        validation_alias=AliasChoices("VAE_LAB_OPTUNA_STORAGE", "optuna_storage"),
        description="Optuna storage: a journal file path, sqlite:///..., or postgresql://...",
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


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (tests clear the cache with `get_settings.cache_clear()`)."""
    return Settings()
