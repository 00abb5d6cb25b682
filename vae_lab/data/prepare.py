"""From a raw file to train / validation / test grids, once: load, clean, split, cache.

`prepare_dataset` is what training and studies call. The first call on a file cleans and
splits it (seconds on the journal's 280k rows) and caches the result; later calls with the
same file content and options load the cache. `default_dataset` supplies the bundled
synthetic dataset when the user names none.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from vae_lab.config import Settings, get_settings
from vae_lab.data.cache import cache_path, file_digest, load_prepared, save_prepared
from vae_lab.data.clean import clean
from vae_lab.data.load import load_voxels
from vae_lab.data.reference import DataRef
from vae_lab.data.split import split_indices, split_sizes
from vae_lab.data.synth import synthesize, write_dataset
from vae_lab.errors import VaeLabError


@dataclass
class VoxelSplit:
    """One split. grids: (N, D, D, D) uint8 values 0-4; labels: (N,) int64 codes, -1 if none."""

    grids: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.grids)


@dataclass
class PreparedDataset:
    """A cleaned, split dataset; `label_names[code]` is the file's label for a code."""

    train: VoxelSplit
    val: VoxelSplit
    test: VoxelSplit
    label_names: list[str]
    grid: int
    rows: int
    clean_rows: int
    toy_fraction: float
    seed: int
    source: Path
    content_hash: str
    from_cache: bool

    def reference(self) -> DataRef:
        """What these rows are, for records and MLflow dataset inputs."""
        return DataRef(
            path=str(self.source),
            content_hash=self.content_hash,
            toy_fraction=float(self.toy_fraction),
            seed=int(self.seed),
            grid=int(self.grid),
            rows={"train": len(self.train), "val": len(self.val), "test": len(self.test)},
            label_names=list(self.label_names),
        )

    def split(self, name: str) -> VoxelSplit:
        return {"train": self.train, "val": self.val, "test": self.test}[name]

    def summary(self) -> dict:
        """Row counts, JSON-ready (for run parameters and the CLI)."""
        return {
            "rows": self.rows,
            "clean_rows": self.clean_rows,
            "train": len(self.train),
            "val": len(self.val),
            "test": len(self.test),
            "toy_fraction": float(self.toy_fraction),
        }


def label_codes(labels: np.ndarray | None, n: int) -> tuple[np.ndarray, list[str]]:
    """int64 codes of labels in sorted label order (-1 for missing), and the names."""
    if labels is None:
        return np.full(n, -1, dtype=np.int64), []
    codes, names = pd.factorize(pd.Series(labels), sort=True)
    return codes.astype(np.int64), [str(name) for name in names]


def _build(path: Path, toy_fraction: float, seed: int, grid: int | None) -> tuple[dict, dict]:
    """Clean and split `path`: ({split: (grids, codes)}, meta) as the cache stores them."""
    table, report = clean(load_voxels(path, grid))
    if report.clean_rows == 0:
        raise VaeLabError(
            str(path),
            f"nothing left after cleaning: all {report.rows} rows are duplicates or all zero",
            "check that the voxel columns hold the descriptor values 1-4",
        )
    if split_sizes(report.clean_rows)[0] < 1:
        raise VaeLabError(
            str(path), f"only {report.clean_rows} distinct rows, too few to split", "use a dataset of at least 3 rows"
        )
    codes, names = label_codes(table.labels, len(table))
    stratify = codes if table.labels is not None else None
    indices = split_indices(len(table), stratify, seed, toy_fraction=toy_fraction)
    splits = {name: (table.grids[idx], codes[idx]) for name, idx in zip(("train", "val", "test"), indices)}
    meta = {"label_names": names, "grid": table.grid, "rows": report.rows, "clean_rows": report.clean_rows}
    return splits, meta


def prepare_dataset(
    path: str | Path,
    *,
    toy_fraction: float = 1.0,
    seed: int = 0,
    grid: int | None = None,
    cache_dir: str | Path | None = None,
) -> PreparedDataset:
    """Clean and split the dataset at `path`, or load that result from the cache.

    Args:
        toy_fraction: share of train and validation to keep (test is always whole), in (0, 1].
        grid: grid edge length, inferred from the column count when None.
        cache_dir: defaults to the `cache_dir` setting.
    """
    path = Path(path)
    if not 0 < toy_fraction <= 1:
        raise VaeLabError("toy_fraction", f"must be in (0, 1], got {toy_fraction}", "use e.g. 0.2 for a 20% toy set")
    if not path.is_file():
        raise VaeLabError(str(path), "file not found", "check the path, or set VAE_LAB_DATA")
    content_hash = file_digest(path)
    options = {"toy_fraction": float(toy_fraction), "seed": int(seed), "grid": grid}
    target = cache_path(Path(cache_dir or get_settings().cache_dir), path, content_hash, options)
    cached = load_prepared(target)
    if cached is None:
        _check_cache_folder(target.parent)
        splits, meta = _build(path, toy_fraction, seed, grid)
        try:
            save_prepared(target, splits, meta)
        except OSError as error:
            raise _cache_error(target.parent, error) from None
    else:
        splits, meta = cached
    return PreparedDataset(
        *(VoxelSplit(*splits[name]) for name in ("train", "val", "test")),
        label_names=list(meta["label_names"]),
        grid=int(meta["grid"]),
        rows=int(meta["rows"]),
        clean_rows=int(meta["clean_rows"]),
        toy_fraction=float(toy_fraction),
        seed=int(seed),
        source=path,
        content_hash=content_hash,
        from_cache=cached is not None,
    )


def _cache_error(folder: Path, error: OSError) -> VaeLabError:
    reason = error.strerror or type(error).__name__
    return VaeLabError(
        f"dataset cache {folder}",
        f"cannot be written ({reason})",
        "point VAE_LAB_CACHE_DIR (or --out) at a writable folder",
    )


def _check_cache_folder(folder: Path) -> None:
    """The cache folder exists or can be made, before seconds go into cleaning the data."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise _cache_error(folder, error) from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise _cache_error(folder, PermissionError(13, "permission denied"))


def default_dataset(path: str | Path | None = None) -> Path:
    """The dataset to use: `path`, else the `data` setting; the synthetic default is made if absent."""
    target = Path(path) if path is not None else get_settings().data
    if target.is_file():
        return target
    synthetic = Path(Settings.model_fields["data"].default)
    if target.resolve() != synthetic.resolve():
        raise VaeLabError(str(target), "file not found", "check the path, or set VAE_LAB_DATA")
    print(f"vae-lab: generating the synthetic dataset at {target} (first use)", file=sys.stderr)
    write_dataset(synthesize(), target)
    return target
