"""Evaluate a registered model (the champion by default) on a split of the data it was trained on.

The trial's record (`trial_record.json` on its run) says how it was trained and on which rows,
so evaluation rebuilds the same split, class weights, loss and beta, and runs the trainer's own
validation pass: `--split val` reproduces the trial's best val metrics.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import torch

from vae_lab.config import Settings, get_settings
from vae_lab.device import resolve_device
from vae_lab.errors import VaeLabError
from vae_lab.registry import CHAMPION, load_version
from vae_lab.stores import check_stores
from vae_lab.study.reading.record import read_record
from vae_lab.study.trial.provenance import EVALUATION_KIND, RunTag
from vae_lab.study.trial.what_ran import record_what_ran, what_ran_tags
from vae_lab.tracking import Tracker, dataset_key
from vae_lab.training import TensorData, training_weights, validate
from vae_lab.training.latent_metrics import latent_scores

Split = Literal["train", "val", "test"]


def evaluate_registered(
    name: str,
    split: Split = "test",
    *,
    alias: str = CHAMPION,
    data_path: Path | None = None,
    device: str = "auto",
    precision: str | None = None,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """Load `models:/NAME@alias`, score it on `split` and log the scores to an evaluation run.

    `data_path` overrides the file the record names (e.g. a moved copy); if its bytes differ
    from the training file's, the evaluation says so (`same_data: false`).
    """
    settings = settings or get_settings()
    check_stores(settings, optuna=False)
    tracker = Tracker(settings)
    where = f"registry: {name}@{alias}"
    model, info = load_version(tracker, name, alias)
    record = read_record(tracker, info["run_id"], where)
    path = Path(data_path or record.data.path)
    if not path.is_file():
        raise VaeLabError(
            where, f"the dataset it was trained on, {path}, is not there", "pass --data PATH to a copy of it"
        )
    data = record.data.prepare(path, settings.cache_dir)
    reference = data.reference()
    torch_device = resolve_device(device, where="--device")
    rows = data.split(split)
    tensors = TensorData.for_model(model, rows.grids, rows.labels, model.config.max_points).to(torch_device)
    weights = training_weights(torch.from_numpy(data.train.grids).to(torch_device), record.train)
    model = model.to(torch_device)
    result = validate(
        model,
        tensors,
        loss=record.train.loss_settings(),
        beta=record.best_beta,
        weights=weights,
        kl_scale=record.train.kl_scale,
        precision=precision or record.runtime.precision,
        keep_latents=True,
    )
    scores = result.prefixed(split)
    scores.update(
        {f"{split}_{k.removeprefix('val_')}": v for k, v in latent_scores(result.latents, rows.labels).items()}
    )
    experiment_id = tracker.ensure_experiment(record.study)
    run_id = tracker.start_run(
        experiment_id,
        f"evaluate {name}@{alias} v{info['version']} on {split}",
        tags={
            RunTag.KIND: EVALUATION_KIND,
            RunTag.STUDY: record.study,
            RunTag.MODEL: name,
            RunTag.ALIAS: alias,
            RunTag.MODEL_VERSION: info["version"],
            RunTag.ARCHITECTURE: record.model.architecture,
            RunTag.SAME_DATA: reference.same_rows(record.data),
            **what_ran_tags(),
        },
        params={"split": split, "rows": len(tensors), "model_uri": info["uri"], "device": str(torch_device)},
    )
    record_what_ran(tracker, run_id)
    tracker.log_dataset(run_id, reference, (split,))
    tracker.log_metrics(run_id, scores, model_id=info["model_id"], dataset=dataset_key(reference, split))
    tracker.end_run(run_id)
    return {
        "model": name,
        "alias": alias,
        "version": info["version"],
        "split": split,
        "rows": len(tensors),
        "same_data": reference.same_rows(record.data),
        "metrics": scores,
        "evaluation_run_id": run_id,
    }
