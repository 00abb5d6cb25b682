"""Which output head reconstructs better: scalar (one value per cell) or categorical (5 logits)?

    python benchmarks/bench_heads.py [--archs fc conv] [--epochs 20] [--seeds 0 1] [--toy-fraction 0.2]

Trains each architecture with both heads on the bundled synthetic dataset (journal-sized,
20% toy set), same everything else (latent 8, Adam 1e-3, batch 64, beta 0.1, log class
weights, no early stopping so both heads get the same epochs), and prints the best val F1 (macro over classes 1-4) and
the tradeoff score at the epoch the trainer keeps. Slow on CPU: conv takes minutes per run.
"""

from __future__ import annotations

import argparse
import statistics
import time

from vae_lab.data import default_dataset, prepare_dataset
from vae_lab.models import ModelConfig, build_model
from vae_lab.training import TensorData, TrainConfig, Trainer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", nargs="+", default=["fc", "conv"])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--toy-fraction", type=float, default=0.2)
    parser.add_argument("--latent-dim", type=int, default=8)
    args = parser.parse_args()

    data = prepare_dataset(default_dataset(), toy_fraction=args.toy_fraction)
    train = TensorData.from_arrays(data.train.grids, data.train.labels)
    val = TensorData.from_arrays(data.val.grids, data.val.labels)
    print(f"train {len(train)} rows, val {len(val)} rows, latent {args.latent_dim}, up to {args.epochs} epochs, seeds {args.seeds}")
    print("| arch | head | val F1 (per seed) | mean val F1 | mean val tradeoff | mean s/run |")
    print("|---|---|---|---:|---:|---:|")
    for arch in args.archs:
        for head in ("scalar", "categorical"):
            f1s, tradeoffs, seconds = [], [], []
            for seed in args.seeds:
                started = time.perf_counter()
                import torch

                torch.manual_seed(seed)
                model = build_model(ModelConfig(architecture=arch, latent_dim=args.latent_dim, output=head))
                config = TrainConfig(epochs=args.epochs, patience=args.epochs, beta=0.1, seed=seed, select_metric="val_f1")
                best = Trainer(model, config).fit(train, val).best_metrics
                f1s.append(best["val_f1"])
                tradeoffs.append(best["val_tradeoff"])
                seconds.append(time.perf_counter() - started)
            per_seed = ", ".join(f"{f:.3f}" for f in f1s)
            print(f"| {arch} | {head} | {per_seed} | {statistics.mean(f1s):.3f} | {statistics.mean(tradeoffs):.3f} | {statistics.mean(seconds):.0f} |", flush=True)


if __name__ == "__main__":
    main()
