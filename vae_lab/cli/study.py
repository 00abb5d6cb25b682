"""`vae-lab study`: run, resume and inspect Optuna studies defined in studies/*.yaml."""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.table import Table

from vae_lab.choices import Engine
from vae_lab.cli.common import JsonFlag, emit_json, err, fmt, out, user_errors
from vae_lab.study.design.spec import known_studies, load_study_spec, renamed

if TYPE_CHECKING:
    from vae_lab.study.reading.trials import TrialRow

app = typer.Typer(
    help="Run and inspect studies (Optuna searches whose trials are logged to MLflow).", no_args_is_help=True
)


def command_name() -> str:
    """How the user can call vae-lab again: the bare name if it is on PATH, else the path used."""
    if shutil.which("vae-lab") or not sys.argv[0].endswith("vae-lab"):
        return "vae-lab"
    return os.path.relpath(sys.argv[0])


def trials_table(trials: list[TrialRow], title: str, best: int | None) -> Table:
    """Trials as rows; hyperparameters that vary get a column each, fixed ones go in the caption."""
    names = list(dict.fromkeys(k for t in trials for k in t.params))
    varying = [n for n in names if len({repr(t.params.get(n)) for t in trials}) > 1]
    fixed = [f"{n}={trials[0].params[n]}" for n in names if n not in varying and n in trials[0].params]
    table = Table(title=title, caption=("fixed: " + " ".join(fixed)) if fixed else None)
    notes = any(t.failure_reason for t in trials)
    for column in ("#", "state", "value", "best epoch", "time (s)", *varying, *(["why"] if notes else [])):
        table.add_column(column, justify="left" if column in ("state", "why") or column in varying else "right")
    for t in trials:
        style = "bold green" if t.number == best else None
        cells = [str(t.params.get(n, "-")) for n in varying]
        why = [(t.failure_reason or "")[:60]] if notes else []
        table.add_row(
            str(t.number), t.state, fmt(t.value), fmt(t.best_epoch), fmt(t.duration_s, 1), *cells, *why, style=style
        )
    return table


DeviceOption = Annotated[
    Optional[str],
    typer.Option(
        "--device", help="auto (CUDA if there is one), cpu, cuda or cuda:N; overrides the study's training.device."
    ),
]
EngineOption = Annotated[
    Engine,
    typer.Option(
        "--engine", help="local: processes on this machine; ray: Ray tasks on a cluster (pip install -e '.\\[ray]')."
    ),
]
CpusPerWorkerOption = Annotated[
    float, typer.Option("--cpus-per-worker", min=0.01, help="With --engine ray: CPUs each worker holds on its node.")
]
GpusPerWorkerOption = Annotated[
    float,
    typer.Option(
        "--gpus-per-worker", min=0.0, help="With --engine ray: GPUs each worker holds (0.5: two workers share one)."
    ),
]
ThreadsOption = Annotated[
    Optional[int],
    typer.Option("--threads", min=1, max=256, help="Compute threads of each worker (default: the cores shared out)."),
]


