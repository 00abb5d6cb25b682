"""`vae-lab data`: make, inspect and prepare voxel datasets."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from vae_lab.cli.common import JsonFlag, emit_json, err, out, user_errors

# Kept in step with vae_lab.data.synth.DEFAULT_ROWS (a test checks); importing the data layer
# here would cost every `vae-lab` command a second of start-up.
DEFAULT_ROWS = 280_375

app = typer.Typer(help="Make, inspect and prepare voxel datasets (Parquet, CSV or NPZ).", no_args_is_help=True)

SeedOption = Annotated[int, typer.Option("--seed", help="Random seed; the same seed gives the same result.")]


@app.command("synth")
@user_errors
def synth(
    out_path: Annotated[Path, typer.Option("--out", help="File to write: .parquet or .csv.")],
    rows: Annotated[
        int,
        typer.Option(
            "--rows",
            min=1,
            help="Raw rows, duplicates and all-zero rows included (~90% of them); the default is the journal's size.",
        ),
    ] = DEFAULT_ROWS,
    seed: SeedOption = 0,
    as_json: JsonFlag = False,
) -> None:
    """Write a synthetic dataset with the journal's character: an 11^3 grid, values 0-4, 1-8
    occupied cells per sample, rare classes, motif-family labels, and ~90% duplicate or
    all-zero raw rows to clean away."""
    from vae_lab.data import synthesize, write_dataset

    with err.status(f"synthesising {rows:,} rows"):
        frame = synthesize(rows=rows, seed=seed)
        write_dataset(frame, out_path)
    if as_json:
        emit_json({"path": str(out_path), "rows": len(frame), "seed": seed})
    else:
        out.print(f"wrote {len(frame):,} rows to {out_path}")


@app.command("summarize")
@user_errors
def summarize_command(
    path: Annotated[Path, typer.Argument(help="Dataset file (.parquet, .csv or .npz).")],
    as_json: JsonFlag = False,
) -> None:
    """Rows, duplicates, all-zero rows, what cleaning leaves, classes and labels."""
    from vae_lab.data import summarize

    summary = summarize(path)
    if as_json:
        emit_json(summary)
        return
    table = Table(title=f"{path}", show_header=False)
    for key in ("rows", "duplicate_rows", "all_zero_rows", "clean_rows", "grid", "max_occupied"):
        table.add_row(
            key.replace("_", " "), f"{summary[key]:,}" if isinstance(summary[key], int) else str(summary[key])
        )
    table.add_row("voxels per class", ", ".join(f"{k}: {v:,}" for k, v in summary["class_counts"].items()))
    if summary["label_counts"]:
        table.add_row("rows per label", ", ".join(f"{k}: {v:,}" for k, v in summary["label_counts"].items()))
    out.print(table)


@app.command("prepare")
@user_errors
def prepare(
    path: Annotated[Path, typer.Argument(help="Dataset file (.parquet, .csv or .npz).")],
    out_dir: Annotated[
        Optional[Path], typer.Option("--out", help="Cache directory (default VAE_LAB_CACHE_DIR).")
    ] = None,
    toy_fraction: Annotated[
        float,
        typer.Option(
            "--toy-fraction",
            min=0.0,
            max=1.0,
            help="Share of train and val to keep (the journal used 0.2); test is untouched.",
        ),
    ] = 1.0,
    seed: SeedOption = 0,
    as_json: JsonFlag = False,
) -> None:
    """Drop duplicate and all-zero rows, split 70/10/20 the journal's way (test 20%, then val
    12.5% of the rest), stratified by label, and cache the result for studies."""
    if toy_fraction <= 0:
        raise typer.BadParameter("must be above 0", param_hint="--toy-fraction")
    from vae_lab.data import prepare_dataset

    with err.status(f"preparing {path}"):
        data = prepare_dataset(path, toy_fraction=toy_fraction, seed=seed, cache_dir=out_dir)
    summary = data.summary()
    if as_json:
        emit_json(summary)
        return
    source = "cache" if data.from_cache else "cleaned and cached"
    out.print(
        f"{summary['rows']:,} rows -> {summary['clean_rows']:,} clean -> train {summary['train']:,} / "
        f"val {summary['val']:,} / test {summary['test']:,} (toy fraction {summary['toy_fraction']}, {source})"
    )
