"""`vae-lab trial`: one trial of a stored study, looked at on its own."""

from __future__ import annotations

from typing import Annotated, Optional

import typer
from rich.table import Table

from vae_lab.cli.common import JsonFlag, emit_json, err, fmt, out, user_errors

app = typer.Typer(help="One trial of a stored study: retrain it from its record.", no_args_is_help=True)


@app.command("reproduce")
@user_errors
def reproduce(
    study: Annotated[str, typer.Argument(help="Study name as stored in the Optuna storage.")],
    number: Annotated[int, typer.Argument(min=0, help="The trial's number (`vae-lab study status STUDY` lists them).")],
    device: Annotated[
        Optional[str], typer.Option("--device", help="cpu, cuda or cuda:N (default: the device the trial ran on).")
    ] = None,
    anyway: Annotated[
        bool,
        typer.Option(
            "--anyway", help="Retrain even when the data file or vae-lab's or a library's version changed (says what)."
        ),
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Retrain a finished trial from its record (configuration, seed, data split, threads) in a new
    MLflow run tagged `reproduces`, and compare each best metric with the original's: bit for bit
    on the CPU, within the README's tolerance on a GPU. The study's trials and champion are not
    touched. Exit code 1 when the promise did not hold."""
    from vae_lab.runtime import check_device_spec
    from vae_lab.study.execution.reproduce import reproduce_trial

    if device is not None:
        check_device_spec(device, "--device")
    with err.status(f"retraining trial {number} of {study}"):
        result = reproduce_trial(study, number, device=device, anyway=anyway)
    for difference in result.differences:
        err.print(f"note: {difference} (--anyway)", markup=False, highlight=False)
    if as_json:
        emit_json(result.to_dict())
    else:
        table = Table(title=f"{study} trial {number} on {result.device}: run {result.run_id}")
        for column in ("metric", "original", "reproduced", "difference"):
            table.add_column(column, justify="left" if column == "metric" else "right")
        for pair in result.metrics:
            difference = pair.difference
            shown = "-" if difference is None else ("0" if difference == 0 else f"{difference:+.3g}")
            table.add_row(pair.name, shown_value(pair.original), shown_value(pair.reproduced), shown)
        out.print(table)
        verdict = "held" if result.held else "did NOT hold"
        out.print(f"promise: {result.promise}: {verdict}")
    if not result.held:
        raise typer.Exit(1)


def shown_value(value: float | None) -> str:
    """A metric to six places, a count (an epoch) as a whole number."""
    return fmt(int(value)) if value is not None and float(value).is_integer() else fmt(value, 6)
