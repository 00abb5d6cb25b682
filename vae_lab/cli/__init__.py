"""The `vae-lab` command line: thin commands over the library, one sub-app per area."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from vae_lab.cli import data, inference, models, study, trial
from vae_lab.cli.common import JsonFlag, emit_json, err, fmt, out, report_user_error, user_errors
from vae_lab.errors import VaeLabError

app = typer.Typer(
    help="Tune and compare VAEs on sparse 3D voxel data: Optuna studies, tracked in MLflow.\n\n"
    "Start with:  vae-lab study run quick   then   vae-lab ui",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(data.app, name="data")
app.add_typer(models.app, name="models")
app.add_typer(study.app, name="study")
app.add_typer(trial.app, name="trial")
app.command("encode")(user_errors(inference.encode_command))
app.command("generate")(user_errors(inference.generate_command))
registry_app = typer.Typer(help="The MLflow model registry: each study's champion.", no_args_is_help=True)
app.add_typer(registry_app, name="registry")


@registry_app.command("show")
@user_errors
def registry_show(
    name: Annotated[str, typer.Argument(help="Registered model name (the study name unless the study set another).")],
    alias: Annotated[str, typer.Option("--alias", help="champion, or best-<family> (e.g. best-conv).")] = "champion",
    as_json: JsonFlag = False,
) -> None:
    """The champion of a registered model (or another alias): version, tags, source run, and
    every alias of the model (`best-<family>` points at the best trial of each family)."""
    from vae_lab.config import get_settings, mask_uri
    from vae_lab.model_card import usage as registry_usage
    from vae_lab.registry import champion_info
    from vae_lab.stores import check_stores
    from vae_lab.tracking import Tracker

    settings = get_settings()
    check_stores(settings, optuna=False)
    info = champion_info(Tracker(settings), name, alias)
    usage = registry_usage(info, mask_uri(settings.mlflow_tracking_uri))
    if as_json:
        emit_json({**info, "usage": usage})
        return
    table = Table(title=f"{info['uri']} -> version {info['version']}", show_header=False)
    table.add_row("run", info["run_id"])
    for key, value in sorted(info["tags"].items()):
        table.add_row(key, value)
    table.add_row("aliases", ", ".join(f"{a} -> v{v}" for a, v in info["aliases"].items()))
    out.print(table)
    out.print("use it from Python:", style="bold")
    for line in usage["python"]:
        out.print(f"  {line}", markup=False, highlight=False)
    out.print("serve it (POST /invocations with dataframe_split or instances):", style="bold")
    for line in usage["serve"]:
        out.print(f"  {line}", markup=False, highlight=False)
    out.print("evaluate it, or encode a dataset with it:", style="bold")
    for line in usage["vae_lab"]:
        out.print(f"  {line}", markup=False, highlight=False)


@app.command("evaluate")
@user_errors
def evaluate_command(
    name: Annotated[
        str,
        typer.Argument(help="Registered model name; its `champion` alias is evaluated unless --alias says otherwise."),
    ],
    split: Annotated[
        str, typer.Option("--split", help="train, val or test. val reproduces the trial's logged best val metrics.")
    ] = "test",
    alias: Annotated[str, typer.Option("--alias", help="champion, or best-<family> (e.g. best-conv).")] = "champion",
    data_path: Annotated[
        Optional[Path], typer.Option("--data", help="Dataset file if it moved since training.")
    ] = None,
    device: Annotated[
        str,
        typer.Option(
            "--device", help="auto, cpu, cuda or cuda:N (a champion trained on a GPU evaluates on a CPU too)."
        ),
    ] = "auto",
    as_json: JsonFlag = False,
) -> None:
    """Reload models:/NAME@champion from the registry, score it on a split of the data it was
    trained on (same rows, class weights and loss), and log an evaluation run."""
    from vae_lab.evaluation import evaluate_registered
    from vae_lab.runtime import check_device_spec

    if split not in {"train", "val", "test"}:
        raise VaeLabError("--split", f"unknown split {split!r}", "use train, val or test")
    check_device_spec(device, "--device")
    with err.status(f"evaluating {name}@{alias} on {split}"):
        result = evaluate_registered(name, split, alias=alias, data_path=data_path, device=device)  # type: ignore[arg-type]
    if as_json:
        emit_json(result)
        return
    table = Table(title=f"{name}@{alias} v{result['version']} on {split} ({result['rows']:,} rows)")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in result["metrics"].items():
        table.add_row(key, fmt(value))
    out.print(table)
    if not result["same_data"]:
        err.print(
            "note: this file's bytes differ from the training data's, so the split is not the one the model was selected on"
        )


@app.command("bench")
@user_errors
def bench(
    arch: Annotated[
        Optional[list[str]],
        typer.Option("--arch", help="A family to measure (repeat for several; default: every family)."),
    ] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Training batch size.")] = 256,
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda or cuda:N.")] = "auto",
    precision: Annotated[
        str, typer.Option("--precision", help="fp32, bf16 or fp16 (autocast; the peak is measured in it too).")
    ] = "fp32",
    rows: Annotated[
        Optional[int],
        typer.Option("--rows", min=1, help="Training rows per measured epoch (default: sized to the device)."),
    ] = None,
    trial: Annotated[
        bool,
        typer.Option(
            "--trial/--no-trial", help="Also time three quick-style trials end to end (the median is reported)."
        ),
    ] = True,
    system_metrics: Annotated[
        bool,
        typer.Option(
            "--system-metrics/--no-system-metrics",
            help="Also measure what MLflow's system metrics cost the trainer (fc, sampled and not, interleaved; ~45 s).",
        ),
    ] = True,
    as_json: JsonFlag = False,
) -> None:
    """The trainer against a bare PyTorch loop and the hardware: samples/s of each, their ratio,
    FLOPs per training sample (counted from the layers), MFU against this device's matmul peak
    measured in the same run, the trainer's speed with system metrics sampled against without,
    and one trial's time split into training, validation and overhead."""
    from vae_lab.benchmark import run_bench
    from vae_lab.models import ARCHITECTURES
    from vae_lab.runtime import check_device_spec

    check_device_spec(device, "--device")
    if precision not in ("fp32", "bf16", "fp16"):
        raise VaeLabError("--precision", f"unknown precision {precision!r}", "use fp32, bf16 or fp16")
    unknown = [a for a in arch or [] if a not in ARCHITECTURES]
    if unknown:
        raise VaeLabError("--arch", f"unknown architecture {unknown[0]!r}", f"use any of: {', '.join(ARCHITECTURES)}")
    with err.status("benchmarking") as status:
        report = run_bench(
            list(arch or ARCHITECTURES),
            batch_size=batch_size,
            device=device,
            precision=precision,
            rows=rows,
            trial=trial,
            system_metrics=system_metrics,
            progress=status.update,
        )
    if as_json:
        emit_json(report.to_dict())
        return
    table = Table(title=f"{report.device}, {report.precision}: matmul peak {report.peak_gflops:,.1f} GFLOP/s")
    for column in ("arch", "batch", "trainer samples/s", "bare samples/s", "ratio", "GFLOP/sample", "MFU"):
        table.add_column(column, justify="left" if column == "arch" else "right")
    for a in report.archs:
        table.add_row(
            a.arch,
            str(a.batch_size),
            f"{a.samples_per_s:,.0f}",
            f"{a.bare_samples_per_s:,.0f}",
            f"{a.ratio:.2f}",
            f"{a.flops_per_sample / 1e9:.3f}",
            f"{a.mfu:.1%}",
        )
    out.print(table)
    if report.system_metrics:
        m = report.system_metrics
        out.print(
            f"system metrics (fc, {m['rows']:,} rows, sampled every {m['interval_s']:g} s): "
            f"{m['on_samples_per_s']:,.0f} samples/s on, {m['off_samples_per_s']:,.0f} off, "
            f"ratio {m['ratio']:.3f} (median epochs of {m['rounds']} interleaved pairs of {m['window_s']:g} s windows); "
            f"the sampling thread used {m['monitor_cpu_share']:.1%} of a core; "
            f"load average {m['load_average'][0]:.2f} before, {m['load_average'][1]:.2f} after"
        )
    if report.trial:
        t = report.trial
        out.print(
            f"the median of {len(t['overhead_s_all'])} quick-style trials ({t['epochs']} epochs): "
            f"{t['wall_s']:.2f} s = train {t['train_s']:.2f} + val {t['val_s']:.2f} + overhead {t['overhead_s']:.2f} "
            f"(setup {t['setup_s']:.2f}, tracking {t['tracking_s']:.2f}, "
            f"projections and figures {t['projections_s']:.2f}, model logging {t['model_logging_s']:.2f}); "
            f"every trial's overhead: {', '.join(f'{o:.2f}' for o in t['overhead_s_all'])} s"
        )


