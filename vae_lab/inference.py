"""Use a registered model on data: encode a dataset file to latents, generate grids from the prior.

`encode_file` streams the file in batches (Parquet row batches, CSV blocks; an NPZ is read
whole) and appends each batch's results to the output Parquet file, so memory stays bounded by
a batch and the file's largest row group, whatever the row count. Its numbers come from
`vae_lab.training.predict`, the same functions the MLflow pyfunc calls, so `vae-lab encode`,
the pyfunc, the scoring server and a Spark UDF give the same latents.

`generate` decodes latents drawn from the prior into a dataset file `vae-lab data` reads, and
says how many grids came out empty against the training data (a decoder that only emits empty
grids shows up here at once) and how valid, unique and novel they are (`training.generation`).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from vae_lab.config import Settings, get_settings
from vae_lab.data.frames import frame_of_grids
from vae_lab.data.load import (
    ID_COLUMN,
    LABEL_COLUMN,
    PARQUET_SUFFIXES,
    SUFFIXES,
    VoxelTable,
    load_voxels,
    voxels_from_table,
)
from vae_lab.data.sparse import occupied_counts
from vae_lab.data.synth import write_dataset
from vae_lab.errors import VaeLabError
from vae_lab.registry import CHAMPION, load_version
from vae_lab.stores import check_stores
from vae_lab.study.trial.provenance import ENCODING_KIND, RunTag
from vae_lab.study.trial.what_ran import record_what_ran, what_ran_tags
from vae_lab.tracking import Tracker
from vae_lab.training.predict import output_frame, predict, sample_prior

ENCODE_BATCH = 8192  # rows per read: ~11 MB of grids, a small slice of the 2 GB budget
Progress = Callable[[int, int | None], None]  # (rows done, total rows or None when unknown)


@dataclass
class Source:
    """Which registered version to use: an alias, or a version number (which wins)."""

    name: str
    alias: str = CHAMPION
    version: int | None = None


def encode_file(
    source: Source,
    data: Path,
    out: Path,
    *,
    batch_rows: int = ENCODE_BATCH,
    progress: Progress | None = None,
    settings: Settings | None = None,
) -> dict:
    """Write `id`, `label` (when the file has them), z*, logvar*, recon_f1 and exact_match per row to `out`."""
    settings = settings or get_settings()
    model, info = _load(source, settings)
    if out.suffix.lower() not in PARQUET_SUFFIXES:
        raise VaeLabError(str(out), "latents are written as Parquet", "name the output file *.parquet")
    batches, total = read_batches(Path(data), model.config.grid, batch_rows)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    os.close(fd)
    writer, rows = None, 0
    try:
        for table in batches:
            frame = encoded_frame(model, table)
            arrow = pa.Table.from_pandas(frame, preserve_index=False, schema=writer.schema if writer else None)
            writer = writer or pq.ParquetWriter(temp, arrow.schema)
            writer.write_table(arrow)
            rows += len(frame)
            if progress:
                progress(rows, total)
        if writer is None:
            raise VaeLabError(str(data), "the file has no rows", "encode a file with at least one row")
        writer.close()
        os.chmod(temp, 0o644)
        os.replace(temp, out)
    except BaseException:
        if writer is not None:
            writer.close()
        Path(temp).unlink(missing_ok=True)
        raise
    run_id = log_encoding(Tracker(settings), info, data, out, rows)
    return {
        "model": info["uri"],
        "version": info["version"],
        "rows": rows,
        "out": str(out),
        "latent_dim": model.config.latent_dim,
        "encoding_run_id": run_id,
    }


def log_encoding(tracker: Tracker, info: dict, data: Path, out: Path, rows: int) -> str:
    """An encoding run beside the model's trial (same experiment): which version encoded which
    file into which, and with what it ran."""
    experiment_id = tracker.client.get_run(info["run_id"]).info.experiment_id
    run_id = tracker.start_run(
        experiment_id,
        f"encode {data.name} with {info['name']} v{info['version']}",
        tags={
            RunTag.KIND: ENCODING_KIND,
            RunTag.MODEL: info["name"],
            RunTag.MODEL_VERSION: info["version"],
            **({RunTag.ALIAS: info["alias"]} if info["alias"] else {}),
            **what_ran_tags(),
        },
        params={"data": str(data.resolve()), "out": str(out.resolve()), "rows": rows, "model_uri": info["uri"]},
    )
    record_what_ran(tracker, run_id)
    tracker.end_run(run_id)
    return run_id


def encoded_frame(model, table: VoxelTable) -> pd.DataFrame:
    """One batch's output rows: ids and labels carried, then latents, log-variances and scores."""
    result = predict(model, table.grids)
    frame = pd.concat([output_frame(result, "latent_with_logvar"), output_frame(result, "scores")], axis=1)
    if table.labels is not None:
        frame.insert(0, LABEL_COLUMN, table.labels)
    if table.ids is not None:
        frame.insert(0, ID_COLUMN, table.ids)
    return frame


