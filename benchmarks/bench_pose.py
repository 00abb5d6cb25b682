"""The pose family against pointnet: reconstruction, kNN label accuracy and pose invariance.

    python benchmarks/bench_pose.py --data /work/shared/data/fragments-wehi.parquet --steps pose --epochs 20
    python benchmarks/bench_pose.py --steps pose,pointnet --epochs 2 --train-rows 2000   # smoke test
    python benchmarks/bench_pose.py --steps pointnet --set latent_dim=32 --set augment=so3  # any field

Each step trains one model through the package's own `Trainer` on the full train split (or
its first --train-rows rows) of the bundled synthetic dataset or --data, keeps the weights of
its best-val-F1 epoch, and is scored on the full validation split: val macro F1, kNN (5-NN
label accuracy on the first 2,000 validation latent means), active units, and pose invariance.

Pose invariance (the quantity `val_pose_invariance` names): for the first 500 validation
samples, the mean distance between a sample's latent mean and those of COPIES randomly
rotated copies (continuous rotations about the grid's centre, re-voxelised: cells rounded,
cells leaving the grid dropped, a collision keeps the rarer class), over the median distance
between the latent means of different samples. 0: the latent ignores pose.
`pose_invariance_cube`: the same under the cube's 24 rotations, which move cells onto cells.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

INVARIANCE_SAMPLES = 500
COPIES = 4

BASE_TRAIN = dict(
    loss="set",
    class_weighting="log",
    beta=0.1,
    optimizer="adamw",
    learning_rate=3e-3,
    lr_schedule="cosine",
    batch_size=128,
    weight_decay=0.0,
)
STEPS = {
    "pose": (dict(architecture="pose", latent_dim=16, width=256), dict(BASE_TRAIN, learning_rate=2e-3)),
    "pose-w128": (dict(architecture="pose", latent_dim=16, width=128), BASE_TRAIN),
    "split": (dict(architecture="split", latent_dim=40, width=512), dict(BASE_TRAIN, beta=0.01, augment="so3")),
    "pointnet": (dict(architecture="pointnet", latent_dim=16, width=512), BASE_TRAIN),
    "pointnet-rot": (
        dict(architecture="pointnet", latent_dim=16, width=512),
        dict(BASE_TRAIN, augment="rotations", weight_decay=0.1),
    ),
}


def rotate_grids(grids: np.ndarray, rng: np.random.Generator, cube: bool = False) -> np.ndarray:
    """Each grid under its own uniformly random rotation about the grid's centre: continuous, or
    one of the cube's 24 (which maps cells onto cells: nothing is re-voxelised)."""
    from scipy.spatial.transform import Rotation

    from vae_lab.data.synth import cube_rotations

    n, edge = len(grids), grids.shape[1]
    if cube:
        matrices = cube_rotations()[rng.integers(0, 24, n)].astype(np.float64)
    else:
        matrices = Rotation.random(n, random_state=rng.integers(2**31)).as_matrix()
    out = np.zeros_like(grids)
    sample, *xyz = np.nonzero(grids)
    values = grids[sample, *xyz]
    centre = (edge - 1) / 2
    coords = np.stack(xyz, axis=1) - centre
    turned = np.rint(np.einsum("nij,nj->ni", matrices[sample], coords) + centre).astype(np.int64)
    inside = ((turned >= 0) & (turned < edge)).all(axis=1)
    order = np.argsort(values[inside], kind="stable")  # written last wins: the higher (rarer) class
    s, t, v = sample[inside][order], turned[inside][order], values[inside][order]
    out[s, t[:, 0], t[:, 1], t[:, 2]] = v
    return out


def latent_means(model, grids: np.ndarray) -> np.ndarray:
    import torch

    from vae_lab.training import TensorData

    data = TensorData.for_model(model, grids, None, model.config.max_points)
    model.eval()
    with torch.no_grad():
        return torch.cat([model.metric_latent(model.forward_batch(b)) for b in data.batches(1024)]).numpy()


def pose_invariance(model, grids: np.ndarray, seed: int = 0, cube: bool = False) -> float:
    """Mean latent distance to rotated copies over the median distance between samples."""
    from scipy.spatial.distance import pdist

    rng = np.random.default_rng(seed)
    grids = grids[:INVARIANCE_SAMPLES]
    base = latent_means(model, grids)
    copies = [latent_means(model, rotate_grids(grids, rng, cube)) for _ in range(COPIES)]
    moved = [np.linalg.norm(copy - base, axis=1).mean() for copy in copies]
    return float(np.mean(moved) / np.median(pdist(base)))


def with_overrides(step: tuple[dict, dict], overrides: list[str]) -> tuple[dict, dict]:
    """A step's (model fields, train fields) with `key=value` overrides put where each key belongs."""
    import yaml

    from vae_lab.models import ModelConfig

    model_fields, train_fields = dict(step[0]), dict(step[1])
    for item in overrides:
        key, _, value = item.partition("=")
        target = model_fields if key in ModelConfig.model_fields else train_fields
        target[key] = yaml.safe_load(value)
    return model_fields, train_fields


