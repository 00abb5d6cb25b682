"""What a study writes about itself: every attribute and tag name, and every value they take.

Three readers look a trial up long after it ran: the next worker (who owns this trial? is it
alive? which grid point did it run?), the report and the benchmark (its summary, its timings),
and a researcher in the MLflow UI (why did it stop?). So the names live here and nowhere else,
and a trial's ending is one `TrialEnding`: the Optuna state, the MLflow run status and the
`trial_state` tag always move together.
"""

from __future__ import annotations

import enum
import math
import os
import socket
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import TrialState

HOST = socket.gethostname()


class TrialAttr:
    """Names of the user attributes of an Optuna trial."""

    RUN_ID = "mlflow_run_id"
    WORKER_HOST = "worker_host"
    WORKER_PID = "worker_pid"
    FAILURE_REASON = "failure_reason"
    GRID_POINT = "grid_point"  # index into the study's grid points
    REPEAT = "repeat"  # a grid point run again past the end of the grid
    REQUEUED_FROM = "requeued_from"  # the dead trial whose point this one reruns
    BEST_EPOCH = "best_epoch"
    EPOCHS_RUN = "epochs_run"
    MODEL_ID = "model_id"
    MODEL_URI = "model_uri"
    ARCHITECTURE = "architecture"
    SUMMARY = "summary"  # best metrics for the leaderboard (SUMMARY_METRICS)
    TIMINGS = "timings"  # TrialTimings of the objective, for the benchmark
    # --- what a study starts from (warm_start, learn_from) ---
    WARM_START = "warm_start"  # index into the spec's warm_start: the point this trial runs first
    LEARNED_FROM = "learned_from"  # a trial copied from another study's history: that study's name
    LEARNED_TRIAL = "learned_trial"  # ... and its number there


class StudyAttr:
    """Names of the user attributes of an Optuna study: what a resumed study must agree with."""

    DATA_KEY = "data_key"
    DATA_PATH = "data_path"
    DATA_GRID = "data_grid"
    SEARCH_SPACE = "search_space"
    SAMPLER = "sampler"
    OBJECTIVE = "objective"
    OBJECTIVES = "objectives"  # every objective, in order (the first is OBJECTIVE)


class RunTag:
    """Names of the MLflow tags of trial runs and invocation (parent) runs."""

    STUDY = "study"
    TRIAL = "trial"
    ARCHITECTURE = "architecture"
    OPTUNA_STUDY = "optuna_study"
    DEVICE = "device"
    COMPUTE_THREADS = "compute_threads"  # torch's intra-op threads in the trial's process
    PARAMETERS = "parameters"
    KIND = "kind"
    SAMPLER = "sampler"
    OBJECTIVE = "objective"
    OBJECTIVES = "objectives"  # every objective, in order (the first is OBJECTIVE)
    CHAMPION_RULE = "champion_rule"
    WORKERS = "workers"
    WORKERS_DIED = "workers_died"
    ENGINE = "engine"  # a choices.Engine: what placed the invocation's workers
    RAY_ADDRESS = "ray_address"  # the cluster's address, masked ("local" for an instance started for the run)
    RAY_NODES = "ray_nodes"  # the Ray node ids the invocation's workers ran on, comma-separated
    RAY_RESOURCES = "ray_resources_per_worker"
    NODE_ID = "node_id"  # on a trial run: the Ray node its worker ran on
    GPU_IDS = "gpu_ids"  # on a trial run: the GPUs Ray assigned its worker (comma-separated, or none)
    TRIAL_STATE = "trial_state"  # a TrialOutcome; absent on a trial that completed
    FAILURE_REASON = "failure_reason"
    PRUNED_REASON = "pruned_reason"
    FAILED_EPOCH = "failed_epoch"
    # evaluation runs (`vae-lab evaluate`)
    MODEL = "model"
    ALIAS = "alias"
    MODEL_VERSION = "model_version"
    SAME_DATA = "same_data"  # the evaluated rows are the ones the model was trained on
    # --- what ran (every parent, trial, evaluation, encoding and reproduction run; see study.trial.what_ran)
    VAE_LAB_VERSION = "vae_lab_version"
    GIT_COMMIT = "git_commit"  # only when vae-lab runs from a git checkout of its source
    GIT_DIRTY = "git_dirty"  # tracked files differ from the commit (their diff: the run's source.diff)
    PYTHON_VERSION = "python_version"
    TORCH_VERSION = "torch_version"
    CUDA_VERSION = "cuda_version"  # the CUDA torch was built with (absent on a CPU build)
    CUDNN_VERSION = "cudnn_version"
    MLFLOW_VERSION = "mlflow_version"
    OPTUNA_VERSION = "optuna_version"
    NUMPY_VERSION = "numpy_version"
    STUDY_YAML_SHA256 = "study_yaml_sha256"  # of the study as resolved (the parent run's study.yaml)
    # --- `vae-lab trial reproduce`
    REPRODUCES = "reproduces"  # on a reproduction run: the run id of the trial it retrained