def read_batches(path: Path, grid: int, batch_rows: int) -> tuple[Iterator[VoxelTable], int | None]:
    """Checked batches of a dataset file of edge `grid`, and its row count when known upfront."""
    if not path.is_file():
        raise VaeLabError(str(path), "file not found", "check the path")
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise VaeLabError(
            str(path), f"unknown dataset format {suffix or '(no extension)'!r}", "use .parquet, .csv or .npz"
        )
    if suffix == ".npz":  # NPZ cannot be read in parts
        table = load_voxels(path, grid)
        return iter([table]), len(table)
    try:
        if suffix in PARQUET_SUFFIXES:
            file = pq.ParquetFile(path)
            reader, total = file.iter_batches(batch_size=batch_rows), file.metadata.num_rows
        else:
            reader, total = pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=64 << 20)), None
        first = next(iter(reader), None)
    except (pa.ArrowException, OSError, ValueError) as error:
        raise VaeLabError(str(path), f"unreadable file ({error})", "re-export it as Parquet or CSV") from None
    # The first batch is checked here, before any output exists: a wrong grid size fails fast.
    head = voxels_from_table(path, pa.Table.from_batches([first]), grid) if first is not None else None

    def batches() -> Iterator[VoxelTable]:
        if head is not None:
            yield head
        try:
            for batch in reader:
                yield voxels_from_table(path, pa.Table.from_batches([batch]), grid)
        except (pa.ArrowException, OSError) as error:
            raise VaeLabError(
                str(path), f"unreadable past its first rows ({error})", "re-export it as Parquet"
            ) from None

    return batches(), total


def generate(
    source: Source, n: int, out: Path, *, seed: int = 0, temperature: float = 1.0, settings: Settings | None = None
) -> dict:
    """Decode `n` grids from z ~ N(0, T^2 I) into a dataset file; compare their occupancy with the training data's."""
    if n < 1:
        raise VaeLabError("--n", f"{n} grids", "ask for at least one")
    if temperature <= 0:
        raise VaeLabError("--temperature", f"{temperature} is not positive", "use a temperature > 0, e.g. 1.0")
    settings = settings or get_settings()
    model, info = _load(source, settings)
    training = training_reference(info["run_id"], settings)
    reference = training[1] if training else None
    poses = reference.pose_grids if reference is not None and model.pose_dims else None
    grids = sample_prior(model, n, seed=seed, temperature=temperature, pose_grids=poses)
    path = write_dataset(frame_of_grids(grids, ids=np.arange(n, dtype=np.int64)), out)
    counts = occupied_counts(grids)
    report = {
        "model": info["uri"],
        "version": info["version"],
        "architecture": model.name,
        "out": str(path),
        "grids": n,
        "seed": seed,
        "temperature": temperature,
        "all_zero": int((counts == 0).sum()),
        "mean_occupied": float(counts.mean()),
        # A split model's poses come from the training data when it is still where the record says.
        "poses": None if not model.pose_dims else "training data" if poses is not None else "prior",
    }
    report.update(against_training(grids, training))
    return report


def training_reference(run_id: str, settings: Settings):
    """(training grids, `GenerationReference`) of the trial's data, from its record; None when
    the training data file is no longer where the record says."""
    from vae_lab.study.reading.record import read_record
    from vae_lab.training.generation import GenerationReference

    record = read_record(Tracker(settings), run_id, f"run {run_id}")
    path = Path(record.data.path)
    if not path.is_file():
        return None
    data = record.data.prepare(path, settings.cache_dir)
    return data.train.grids, GenerationReference.from_splits(data.train.grids, data.val.grids)


def against_training(grids: np.ndarray, training) -> dict:
    """The training split's all-zero share and mean occupied cells, and the generation scores of
    `grids` against it (`training.generation`, as each trial measures them); None figures when
    the training data is gone (`training_reference` gave None)."""
    from vae_lab.training.generation import generation_scores

    if training is None:
        return {"training_mean_occupied": None, "training_all_zero_share": None}
    train, reference = training
    counts = occupied_counts(train)
    return {
        "training_mean_occupied": float(counts.mean()),
        "training_all_zero_share": float((counts == 0).mean()),
        **generation_scores(grids, reference),
        **reference.baseline,
    }


def _load(source: Source, settings: Settings | None):
    settings = settings or get_settings()
    check_stores(settings, optuna=False)
    return load_version(Tracker(settings), source.name, source.alias, source.version)
