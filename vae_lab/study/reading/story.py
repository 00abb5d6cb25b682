"""A study's story, gathered for its report: stored trials, their curves, the champion's arrays.

`study_view` reads the Optuna study (the trials' states, values, summaries, reasons) and MLflow
(each trial's val_f1 and val_kl per epoch, the champion in the registry) into the plain
`vae_lab.viz.study_report.StudyView` that the report and the comparison pages draw. The study
runtime refreshes `report.html` and `pareto.html` on the parent run with it as trials finish;
`vae-lab study report` and `vae-lab study compare` gather the same way offline.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import optuna
import torch
import yaml
from optuna.trial import TrialState

from vae_lab.data import PreparedDataset
from vae_lab.data.sparse import max_occupied
from vae_lab.models import BaseVAE
from vae_lab.study.design.spec import StudySpec
from vae_lab.study.reading.trials import duration_s, family_of, learned_counts, own_trials
from vae_lab.study.trial.artifacts import gallery_samples
from vae_lab.study.trial.provenance import (
    INVOCATION_KIND,
    RunTag,
    StudyAttr,
    TrialAttr,
    TrialStatus,
    VersionTag,
    failure_reason_of,
    run_id_of,
)
from vae_lab.study.trial.what_ran import STUDY_FILE
from vae_lab.tracking import PlotlyAssets, Tracker
from vae_lab.training import TensorData
from vae_lab.training.metrics import confusion_matrix, per_class_f1
from vae_lab.viz import project_latents
from vae_lab.viz.study_report import CURVES, ChampionView, StudyView, TrialView

logger = logging.getLogger(__name__)

REPORT_FILE = "report.html"
PARETO_FILE = "pareto.html"


@dataclass
class StoryContext:
    """What the report needs besides the stored study: the spec and (for the champion's figures)
    the data; the champion's arrays are kept until the champion changes."""

    spec: StudySpec
    data: PreparedDataset | None = None
    cached: dict[str, ChampionView] = field(default_factory=dict)
    # A finished trial's curves and reason never change: read once, not at every refresh.
    finished: dict[int, tuple[dict, str | None]] = field(default_factory=dict)
    # The planner's estimate prepares data and builds every model: once per invocation, not per refresh.
    planned: list[float | None] = field(default_factory=list)

    def planned_s(self, data_path: Path | None) -> float | None:
        if not self.planned:
            self.planned.append(planned_time(self.spec, data_path))
        return self.planned[0]


def trial_views(
    study: optuna.Study, tracker: Tracker, names: list[str], finished: dict | None = None
) -> list[TrialView]:
    """Every trial as the report shows it; `finished` caches the curves of finished trials."""
    views = []
    finished = {} if finished is None else finished
    for t in own_trials(study):
        values = {k: float(v) for k, v in t.user_attrs.get(TrialAttr.SUMMARY, {}).items()}
        if t.values and len(t.values) == len(names):
            values.update(zip(names, map(float, t.values), strict=True))
        run_id, reason = run_id_of(t), failure_reason_of(t)
        curves = {}
        if t.number in finished:
            curves, reason = finished[t.number]
        elif run_id:
            try:
                curves = {name: tracker.metric_history(run_id, name) for name in CURVES}
                if t.state == TrialState.PRUNED and reason is None:
                    reason = tracker.client.get_run(run_id).data.tags.get(RunTag.PRUNED_REASON)
            except Exception as error:  # a run removed from MLflow: the trial still tells its part
                logger.debug("no MLflow run for trial %s: %s", t.number, error)
            if t.state.is_finished():
                finished[t.number] = (curves, reason)
        views.append(
            TrialView(
                t.number, family_of(t), TrialStatus.of(t.state), values, dict(t.params), duration_s(t), reason, curves
            )
        )
    return views


def wall_time(study: optuna.Study) -> float | None:
    """From the first trial's start to the last one's end."""
    trials = [t for t in own_trials(study) if t.duration is not None]
    if not trials:
        return None
    return (max(t.datetime_complete for t in trials) - min(t.datetime_start for t in trials)).total_seconds()


def planned_time(spec: StudySpec, data_path: Path | None) -> float | None:
    """The planner's estimate from this machine's cached calibration (None when there is none)."""
    try:
        from vae_lab.study.design.planner import plan_study

        return plan_study(spec, data_path=data_path, calibrate_if_missing=False).estimated_s
    except Exception as error:  # an estimate is a nicety: never fatal
        logger.debug("no plan estimate: %s", error)
        return None


def study_view(study: optuna.Study, tracker: Tracker, story: StoryContext) -> StudyView:
    """Everything the report shows, from the stores (see the module docstring)."""
    from vae_lab.errors import VaeLabError
    from vae_lab.registry import champion_info

    spec = story.spec
    names = spec.objective.names
    trials = trial_views(study, tracker, names, story.finished)
    champion, rule, run_id = None, spec.champion_rule().describe(), None
    try:
        info = champion_info(tracker, spec.model_name)
        champion, run_id = int(info["tags"][VersionTag.TRIAL]), info["run_id"]
        rule = info["tags"].get(VersionTag.CHAMPION_RULE, rule)
    except (VaeLabError, KeyError, ValueError):
        pass
    text = yaml.safe_dump(spec.model_dump(mode="json", exclude_defaults=True), sort_keys=False)
    data_path = Path(study.user_attrs[StudyAttr.DATA_PATH]) if StudyAttr.DATA_PATH in study.user_attrs else None
    view = StudyView(
        spec.name,
        text,
        dict(spec.objective.directions),
        trials,
        champion,
        rule,
        story.planned_s(data_path),
        wall_time(study),
        learned=learned_counts(study),
    )
    if run_id is not None and story.data is not None:
        if run_id not in story.cached:
            try:
                story.cached.clear()
                story.cached[run_id] = champion_view(tracker, spec, story.data)
            except Exception as error:  # the champion's figures are a part of the report, not a reason to lose it
                logger.warning("could not draw the champion for the report: %s", error)
        view.champion_view = story.cached.get(run_id)
    return view


@torch.no_grad()
def _forward(model: BaseVAE, data: TensorData, batch: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """(metric latent, predicted grids) of every sample, in eval mode on the CPU: the posterior
    mean, or its content part for a family whose latent also holds the pose."""
    model.eval()
    mus, grids = [], []
    for start in range(0, len(data), batch):
        out = model.forward_batch(data.batch(slice(start, start + batch)))
        mus.append(model.metric_latent(out).float().cpu().numpy())
        grids.append(model.predict_grid(out).cpu().numpy().astype(np.uint8))
    return np.concatenate(mus), np.concatenate(grids)


def champion_view(tracker: Tracker, spec: StudySpec, data: PreparedDataset) -> ChampionView:
    """The champion's gallery, latent map and per-class F1 on (the first max_points of) validation."""
    from vae_lab.registry import load_version

    model, _ = load_version(tracker, spec.model_name)
    n = min(len(data.val.grids), spec.artifacts.max_points)
    max_points = max(1, *(max_occupied(s.grids) for s in (data.train, data.val, data.test) if len(s.grids)))
    val = TensorData.for_model(model, data.val.grids[:n], data.val.labels[:n], max_points)
    mu, predicted = _forward(model, val)
    originals = data.val.grids[:n]
    labels = data.val.labels[:n]
    errors = (predicted.reshape(n, -1) != originals.reshape(n, -1)).sum(1)
    indices, names = gallery_samples(labels, errors, data.label_names, max(1, spec.artifacts.reconstructions))
    confusion = confusion_matrix(torch.from_numpy(predicted), torch.from_numpy(originals))
    scores = {f"class {c}": f for c, f in per_class_f1(confusion).items() if f is not None}
    xy = project_latents(mu, "pca")[0] if n >= 3 else np.zeros((n, 2))
    return ChampionView(
        originals[indices], predicted[indices], names, xy, labels, list(data.label_names), originals, predicted, scores
    )


def write_story(tracker: Tracker, run_id: str, study: optuna.Study, story: StoryContext, assets: PlotlyAssets) -> None:
    """report.html and the Pareto figure (several objectives) on the parent run."""
    from vae_lab.viz.study_report import pareto_figure, study_report_html

    view = study_view(study, tracker, story)
    if not any(t.state == TrialStatus.COMPLETE for t in view.trials):
        return
    if len(view.objectives) > 1:
        tracker.log_figure(run_id, pareto_figure(view), PARETO_FILE, assets)
    tracker.log_text(run_id, study_report_html(view, assets), REPORT_FILE)


def stored_view(name: str, settings=None, *, with_champion: bool = True) -> StudyView:
    """The report's view of a stored study, by name, without running anything. The spec comes
    from the study's last invocation (`study.yaml` on its parent run), else from its file."""
    from vae_lab.config import get_settings
    from vae_lab.stores import check_stores
    from vae_lab.study.design.spec import load_study_spec, parse_study
    from vae_lab.study.reading.status import load_stored_study
    from vae_lab.study.trial.storage import open_storage

    settings = settings or get_settings()
    check_stores(settings)
    study = load_stored_study(name, open_storage(settings.optuna_storage))
    tracker = Tracker(settings)
    text = _logged_spec(tracker, name)
    spec = parse_study(yaml.safe_load(text), f"study {name}: study.yaml") if text else load_study_spec(name)[0]
    data = None
    data_path = study.user_attrs.get(StudyAttr.DATA_PATH)
    if with_champion and data_path and Path(data_path).is_file():
        data = spec.data.prepare(Path(data_path), settings.cache_dir)
    return study_view(study, tracker, StoryContext(spec, data))


def _logged_spec(tracker: Tracker, name: str) -> str | None:
    experiment = tracker.client.get_experiment_by_name(name)
    if experiment is None:
        return None
    runs = tracker.client.search_runs(
        [experiment.experiment_id],
        f"tags.{RunTag.KIND} = '{INVOCATION_KIND}'",
        order_by=["attributes.start_time DESC"],
        max_results=5,
    )
    for run in runs:
        try:
            return tracker.read_text(run.info.run_id, STUDY_FILE)
        except Exception:  # an invocation from before study.yaml was logged
            continue
    return None


def write_report(name: str, out: Path, settings=None) -> Path:
    """`vae-lab study report NAME --out FILE`: the study's report page, self-contained (plotly.js inside)."""
    from vae_lab.viz.study_report import study_report_html

    out.write_text(study_report_html(stored_view(name, settings), PlotlyAssets("embed")))
    return out


def compare_studies(first: str, second: str, out: Path | None = None, settings=None) -> list[tuple[str, str, str]]:
    """`vae-lab study compare A B`: (what, A, B) rows, and the side-by-side page when `out` is given."""
    from vae_lab.viz.study_report import compare_html, compare_rows

    a, b = (stored_view(n, settings, with_champion=False) for n in (first, second))
    if out is not None:
        out.write_text(compare_html(a, b, PlotlyAssets("embed")))
    return compare_rows(a, b)
