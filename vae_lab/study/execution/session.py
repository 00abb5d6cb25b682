"""A worker's open study: spec, data, stores, lock and parent run, opened once per invocation.

`StudySession.open` starts from an `Admission` (the checks are done): it opens the Optuna storage
and the study, adds the trials it learns from other studies (once), settles the trials of dead
workers and plans what is left to run. The session then starts (or, as one of several workers,
joins) the invocation's parent run, and `close` ends what it started. It is also the trial loop's
`TrialHost`: claiming, holding, settling and crowning a trial all go through it, and the lock is
only ever held inside a `with self.lock` block here.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any, Iterator

import optuna
from optuna.trial import TrialState

from vae_lab.config import mask_uri
from vae_lab.errors import VaeLabError
from vae_lab.registry import CHAMPION, Candidate, Crowning, champion_info, reconcile
from vae_lab.study.execution.admission import Admission, check_stored_study, open_study
from vae_lab.study.execution.history import add_learned
from vae_lab.study.execution.liveness import Lease, Liveness
from vae_lab.study.execution.queue import finished_count, plan_remaining, requeue, waiting_count
from vae_lab.study.execution.reaper import StaleTrialCollector, reap_dead_invocations, reap_dead_trials
from vae_lab.study.execution.settle import TrialBooks, settle
from vae_lab.study.reading.trials import TrialRow, own_trials, trial_rows
from vae_lab.study.trial.lock import StudyLock
from vae_lab.study.trial.provenance import (
    INVOCATION_KIND,
    Owner,
    RunStatus,
    RunTag,
    TrialAttr,
    TrialEnding,
    invocation_lease_key,
)
from vae_lab.study.trial.storage import open_storage
from vae_lab.study.trial.what_ran import STUDY_FILE, record_what_ran, study_yaml, what_ran_tags
from vae_lab.tracking import Tracker

logger = logging.getLogger(__name__)


@dataclass
class StudyReport:
    study: str
    experiment_id: str
    parent_run_id: str | None  # None when there was nothing left to run
    trials: list[TrialRow] = field(default_factory=list)
    champion: dict[str, Any] | None = None
    tracking_uri: str = ""  # masked: safe to print
    device: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class StudySession:
    """One invocation's hold on a study; made by `open`, used as a context manager (`close` on the
    way out). `remaining` and `done` are the plan made on opening."""

    admission: Admission
    tracker: Tracker
    storage: optuna.storages.BaseStorage
    study: optuna.Study
    books: TrialBooks
    liveness: Liveness
    lock: StudyLock
    heartbeat_failures: StaleTrialCollector
    experiment_id: str = ""
    remaining: int = 0
    done: int = 0
    parent_run_id: str | None = None
    _invocation: Lease | None = None  # held while this session owns the parent run

    @classmethod
    def open(
        cls, admission: Admission, n_trials: int | None, *, allow_repeats: bool = True, worker: int = 0
    ) -> StudySession:
        """Open the study's stores, settle dead workers' trials and plan what is left to run.
        `allow_repeats`: a grid asked for more trials than it has left queues repeats (not for a
        worker that joins an invocation: its parent queued them). `worker`: the worker's index
        in its invocation (its sampler's seed follows it)."""
        spec, url = admission.spec, admission.settings.optuna_storage
        tracker = Tracker(admission.settings)
        collector = StaleTrialCollector()
        storage = open_storage(url, on_stale_trial=collector)
        if not admission.stored_study_checked:
            check_stored_study(storage, spec, admission.data)
        study = open_study(storage, spec, admission.data, worker)
        session = cls(
            admission,
            tracker,
            storage,
            study,
            TrialBooks(study, storage, tracker),
            Liveness(storage, url, spec.name),
            StudyLock(url, spec.name),
            collector,
        )
        try:
            with session.lock:
                add_learned(study, admission.learned)
                reap_dead_trials(session.books, session.liveness, collector)
                session.remaining, session.done = plan_remaining(study, spec, n_trials, allow_repeats=allow_repeats)
            session.experiment_id = tracker.ensure_experiment(spec.name)
            reap_dead_invocations(tracker, session.experiment_id, url, spec.name)
        except BaseException:
            session.close()
            raise
        return session

    @property
    def spec(self):
        return self.admission.spec

    @property
    def storage_url(self) -> str:
        return self.admission.settings.optuna_storage

    def __enter__(self) -> StudySession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the invocation's parent run -------------------------------------------------------------

    def start_invocation(self, extra_tags: dict[str, Any] | None = None) -> str:
        """Start the parent run that this invocation's trials nest under, and hold its lease."""
        spec, data = self.spec, self.admission.data
        run_id = self.tracker.start_run(
            self.experiment_id,
            f"{spec.name} @ {time.strftime('%Y-%m-%d %H:%M:%S')}",
            tags={
                RunTag.STUDY: spec.name,
                RunTag.KIND: INVOCATION_KIND,
                RunTag.SAMPLER: spec.sampler,
                RunTag.OBJECTIVE: ",".join(spec.objective.names),
                RunTag.CHAMPION_RULE: spec.champion_rule().describe(),
                **Owner.this_process().attrs(),
                **what_ran_tags(spec),
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
        self.tracker.log_text(run_id, study_yaml(spec), STUDY_FILE)  # what `vae-lab study report` reads back
        record_what_ran(self.tracker, run_id)
        if spec.artifacts.plotlyjs == "shared":
            self.tracker.log_plotly_library(run_id)
        self.parent_run_id = run_id
        self._invocation = Lease(self.storage_url, spec.name, invocation_lease_key(run_id))
        return run_id

    def join_invocation(self, parent_run_id: str) -> None:
        """Nest this worker's trials under a parent run another process started (and will end)."""
        self.parent_run_id = parent_run_id

    def finish_invocation(self, status: RunStatus, extra_tags: dict[str, Any] | None = None) -> None:
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
        trials = own_trials(self.study)
        states = [t.state for t in trials]
        metrics = {f"trials_{s.name.lower()}": float(states.count(s)) for s in set(states)}
        values = [t.value for t in trials if t.state == TrialState.COMPLETE and len(t.values) == 1]
        if values and not self.spec.objective.several:  # several objectives have no one best
            metrics["best_value"] = max(values) if self.spec.direction == "maximize" else min(values)
        if metrics:
            self.tracker.log_metrics(self.parent_run_id, metrics)

    # --- the trial loop's host (see `execution.loop.TrialHost`) -----------------------------------

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

    def claim(self) -> optuna.Trial | None:
        """The next trial: a queued grid point (None when the queue is empty; claimed under the
        lock, so two workers never take the same point), or a new sample."""
        if not self.spec.is_grid:
            return _ask(self.study)
        with self.lock:
            return _ask(self.study) if waiting_count(self.study) else None

    @contextlib.contextmanager
    def hold(self, trial: optuna.Trial) -> Iterator[None]:
        """Own `trial` (its owner recorded) and keep it alive in other workers' eyes meanwhile."""
        with self.liveness.hold(trial):
            for key, value in Owner.this_process().attrs().items():
                trial.set_user_attr(key, value)
            yield

    def settle(self, trial: optuna.Trial, run_id: str | None, ending: TrialEnding) -> optuna.trial.FrozenTrial:
        return settle(self.books, trial, run_id, ending)

    def finished_count(self) -> int:
        return finished_count(self.study)

    def crown(self) -> Crowning | None:
        """Point champion (by the study's rule), best-<family> and pareto-<k> at the study's trials
        as stored in Optuna; None before any trial completes; a warning when the rule is unmet."""
        spec, names = self.spec, self.spec.objective.names
        with self.lock:
            trials = own_trials(self.study, states=(TrialState.COMPLETE,))  # learned trials are never crowned
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
        return StudyReport(
            self.spec.name,
            self.experiment_id,
            self.parent_run_id,
            trial_rows(self.study),
            champion,
            mask_uri(self.tracker.uri),
            device or str(self.admission.device),
        )

    def close(self) -> None:
        self.lock.close()


def _ask(study: optuna.Study) -> optuna.Trial:
    with warnings.catch_warnings():
        # Optuna warns that heartbeats are meant for Study.optimize; the loop beats itself
        # (Liveness.hold), as Study.optimize would.
        warnings.filterwarnings("ignore", message="Heartbeat of storage")
        return study.ask()