@app.command("ui")
@user_errors
def ui(
    port: Annotated[int, typer.Option("--port", help="Port of the MLflow UI.")] = 5000,
    host: Annotated[str, typer.Option("--host", help="Interface to listen on.")] = "127.0.0.1",
    workers: Annotated[
        int, typer.Option("--workers", min=1, max=16, help="Server processes (one is plenty for one person).")
    ] = 1,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the command instead of starting the UI.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Open the MLflow UI on the configured tracking store (MLFLOW_TRACKING_URI), with a link
    to each study's training runs."""
    from vae_lab.config import get_settings, mask_uri
    from vae_lab.stores import check_stores

    settings = get_settings()
    uri = settings.mlflow_tracking_uri
    check_stores(settings, optuna=False)
    served = uri.startswith(("http://", "https://"))
    base = runs_base(uri) if served else f"http://{host}:{port}"
    # The store URI goes to MLflow in its environment, not on the command line, where `ps`
    # would show any password in it to every user of the machine.
    command = (
        []
        if served
        else [sys.executable, "-m", "mlflow", "ui", "--host", host, "--port", str(port), "--workers", str(workers)]
    )
    store_env = {} if served else {"MLFLOW_BACKEND_STORE_URI": uri}
    links = study_links(settings, base)
    if as_json or dry_run:
        shown_env = {k: mask_uri(v) for k, v in store_env.items()}  # never print a password
        if as_json:
            emit_json({"command": command, "env": shown_env, "url": base, "studies": links})
        else:
            prefix = " ".join(f"{k}={shlex.quote(v)}" for k, v in shown_env.items())
            out.print(f"{prefix} {shlex.join(command)}" if command else f"the tracking store is a server: open {base}")
        return
    err.print(f"MLflow UI on {base}" + (" (Ctrl-C to stop)" if command else " (a tracking server)"))
    for name, link in links.items():
        err.print(f"  study {name}: {link}", soft_wrap=True, highlight=False)
    if command:
        # vae-lab logs no GenAI jobs, so MLflow's background job workers (a dozen processes)
        # are switched off; exec hands Ctrl-C and SIGTERM straight to the server.
        env = (
            os.environ
            | store_env
            | {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": os.environ.get("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")}
        )
        sys.stdout.flush()
        os.execve(command[0], command, env)


def runs_base(uri: str) -> str:
    """A tracking server's address without credentials (safe to print)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(uri.rstrip("/"))
    return urlunsplit((parts.scheme, parts.netloc.rsplit("@", 1)[-1], parts.path, "", ""))


def study_links(settings, base: str) -> dict[str, str]:
    """Study name -> the URL of its training runs in the UI (at most 20, newest first)."""
    from vae_lab.config import sqlite_path
    from vae_lab.tracking import Tracker, runs_link

    sqlite_file = sqlite_path(settings.mlflow_tracking_uri)
    if sqlite_file is not None and not sqlite_file.is_file():  # no store yet: no studies, and none created here
        return {}
    experiments = Tracker(settings).client.search_experiments(
        filter_string="tags.`mlflow.experimentKind` = 'custom_model_development'",
        max_results=20,
        order_by=["last_update_time DESC"],
    )
    return {e.name: runs_link(base, e.experiment_id) for e in experiments}


def main() -> None:
    """Console entry point: user errors, including a bad option or argument, are one line on
    stderr and exit code 2."""
    from vae_lab.cli.click_errors import click_exceptions

    click_errors = click_exceptions()

    try:
        code = app(standalone_mode=False)
    except VaeLabError as exc:  # raised outside a command, e.g. while reading settings
        report_user_error(exc)
        sys.exit(2)
    except click_errors.NoArgsIsHelpError as exc:  # `vae-lab study`: typer has printed the help
        sys.exit(exc.exit_code)
    except click_errors.UsageError as exc:
        command = exc.ctx.command_path if exc.ctx else "vae-lab"
        report_user_error(VaeLabError(command, exc.format_message(), f"see `{command} --help`"))
        sys.exit(2)
    except click_errors.ClickException as exc:
        report_user_error(VaeLabError("vae-lab", exc.format_message()))
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
