"""Does a wider pose search raise a trained pose model's val F1? Scores one model's val split
with the search it uses out of training, with training's narrower one, and with a much wider one.

    MLFLOW_TRACKING_URI=sqlite:///mlflow.db python benchmarks/bench_pose_search.py models:/molecules@champion \
        --data /work/shared/data/fragments-wehi.parquet

The model is loaded with `mlflow.pytorch.load_model` (a `models:/` or `runs:/` URI, or a local
model folder); the val split is `prepare_dataset`'s (seed 0, full train split), as in a study.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from vae_lab.data import default_dataset, prepare_dataset
from vae_lab.models import pose
from vae_lab.training import TensorData
from vae_lab.training.metrics import confusion_matrix, macro_f1, row_exact_match

SEARCHES = {  # name: (spiral rotations, refined starts, refining rounds)
    "training": (pose.SPIRAL_ROTATIONS, pose.REFINE_STARTS, pose.REFINE_ROUNDS),
    "evaluation": (pose.SPIRAL_ROTATIONS, pose.EVAL_REFINE_STARTS, pose.EVAL_REFINE_ROUNDS),
    "wide": (1000, 16, 8),
}


def score(model, val: TensorData) -> dict:
    started = time.perf_counter()
    predicted, target = [], []
    with torch.no_grad():
        for batch in val.batches(256):
            predicted.append(model.predict_grid(model.forward_batch(batch)))
            target.append(batch.grid)
    p, g = torch.cat(predicted), torch.cat(target)
    return {
        "val_f1": macro_f1(confusion_matrix(p, g)),
        "exact": row_exact_match(p, g).float().mean().item(),
        "seconds": time.perf_counter() - started,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="a pose model: models:/NAME@ALIAS, runs:/..., or a folder")
    parser.add_argument("--data", default=None, help="dataset file (default: the bundled synthetic dataset)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import mlflow.pytorch

    torch.set_num_threads(args.threads)
    model = mlflow.pytorch.load_model(args.model, map_location="cpu").eval()
    data = prepare_dataset(default_dataset(args.data), toy_fraction=1.0, seed=0)
    val = TensorData.for_model(model, data.val.grids, data.val.labels, model.config.max_points)
    for name, (spiral, starts, rounds) in SEARCHES.items():
        pose.SPIRAL_ROTATIONS = spiral
        model.candidates = pose.candidate_poses()
        # The model reads its out-of-training search from these two names.
        pose.EVAL_REFINE_STARTS, pose.EVAL_REFINE_ROUNDS = starts, rounds
        row = {"search": name, "candidates": len(model.candidates), "starts": starts, "rounds": rounds}
        print(json.dumps({**row, **score(model, val)}), flush=True)


if __name__ == "__main__":
    main()
