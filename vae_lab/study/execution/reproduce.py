"""`vae-lab trial reproduce STUDY NUMBER`: one finished trial trained again from its record.

The trial's `trial_record.json` holds the model and training configuration (with its seed), the
runtime and the data reference (file, bytes' hash, split options); its invocation's
`study.yaml` holds the rest of the study (objective, artifacts). Both go back into the same
`TrialObjective.fit` a study runs, in a new run beside the study's (not nested in an
invocation, tagged `reproduces` = the original run), at the thread count the original used.
Optuna is only read: the reproduction is no trial of the study, is never crowned and never
registered. What the original ran with (data bytes, vae-lab and library versions) must match
here, or the reproduction is refused before anything is written, unless `anyway`.

On the CPU every best metric comes back bit for bit; on a GPU (cuDNN picks its kernels by
timing them, and TF32 is on) within the GPU tolerance below: the README's "Determinism" says so.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import optuna
import torch
import yaml
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from vae_lab.config import Settings, get_settings
from vae_lab.data import PreparedDataset
from vae_lab.device import resolve_device
from vae_lab.errors import VaeLabError
from vae_lab.stores import check_stores
from vae_lab.study.design.spec import StudySpec, parse_study
from vae_lab.study.reading.record import read_record
from vae_lab.study.reading.status import load_stored_study
from vae_lab.study.trial.objective import StartedTrial, TrialObjective, TrialSetup, run_params
from vae_lab.study.trial.provenance import (
    REPRODUCTION_KIND,
    RunStatus,
    RunTag,
    TrialAttr,
    TrialStatus,
    run_id_of,
)
from vae_lab.study.trial.storage import open_storage, storage_exists
from vae_lab.study.trial.what_ran import STUDY_FILE, record_what_ran, recorded_versions, what_ran_tags
from vae_lab.threads import using_threads
from vae_lab.tracking import PlotlyAssets, Tracker
from vae_lab.tracking.environment import what_ran
from vae_lab.training.generation import GENERATION_PREFIX
from vae_lab.training.record import TrialRecord

# How far a GPU reproduction's best metric may be from the original's: this share of it, or this
# much (whichever is looser, as math.isclose), the figures the README's "Determinism" promises.
GPU_RELATIVE_TOLERANCE = 0.02
GPU_ABSOLUTE_TOLERANCE = 0.01
# The record's counters beside the best_* metrics: a reproduction that stops at another epoch shows here.
COUNTERS = ("best_epoch", "epochs_run")
# What the machine took (seconds, memory), not what the model learned: never the same twice, not compared.
MACHINE_MEASURES = ("_time_s", "memory")


@dataclass
class MetricPair:
    name: str
    original: float | None
    reproduced: float | None

    @property
    def difference(self) -> float | None:
        if self.original is None or self.reproduced is None:
            return None
        return self.reproduced - self.original

    def within(self, exact: bool) -> bool:
        a, b = self.original, self.reproduced
        if a is None or b is None:
            return False
        if not exact and self.name in COUNTERS:  # on a GPU a near tie may pick another epoch: shown, not held to
            return True
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        if exact:
            return a == b
        return math.isclose(a, b, rel_tol=GPU_RELATIVE_TOLERANCE, abs_tol=GPU_ABSOLUTE_TOLERANCE)


@dataclass
class Reproduction:
    """What `trial reproduce` found: each best metric, original against reproduced."""

    study: str
    trial: int
    original_run_id: str
    run_id: str
    device: str
    exact: bool  # the promise: bit for bit (CPU), else within the GPU tolerance
    metrics: list[MetricPair] = field(default_factory=list)
    differences: list[str] = field(default_factory=list)  # what differed from the original's record (--anyway)

    @property
    def held(self) -> bool:
        return all(pair.within(self.exact) for pair in self.metrics)

    @property
    def promise(self) -> str:
        if self.exact:
            return "bit for bit (CPU)"
        return f"within {GPU_RELATIVE_TOLERANCE:.0%} relative or {GPU_ABSOLUTE_TOLERANCE} absolute (GPU)"

    def to_dict(self) -> dict[str, Any]:
        metrics = [asdict(pair) | {"difference": pair.difference} for pair in self.metrics]
        return asdict(self) | {"metrics": metrics, "held": self.held, "promise": self.promise}


@dataclass
class Original:
    """The trial as stored: its run, record and study, and what it must agree with here."""

    run_id: str
    experiment_id: str
    parent_run_id: str
    tags: dict[str, str]
    record: TrialRecord
    spec: StudySpec
    params: dict[str, Any]
    metrics: dict[str, float]


def reproduce_trial(
    study: str, number: int, *, device: str | None = None, anyway: bool = False, settings: Settings | None = None
) -> Reproduction:
    """Retrain trial `number` of `study` in a new run and compare its best metrics with the original's.

    Every refusal (an unknown study or trial, a trial with no model, changed data or versions
    without `anyway`) is a VaeLabError raised before anything is written."""
    settings = settings or get_settings()
    check_stores(settings)
    where = f"study {study}, trial {number}"
    tracker = Tracker(settings)
    original = read_original(tracker, settings, study, number, where)
    data, differences = check_sameness(original, settings, where)
    if differences and not anyway:
        raise VaeLabError(where, "; ".join(differences), "retrain it here all the same with --anyway")
    torch_device = resolve_device(device or original.record.runtime.device, where="--device")
    run = start_reproduction(tracker, original, torch_device, number)
    setup = TrialSetup(
        original.spec,
        data,
        tracker,
        original.experiment_id,
        original.parent_run_id,
        torch_device,
        PlotlyAssets(original.spec.artifacts.plotlyjs, original.parent_run_id),
    )
    threads = int(original.tags.get(RunTag.COMPUTE_THREADS) or torch.get_num_threads())
    status = RunStatus.FAILED
    try:
        # The same threads as the original: a CPU reduction split another way sums in another order.
        with using_threads(threads):
            TrialObjective(setup).fit(optuna.trial.FixedTrial(original.params, number), run)
        status = RunStatus.FINISHED
    except KeyboardInterrupt:
        status = RunStatus.KILLED
        raise
    finally:
        tracker.end_run(run.run_id, status)
    reproduced = best_metrics(tracker.run_metrics(run.run_id))
    names = list(dict.fromkeys([*original.metrics, *reproduced]))
    pairs = [MetricPair(name, original.metrics.get(name), reproduced.get(name)) for name in names]
    # Bit for bit only from a CPU to a CPU: a GPU on either side is held to the GPU's tolerance.
    exact = torch_device.type == "cpu" and original.record.runtime.device == "cpu"
    return Reproduction(study, number, original.run_id, run.run_id, str(torch_device), exact, pairs, differences)


def read_original(tracker: Tracker, settings: Settings, study: str, number: int, where: str) -> Original:
    """The stored trial, or one line saying why it cannot be reproduced."""
    if not storage_exists(settings.optuna_storage):
        raise VaeLabError(
            f"study {study}", "not found: no study has run here yet", "run it first: vae-lab study run NAME"
        )
    stored = load_stored_study(study, open_storage(settings.optuna_storage))
    trials = {t.number: t for t in stored.get_trials(deepcopy=False)}
    if number not in trials:
        last = f"its trials are 0 to {max(trials)}" if trials else "it has no trials"
        raise VaeLabError(where, f"no such trial ({last})", "see `vae-lab study status NAME`")
    trial = trials[number]
    run_id = run_id_of(trial)
    if TrialAttr.MODEL_ID not in trial.user_attrs or run_id is None:
        state = TrialStatus.of(trial.state).value
        raise VaeLabError(where, f"the trial is {state} and trained no model to compare with", "pick a complete trial")
    run = tracker.client.get_run(run_id)
    tags = dict(run.data.tags)
    parent = tags.get(MLFLOW_PARENT_RUN_ID)
    return Original(
        run_id,
        run.info.experiment_id,
        parent,
        tags,
        read_record(tracker, run_id, where),
        logged_spec(tracker, parent, where),
        dict(trial.params),
        best_metrics(tracker.run_metrics(run_id)),
    )


def logged_spec(tracker: Tracker, parent_run_id: str | None, where: str) -> StudySpec:
    """The study as the trial's invocation resolved it (its parent run's `study.yaml`)."""
    try:
        text = tracker.read_text(parent_run_id, STUDY_FILE)
    except Exception:  # no parent run, or an invocation from before study.yaml was logged
        raise VaeLabError(
            where, f"its invocation's {STUDY_FILE} is not readable", "re-run the study with this vae-lab version"
        ) from None
    return parse_study(yaml.safe_load(text), f"{where}: {STUDY_FILE}")


def check_sameness(original: Original, settings: Settings, where: str) -> tuple[PreparedDataset, list[str]]:
    """The trial's rows prepared again, and what differs from what the original ran with: the
    data file's bytes, vae-lab's version, each library's version."""
    reference = original.record.data
    path = Path(reference.path)
    if not path.is_file():
        raise VaeLabError(where, f"its data file {path} is not there", "put the file back where the trial read it")
    data = reference.prepare(path, settings.cache_dir)
    differences = []
    if data.content_hash != reference.content_hash:
        differences.append(
            f"the data file {path.name} changed since the trial (bytes' hash {reference.content_hash[:12]}, "
            f"now {data.content_hash[:12]})"
        )
    recorded = recorded_versions(original.tags)
    if not any(recorded.values()):
        differences.append("the trial recorded no versions (it ran before vae-lab recorded them)")
        return data, differences
    for name, now in what_ran().versions().items():
        then = recorded[name]
        if then != now:
            differences.append(f"{name} {then or 'none'} then, {now or 'none'} now")
    return data, differences


