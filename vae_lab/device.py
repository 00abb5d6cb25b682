"""Where and in what precision training runs: the one place that decides it.

The trainer, the evaluation and the benchmark all take a resolved `torch.device` from
`resolve_device` and a precision from `vae_lab.runtime.Runtime`; nothing else in vae-lab calls
`.cuda()` or picks a device.
"""

from __future__ import annotations

import contextlib
from typing import ContextManager

import torch

from vae_lab.errors import VaeLabError
from vae_lab.runtime import check_device_spec

AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(spec: str = "auto", where: str = "device") -> torch.device:
    """`auto` -> the first visible CUDA device if any, else the CPU; a missing GPU is a user error.

    CUDA_VISIBLE_DEVICES is honoured because torch only ever sees the visible devices: `cuda:0`
    is the first one listed there.
    """
    check_device_spec(spec, where)
    if spec == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise VaeLabError(
            where,
            f"device {spec!r} asked for, but torch sees no CUDA GPU here",
            "use --device cpu (or auto), or install a CUDA build of torch",
        )
    index = int(spec.split(":")[1]) if ":" in spec else 0
    if index >= torch.cuda.device_count():
        visible = torch.cuda.device_count()
        raise VaeLabError(
            where,
            f"device {spec!r} asked for, but only {visible} CUDA device(s) are visible",
            f"use cuda:0..cuda:{visible - 1} (CUDA_VISIBLE_DEVICES decides which)",
        )
    return torch.device("cuda", index)


def worker_device(spec: str, worker: int) -> str:
    """The device worker `worker` of several on one machine owns: one GPU each, round robin."""
    if spec in ("auto", "cuda") and torch.cuda.is_available() and torch.cuda.device_count() > 1:
        return f"cuda:{worker % torch.cuda.device_count()}"
    return spec


def prepare_backend(device: torch.device) -> None:
    """The fast settings for `device`, changing results only below fp32's normal range.

    On the CPU, subnormal floats (below ~1.2e-38, which weights, gradients and Adam's moments of
    the conv families reach after a few steps) are flushed to zero: x86 handles them in
    microcode, and leaving them made `conv_pool` train 2-4x slower after its first epoch.
    On GPUs, fp32 matmuls and convolutions may use TF32 (a ~2-8x speed-up).
    """
    torch.set_flush_denormal(True)  # a no-op returning False where the CPU cannot
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True


def autocast(device: torch.device, precision: str) -> ContextManager:
    """Mixed precision for the forward pass and loss, or nothing for fp32."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=AUTOCAST_DTYPES[precision])


def grad_scaler(device: torch.device, precision: str) -> torch.amp.GradScaler:
    """fp16 gradients underflow without loss scaling; bf16 and fp32 need none (a disabled scaler)."""
    return torch.amp.GradScaler(device.type, enabled=precision == "fp16")


def describe(device: torch.device) -> str:
    """A device in words, for reports and benchmarks: `cuda:0 (NVIDIA H100 80GB HBM3)`, `cpu (2 threads)`."""
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    threads = torch.get_num_threads()
    return f"cpu ({threads} thread{'s' if threads != 1 else ''})"


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work (for timing only; the training loop never calls this)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
