"""How many compute threads a worker trains with, so workers sharing a machine share its cores.

torch sizes its compute pool to every core it sees, so `--workers 2` on two cores ran four busy
threads that fought over two cores (3.3x slower than one worker, benchmarks/RESULTS.md). Each
worker gets `cores // workers` compute threads (at least one) unless `--threads` says otherwise.
Only torch's compute pools are sized here: vae-lab loads data in the training thread and MLflow
logs from threads that mostly wait on I/O, so neither competes for the cores the pools use.
The plan calibrates at the same thread count, so it prices the run that will happen.
"""

from __future__ import annotations

import contextlib
import os
from typing import Iterator

# Read by OpenMP, MKL and OpenBLAS when a process starts: set for processes this one spawns.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def available_cores() -> int:
    """Cores this process may run on (a container's or taskset's limit, not the machine's)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def worker_threads(workers: int, threads: int | None = None, cores: int | None = None) -> int:
    """Compute threads of each of `workers` workers: `threads` if given, else an equal share."""
    if threads is not None:
        return max(1, threads)
    return max(1, (cores or available_cores()) // max(1, workers))


@contextlib.contextmanager
def thread_environment(threads: int) -> Iterator[None]:
    """The thread variables set to `threads` while processes are started, then put back."""
    saved = {name: os.environ.get(name) for name in THREAD_VARIABLES}
    os.environ.update({name: str(threads) for name in THREAD_VARIABLES})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def apply_threads(threads: int) -> None:
    """Size this process's torch pools to `threads` (call before it trains)."""
    import torch

    os.environ.update({name: str(threads) for name in THREAD_VARIABLES})
    torch.set_num_threads(threads)
    with contextlib.suppress(RuntimeError):  # the inter-op pool can be sized once, before first use
        torch.set_num_interop_threads(1)  # vae-lab runs no parallel graphs: one thread suffices


@contextlib.contextmanager
def using_threads(threads: int) -> Iterator[None]:
    """torch's compute pool at `threads` for a measurement, then as it was."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)