@app.command("run")
@user_errors
def run(
    study: Annotated[
        str,
        typer.Argument(
            help="A study name (./studies/ first, then the shipped ones: quick, seed-grid, ...) or a path to a YAML file."
        ),
    ],
    n_trials: Annotated[
        Optional[int],
        typer.Option(
            "--n-trials", min=1, help="Run this many more trials in all (default: what the study still owes)."
        ),
    ] = None,
    data: Annotated[
        Optional[Path], typer.Option("--data", help="Dataset file, overriding the study's and VAE_LAB_DATA.")
    ] = None,
    name: Annotated[
        Optional[str],
        typer.Option("--name", help="Run under another name: a separate study, experiment and registered model."),
    ] = None,
    device: DeviceOption = None,
    workers: Annotated[
        int,
        typer.Option(
            "--workers", min=1, max=64, help="Worker processes on this machine (one GPU each when there are several)."
        ),
    ] = 1,
    threads: ThreadsOption = None,
    engine: EngineOption = Engine.LOCAL,
    ray_address: Annotated[
        Optional[str],
        typer.Option(
            "--ray-address",
            help="With --engine ray: the cluster (host:port or ray://host:10001; default RAY_ADDRESS, else a local Ray instance for the run).",
        ),
    ] = None,
    cpus_per_worker: CpusPerWorkerOption = 1.0,
    gpus_per_worker: GpusPerWorkerOption = 0.0,
    as_json: JsonFlag = False,
) -> None:
    """Run a study, or resume it: trials already finished are kept and a grid is never restarted.

    Each trial trains one VAE and logs params, per-epoch metrics, figures and the model to
    MLflow; the best model becomes the registered model's `champion`, the best of each family
    `best-<family>`. Prints the plan's estimate first. Ctrl-C stops cleanly (every worker) and
    the same command carries on; so does it after a worker was killed.
    """
    from vae_lab.runtime import check_device_spec

    spec, path = load_study_spec(study)
    if name:
        spec = renamed(spec, name)
    if device:
        check_device_spec(device, "--device")
    from vae_lab.study.execution.admission import admit

    if engine is Engine.LOCAL and (ray_address or cpus_per_worker != 1.0 or gpus_per_worker):
        from vae_lab.errors import VaeLabError

        raise VaeLabError(
            "--ray-address/--cpus-per-worker/--gpus-per-worker", "only apply with --engine ray", "add --engine ray"
        )
    cluster, placement = contextlib.nullcontext(), None
    if engine is Engine.RAY:  # refused or connected before anything else (see ray_cluster)
        from vae_lab.study.execution.ray_cluster import RayPlacement, open_cluster

        placement = RayPlacement.of(ray_address, cpus_per_worker, gpus_per_worker)
        cluster = open_cluster(placement, workers)
    with cluster:
        admission = admit(spec, data_path=data, device=device, where=str(path))
        _print_plan_estimate(spec, data, device, workers, threads, placement)
        report = _run_study(spec, study, admission, workers, placement, n_trials, device, threads)
    if as_json:
        emit_json(report.to_dict())
        return
    best = report.champion["tags"].get("trial") if report.champion else None
    out.print(trials_table(report.trials, f"study {spec.name}", int(best) if best is not None else None))
    if report.champion:
        c = report.champion
        out.print(
            f"champion: [bold]{c['uri']}[/] (version {c['version']}, trial {c['tags'].get('trial')}, "
            f"{c['tags'].get('best_architecture')}, {c['tags'].get('objective')} = {float(c['tags'].get('value', 'nan')):.4f})"
        )
        families = [a for a in c.get("aliases", {}) if a.startswith("best-")]
        if len(families) > 1:
            out.print(
                f"best of each family: {', '.join(f'@{a}' for a in families)} (vae-lab registry show {spec.model_name} --alias best-...)"
            )
    else:
        out.print("no trial finished, so there is no champion yet")
    out.print(
        f"compare the runs in the MLflow UI: [bold]{command_name()} ui[/], then open {ui_link(report)}", soft_wrap=True
    )


def _run_study(spec, study: str, admission, workers: int, placement, n_trials, device, threads):
    """Run the admitted study with the chosen launcher and one progress display; Ctrl-C exits 130."""
    from vae_lab.cli.progress import RichStudyProgress
    from vae_lab.study.execution import interrupts

    interrupts.install()  # Ctrl-C or SIGTERM: finish cleanly; a second one: stop at once
    try:
        with RichStudyProgress() as progress:
            if placement is not None:
                from vae_lab.study.execution.ray_workers import run_study_ray

                return run_study_ray(
                    admission, workers, placement, sink=progress, n_trials=n_trials, device=device, threads=threads
                )
            if workers > 1:
                from vae_lab.study.execution.workers import run_study_workers

                return run_study_workers(
                    spec, workers, sink=progress, n_trials=n_trials, device=device, admission=admission, threads=threads
                )
            from vae_lab.study.execution.run import run_study
            from vae_lab.threads import apply_threads, worker_threads

            apply_threads(worker_threads(1, threads))
            return run_study(spec, n_trials=n_trials, sink=progress, admission=admission)
    except KeyboardInterrupt:
        err.print(f"interrupted: finished trials are kept; `{command_name()} study run {study}` resumes")
        raise typer.Exit(130) from None


