"""Time the data layer on a raw file of the journal's size (280,375 rows of 11x11x11 voxels).

Run: python benchmarks/bench_data.py [--rows N]. Synthesizes the file in a temporary folder,
then times each stage on its own and the whole `prepare_dataset`, cold (no cache) and warm.
Record the figures, with the machine, in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from vae_lab.data import (
    clean,
    load_voxels,
    prepare_dataset,
    split_indices,
    summarize,
    synthesize,
    to_sparse,
    write_dataset,
)
from vae_lab.data.prepare import label_codes


def timed(label: str, results: list, action):
    start = time.perf_counter()
    value = action()
    results.append((label, time.perf_counter() - start))
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=280_375)
    rows = parser.parse_args().rows
    results: list[tuple[str, float]] = []
    with tempfile.TemporaryDirectory() as folder:
        path, cache = Path(folder) / "raw.parquet", Path(folder) / "cache"
        frame = timed("synthesize", results, lambda: synthesize(rows))
        timed("write parquet", results, lambda: write_dataset(frame, path))  # noqa: F821 - called before the del
        del frame
        table = timed("load_voxels", results, lambda: load_voxels(path))
        cleaned, report = timed("clean", results, lambda: clean(table))  # noqa: F821 - called at once
        codes, _ = label_codes(cleaned.labels, len(cleaned))
        train, _, _ = timed("split_indices", results, lambda: split_indices(len(cleaned), codes, seed=0))
        timed("to_sparse (train)", results, lambda: to_sparse(cleaned.grids[train]))
        del table
        timed("summarize", results, lambda: summarize(path))
        cold = timed("prepare_dataset cold", results, lambda: prepare_dataset(path, cache_dir=cache))
        warm = timed("prepare_dataset warm", results, lambda: prepare_dataset(path, cache_dir=cache))
        assert not cold.from_cache and warm.from_cache
        size_mb = path.stat().st_size / 1e6
        cache_mb = sum(f.stat().st_size for f in cache.iterdir()) / 1e6

    print(f"{rows:,} raw rows -> {report.clean_rows:,} clean -> {cold.summary()}")
    print(f"raw parquet {size_mb:.1f} MB, cache {cache_mb:.2f} MB, {os.cpu_count()} CPUs")
    print(f"| {'stage':<22} | {'seconds':>8} |\n|{'-' * 24}|{'-' * 9}:|")
    for label, seconds in results:
        print(f"| {label:<22} | {seconds:>8.2f} |")


if __name__ == "__main__":
    main()
