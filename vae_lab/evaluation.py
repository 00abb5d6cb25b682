"""Evaluate a study's champion, reloaded from the registry, on a split of its own data."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import torch

from vae_lab import tracking
from vae_lab.config import Settings, get_settings
from vae_lab.data import prepare_dataset
from vae_lab.errors import VaeLabError
from vae_lab.registry import load_champion, train_config_of
from vae_lab.training import TensorData, evaluate
from vae_lab.training.losses import class_weights
from vae_lab.training.metrics import per_class_f1

Split = Literal["train", "val", "test"]


def evaluate_champion(name: str, split: Split = "test", *, data_path: Path | None = None, settings: Settings | None = None) -> dict[str, Any]:
    """Load `models:/NAME@champion`, score it on `split` and log the scores to an evaluation run.

    The data is prepared with the options the champion was trained with (tags on its version),
    so the split is the same rows; `data_path` overrides the file (e.g. a moved copy).
    """
    settings = settings or get_settings()
    tracking.configure_tracking(settings)
    model, info = load_champion(name)
    tags, train = info["tags"], train_config_of(info)
    path = Path(data_path or tags.get("data_path", ""))
    if not path.is_file():
        raise VaeLabError(f"registry: {name}", f"the champion's dataset {path} is not there", "pass --data PATH")
    data = prepare_dataset(path, toy_fraction=float(tags.get("data_toy_fraction", 1.0)), seed=int(tags.get("data_seed", 0)), cache_dir=settings.cache_dir)
    rows = getattr(data, split)
    k = model.config.max_points if model.input_kind == "sparse" else None
    tensors = TensorData.from_arrays(rows.grids, rows.labels, sparse_points=k)
    # Weigh classes as training did (weights come from the training split) so losses compare.
    weights = class_weights(torch.from_numpy(data.train.grids), train.get("class_weighting", "none"))
    counts = torch.zeros(3, 4, dtype=torch.int64)
    scores = evaluate(model, tensors, loss=train.get("loss", "mse"), beta=train.get("beta", 1.0), kl_scale=train.get("kl_scale", 10.0), weights=weights, counts_out=counts)
    metrics = {f"{split}_{k}": v for k, v in scores.items()}
    for cls, f1 in per_class_f1(counts).items():
        if f1 is not None:
            metrics[f"{split}_f1_class{cls}"] = f1
    study = tags.get("study", name)
    experiment_id = tracking.ensure_experiment(study, settings)
    run_id = tracking.start_run(
        experiment_id,
        f"evaluate {name} v{info['version']} on {split}",
        tags={"kind": "evaluation", "study": study, "model": name, "model_version": info["version"], "architecture": tags.get("best_architecture", "")},
        params={"split": split, "rows": len(tensors), "model_uri": info["uri"]},
    )
    tracking.log_metrics(run_id, metrics)
    tracking.end_run(run_id)
    return {"model": name, "version": info["version"], "split": split, "rows": len(tensors), "metrics": metrics, "evaluation_run_id": run_id}
