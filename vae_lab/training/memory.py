"""Peak memory of a stretch of work (one trial): the process's resident set and, on CUDA, torch's tensors.

Both are high-water marks kept by someone else, so measuring costs nothing while the work runs:
the kernel keeps the process's peak resident set (VmHWM), torch keeps its CUDA allocator's peak.
`PeakMemory` resets both when it starts, so the peak belongs to this trial and not to an earlier
one in the same worker process. Where the kernel cannot reset its mark (not Linux, or a /proc
that refuses the write), the figure is the process's peak so far: an upper bound.
"""

from __future__ import annotations

import re
import resource
import sys
from pathlib import Path

import torch

PEAK_RSS = "peak_rss_megabytes"  # the process's peak resident set (megabytes: 1e6 bytes, as MLflow's system metrics)
PEAK_CUDA = "peak_cuda_allocated_megabytes"  # torch's peak CUDA allocation on the trial's device
PROC_STATUS = Path("/proc/self/status")
PROC_CLEAR_REFS = Path("/proc/self/clear_refs")
RESET_PEAK_RSS = "5"  # written to clear_refs: reset the peak resident set to the current one (Linux >= 4.0)


class PeakMemory:
    """The peak memory of the work since `start()`, read as metrics with `megabytes()`."""

    def __init__(self, device: torch.device):
        self.device = device

    def start(self) -> PeakMemory:
        _reset_peak_rss()
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        return self

    def megabytes(self) -> dict[str, float]:
        """The peaks so far: PEAK_RSS always, PEAK_CUDA on a CUDA device."""
        peaks = {PEAK_RSS: _peak_rss_bytes() / 1e6}
        if self.device.type == "cuda":
            peaks[PEAK_CUDA] = torch.cuda.max_memory_allocated(self.device) / 1e6
        return {name: round(value, 1) for name, value in peaks.items()}


def _reset_peak_rss() -> None:
    try:
        PROC_CLEAR_REFS.write_text(RESET_PEAK_RSS)
    except OSError:
        pass  # no such file (not Linux) or not writable here: the peak stays the process's


def _peak_rss_bytes() -> int:
    try:
        found = re.search(r"^VmHWM:\s+(\d+) kB", PROC_STATUS.read_text(), re.MULTILINE)
    except OSError:
        found = None
    if found:
        return int(found[1]) * 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, kilobytes elsewhere
