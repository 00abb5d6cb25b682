"""What the Ray tests share: a small grid study written into a lab, the CLI in-process, and the
checks that a refusal is one line and wrote nothing."""

from __future__ import annotations

from typer.testing import CliRunner

from vae_lab.cli import app
from vae_lab.data import synthesize, write_dataset

GRID = """
name: {name}
data: {{path: voxels.parquet}}
training: {{epochs: {epochs}, patience: {epochs}}}
space: {{architecture: [fc], latent_dim: [{dims}]}}
artifacts: {{pca: false, reconstructions: 0, interpolation: false, plotlyjs: cdn}}
"""


EMPTY_STORES: dict = {}  # lab -> its MLflow store's bytes before the command (the lab starts with an empty one)


def write_study(lab, name: str, dims: str = "2, 3, 4, 5", epochs: int = 1, rows: int = 1500) -> None:
    write_dataset(synthesize(rows=rows, seed=7), lab / "voxels.parquet")
    (lab / "studies" / f"{name}.yaml").write_text(GRID.format(name=name, dims=dims, epochs=epochs))
    EMPTY_STORES[lab] = (lab / "mlflow.db").read_bytes() if (lab / "mlflow.db").exists() else None


def cli(*args: str):
    return CliRunner().invoke(app, list(args))


def assert_refused(result, *words: str) -> None:
    """Exit 2 with one line of error naming `words`, and no traceback."""
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1, result.stderr
    assert all(word in lines[0] for word in words), lines[0]


def nothing_written(lab) -> bool:
    """No Optuna journal was created in the lab and its MLflow store is as it was."""
    store = (lab / "mlflow.db").read_bytes() if (lab / "mlflow.db").exists() else None
    return not (lab / ".vae-lab" / "optuna.log").exists() and store == EMPTY_STORES.get(lab)
