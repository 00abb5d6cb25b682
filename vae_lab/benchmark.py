"""`vae-lab bench`: the trainer against a bare PyTorch loop and against the hardware.

For each family, in one process: samples per second of the vae-lab trainer's training loop
and of a bare loop (the same model, loss, batches, device and precision, with nothing around
it: no callbacks, no metric sums, no progress), their ratio, the FLOPs of a training sample
counted from the model's layers, and the achieved FLOP/s over this device's matmul peak
measured in the same run and precision (MFU). Then what MLflow's system metrics cost the
trainer: its samples per second with a monitor sampling onto a run and without, interleaved.
Then three `quick`-style trials through the real study runner, the median one's wall time split
into setup, training, validation, tracking, projections and model logging.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from vae_lab.device import autocast, describe, grad_scaler, prepare_backend, resolve_device, synchronize
from vae_lab.losses import kl_divergence
from vae_lab.models import ModelConfig, build_model
from vae_lab.models.flops import training_flops_per_sample
from vae_lab.runtime import Runtime
from vae_lab.training import TensorData, TrainConfig, Trainer, training_weights
from vae_lab.training.trainer import make_optimizer

if TYPE_CHECKING:
    from vae_lab.tracking import Tracker

PEAK_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class ArchBench:
    arch: str
    batch_size: int
    samples_per_s: float
    bare_samples_per_s: float
    ratio: float
    flops_per_sample: float
    mfu: float
    output: str = ""
    loss: str = ""


@dataclass
class BenchReport:
    device: str
    precision: str
    peak_gflops: float
    archs: list[ArchBench] = field(default_factory=list)
    # The trainer with MLflow's system metrics sampled onto a run and without (see bench_system_metrics).
    system_metrics: dict[str, Any] | None = None
    # The median trial: wall_s, train_s, val_s, overhead_s (all outside the two loops), its
    # parts and epochs; overhead_s_all lists every trial's overhead.
    trial: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def matmul_peak_gflops(device: torch.device, precision: str, seconds: float = 1.0) -> float:
    """The best FLOP/s of a large square matmul in `precision` on `device`, in GFLOP/s."""
    size = 4096 if device.type == "cuda" else 1024
    dtype = PEAK_DTYPES[precision]
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    for _ in range(2):
        a @ b
    synchronize(device)
    best, deadline = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        for _ in range(4):
            a @ b
        synchronize(device)
        best = max(best, 4 * 2 * size**3 / (time.perf_counter() - started))
    return best / 1e9


def _bare_epoch(
    model,
    data: TensorData,
    config: TrainConfig,
    weights,
    device: torch.device,
    precision: str,
    generator: torch.Generator,
) -> None:
    """The same steps as the trainer's loop with nothing around them."""
    optimizer = make_optimizer(model, config)  # the same optimizer (fused where possible)
    scaler = grad_scaler(device, precision)
    settings = config.loss_settings()
    model.train()
    order = torch.randperm(len(data), generator=generator).to(device)
    for start in range(0, len(data), config.batch_size):
        batch = data.batch(order[start : start + config.batch_size])
        with autocast(device, precision):
            out = model(*model.inputs(batch))
            loss = model.reconstruction_loss(out, batch, settings, weights).mean()
        loss = loss + config.beta * kl_divergence(out.mu.float(), out.logvar.float()).mean()
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    synchronize(device)


def bench_arch(
    arch: str,
    grids: np.ndarray,
    *,
    batch_size: int,
    device: torch.device,
    precision: str,
    peak_gflops: float,
    rows: int,
    output: str | None = None,
    repeats: int = 3,
) -> ArchBench:
    """Trainer vs bare loop for one family, best of `repeats` interleaved epochs of `rows` rows."""
    trainer, data = small_trainer(
        arch, grids, batch_size=batch_size, device=device, precision=precision, rows=rows, output=output
    )
    model, config, weights = trainer.model, trainer.config, trainer.weights
    generator = torch.Generator().manual_seed(0)
    trainer.train_epoch(data.select(slice(0, batch_size * 2)), beta=config.beta)  # warm-up
    _bare_epoch(model, data.select(slice(0, batch_size * 2)), config, weights, device, precision, generator)

    def timed(epoch) -> float:
        started = time.perf_counter()
        epoch()
        synchronize(device)
        return len(data) / (time.perf_counter() - started)

    loops = {
        "trainer": lambda: trainer.train_epoch(data, beta=config.beta),
        "bare": lambda: _bare_epoch(model, data, config, weights, device, precision, generator),
    }
    best = {"trainer": 0.0, "bare": 0.0}
    for repeat in range(repeats):  # interleaved, the order alternating, the best epoch of each
        for name in sorted(loops, reverse=repeat % 2 == 1):
            best[name] = max(best[name], timed(loops[name]))
    trained, bare = best["trainer"], best["bare"]
    flops = training_flops_per_sample(model)
    return ArchBench(
        arch,
        batch_size,
        trained,
        bare,
        trained / bare,
        float(flops),
        trained * flops / (peak_gflops * 1e9),
        model.config.output,
        config.loss,
    )


