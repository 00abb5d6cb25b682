"""`vae-lab study plan NAME`: what a study will cost on this machine, before it spends anything.

Trials (the grid's size, or n_trials), epochs at most, rows per epoch, FLOPs per trial counted
from the models' layers, and the wall time estimated from a short calibration of each distinct
(architecture, head, loss, batch size) of the study on this device (`training.calibrate`, cached
per machine). The estimate assumes every trial runs all its epochs; early stopping only makes a
study shorter. With a pruner it adds a range: from "the pruner stops trials as early as it can"
to "it stops none". A plan longer than a working day comes with what would fit.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from vae_lab.choices import Engine
from vae_lab.config import Settings, get_settings
from vae_lab.device import describe, resolve_device
from vae_lab.study.design.space import FloatRange, IntRange, grid_points, resolve
from vae_lab.study.design.spec import StudySpec, build_configs

WORKING_DAY_S = 8 * 3600
# Per-trial work outside the epochs (building the model, figures, logging the model): the median
# measured by `vae-lab bench` on the 2-core reference machine (benchmarks/RESULTS.md).
TRIAL_OVERHEAD_S = 2.0
# Once per `study run`: imports (~5 s), store checks, data preparation, the final report and the
# registry update; about 10 s on that machine (benchmarks/RESULTS.md, bench_plan).
STUDY_STARTUP_S = 10.0
UMAP_FIRST_CALL_S = 25.0  # numba compiles UMAP once per process
UMAP_PER_TRIAL_S = 4.0
# Each `--workers` process is a fresh interpreter: imports and opening the stores again.
WORKER_STARTUP_S = 6.0
# `--engine ray` on a local instance: `ray.init` and the workers' first import (benchmarks/RESULTS.md,
# "Ray engine"); connecting to a running cluster costs less, and starting its nodes is not ours.
RAY_STARTUP_S = 15.0


@dataclass
class ConfigCost:
    architecture: str
    output: str
    loss: str
    batch_size: int
    trials: int
    flops_per_sample: float
    train_samples_per_s: float
    val_samples_per_s: float
    epoch_s: float


@dataclass
class Plan:
    study: str
    device: str
    workers: int
    trials: int
    max_epochs: int
    rows_per_epoch: int
    val_rows: int
    flops_per_trial: float
    estimated_s: float
    estimated_s_pruned: tuple[float, float] | None = None
    configs: list[ConfigCost] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    engine: str = Engine.LOCAL
    assumptions: list[str] = field(default_factory=list)  # what the estimate took for granted (Ray's nodes)

    def to_dict(self) -> dict[str, Any]:
        document = asdict(self)
        if self.estimated_s_pruned is None:
            document.pop("estimated_s_pruned")
        else:
            document["estimated_s_pruned"] = list(self.estimated_s_pruned)
        return document

    def headline(self) -> str:
        where = self.device + (f" x {self.workers} workers" if self.workers > 1 or self.engine == Engine.RAY else "")
        where += " on Ray" if self.engine == Engine.RAY else ""
        work = f"{self.trials} trials x <= {self.max_epochs} epochs x {self.rows_per_epoch:,} rows"
        text = f"plan: {work} on {where}: about {duration(self.estimated_s)}"
        if self.estimated_s_pruned is not None:
            low, high = self.estimated_s_pruned
            text += f" ({duration(low)} to {duration(high)} with pruning)"
        return text


def duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def representative_points(spec: StudySpec) -> list[tuple[dict[str, Any], int]]:
    """(chosen hyperparameters, how many trials look like it): the grid itself, or for TPE one
    point per architecture (and listed head/loss) with ranges at their geometric middle."""
    if spec.is_grid:
        points = grid_points(spec.space)
        if spec.n_trials is not None and spec.n_trials != len(points):
            scale = spec.n_trials / len(points)
            return [(p, scale) for p in points]
        return [(p, 1) for p in points]
    fixed = {}
    for name, choice in spec.space.items():
        if isinstance(choice, (FloatRange, IntRange)):
            middle = math.sqrt(choice.low * choice.high) if choice.low > 0 else (choice.low + choice.high) / 2
            fixed[name] = int(round(middle)) if isinstance(choice, IntRange) else middle
        else:
            fixed[name] = choice[0]
    points = [dict(fixed, architecture=a) for a in spec.space.architecture]
    return [(p, spec.planned_trials / len(points)) for p in points]


def plan_study(
    spec: StudySpec,
    *,
    data_path: Path | None = None,
    device: str | None = None,
    workers: int = 1,
    calibrate_if_missing: bool = True,
    settings: Settings | None = None,
    threads: int | None = None,
    ray: RayResources | None = None,
) -> Plan:
    """The plan of `spec` on this machine (calibrating what the cache does not know yet), each of
    `workers` workers on a CPU at the compute threads it will have (`vae_lab.threads`). With `ray`,
    the workers are Ray tasks with those resources each, priced as this machine's device of their
    kind (the plan's `assumptions` say so)."""
    from vae_lab.data import default_dataset
    from vae_lab.data.sparse import max_occupied
    from vae_lab.models import build_model
    from vae_lab.models.flops import forward_flops_per_sample, training_flops_per_sample
    from vae_lab.threads import available_cores, using_threads, worker_threads
    from vae_lab.training.calibrate import CalibrationCache, config_key, machine_key, measure_throughput

    settings = settings or get_settings()
    assumptions: list[str] = []
    if ray is not None:
        device, threads, assumptions = ray.calibration(device, threads, workers)
    torch_device = resolve_device(device or spec.training.device, where="--device" if device else "training.device")
    runtime = spec.training.runtime().model_copy(update={"device": str(torch_device)})
    data = spec.data.prepare(default_dataset(data_path or spec.data.path), settings.cache_dir)
    train_rows, val_rows = len(data.train), len(data.val)
    max_points = max(1, max_occupied(data.train.grids), max_occupied(data.val.grids), max_occupied(data.test.grids))
    cache = CalibrationCache(Path(settings.cache_dir) / "calibration.json")
    per_worker = worker_threads(workers, threads) if torch_device.type == "cpu" else None
    measuring = contextlib.ExitStack()
    if per_worker:
        measuring.enter_context(using_threads(per_worker))  # calibrate as each worker will run
    with measuring:
        machine, device_name = machine_key(torch_device), describe(torch_device)
        names = [name for name, _ in spec.space.items()]
        costs: dict[str, ConfigCost] = {}
        total_s = total_flops = trials = 0.0
        for raw, count in representative_points(spec):
            chosen = resolve(raw, names)
            model_config, train_config = build_configs(chosen, spec, data.grid, max_points, seed=spec.training.seed)
            key = config_key(model_config, train_config, runtime)
            if key not in costs:
                throughput = cache.get(machine, key)
                if throughput is None:
                    if not calibrate_if_missing:
                        raise LookupError(f"no calibration for {key}")
                    throughput = measure_throughput(model_config, train_config, runtime, data.train.grids)
                    cache.put(machine, key, throughput)
                model = build_model(model_config)
                flops = training_flops_per_sample(model) * train_rows + forward_flops_per_sample(model) * val_rows
                costs[key] = ConfigCost(
                    model_config.architecture,
                    model_config.output,
                    train_config.loss,
                    train_config.batch_size,
                    0,
                    flops / max(train_rows, 1),
                    throughput.train_samples_per_s,
                    throughput.val_samples_per_s,
                    throughput.epoch_s(train_rows, val_rows),
                )
            cost = costs[key]
            cost.trials += count
            trial_s = (
                spec.training.epochs * cost.epoch_s
                + TRIAL_OVERHEAD_S
                + (UMAP_PER_TRIAL_S if spec.artifacts.umap else 0)
            )
            total_s += count * trial_s
            total_flops += count * spec.training.epochs * (cost.flops_per_sample * train_rows)
            trials += count
    trials = int(round(trials))
    parallel = float(min(workers, max(trials, 1)))
    if per_worker and ray is None:  # more busy threads than cores here: each worker runs that much slower
        parallel /= max(1.0, parallel * per_worker / available_cores())
    fixed = STUDY_STARTUP_S + (UMAP_FIRST_CALL_S if spec.artifacts.umap else 0)
    fixed += WORKER_STARTUP_S if workers > 1 or ray is not None else 0
    fixed += RAY_STARTUP_S if ray is not None else 0
    estimated = total_s / parallel + fixed
    plan = Plan(
        study=spec.name,
        device=device_name,
        workers=workers,
        trials=trials,
        max_epochs=spec.training.epochs,
        rows_per_epoch=train_rows,
        val_rows=val_rows,
        flops_per_trial=total_flops / max(trials, 1),
        estimated_s=estimated,
        estimated_s_pruned=pruned_range(spec, estimated, trials, fixed_s=fixed),
        configs=list(costs.values()),
        engine=Engine.RAY if ray is not None else Engine.LOCAL,
        assumptions=assumptions,
    )
    plan.warnings = advice(spec, plan, torch_device.type)
    if per_worker and ray is None and workers * per_worker > available_cores():
        cores = available_cores()
        busy = f"{workers} workers x {per_worker} threads"
        plan.warnings.append(f"{busy} exceed the {cores} cores here: they slow each other down")
    return plan


@dataclass(frozen=True)
class RayResources:
    """What each `--engine ray` worker holds on its node, for a plan made on this machine."""

    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0

    def calibration(self, device: str | None, threads: int | None, workers: int) -> tuple[str, int, list[str]]:
        """(device and threads to calibrate with here, what that assumes of the cluster's nodes)."""
        import torch

        threads = threads or max(1, math.floor(self.cpus_per_worker))
        wanted = device or ("cuda" if self.gpus_per_worker > 0 else "cpu")
        assumed = [
            f"Ray places all {workers} workers at once ({self.cpus_per_worker:g} CPU"
            + (f", {self.gpus_per_worker:g} GPU" if self.gpus_per_worker else "")
            + f" each), plus {RAY_STARTUP_S:.0f} s of Ray start-up",
        ]
        if wanted.startswith("cuda") and not torch.cuda.is_available():
            assumed.append("no GPU here to calibrate on: priced as this machine's CPU, which a GPU node beats")
            wanted = "cpu"
        else:
            assumed.append(f"each node's {'GPU' if wanted.startswith('cuda') else 'CPU'} as fast as this machine's")
        if self.gpus_per_worker and self.gpus_per_worker < 1:
            assumed.append(f"workers sharing a GPU ({self.gpus_per_worker:g} each) do not slow each other down")
        return wanted, threads, assumed


def pruned_range(spec: StudySpec, estimated: float, trials: int, fixed_s: float = 0.0) -> tuple[float, float] | None:
    """(pruner stops trials as early as it can, stops none) in seconds; None without a pruner.
    `fixed_s` of `estimated` is paid whatever the pruner does."""
    p, epochs = spec.pruner, spec.training.epochs
    if p.kind == "none" or trials == 0:
        return None
    if p.kind == "median":
        full = min(p.startup_trials, trials)
        share = (full + (trials - full) * min(p.warmup_epochs + 1, epochs) / epochs) / trials
    else:
        share = halving_share(trials, p.min_epochs, epochs, p.reduction_factor)
    return fixed_s + (estimated - fixed_s) * share, estimated


def halving_share(trials: int, min_epochs: int, epochs: int, eta: int) -> float:
    """Share of all epochs successive halving trains when every rung keeps 1/eta of its trials."""
    budgets = []
    budget = min_epochs
    while budget < epochs:
        budgets.append(budget)
        budget *= eta
    budgets.append(epochs)
    spent, alive = 0.0, float(trials)
    for rung, budget in enumerate(budgets):
        leaving = alive - (alive / eta if rung < len(budgets) - 1 else 0)
        spent += max(leaving, 0) * budget
        alive = max(alive / eta, 1.0)
    return min(1.0, spent / (trials * epochs))


def advice(spec: StudySpec, plan: Plan, device_type: str) -> list[str]:
    """What would fit in a working day, when the plan does not."""
    if plan.estimated_s <= WORKING_DAY_S:
        return []
    hints = []
    if spec.data.toy_fraction > 0.25:
        hints.append(f"data.toy_fraction: 0.2 (about {duration(plan.estimated_s * 0.2 / spec.data.toy_fraction)})")
    if spec.is_grid:
        hints.append("sampler: tpe with n_trials: 20 and pruner: {kind: hyperband}")
    elif spec.pruner.kind == "none":
        hints.append("pruner: {kind: hyperband}")
    widest = max(
        ((name, len(v)) for name, v in spec.space.items() if isinstance(v, list) and name != "architecture"),
        key=lambda x: x[1],
        default=None,
    )
    if widest and widest[1] > 2:
        hints.append(f"fewer values of {widest[0]} (it has {widest[1]})")
    if device_type == "cpu":
        hints.append("a GPU (--device cuda): the deep families run 100-1000x faster there")
    return [f"this plan runs past a working day ({duration(plan.estimated_s)}); what would fit: " + "; ".join(hints)]
