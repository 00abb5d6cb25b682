"""A trial's peak memory: the process's resident-set peak, reset at the start of each trial."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vae_lab.training.memory import PEAK_CUDA, PEAK_RSS, PROC_CLEAR_REFS, PeakMemory


def test_the_peak_holds_what_the_work_touched_after_it_is_freed():
    memory = PeakMemory(torch.device("cpu")).start()
    before = memory.megabytes()[PEAK_RSS]
    block = np.ones(64_000_000 // 8)  # 64 MB, every page written
    del block
    peaks = memory.megabytes()
    assert set(peaks) == {PEAK_RSS}  # no CUDA figure for a CPU trial
    assert peaks[PEAK_RSS] >= before + 60


@pytest.mark.skipif(not PROC_CLEAR_REFS.exists(), reason="the kernel's peak can be reset only on Linux")
def test_each_start_forgets_the_peak_of_the_work_before():
    first = PeakMemory(torch.device("cpu")).start()
    block = np.ones(128_000_000 // 8)
    del block
    earlier = first.megabytes()[PEAK_RSS]
    later = PeakMemory(torch.device("cpu")).start().megabytes()[PEAK_RSS]
    assert later <= earlier - 100


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_cuda_trial_also_has_its_peak_allocation():
    device = torch.device("cuda")
    memory = PeakMemory(device).start()
    block = torch.ones(50_000_000 // 4, device=device)
    del block
    assert memory.megabytes()[PEAK_CUDA] >= 49
