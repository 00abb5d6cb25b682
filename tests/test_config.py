"""Store URIs: the file behind an SQLite URL, and URIs made safe to print."""

from __future__ import annotations

from pathlib import Path

import pytest

from vae_lab.config import mask_uri, sqlite_path
from vae_lab.errors import VaeLabError


@pytest.mark.parametrize(
    ("uri", "path"),
    [
        ("sqlite:///mlflow.db", Path("mlflow.db")),
        ("sqlite:////abs/lab/optuna.db", Path("/abs/lab/optuna.db")),
        ("sqlite+pysqlite:///lab/x.db?timeout=30", Path("lab/x.db")),  # the driver and query are not the file
        ("sqlite:///a%20b.db", Path("a b.db")),  # percent-decoded, as SQLAlchemy opens it
        ("sqlite://", None),  # in memory
        ("sqlite:///:memory:", None),
        ("postgresql+psycopg2://u:p@h/db", None),
        ("http://server:5000", None),
        (".vae-lab/optuna-journal.log", None),
    ],
)
def test_sqlite_path_is_the_file_sqlalchemy_opens(uri, path):
    assert sqlite_path(uri) == path


def test_an_sqlite_url_naming_no_file_is_a_user_error():
    with pytest.raises(VaeLabError, match="sqlite:///relative.db"):
        sqlite_path("sqlite:mlflow.db")


@pytest.mark.parametrize(
    ("uri", "masked"),
    [
        ("postgresql+psycopg2://vae:pw-4711@db:5432/optuna", "postgresql+psycopg2://vae:***@db:5432/optuna"),
        # SQLAlchemy reads everything up to the last @ as the password, slashes and ? included
        ("postgresql://vae:p/w?x@db/mlflow?sslpassword=zz", "postgresql://vae:***@db/mlflow?sslpassword=***"),
        (  # a database URL is rendered again by SQLAlchemy: its query in key order
            "postgresql://vae:pw@db/mlflow?password=x&application_name=lab",
            "postgresql://vae:***@db/mlflow?application_name=lab&password=***",
        ),
        ("mysql://vae@db/optuna", "mysql://vae@db/optuna"),
        ("sqlite:////abs/path.db", "sqlite:////abs/path.db"),
        # any other URI keeps all but its secrets as written
        ("http://user:secret@mlflow:5000/", "http://user:***@mlflow:5000/"),
        ("http://user:p/w@mlflow/", "http://user:***@mlflow/"),
        ("https://mlflow/x?api_key=1&a=b%20c#frag", "https://mlflow/x?api_key=***&a=b%20c#frag"),
        ("http://[broken/?x=1", "http://[broken/?x=1"),
        ("file:///tmp/mlruns", "file:///tmp/mlruns"),
        (".vae-lab/optuna-journal.log", ".vae-lab/optuna-journal.log"),
    ],
)
def test_mask_uri_hides_passwords_and_secret_query_values(uri, masked):
    assert mask_uri(uri) == masked