class VersionTag:
    """Names of the tags of a registered model version (and of the registered model, for its champion)."""

    BEST_ARCHITECTURE = "best_architecture"
    STUDY = "study"
    TRIAL = "trial"
    OBJECTIVE = "objective"
    DIRECTION = "direction"
    VALUE = "value"
    RUN_ID = "run_id"
    MODEL_ID = "model_id"
    CHAMPION_RULE = "champion_rule"  # on the champion: the rule that crowned it
    PARETO_RANK = "pareto_rank"  # several objectives: the version's rank on the front


INVOCATION_KIND = "study-invocation"  # RunTag.KIND of a `study run` invocation's parent run
EVALUATION_KIND = "evaluation"  # RunTag.KIND of a `vae-lab evaluate` run
ENCODING_KIND = "encoding"  # RunTag.KIND of a `vae-lab encode` run
REPRODUCTION_KIND = "reproduction"  # RunTag.KIND of a `vae-lab trial reproduce` run


class RunStatus(enum.StrEnum):
    """An MLflow run's status as vae-lab ends runs (MLflow's own names)."""

    RUNNING = "RUNNING"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    KILLED = "KILLED"


class TrialStatus(enum.StrEnum):
    """A trial's state in every table, report, event and JSON output: the one vocabulary readers see
    (Optuna's `TrialState` stays inside the stores)."""

    COMPLETE = "complete"
    PRUNED = "pruned"
    FAILED = "failed"
    RUNNING = "running"
    WAITING = "waiting"

    @classmethod
    def of(cls, state: TrialState) -> TrialStatus:
        return _STATUS_OF[state]


_STATUS_OF = {
    TrialState.COMPLETE: TrialStatus.COMPLETE,
    TrialState.PRUNED: TrialStatus.PRUNED,
    TrialState.FAIL: TrialStatus.FAILED,
    TrialState.RUNNING: TrialStatus.RUNNING,
    TrialState.WAITING: TrialStatus.WAITING,
}


class TrialOutcome(enum.StrEnum):
    """The `trial_state` tag of a trial run that did not complete."""

    PRUNED = "PRUNED"
    FAILED = "FAILED"
    INTERRUPTED = "INTERRUPTED"
    WORKER_DIED = "WORKER_DIED"


INTERRUPTED_REASON = "interrupted (Ctrl-C or SIGTERM)"


