"""Ctrl-C and SIGTERM stop a study cleanly; a second one stops it at once.

The first SIGINT (Ctrl-C) or SIGTERM (`docker stop`, a cluster's scheduler) raises
KeyboardInterrupt where the study is, so the running trial is recorded as interrupted, its
MLflow run closed as KILLED and its lease released. A second signal during that cleanup exits
immediately (exit code 130); the next run's reaper then closes what was left, as for a killed
worker.

Python swallows an exception raised inside a finaliser or weakref callback ("Exception ignored
in ..."), and a signal can land there. So the signal is also remembered, and `StopOnSignal`
raises it again at the next batch: an interrupt is never lost, and never printed as a traceback.
"""

from __future__ import annotations

import os
import signal
import sys

from vae_lab.training.callbacks import Callback

_received: list[int] = []


def _on_signal(signum: int, frame: object) -> None:
    if _received:
        os._exit(130)
    _received.append(signum)
    raise KeyboardInterrupt


def _quiet_unraisable(unraisable: "sys.UnraisableHookArgs") -> None:
    if unraisable.exc_type is KeyboardInterrupt:
        return  # re-raised at the next batch by StopOnSignal
    sys.__unraisablehook__(unraisable)


def install() -> None:
    """Route SIGINT and SIGTERM through `_on_signal` (main thread only, as Python requires)."""
    _received.clear()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _on_signal)
    sys.unraisablehook = _quiet_unraisable


class StopOnSignal(Callback):
    """Raise KeyboardInterrupt at the next batch if a signal arrived (and was swallowed)."""

    def on_batch_end(self, trainer: object, batch: int, batches: int) -> None:
        if _received:
            raise KeyboardInterrupt


def last_signal() -> int | None:
    """The first signal received since `install`, if any."""
    return _received[0] if _received else None