def ui_link(report) -> str:
    from vae_lab.tracking import runs_link

    base = report.tracking_uri if report.tracking_uri.startswith(("http://", "https://")) else "http://127.0.0.1:5000"
    return runs_link(base, report.experiment_id)


def _print_plan_estimate(
    spec, data: Optional[Path], device: Optional[str], workers: int, threads: Optional[int], placement=None
) -> None:
    """The plan's one-line estimate before a run starts (never fatal: a run does not need it)."""
    try:
        from vae_lab.study.design.planner import RayResources, plan_study

        ray = RayResources(placement.cpus_per_worker, placement.gpus_per_worker) if placement else None
        plan = plan_study(spec, data_path=data, device=device, workers=workers, threads=threads, ray=ray)
    except Exception as error:  # noqa: BLE001 - an estimate must never stop a study
        err.print(f"no estimate: {error}", style="dim", markup=False, highlight=False, soft_wrap=True)
        return
    err.print(plan.headline())
    for line in plan.warnings:
        err.print(f"[yellow]warning:[/] {line}")


@app.command("status")
@user_errors
def status(
    study: Annotated[str, typer.Argument(help="Study name as stored in the Optuna storage.")],
    as_json: JsonFlag = False,
) -> None:
    """Trials of a study so far (states, values, params), without running anything."""
    from vae_lab.study.reading.status import study_status

    status = study_status(study)
    if as_json:
        emit_json(status.to_dict())
        return
    best = status.best.number if status.best else None
    out.print(trials_table(status.trials, f"study {study} ({', '.join(status.directions)})", best))
    for source, count in status.learned.items():
        out.print(f"(its sampler also learned from {count} trial(s) of study {source}: not trials of {study})")


@app.command("report")
@user_errors
def report(
    study: Annotated[str, typer.Argument(help="Study name as stored in the Optuna storage.")],
    out_file: Annotated[
        Path, typer.Option("--out", help="Where to write the page (one self-contained HTML file).")
    ] = Path("report.html"),
) -> None:
    """A study's story on one page: its YAML, planned vs real time, leaderboard, Pareto front or
    history, best per family, every trial's curves, the champion's figures, failures and reasons."""
    from vae_lab.study.reading.story import write_report

    path = write_report(study, out_file)
    out.print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, opens offline)")


