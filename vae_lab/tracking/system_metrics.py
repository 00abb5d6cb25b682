"""MLflow's system metrics on a run while a block of work runs: what a trial cost the machine.

MLflow's `SystemMetricsMonitor` samples the machine in a thread of its own (CPU utilisation,
memory, disk, network through psutil; each NVIDIA GPU's utilisation, memory and power through
NVIDIA's management library, nvidia-ml-py) and logs `system/...` metrics, step = sample, which
the UI shows in the run's "System metrics" tab. vae-lab starts one per trial run and stops it
however the block ends (completed, pruned, failed, interrupted), so no sampling thread outlives
its trial. `VAE_LAB_SYSTEM_METRICS=false` turns it off.

The monitor writes with its own client; it is given the Tracker's instead, so its writes go to
the same store with the same lock patience on SQLite (`sqlite_store.PatientClient`), and a
server's login is the environment's in both. (Its check, each sample, that the run still runs is
a read, which SQLite's write-ahead log never blocks.)
"""

from __future__ import annotations

import contextlib
import threading
from typing import TYPE_CHECKING, Iterator

import psutil
from mlflow.system_metrics.metrics.gpu_monitor import GPUMonitor
from mlflow.system_metrics.metrics.rocm_monitor import ROCMMonitor
from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

if TYPE_CHECKING:
    import torch

    from vae_lab.tracking.client import Tracker

# Seconds between samples, one logged per sample: a CPU epoch of the quick study (~3 s) gets
# three. Each sample costs the thread ~13 ms of CPU (mostly its run-status read), 1.2-1.5% of a
# core, and the trainer kept 98-100% of its speed (benchmarks/RESULTS.md, "System metrics
# (issue 24)"). MLflow's MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL and
# MLFLOW_SYSTEM_METRICS_SAMPLES_BEFORE_LOGGING override these.
SAMPLING_INTERVAL_S = 1.0
SAMPLES_BEFORE_LOGGING = 1
PREFIX = "system/"
SAMPLING_THREAD = "SystemMetricsMonitor"  # the name MLflow gives its sampling thread


@contextlib.contextmanager
def system_metrics(tracker: Tracker, run_id: str, device: torch.device) -> Iterator[None]:
    """Sample the machine onto `run_id` while the block runs (nothing when the setting is off).

    A trial on the CPU gets no GPU metrics: another process's GPUs are not its cost."""
    if not tracker.settings.system_metrics:
        yield
        return
    monitor = SystemMetricsMonitor(
        run_id,
        sampling_interval=SAMPLING_INTERVAL_S,
        samples_before_logging=SAMPLES_BEFORE_LOGGING,
        tracking_uri=tracker.uri,
    )
    if device.type != "cuda":
        monitor.monitors = [m for m in monitor.monitors if not isinstance(m, (GPUMonitor, ROCMMonitor))]
    monitor.mlflow_logger.client = tracker.client
    monitor.start()
    try:
        yield
    finally:
        monitor.finish()  # stops and joins the thread, then logs what it still holds


def sampling_thread_cpu_s() -> float:
    """CPU seconds the running sampling threads of this process have used so far (0.0 with none)."""
    sampling = {thread.native_id for thread in threading.enumerate() if thread.name == SAMPLING_THREAD}
    return sum(t.user_time + t.system_time for t in psutil.Process().threads() if t.id in sampling)
