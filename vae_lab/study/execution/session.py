"""A worker's open study: spec, data, stores, lock and parent run, opened once per invocation.

`StudySession.open` starts from an `Admission` (the checks are done), opens the Optuna storage
and the study, settles the trials of dead workers and plans what is left to run. The session
then starts (or, as a worker of `--workers N`, joins) the invocation's parent run, and `close`
ends what it started. The lock is only ever held inside a `with self.lock` block here or in the
trial loop.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import optuna
import yaml
from optuna.trial import TrialState

from vae_lab.config import mask_uri
from vae_lab.errors import VaeLabError
from vae_lab.registry import CHAMPION, Candidate, Crowning, champion_info, reconcile
from vae_lab.study.execution.admission import Admission, check_stored_study, open_study
from vae_lab.study.execution.liveness import Lease, Liveness
from vae_lab.study.execution.lock import StudyLock
from vae_lab.study.execution.queue import plan_remaining, requeue
from vae_lab.study.execution.reaper import StaleTrialCollector, reap_dead_invocations, reap_dead_trials
from vae_lab.study.execution.settle import TrialBooks
from vae_lab.study.execution.status import trial_rows
from vae_lab.study.execution.storage import open_storage
from vae_lab.study.trial.provenance import INVOCATION_KIND, Owner, RunTag, TrialAttr, invocation_lease_key
from vae_lab.tracking import Tracker

logger = logging.getLogger(__name__)


@dataclass
class StudyReport:
    study: str
    experiment_id: str
    parent_run_id: str | None  # None when there was nothing left to run
    trials: list[dict[str, Any]] = field(default_factory=list)
    champion: dict[str, Any] | None = None
    tracking_uri: str = ""  # masked: safe to print
    device: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class StudySession:
    """One invocation's hold on a study; use as a context manager (`close` on the way out)."""

    def __init__(self, admission: Admission, n_trials: int | None, allow_repeats: bool = True):
        self.admission = admission
        self.spec, self.data, self.device = admission.spec, admission.data, admission.device
        self.storage_url = admission.settings.optuna_storage
        self.tracker = Tracker(admission.settings)
        self.heartbeat_failures = StaleTrialCollector()
        self.storage = open_storage(self.storage_url, on_stale_trial=self.heartbeat_failures)
        if not admission.stored_study_checked:
            check_stored_study(self.storage, self.spec, self.data)
        self.study = open_study(self.storage, self.spec, self.data)
        self.books = TrialBooks(self.study, self.storage, self.tracker)
        self.liveness = Liveness(self.storage, self.storage_url, self.spec.name)
        self.lock = StudyLock(self.storage_url, self.spec.name)
        self.parent_run_id: str | None = None
        self._invocation: Lease | None = None  # held while this session owns the parent run
        try:
            with self.lock:
                reap_dead_trials(self.books, self.liveness, self.heartbeat_failures)
                self.remaining, self.done = plan_remaining(self.study, self.spec, n_trials, allow_repeats=allow_repeats)
            self.experiment_id = self.tracker.ensure_experiment(self.spec.name)
            reap_dead_invocations(self.tracker, self.experiment_id, self.storage_url, self.spec.name)
        except BaseException:
            self.lock.close()
            raise

    def __enter__(self) -> StudySession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the invocation's parent run -------------------------------------------------------------

    def start_invocation(self, extra_tags: dict[str, Any] | None = None) -> str:
        """Start the parent run that this invocation's trials nest under, and hold its lease."""
        spec, data = self.spec, self.data
        run_id = self.tracker.start_run(
            self.experiment_id,
            f"{spec.name} @ {time.strftime('%Y-%m-%d %H:%M:%S')}",
            tags={
                RunTag.STUDY: spec.name,
                RunTag.KIND: INVOCATION_KIND,
                RunTag.SAMPLER: spec.sampler,
                RunTag.OBJECTIVE: ",".join(spec.objective.names),
                "champion_rule": spec.champion_rule().describe(),
                **Owner.this_process().attrs(),
                **(extra_tags or {}),
            },
            params={
                "data": data.source,
                "toy_fraction": data.toy_fraction,
                "train_rows": len(data.train.grids),
                "val_rows": len(data.val.grids),
                "planned_trials": spec.planned_trials,
                "objective": spec.objective.metric,
                "direction": spec.direction,
                "pruner": spec.pruner.kind,
            },
        )
        self.tracker.log_dataset(run_id, data.reference(), ("train", "val"))
        spec_text = yaml.safe_dump(spec.model_dump(mode="json", exclude_defaults=True), sort_keys=False)
        self.tracker.log_text(run_id, spec_text, "study.yaml")  # what `vae-lab study report` reads back
        if spec.artifacts.plotlyjs == "shared":
            self.tracker.log_plotly_library(run_id)
        self.parent_run_id = run_id
        self._invocation = Lease(self.storage_url, spec.name, invocation_lease_key(run_id))
        return run_id

    def join_invocation(self, parent_run_id: str) -> None:
        """Nest this worker's trials under a parent run another process started (and will end)."""
        self.parent_run_id = parent_run_id

    def finish_invocation(self, status: str, extra_tags: dict[str, Any] | None = None) -> None:
        """Summarise and end the parent run this session started (nothing for a joined one)."""
        if self._invocation is None:
            return
        if extra_tags:
            self.tracker.set_tags(self.parent_run_id, extra_tags)
        self._summarise_parent()
        self.tracker.end_run(self.parent_run_id, status)
        self._invocation.release()
        self._invocation = None

    def _summarise_parent(self) -> None:
        states = [t.state for t in self.study.get_trials(deepcopy=False)]
        metrics = {f"trials_{s.name.lower()}": float(states.count(s)) for s in set(states)}
        try:
            metrics["best_value"] = self.study.best_value
        except (ValueError, RuntimeError):  # no trial finished, or several objectives (no one best)
            pass
        if metrics:
            self.tracker.log_metrics(self.parent_run_id, metrics)

    # --- under the lock ----------------------------------------------------------------------------

    def reap(self, requeue_points: bool = False) -> list[optuna.trial.FrozenTrial]:
        """Settle dead workers' trials (and queue their grid points again, if asked)."""
        with self.lock:
            dead = reap_dead_trials(self.books, self.liveness, self.heartbeat_failures)
            if requeue_points:
                for trial in dead:
                    requeue(self.study, trial)
                if dead:
                    reap_dead_invocations(self.tracker, self.experiment_id, self.storage_url, self.spec.name)
        return dead

    def crown(self) -> Crowning | None:
        """Point champion (by the study's rule), best-<family> and pareto-<k> at the study's trials
        as stored in Optuna; None before any trial completes; a warning when the rule is unmet."""
        spec, names = self.spec, self.spec.objective.names
        with self.lock:
            trials = self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            candidates = [
                Candidate(
                    spec.name,
                    t.number,
                    t.params.get("architecture") or t.user_attrs.get(TrialAttr.ARCHITECTURE, "?"),
                    float(t.values[0]),
                    t.user_attrs[TrialAttr.RUN_ID],
                    t.user_attrs[TrialAttr.MODEL_ID],
                    spec.objective.metric,
                    spec.direction,
                    dict(zip(names, map(float, t.values), strict=True)) if spec.objective.several else {},
                )
                for t in trials
                if TrialAttr.MODEL_ID in t.user_attrs
                and t.values
                and len(t.values) == len(names)
                and all(map(math.isfinite, t.values))
            ]
            if not candidates:
                return None
            crowning = reconcile(self.tracker, spec.model_name, candidates, spec.champion_rule())
        if crowning.unmet is not None:
            logger.warning("%s", crowning.unmet)
        return crowning

    # --- the end -------------------------------------------------------------------------------------

    def report(self, device: str | None = None) -> StudyReport:
        try:
            champion = champion_info(self.tracker, self.spec.model_name, CHAMPION)
        except VaeLabError:
            champion = None
        rows = trial_rows(self.study)
        return StudyReport(
            self.spec.name,
            self.experiment_id,
            self.parent_run_id,
            rows,
            champion,
            mask_uri(self.tracker.uri),
            device or str(self.device),
        )

    def close(self) -> None:
        self.lock.close()