def run_step(
    name: str,
    data,
    epochs: int,
    train_rows: int | None,
    overrides: list[str] = (),
    log=sys.stderr,
    save: Path | None = None,
) -> dict:
    import torch

    from vae_lab.models import ModelConfig, build_model
    from vae_lab.runtime import Runtime
    from vae_lab.training import TensorData, TrainConfig, Trainer
    from vae_lab.training.callbacks import Callback
    from vae_lab.training.generation import GenerationCheck, GenerationReference

    class EpochLog(Callback):
        def on_epoch_end(self, trainer, epoch, metrics):
            print(
                f"  [{name}] epoch {epoch + 1}/{epochs} val_f1 {metrics['val_f1']:.4f} kl {metrics['val_kl']:.1f} "
                f"train {metrics['train_time_s']:.0f}s",
                file=log,
                flush=True,
            )

    started = time.perf_counter()
    model_fields, train_fields = with_overrides(STEPS[name], list(overrides))
    torch.manual_seed(0)
    model = build_model(ModelConfig(grid=data.grid, max_points=8, **model_fields))
    config = TrainConfig(
        **train_fields,
        epochs=epochs,
        seed=0,
        patience=epochs + 1,
        early_stopping_metric="val_f1",
        select_metric="val_f1",
        select_mode="max",
    )
    rows = slice(None, train_rows)
    train = TensorData.for_model(model, data.train.grids[rows], data.train.labels[rows], 8)
    val = TensorData.for_model(model, data.val.grids, data.val.labels, 8)
    # 256 grids from the prior, scored against the training split, as a study's trial does.
    generation = GenerationCheck(GenerationReference.from_splits(data.train.grids[rows], data.val.grids), 256, 0)
    trainer = Trainer(model, config, callbacks=[EpochLog()], runtime=Runtime(device="cpu"), generation=generation)
    result = trainer.fit(train, val)
    best = result.best_metrics
    final = result.final.scores
    if save is not None:  # the best epoch's weights and the config that builds the model again
        torch.save({"config": model.config.model_dump(), "state": model.state_dict()}, save)
    return {
        "step": name,
        "model": model_fields,
        "train": {**train_fields, "epochs": epochs},
        "train_rows": len(train),
        "val_f1": best["val_f1"],
        "knn": best.get("val_knn_accuracy"),
        "exact": best["val_exact_match"],
        "active_units": best["val_active_units"],
        "val_kl": best["val_kl"],
        "per_class_f1": [round(best.get(f"val_f1_c{c}", float("nan")), 3) for c in range(1, 5)],
        "occupancy_precision": best["val_occupancy_precision"],
        "occupancy_recall": best["val_occupancy_recall"],
        "kl_content": best.get("val_kl_content"),
        "kl_pose": best.get("val_kl_pose"),
        "pose_part_invariance": final.get("pose_part_invariance"),
        "generation": {k: v for k, v in final.items() if k.startswith("gen_")},
        "best_epoch": result.best_epoch + 1,
        "pose_invariance": pose_invariance(model, data.val.grids),
        "pose_invariance_cube": pose_invariance(model, data.val.grids, cube=True),
        "wall_s": time.perf_counter() - started,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", default="pose,pointnet", help=f"comma-separated, of: {', '.join(STEPS)}")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--train-rows", type=int, default=None, help="first N training rows (default: the full split)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--data", default=None, help="dataset file (default: the bundled synthetic dataset)")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a model or training field"
    )
    parser.add_argument("--out", type=Path, default=None, help="append the JSON rows to this file")
    parser.add_argument("--save", type=Path, default=None, help="save each step's best weights as SAVE-<step>.pt")
    args = parser.parse_args(argv)

    import torch

    from vae_lab.data import default_dataset, prepare_dataset

    torch.set_num_threads(args.threads)
    data = prepare_dataset(default_dataset(args.data), toy_fraction=1.0, seed=0)
    print(
        f"bench_pose {dt.datetime.now():%Y-%m-%d %H:%M}, torch {torch.__version__}, {args.threads} thread(s), "
        f"{platform.machine()}; data {args.data or 'synthetic'}: train {len(data.train)} / val {len(data.val)}",
        file=sys.stderr,
    )
    for name in (step.strip() for step in args.steps.split(",")):
        save = None if args.save is None else args.save.with_name(f"{args.save.name}-{name}.pt")
        row = {
            "data": args.data or "synthetic",
            **run_step(name, data, args.epochs, args.train_rows, args.set, save=save),
        }
        print(json.dumps(row), flush=True)
        if args.out is not None:
            with args.out.open("a") as handle:
                handle.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