def small_trainer(
    arch: str,
    grids: np.ndarray,
    *,
    batch_size: int,
    device: torch.device,
    precision: str,
    rows: int,
    output: str | None = None,
) -> tuple[Trainer, TensorData]:
    """A trainer of `arch` at latent 8 with its family's default loss, and `rows` rows to train on."""
    from vae_lab.choices import DEFAULT_LOSS

    model_config = ModelConfig(architecture=arch, latent_dim=8, output=output, grid=grids.shape[-1], max_points=8)
    config = TrainConfig(batch_size=batch_size, beta=0.1, epochs=1, loss=DEFAULT_LOSS[model_config.output])
    torch.manual_seed(0)
    model = build_model(model_config)
    trainer = Trainer(model, config, runtime=Runtime(device=str(device), precision=precision))
    data = TensorData.for_model(model, grids[:rows], None, 8).to(device)
    trainer.weights = training_weights(data.grid, config)
    return trainer, data


def bench_system_metrics(
    trainer: Trainer,
    data: TensorData,
    *,
    tracker: Tracker | None = None,
    rounds: int = 8,
    window_s: float = 4.0,
) -> dict[str, Any]:
    """The trainer's speed with MLflow's system metrics sampled onto a run (as every trial's) and
    without: `rounds` pairs of windows of at least `window_s` seconds of whole epochs, the order
    alternating (off, on; on, off; ...), each pair back to back. On a shared machine another
    process's burst can slow one window several-fold, so speeds come from the median epoch
    (samples/s = rows / median epoch time over every epoch of a mode), and `ratio` is on / off of
    those. `ratios` are each pair's own (window medians), `monitor_cpu_share` is the sampling
    thread's own CPU time over its window's wall time (the median), a cost no load blurs.

    `tracker`: the store the monitor writes to (default: a throwaway SQLite store, the default's kind)."""
    from vae_lab.config import Settings
    from vae_lab.tracking import Tracker
    from vae_lab.tracking.system_metrics import PREFIX, SAMPLING_INTERVAL_S, sampling_thread_cpu_s, system_metrics

    device, beta = trainer.device, trainer.config.beta
    epochs: dict[str, list[list[float]]] = {"off": [], "on": []}  # each window's epoch times
    shares: list[float] = []
    logged: list[int] = []
    with contextlib.ExitStack() as stack:
        if tracker is None:
            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="vae-lab-bench-")))
            tracker = Tracker(
                Settings(mlflow_tracking_uri=f"sqlite:///{root / 'mlflow.db'}", artifact_root=root / "mlruns")
            )
        experiment = tracker.ensure_experiment("bench-system-metrics")
        trainer.train_epoch(data.select(slice(0, trainer.config.batch_size * 2)), beta=beta)  # warm-up

        def epoch_times(started: float) -> list[float]:
            times = []
            while time.perf_counter() - started < window_s:
                epoch_started = time.perf_counter()
                trainer.train_epoch(data, beta=beta)
                synchronize(device)
                times.append(time.perf_counter() - epoch_started)
            return times

        load_before = os.getloadavg()[0]
        for repeat in range(rounds):
            for mode in ("off", "on") if repeat % 2 == 0 else ("on", "off"):
                if mode == "off":
                    epochs["off"].append(epoch_times(time.perf_counter()))
                    continue
                run_id = tracker.start_run(experiment, f"round-{repeat}")
                started = time.perf_counter()
                with system_metrics(tracker, run_id, device):  # started and stopped inside the window, as a trial's
                    epochs["on"].append(epoch_times(started))
                    shares.append(sampling_thread_cpu_s() / (time.perf_counter() - started))
                logged.append(len(tracker.client.get_metric_history(run_id, f"{PREFIX}cpu_utilization_percentage")))
                tracker.end_run(run_id)
        load_after = os.getloadavg()[0]

    def speed(times: list[float]) -> float:
        return len(data) / statistics.median(times)

    off, on = (speed([t for window in epochs[mode] for t in window]) for mode in ("off", "on"))
    return {
        "off_samples_per_s": off,
        "on_samples_per_s": on,
        "ratio": on / off,
        "monitor_cpu_share": statistics.median(shares),
        "rounds": rounds,
        "window_s": window_s,
        "interval_s": SAMPLING_INTERVAL_S,
        "rows": len(data),
        "epochs": {mode: sum(len(window) for window in windows) for mode, windows in epochs.items()},
        "ratios": [round(speed(a) / speed(b), 3) for a, b in zip(epochs["on"], epochs["off"])],
        "samples_logged": logged,
        "load_average": [round(load_before, 2), round(load_after, 2)],
    }


