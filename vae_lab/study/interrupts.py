"""Ctrl-C and SIGTERM stop a study cleanly; a second one stops it at once.

The first SIGINT (Ctrl-C) or SIGTERM (`docker stop`, a cluster's scheduler) raises
KeyboardInterrupt where the study is, so the running trial is recorded as interrupted, its
MLflow run closed as KILLED and its lease released. A second signal during that cleanup exits
immediately (exit code 130); the next run's reaper then closes what was left, as for a killed
worker.
"""

from __future__ import annotations

import os
import signal

_received: list[int] = []


def _on_signal(signum: int, frame: object) -> None:
    if _received:
        os._exit(130)
    _received.append(signum)
    raise KeyboardInterrupt


def install() -> None:
    """Route SIGINT and SIGTERM through `_on_signal` (main thread only, as Python requires)."""
    _received.clear()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _on_signal)


def last_signal() -> int | None:
    """The first signal received since `install`, if any."""
    return _received[0] if _received else None