@dataclass(frozen=True)
class TrialEnding:
    """How one trial ended, as both stores record it (see `execution.settle`)."""

    state: TrialState  # written to Optuna
    run_status: RunStatus
    outcome: TrialOutcome | None = None  # the run's trial_state tag
    reason: str | None = None
    value: float | tuple[float, ...] | None = None  # a tuple with several objectives
    extra_tags: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def complete(cls, value: float | tuple[float, ...]) -> TrialEnding:
        return cls(TrialState.COMPLETE, RunStatus.FINISHED, value=value)

    @classmethod
    def pruned(cls, reason: str) -> TrialEnding:
        return cls(TrialState.PRUNED, RunStatus.KILLED, TrialOutcome.PRUNED, reason)

    @classmethod
    def failed(cls, reason: str, failed_epoch: int | None = None) -> TrialEnding:
        extra = {RunTag.FAILED_EPOCH: failed_epoch} if failed_epoch is not None else {}
        return cls(TrialState.FAIL, RunStatus.FAILED, TrialOutcome.FAILED, reason[:500], extra_tags=extra)

    @classmethod
    def interrupted(cls) -> TrialEnding:
        return cls(TrialState.FAIL, RunStatus.KILLED, TrialOutcome.INTERRUPTED, INTERRUPTED_REASON)

    @classmethod
    def worker_died(cls, reason: str) -> TrialEnding:
        return cls(TrialState.FAIL, RunStatus.KILLED, TrialOutcome.WORKER_DIED, reason)

    def run_tags(self) -> dict[str, Any]:
        """The tags the trial's MLflow run gets (none for a completed trial)."""
        if self.outcome is None:
            return {}
        reason_tag = RunTag.PRUNED_REASON if self.outcome is TrialOutcome.PRUNED else RunTag.FAILURE_REASON
        tags: dict[str, Any] = {RunTag.TRIAL_STATE: self.outcome.value}
        if self.reason is not None:
            tags[reason_tag] = self.reason
        return tags | self.extra_tags

    @property
    def trial_reason(self) -> str | None:
        """The failure reason the Optuna trial keeps (a pruned trial is not a failure)."""
        return self.reason if self.state == TrialState.FAIL else None


# --- who owns a trial ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Owner:
    """The worker process that runs a trial (or an invocation)."""

    host: str | None
    pid: int | None

    @classmethod
    def this_process(cls) -> Owner:
        return cls(HOST, os.getpid())

    @classmethod
    def of(cls, attrs: dict[str, Any]) -> Owner:
        """The owner recorded in a trial's user attrs or a run's tags (either may be missing)."""
        return cls(attrs.get(TrialAttr.WORKER_HOST), _as_int(attrs.get(TrialAttr.WORKER_PID)))

    def attrs(self) -> dict[str, Any]:
        return {TrialAttr.WORKER_HOST: self.host, TrialAttr.WORKER_PID: self.pid}

    @property
    def is_local(self) -> bool:
        return self.host == HOST

    def describe(self) -> str:
        return f"pid {self.pid if self.pid is not None else '?'} on {self.host or '?'}"


def _as_int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


# --- lease keys ------------------------------------------------------------------------------------


def trial_lease_key(number: int) -> str:
    return str(number)


def invocation_lease_key(parent_run_id: str) -> str:
    return f"run-{parent_run_id}"


# --- reading a trial back ----------------------------------------------------------------------------


def run_id_of(trial: optuna.trial.FrozenTrial) -> str | None:
    return trial.user_attrs.get(TrialAttr.RUN_ID)


def learned_from(trial: optuna.trial.FrozenTrial) -> str | None:
    """The study a trial was learned from (`learn_from`): history for the sampler, never a trial
    of this study (not counted, not crowned, not in its tables). None for the study's own trials."""
    return trial.user_attrs.get(TrialAttr.LEARNED_FROM)


def failure_reason_of(trial: optuna.trial.FrozenTrial) -> str | None:
    return trial.user_attrs.get(TrialAttr.FAILURE_REASON)


def planned_params(trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
    """The configuration a trial runs: the point it was queued with (complete even before the
    trial suggested it), else its params. Optuna keeps an enqueued point in the "fixed_params"
    system attr and has no public reader for it; this is the one place that reads it."""
    return dict(trial.system_attrs.get("fixed_params") or trial.params)


# What each trial keeps (as TrialAttr.SUMMARY) for the leaderboard, from its best metrics.
SUMMARY_METRICS = (
    "val_f1",
    "val_f1_c1",
    "val_f1_c2",
    "val_f1_c3",
    "val_f1_c4",
    "val_kl",
    "val_active_units",
    "val_knn_accuracy",
    "val_silhouette",
    "val_occupancy_iou",
    "val_exact_match",
    "val_pose_invariance",
    "gen_validity",
    "gen_uniqueness",
    "gen_novelty",
)


def summary_of(best: dict[str, float]) -> dict[str, float]:
    return {name: float(best[name]) for name in SUMMARY_METRICS if name in best and math.isfinite(best[name])}
