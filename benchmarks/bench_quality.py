"""Reconstruction quality, step by step: from the journal's settings to the best recipe.

    python benchmarks/bench_quality.py                       # every step (about an hour on 1 CPU thread)
    python benchmarks/bench_quality.py --steps journal-latent2 --epochs-scale 0.1   # smoke test, ~1 min
    python benchmarks/bench_quality.py --steps pointnet,best --out results.md
    python benchmarks/bench_quality.py --list

Each step trains one model through the package's own `Trainer` on the FULL train split of the
bundled synthetic dataset (or --data) and is scored on the full validation split, so the
figures are what a study would log. Every step keeps the weights of its best-val-F1 epoch
(`select_metric=val_f1`) and never stops early, so steps differ only in what the table says
changed. The first rows are the journal's own settings; each later row adds one change that
helped, in order, ending with the best recipe found (see the research notes for what did not).

Columns: val macro F1 over classes 1-4 and per class; kNN = leave-one-out 5-NN label accuracy
on the validation latent means (first 2,000); AU = active units (Var(mu) >= 0.01); train F1 on
the first 3,000 training rows (the generalisation gap); epochs = best epoch / epochs run;
wall = build + fit + scoring seconds.

Works against the installed `vae_lab` or any copy on PYTHONPATH (the header prints which).
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Step:
    name: str
    what: str  # what changed against the previous row
    model: dict[str, Any]  # ModelConfig fields (architecture, latent_dim, output, width)
    train: dict[str, Any]  # TrainConfig fields; epochs included
    toy_fraction: float = 1.0
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


# The journal: fc, scalar head trained with MSE, log class weights, beta 0.1, Adam 1e-3, batch 64.
JOURNAL_TRAIN = dict(
    loss="mse",
    class_weighting="log",
    beta=0.1,
    optimizer="adam",
    learning_rate=1e-3,
    lr_schedule="constant",
    batch_size=64,
    epochs=15,
)
# The fc categorical head with the class-weighted cross-entropy.
FC_CAT = dict(JOURNAL_TRAIN, loss="weighted_ce")
# A higher peak rate with a cosine decay (2% warm-up) and a larger batch: faster per second.
FAST_LR = dict(learning_rate=3e-3, lr_schedule="cosine", batch_size=128)
# pointnet: the matched set loss with log descriptor weights.
POINTNET_TRAIN = dict(FC_CAT, loss="set", **FAST_LR, epochs=20)
# Decoupled weight decay (AdamW) is the one optimiser knob that narrows the train/val gap;
# KL control (beta 0.05 / 0.2), batch 64, width 768 and latent 32 did not help.
ADAMW_TRAIN = dict(POINTNET_TRAIN, optimizer="adamw", weight_decay=0.3, epochs=80)
# Random cube rotations of the training samples close the gap altogether (the model then
# underfits at 40 epochs); the best recipe, the one `studies/quality.yaml` runs, trains it longer.
AUGMENT_TRAIN = dict(POINTNET_TRAIN, augment="rotations", epochs=40)
BEST_TRAIN = dict(AUGMENT_TRAIN, optimizer="adamw", weight_decay=0.1, epochs=80)

STEPS: list[Step] = [
    Step(
        "journal-latent2",
        "journal: fc, scalar head, mse, log weights, beta 0.1, latent 2, Adam 1e-3, bs 64, 15 ep",
        dict(architecture="fc", output="scalar", latent_dim=2),
        JOURNAL_TRAIN,
    ),
    Step("journal-latent4", "journal, latent 4", dict(architecture="fc", output="scalar", latent_dim=4), JOURNAL_TRAIN),
    Step(
        "fc-categorical",
        "categorical head, weighted_ce (log), latent 16",
        dict(architecture="fc", output="categorical", latent_dim=16),
        FC_CAT,
    ),
    Step(
        "fc-lr",
        "Adam 3e-3 cosine, bs 128, 25 ep",
        dict(architecture="fc", output="categorical", latent_dim=16),
        dict(FC_CAT, **FAST_LR, epochs=25),
    ),
    Step(
        "pointnet",
        "family pointnet (set loss, log descriptor weights), width 256, 20 ep",
        dict(architecture="pointnet", latent_dim=16, width=256),
        POINTNET_TRAIN,
    ),
    Step(
        "pointnet-w512",
        "width 512, 40 ep",
        dict(architecture="pointnet", latent_dim=16, width=512),
        dict(POINTNET_TRAIN, epochs=40),
    ),
    Step(
        "pointnet-e80",
        "80 ep (one longer cosine run)",
        dict(architecture="pointnet", latent_dim=16, width=512),
        dict(POINTNET_TRAIN, epochs=80),
    ),
    Step(
        "adamw", "AdamW, weight decay 0.3, 80 ep", dict(architecture="pointnet", latent_dim=16, width=512), ADAMW_TRAIN
    ),
    Step(
        "augment",
        "random cube rotations of each training sample (augment: rotations), Adam, 40 ep",
        dict(architecture="pointnet", latent_dim=16, width=512),
        AUGMENT_TRAIN,
    ),
    Step(
        "best",
        "rotations + AdamW weight decay 0.1, 80 ep (studies/quality.yaml)",
        dict(architecture="pointnet", latent_dim=16, width=512),
        BEST_TRAIN,
    ),
]
STEP_NAMES = [s.name for s in STEPS]


def scaled(step: Step, factor: float) -> Step:
    """The step with its epochs (and epoch-counted KL schedules) scaled by `factor`, at least 1."""
    if factor == 1.0:
        return step
    train = dict(step.train)
    train["epochs"] = max(1, round(train["epochs"] * factor))
    for key in ("kl_warmup_epochs",):
        if train.get(key):
            train[key] = max(1, round(train[key] * factor))
    return Step(step.name, step.what, step.model, train, step.toy_fraction, step.seed, step.extra)


def load_split(data_path: str | None, toy_fraction: float, seed: int, cache_dir: str | None):
    from vae_lab.data import default_dataset, prepare_dataset

    return prepare_dataset(default_dataset(data_path), toy_fraction=toy_fraction, seed=seed, cache_dir=cache_dir)


def run_step(step: Step, data, *, log=sys.stderr) -> dict[str, Any]:
    """Train one step with the package's Trainer; the row's numbers."""
    import torch

    from vae_lab.models import ModelConfig, build_model
    from vae_lab.runtime import Runtime
    from vae_lab.training import TensorData, TrainConfig, Trainer
    from vae_lab.training.callbacks import Callback

    class EpochLog(Callback):
        def on_epoch_end(self, trainer, epoch, metrics):
            print(
                f"  [{step.name}] epoch {epoch + 1}/{trainer.config.epochs} val_f1 {metrics['val_f1']:.4f} "
                f"kl {metrics['val_kl']:.1f} au {metrics['val_active_units']:.0f} train {metrics['train_time_s']:.1f}s",
                file=log,
                flush=True,
            )

    started = time.perf_counter()
    torch.manual_seed(step.seed)
    model_config = ModelConfig(grid=data.grid, max_points=8, **step.model)
    model = build_model(model_config)
    epochs = step.train["epochs"]
    config = TrainConfig(
        **step.train,
        seed=step.seed,
        patience=epochs + 1,
        early_stopping_metric="val_f1",
        select_metric="val_f1",
        select_mode="max",
    )
    train = TensorData.for_model(model, data.train.grids, data.train.labels, 8)
    val = TensorData.for_model(model, data.val.grids, data.val.labels, 8)
    trainer = Trainer(model, config, callbacks=[EpochLog()], runtime=Runtime(device="cpu"))
    result = trainer.fit(train, val)
    best = result.best_metrics
    train_scores = trainer.validate(train.head(3000), config.beta_at(result.best_epoch)).scores
    wall = time.perf_counter() - started
    return {
        "step": step.name,
        "what": step.what,
        "val_f1": best["val_f1"],
        "per_class": [best.get(f"val_f1_c{c}", float("nan")) for c in range(1, 5)],
        "knn": best.get("val_knn_accuracy", float("nan")),
        "active_units": int(best["val_active_units"]),
        "val_kl": best["val_kl"],
        "train_f1": train_scores["f1"],
        "best_epoch": result.best_epoch + 1,
        "epochs": len(result.history),
        "wall_s": wall,
        "s_per_epoch": sum(h["train_time_s"] for h in result.history) / len(result.history),
        "model": step.model,
        "train": step.train,
        "history_f1": [round(h["val_f1"], 4) for h in result.history],
    }


HEADER = (
    "| step | what changed | val F1 | per-class F1 (1/2/3/4) | kNN acc | AU | train F1 (3k) | epochs (best/run) | wall s |"
    "\n|---|---|---:|---|---:|---:|---:|---:|---:|"
)


def row(r: dict[str, Any]) -> str:
    per_class = "/".join(f"{v:.3f}".lstrip("0") if v == v else "-" for v in r["per_class"])
    return (
        f"| {r['step']} | {r['what']} | {r['val_f1']:.3f} | {per_class} | {r['knn']:.3f} | {r['active_units']} | "
        f"{r['train_f1']:.3f} | {r['best_epoch']}/{r['epochs']} | {r['wall_s']:.0f} |"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--steps", default=",".join(STEP_NAMES), help="comma-separated step names (default: all, in order)"
    )
    parser.add_argument(
        "--epochs-scale", type=float, default=1.0, help="multiply every step's epochs (0.1 for a smoke test)"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--out", type=Path, default=None, help="append the markdown table to this file")
    parser.add_argument(
        "--data", default=None, help="dataset file (default: the bundled synthetic dataset / VAE_LAB_DATA)"
    )
    parser.add_argument("--cache-dir", default=None, help="prepared-dataset cache (default: the cache_dir setting)")
    parser.add_argument("--list", action="store_true", help="list the steps and exit")
    args = parser.parse_args(argv)

    if args.list:
        for s in STEPS:
            print(f"{s.name:24s} {s.what}")
        return
    by_name = {s.name: s for s in STEPS}
    names = [n.strip() for n in args.steps.split(",") if n.strip()]
    unknown = [n for n in names if n not in by_name]
    if unknown:
        parser.error(f"unknown step(s) {', '.join(unknown)}; known: {', '.join(STEP_NAMES)}")
    if args.epochs_scale <= 0:
        parser.error("--epochs-scale must be > 0")

    import torch

    import vae_lab

    torch.set_num_threads(args.threads)
    steps = [scaled(by_name[n], args.epochs_scale) for n in names]
    data = load_split(args.data, 1.0, 0, args.cache_dir)
    header = (
        f"bench_quality {dt.datetime.now():%Y-%m-%d %H:%M}, vae_lab from {Path(vae_lab.__file__).parent}, torch {torch.__version__}, "
        f"{args.threads} thread(s), {platform.processor() or platform.machine()}; train {len(data.train)} / val {len(data.val)} rows; "
        f"epochs scale {args.epochs_scale}"
    )
    print(header, file=sys.stderr, flush=True)
    rows = []
    for step in steps:
        r = run_step(step, data)
        rows.append(r)
        print(row(r), file=sys.stderr, flush=True)
    table = "\n".join([f"<!-- {header} -->", HEADER, *map(row, rows)])
    print(table)
    if args.out is not None:
        with args.out.open("a") as handle:
            handle.write(table + "\n\n")


if __name__ == "__main__":
    main()
