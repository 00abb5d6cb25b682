"""A trial's record read back from its run: what evaluation, generation and reproduction start from."""

from __future__ import annotations

from vae_lab.errors import VaeLabError
from vae_lab.tracking import Tracker
from vae_lab.training.record import RECORD_FILE, TrialRecord


def read_record(tracker: Tracker, run_id: str, where: str) -> TrialRecord:
    try:
        return TrialRecord.model_validate_json(tracker.read_text(run_id, RECORD_FILE))
    except Exception as exc:  # a run logged before records existed, or a deleted artifact
        raise VaeLabError(
            where,
            f"its run {run_id} has no readable {RECORD_FILE} ({type(exc).__name__})",
            "re-run the study with this vae-lab version",
        ) from None