def start_reproduction(tracker: Tracker, original: Original, device: torch.device, number: int) -> StartedTrial:
    """The new run, beside the study's runs, linked to the original; its configs are the record's."""
    record, spec = original.record, original.spec
    run_id = tracker.start_run(
        original.experiment_id,
        f"reproduce-trial-{number:03d}-{record.model.architecture}",
        tags={
            RunTag.KIND: REPRODUCTION_KIND,
            RunTag.REPRODUCES: original.run_id,
            RunTag.STUDY: record.study,
            RunTag.TRIAL: number,
            RunTag.ARCHITECTURE: record.model.architecture,
            RunTag.DEVICE: str(device),
            RunTag.COMPUTE_THREADS: original.tags.get(RunTag.COMPUTE_THREADS, torch.get_num_threads()),
            **what_ran_tags(spec),
        },
        params=run_params(record.model, record.train, spec),
    )
    record_what_ran(tracker, run_id)
    return StartedTrial(run_id, record.model, record.train, time.perf_counter())


def best_metrics(metrics: dict[str, float]) -> dict[str, float]:
    """What a trial learned, from its run's summary: every best_* metric, the generation scores of
    the restored model and the counters beside them, less the machine's measures (timings, memory)."""
    learned = {k: v for k, v in metrics.items() if not any(part in k for part in MACHINE_MEASURES)}
    return {
        k: v
        for k, v in sorted(learned.items())
        if k.startswith(("best_", GENERATION_PREFIX)) and not k.endswith("_baseline") or k in COUNTERS
    }
