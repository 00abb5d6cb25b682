"""The on-disk cache of prepared datasets: compact, keyed by content, written atomically.

Cleaning and splitting a large raw file takes seconds; a study runs it once and every trial
then loads the result from here in milliseconds. The key hashes the file's bytes (not its
name or mtime, which change without the data changing) with the preparation options, so an
edited file or new options can never be served a stale split.

A split is stored as coordinates of its occupied cells (row, flat cell index, value), since
grids are over 99% zero; the whole journal-sized dataset fits in about a megabyte.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

CACHE_FORMAT = 1  # bump when the stored layout or the cleaning/splitting rules change
SPLITS = ("train", "val", "test")


def file_digest(path: Path) -> str:
    """sha256 of the file's bytes, hex."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def cache_path(cache_dir: Path, source: Path, content_hash: str, options: dict) -> Path:
    """Where the prepared form of `source` with `options` lives (the file may not exist yet)."""
    key = json.dumps({"format": CACHE_FORMAT, "content": content_hash, **options}, sort_keys=True)
    return Path(cache_dir) / f"{source.stem}-{hashlib.sha256(key.encode()).hexdigest()[:20]}.npz"


def _encode(grids: np.ndarray) -> dict[str, np.ndarray]:
    flat = grids.reshape(len(grids), int(np.prod(grids.shape[1:])))
    rows, cells = np.nonzero(flat)
    cell_type = np.uint16 if flat.shape[1] <= 2**16 else np.uint32
    return {"rows": rows.astype(np.uint32), "cells": cells.astype(cell_type), "values": flat[rows, cells]}


def _decode(rows: np.ndarray, cells: np.ndarray, values: np.ndarray, n: int, grid: int) -> np.ndarray:
    flat = np.zeros((n, grid**3), dtype=np.uint8)
    flat[rows.astype(np.int64), cells.astype(np.int64)] = values
    return flat.reshape(n, grid, grid, grid)


def save_prepared(path: Path, splits: dict[str, tuple[np.ndarray, np.ndarray]], meta: dict) -> None:
    """Write {split: (grids, label codes)} and JSON-ready `meta` to `path`, atomically."""
    arrays = {"meta": np.array(json.dumps({"format": CACHE_FORMAT, **meta}))}
    for name, (grids, labels) in splits.items():
        arrays.update({f"{name}_{key}": value for key, value in _encode(grids).items()})
        arrays[f"{name}_labels"] = labels.astype(np.int32)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A crash mid-write leaves only a temp file; readers see the old cache or the new one.
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            np.savez(handle, **arrays)
        os.chmod(temp, 0o644)  # mkstemp makes it private; the cache is ordinary shared data
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def load_prepared(path: Path) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], dict] | None:
    """({split: (grids, label codes)}, meta) from `path`, or None if absent or unusable."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as archive:
            meta = json.loads(str(archive["meta"]))
            if meta.get("format") != CACHE_FORMAT:
                return None
            splits = {}
            for name in SPLITS:
                labels = archive[f"{name}_labels"].astype(np.int64)
                parts = (archive[f"{name}_{key}"] for key in ("rows", "cells", "values"))
                splits[name] = (_decode(*parts, len(labels), meta["grid"]), labels)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as error:
        # A damaged cache is only lost time: say so and rebuild it.
        logger.warning("ignoring unreadable dataset cache %s (%s)", path, error)
        return None
    return splits, meta