def bench_trial(grids_path: Path, device: torch.device, epochs: int = 5, trials: int = 3) -> dict[str, Any]:
    """`trials` quick-style trials (fc, categorical, PCA, gallery, model logging) in a throwaway
    lab; the timings of the one with the median overhead (the first pays for imports), and
    `overhead_s_all`, every trial's overhead."""
    import optuna

    from vae_lab.config import Settings
    from vae_lab.study.design.spec import StudySpec
    from vae_lab.study.execution.run import run_study
    from vae_lab.study.trial.provenance import TrialAttr
    from vae_lab.study.trial.storage import open_storage

    with tempfile.TemporaryDirectory(prefix="vae-lab-bench-") as folder:
        root = Path(folder)
        settings = Settings(
            mlflow_tracking_uri=f"sqlite:///{root / 'mlflow.db'}",
            artifact_root=root / "mlruns",
            optuna_storage=str(root / "optuna.log"),
            data=grids_path,
            cache_dir=root / "cache",
        )
        latents = [4 * 2**i for i in range(trials)]  # one grid point per trial
        spec = StudySpec.model_validate(
            {
                "name": "bench-trial",
                "data": {"toy_fraction": 0.2},
                "training": {"epochs": epochs, "patience": epochs, "device": str(device)},
                "space": {"architecture": ["fc"], "loss": ["weighted_ce"], "latent_dim": latents},
                "artifacts": {"pca": True, "umap": False},
            }
        )
        run_study(spec, settings=settings, data_path=grids_path)
        done = optuna.load_study(study_name="bench-trial", storage=open_storage(settings.optuna_storage)).trials
    rows = []
    for trial in done:
        timings = trial.user_attrs[TrialAttr.TIMINGS]  # TrialTimings of the objective
        wall = trial.duration.total_seconds()
        rows.append(
            {
                "wall_s": wall,
                "overhead_s": wall - timings["train_s"] - timings["val_s"],
                **timings,
                "epochs": trial.user_attrs.get(TrialAttr.EPOCHS_RUN, epochs),
            }
        )
    rows.sort(key=lambda r: r["overhead_s"])
    return {**rows[len(rows) // 2], "overhead_s_all": [round(r["overhead_s"], 3) for r in rows]}


def run_bench(
    archs: list[str],
    *,
    batch_size: int = 256,
    device: str = "auto",
    precision: str = "fp32",
    rows: int | None = None,
    data_path: Path | None = None,
    trial: bool = True,
    system_metrics: bool = True,
    progress=None,
) -> BenchReport:
    """The whole benchmark; `progress(text)` hears what it is doing."""
    from vae_lab.data import default_dataset, prepare_dataset

    say = progress or (lambda text: None)
    torch_device = resolve_device(device, where="--device")
    prepare_backend(torch_device)
    path = default_dataset(data_path)
    data = prepare_dataset(path)
    grids = data.train.grids
    say(f"measuring the {precision} matmul peak of {describe(torch_device)}")
    peak = matmul_peak_gflops(torch_device, precision)
    report = BenchReport(describe(torch_device), precision, peak)
    for arch in archs:
        heavy = arch in ("deep", "batch_norm", "conv_pool") and torch_device.type == "cpu"
        n = rows or (batch_size * (2 if heavy else 24 if torch_device.type == "cpu" else 64))
        say(f"{arch}: trainer vs bare loop on {min(n, len(grids)):,} rows, batch {batch_size}")
        report.archs.append(
            bench_arch(
                arch,
                grids,
                batch_size=batch_size,
                device=torch_device,
                precision=precision,
                peak_gflops=peak,
                rows=min(n, len(grids)),
            )
        )
    if system_metrics:
        n = min(rows or batch_size * (2 if torch_device.type == "cpu" else 64), len(grids))
        say(f"fc: the trainer with system metrics sampled and without, interleaved, on {n:,} rows")
        trainer, rows_data = small_trainer(
            "fc", grids, batch_size=batch_size, device=torch_device, precision=precision, rows=n
        )
        report.system_metrics = bench_system_metrics(trainer, rows_data)
    if trial:
        say("three quick-style trials through the study runner")
        report.trial = bench_trial(Path(path).resolve(), torch_device)
    return report
