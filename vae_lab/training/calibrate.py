"""How fast this machine trains and validates a model: a few real batches, cached per machine.

`measure_throughput` runs the real `Trainer.train_epoch` and `validate` on a handful of batches
of real data (after one warm-up batch), so the figure includes everything a trial's loop pays
for: the loss, the optimizer, per-epoch metrics. It stops after about `seconds` of measuring,
so even the heaviest family on a CPU costs seconds, not minutes. Results are cached in a JSON
file keyed by the machine, the device, the torch version and the configuration.
"""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from vae_lab.device import describe, synchronize
from vae_lab.models import ModelConfig, build_model
from vae_lab.runtime import Runtime
from vae_lab.training.batches import TensorData
from vae_lab.training.trainer import TrainConfig, Trainer, training_weights
from vae_lab.training.validation import validate

CACHE_FORMAT = 1


@dataclass(frozen=True)
class Throughput:
    train_samples_per_s: float
    val_samples_per_s: float
    measured_at: str = ""

    def epoch_s(self, train_rows: int, val_rows: int) -> float:
        return train_rows / self.train_samples_per_s + val_rows / self.val_samples_per_s


def machine_key(device: torch.device) -> str:
    return f"{platform.node()}|{describe(device)}|torch {torch.__version__}|{os.cpu_count()} cpus"


def config_key(model: ModelConfig, train: TrainConfig, runtime: Runtime) -> str:
    # The latent size hardly changes a step's cost, so one calibration serves every latent size;
    # the width, the augmentation and a content-consistency term do (split at width 512 costs 3x
    # its width 256; so3 re-voxelises every batch; the term encodes part of each batch again).
    return (
        f"{model.architecture}|{model.output}|{train.loss}|batch {train.batch_size}|grid {model.grid}|"
        f"{runtime.precision}|width {model.width}|augment {train.augment}"
        f"|consistency {train.content_consistency > 0}"
    )


def measure_throughput(
    model_config: ModelConfig,
    train_config: TrainConfig,
    runtime: Runtime,
    grids: np.ndarray,
    *,
    seconds: float = 1.5,
    max_batches: int = 40,
) -> Throughput:
    """Samples per second of training and validation for this configuration on `runtime.device`."""
    torch.manual_seed(0)
    model = build_model(model_config)
    config = train_config.model_copy(update={"epochs": 1})
    trainer = Trainer(model, config, runtime=runtime)
    rows = grids[: max(config.batch_size * max_batches, 2)]
    data = TensorData.for_model(model, rows, None, model_config.max_points).to(trainer.device)
    trainer.weights = training_weights(data.grid, config)
    batch = config.batch_size
    started = time.perf_counter()
    trainer.train_epoch(data.select(slice(0, batch)), beta=config.beta)  # warm-up: allocations, kernels
    if time.perf_counter() - started < seconds / 6:  # the first few steps stay slow; when cheap, warm up more
        trainer.train_epoch(data.select(slice(0, 3 * batch)), beta=config.beta)
    started = time.perf_counter()
    trainer.train_epoch(data.select(slice(0, batch)), beta=config.beta)
    one_batch = max(time.perf_counter() - started, 1e-4)
    # One epoch of k batches, as the real loop runs them (one host sync at its end).
    k = int(min(max(seconds / one_batch, 2), max_batches, max(len(data) // batch, 1)))
    started = time.perf_counter()
    trainer.train_epoch(data.select(slice(0, k * batch)), beta=config.beta)
    synchronize(trainer.device)
    train_rate = min(k * batch, len(data)) / (time.perf_counter() - started)
    evaluated, started = 0, time.perf_counter()
    while evaluated == 0 or (time.perf_counter() - started < seconds / 3 and evaluated < 5 * len(data)):
        validate(
            model,
            data,
            loss=trainer.loss,
            beta=config.beta,
            weights=trainer.weights,
            kl_scale=config.kl_scale,
            precision=runtime.precision,
        )
        evaluated += len(data)
    val_rate = evaluated / (time.perf_counter() - started)
    return Throughput(train_rate, val_rate, time.strftime("%Y-%m-%d %H:%M:%S"))


class CalibrationCache:
    """Throughputs measured on this machine, in one small JSON file (shared by its studies)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._entries = self._read()

    def _read(self) -> dict:
        try:
            document = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return document.get("entries", {}) if document.get("format") == CACHE_FORMAT else {}

    def get(self, machine: str, config: str) -> Throughput | None:
        entry = self._entries.get(machine, {}).get(config)
        return Throughput(**entry) if entry else None

    def put(self, machine: str, config: str, throughput: Throughput) -> None:
        self._entries.setdefault(machine, {})[config] = asdict(throughput)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(json.dumps({"format": CACHE_FORMAT, "entries": self._entries}, indent=1))
        os.replace(temporary, self.path)