@app.command("compare")
@user_errors
def compare(
    first: Annotated[str, typer.Argument(help="A stored study.")],
    second: Annotated[str, typer.Argument(help="Another stored study.")],
    out_file: Annotated[
        Optional[Path], typer.Option("--out", help="Also write the two studies side by side as an HTML page.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Two studies side by side (e.g. one recipe on two datasets): a table here, a page with --out."""
    from vae_lab.study.reading.story import compare_studies

    rows = compare_studies(first, second, out_file)
    if as_json:
        emit_json({"studies": [first, second], "rows": [{"what": w, first: a, second: b} for w, a, b in rows]})
        return
    table = Table(title=f"{first} vs {second}")
    for column, justify in (("", "left"), (first, "right"), (second, "right")):
        table.add_column(column, justify=justify)
    for row in rows:
        table.add_row(*row)
    out.print(table)
    if out_file is not None:
        out.print(f"wrote {out_file}")


@app.command("list")
@user_errors
def list_studies(as_json: JsonFlag = False) -> None:
    """Study definitions: ./studies/*.yaml, then the studies shipped with vae-lab."""
    rows = []
    for path in known_studies().values():
        spec, _ = load_study_spec(str(path))
        rows.append(
            {
                "name": spec.name,
                "path": str(path),
                "sampler": spec.sampler,
                "trials": spec.planned_trials,
                "description": spec.description,
            }
        )
    if as_json:
        emit_json(rows)
        return
    table = Table(title="studies")
    for column in ("name", "sampler", "trials", "description"):
        table.add_column(column)
    for r in rows:
        table.add_row(r["name"], r["sampler"], str(r["trials"]), r["description"])
    out.print(table)


@app.command("plan")
@user_errors
def plan(
    study: Annotated[str, typer.Argument(help="A study name or a path to a YAML file.")],
    data: Annotated[
        Optional[Path], typer.Option("--data", help="Dataset file, overriding the study's and VAE_LAB_DATA.")
    ] = None,
    device: DeviceOption = None,
    workers: Annotated[int, typer.Option("--workers", min=1, max=64, help="Worker processes the run would use.")] = 1,
    threads: ThreadsOption = None,
    engine: EngineOption = Engine.LOCAL,
    cpus_per_worker: CpusPerWorkerOption = 1.0,
    gpus_per_worker: GpusPerWorkerOption = 0.0,
    as_json: JsonFlag = False,
) -> None:
    """What a study will cost here, before it spends anything: trials, epochs, rows, FLOPs per
    trial and the wall time from a few seconds of calibration (cached per machine), with the
    range pruning allows and a warning when it runs past a working day."""
    from vae_lab.runtime import check_device_spec
    from vae_lab.study.design.planner import RayResources, duration, plan_study

    spec, _ = load_study_spec(study)
    if device:
        check_device_spec(device, "--device")
    ray = RayResources(cpus_per_worker, gpus_per_worker) if engine is Engine.RAY else None
    with err.status(f"calibrating {spec.name} on this machine (cached after the first time)"):
        result = plan_study(spec, data_path=data, device=device, workers=workers, threads=threads, ray=ray)
    if as_json:
        emit_json(result.to_dict())
        return
    where = result.device + (f" x {result.workers} Ray workers" if ray else "")
    table = Table(title=f"plan of study {spec.name} on {where}", show_header=False)
    table.add_row("trials", f"{result.trials}")
    table.add_row("epochs at most", f"{result.max_epochs}")
    table.add_row("rows per epoch", f"{result.rows_per_epoch:,} train + {result.val_rows:,} val")
    table.add_row("FLOPs per trial", f"{result.flops_per_trial:.3g}")
    table.add_row("estimated wall time", duration(result.estimated_s))
    if result.estimated_s_pruned:
        low, high = result.estimated_s_pruned
        table.add_row(f"with {spec.pruner.kind} pruning", f"{duration(low)} to {duration(high)}")
    for cost in result.configs:
        table.add_row(
            f"  {cost.architecture}/{cost.output} {cost.loss} batch {cost.batch_size}",
            f"{cost.trials:g} trial(s), {cost.train_samples_per_s:,.0f} train rows/s, {cost.epoch_s:.2f} s/epoch",
        )
    out.print(table)
    for line in result.assumptions:
        err.print(f"assumed: {line}")
    for line in result.warnings:
        err.print(f"[yellow]warning:[/] {line}")


@app.command("show")
@user_errors
def show(
    study: Annotated[str, typer.Argument(help="A study name or a path to a YAML file.")],
    as_json: JsonFlag = False,
) -> None:
    """Print a study's YAML (the shipped `quick` documents every field), and its grid size."""
    spec, path = load_study_spec(study)
    if as_json:
        emit_json(
            {"path": str(path), "spec": spec.model_dump(mode="json", exclude_none=True), "trials": spec.planned_trials}
        )
        return
    out.print(path.read_text(), markup=False, highlight=False)
    count = spec.planned_trials
    err.print(f"{path}: {spec.sampler} study of {count} trial{'' if count == 1 else 's'}")
