"""What `trial reproduce` holds a reproduction to: every learned number exactly on the CPU,
within the README's tolerance on a GPU; the machine's own measures are never compared."""

from __future__ import annotations

import math

from vae_lab.study.execution.reproduce import (
    GPU_ABSOLUTE_TOLERANCE,
    GPU_RELATIVE_TOLERANCE,
    MetricPair,
    Reproduction,
    best_metrics,
)


def reproduction(exact: bool, *pairs: MetricPair) -> Reproduction:
    return Reproduction("s", 0, "a", "b", "cpu" if exact else "cuda:0", exact, list(pairs))


def test_the_cpu_promise_is_bit_for_bit():
    assert reproduction(True, MetricPair("best_val_f1", 0.5, 0.5)).held
    assert not reproduction(True, MetricPair("best_val_f1", 0.5, math.nextafter(0.5, 1))).held
    assert not reproduction(True, MetricPair("best_epoch", 3, 4)).held
    assert not reproduction(True, MetricPair("best_val_f1", 0.5, None)).held  # a metric gone missing
    assert reproduction(True, MetricPair("best_val_silhouette", math.nan, math.nan)).held


def test_the_gpu_promise_is_the_readme_tolerance():
    loose = max(GPU_ABSOLUTE_TOLERANCE, 0.8 * GPU_RELATIVE_TOLERANCE)
    assert reproduction(False, MetricPair("best_val_f1", 0.8, 0.8 + 0.9 * loose)).held
    assert not reproduction(False, MetricPair("best_val_f1", 0.8, 0.8 + 1.1 * loose)).held
    assert reproduction(False, MetricPair("best_val_loss", 100.0, 101.5)).held  # 1.5% of it
    assert reproduction(False, MetricPair("best_epoch", 3, 4)).held  # shown, not held to, on a GPU
    assert reproduction(False).promise.startswith("within 2% relative or 0.01 absolute")


def test_timings_and_memory_are_not_compared():
    summary = {"best_val_f1": 0.5, "best_train_time_s": 1.0, "best_val_time_s": 0.1, "val_f1": 0.4, "epochs_run": 2}
    assert best_metrics(summary | {"peak_memory_mb": 10.0}) == {"best_val_f1": 0.5, "epochs_run": 2}
