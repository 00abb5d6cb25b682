"""vae-lab's code inside every logged model, as one archive: `code/vae_lab.zip`.

A model must load where vae-lab is not installed (its class is pickled by reference), so it
carries the package. Carried as a folder (MLflow's `code_paths` given a directory) that is one
file per module, about a hundred uploads to a tracking server on every trial; as one zip it is
one. Loading needs nothing of vae-lab's: MLflow's loaders (pyfunc and pytorch alike) put
`<model>/<the flavor's code>` on `sys.path`, and when the flavor's `code` names the archive
itself, Python imports vae_lab from inside it (zipimport).
"""

from __future__ import annotations

import io
import zipfile
from functools import lru_cache
from pathlib import Path

from mlflow.models import Model

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # the vae_lab package
ARCHIVE_NAME = "vae_lab.zip"
CODE_DIR = "code"  # where MLflow copies `code_paths` inside the model folder
ARCHIVE_ENTRY = f"{CODE_DIR}/{ARCHIVE_NAME}"  # the flavors' `code`, relative to the model folder
# Fixed entry times make the archive's bytes depend on the code alone.
EPOCH = (1980, 1, 1, 0, 0, 0)


@lru_cache(maxsize=1)
def package_archive() -> bytes:
    """The vae_lab package (modules and the data files beside them, no bytecode) as zip bytes.

    Built once per process: every model the process logs runs the code it imported at start,
    so that is the code each one carries."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(PACKAGE_DIR.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                entry = zipfile.ZipInfo(path.relative_to(PACKAGE_DIR.parent).as_posix(), EPOCH)
                entry.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(entry, path.read_bytes())
    return buffer.getvalue()


def write_archive(folder: Path) -> Path:
    """The archive as a file in `folder`, to hand MLflow as the model's one `code_paths` entry."""
    path = folder / ARCHIVE_NAME
    path.write_bytes(package_archive())
    return path


def point_flavors_at_archive(description: Model) -> None:
    """Make every flavor whose code MLflow copied to `code/` name the archive in it, so its
    loader puts the archive, not the folder holding it, on `sys.path`."""
    for flavor in description.flavors.values():
        if flavor.get("code") == CODE_DIR:
            flavor["code"] = ARCHIVE_ENTRY
