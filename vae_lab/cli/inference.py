"""`vae-lab encode` and `vae-lab generate`: a registered model used on data, from the shell."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from vae_lab.cli.common import JsonFlag, emit_json, err, fmt, out

AliasOption = Annotated[str, typer.Option("--alias", help="champion, or best-<family> (e.g. best-pointnet).")]
VersionOption = Annotated[Optional[int], typer.Option("--version", min=1, help="A version number (overrides --alias).")]


def encode_command(
    study: Annotated[str, typer.Argument(help="Registered model name (the study name unless the study set another).")],
    data: Annotated[
        Path, typer.Option("--data", help="Dataset file (.parquet, .csv, .npz) in the format `vae-lab data` reads.")
    ],
    out_path: Annotated[
        Path, typer.Option("--out", help="Output Parquet file: id, label, z*, logvar*, recon_f1, exact_match.")
    ],
    alias: AliasOption = "champion",
    version: VersionOption = None,
    batch_rows: Annotated[
        int, typer.Option("--batch-rows", min=1, help="Rows read and encoded at a time (bounds memory).")
    ] = 8192,
    as_json: JsonFlag = False,
) -> None:
    """Encode every row of a dataset with a registered model, streaming: latent means and
    log-variances, and each row's reconstruction F1 and exact match."""
    from vae_lab.inference import Source, encode_file

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task(f"encoding {data.name}", total=None)
        report = encode_file(
            Source(study, alias, version),
            data,
            out_path,
            batch_rows=batch_rows,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    if as_json:
        emit_json(report)
        return
    out.print(f"{report['rows']:,} rows encoded by {report['model']} (v{report['version']}) -> {report['out']}")


def generate_command(
    study: Annotated[str, typer.Argument(help="Registered model name (the study name unless the study set another).")],
    n: Annotated[int, typer.Option("--n", min=1, help="How many grids to generate.")] = 100,
    out_path: Annotated[
        Path, typer.Option("--out", help="Output dataset file (.parquet or .csv), readable by `vae-lab data`.")
    ] = Path("samples.parquet"),
    seed: Annotated[int, typer.Option("--seed", help="Seed of the latent draws (same seed, same grids).")] = 0,
    temperature: Annotated[float, typer.Option("--temperature", help="Scale of the prior's standard deviation.")] = 1.0,
    alias: AliasOption = "champion",
    version: VersionOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Decode grids from latents drawn from the prior, and compare them with the training data:
    all-zero grids, mean occupied cells, and the share that is valid (one connected fragment, no
    two atoms closer than the data has them), unique and novel, with the validation split's
    figures beside them. A `split` model draws only the content from the prior; each grid takes
    the pose of a training fragment (the prior's when the training data is gone)."""
    from vae_lab.inference import Source, generate

    with err.status(f"generating {n} grids"):
        report = generate(Source(study, alias, version), n, out_path, seed=seed, temperature=temperature)
    if as_json:
        emit_json(report)
        return
    out.print(f"{n} grids from {report['model']} (v{report['version']}, {report['architecture']}) -> {report['out']}")
    out.print(
        f"all-zero: {report['all_zero']} of {n}; mean occupied cells {fmt(report['mean_occupied'], 2)} "
        f"(training data: {fmt(report['training_mean_occupied'], 2)})"
    )
    if report["poses"]:
        out.print(f"content from the prior, poses from the {report['poses']}")
    if "gen_validity" in report:
        out.print(
            f"valid {fmt(100 * report['gen_validity'], 1)}% (the validation split: "
            f"{fmt(100 * report['gen_validity_baseline'], 1)}%), unique {fmt(100 * report['gen_uniqueness'], 1)}%, "
            f"novel {fmt(100 * report['gen_novelty'], 1)}%; distance to the training data: occupied cells "
            f"{fmt(report['gen_count_distance'], 3)} (validation: {fmt(report['gen_count_distance_baseline'], 3)}), "
            f"classes {fmt(report['gen_class_distance'], 3)} (validation: {fmt(report['gen_class_distance_baseline'], 3)})"
        )
