"""What a spawned worker process reports about its threads (tests/test_threads.py).

A module of its own: a spawned child imports the module its target lives in, and this one
imports only torch and vae_lab.threads, not the test module's MLflow and study code.
"""

from __future__ import annotations

import os

import torch

from vae_lab.threads import apply_threads


def report_threads(results) -> None:
    apply_threads(int(os.environ["OMP_NUM_THREADS"]))
    results.put((torch.get_num_threads(), os.environ["OMP_NUM_THREADS"], os.environ["MKL_NUM_THREADS"]))
