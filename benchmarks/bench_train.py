"""Trainer throughput against a bare PyTorch loop, on this machine.

    python benchmarks/bench_train.py [--rows 18911] [--epochs 3] [--arch fc] [--batch-size 64]

Both loops train the same model (same init) with Adam on the same in-memory data, batch 64,
MSE on values scaled to [0, 1] plus beta * KL. The bare loop is what a researcher would write
by hand: a float tensor, a random permutation, slices. Rows/s counts training rows only (the
trainer's validation pass is excluded via its own train_time_s).
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import torch

from vae_lab.models import ModelConfig, build_model
from vae_lab.training import TensorData, TrainConfig, Trainer
from vae_lab.training.losses import kl_divergence


def synthetic_grids(n: int, edge: int = 11, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    grids = np.zeros((n, edge**3), dtype=np.uint8)
    rows = np.repeat(np.arange(n), 6)
    cells = rng.integers(0, edge**3, size=len(rows))
    grids[rows, cells] = rng.choice([1, 2, 3, 4], size=len(rows), p=[0.6, 0.25, 0.1, 0.05])
    return grids.reshape(n, edge, edge, edge)


def bare_loop(model: torch.nn.Module, x: torch.Tensor, epochs: int, batch_size: int, beta: float) -> float:
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    started = time.perf_counter()
    for _ in range(epochs):
        order = torch.randperm(len(x))
        for i in range(0, len(x), batch_size):
            xb = x[order[i : i + batch_size]]
            mu, logvar = model.encode(xb)
            z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
            recon = torch.sigmoid(model.decode(z))
            loss = ((recon - xb) ** 2).flatten(1).sum(1).mean() + beta * kl_divergence(mu, logvar).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return len(x) * epochs / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=18911)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--arch", default="fc")
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()

    grids = synthetic_grids(args.rows)
    val = synthetic_grids(max(args.rows // 7, 64), seed=1)
    config = ModelConfig(architecture=args.arch, latent_dim=2)

    torch.manual_seed(0)
    bare_model = build_model(config)
    x = torch.from_numpy(grids).unsqueeze(1).float() / 4
    bare = bare_loop(bare_model, x, args.epochs, args.batch_size, beta=0.1)

    torch.manual_seed(0)
    model = build_model(config)
    train_config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, beta=0.1, patience=args.epochs)
    result = Trainer(model, train_config).fit(TensorData.from_arrays(grids), TensorData.from_arrays(val))
    train_seconds = sum(h["train_time_s"] for h in result.history)
    ours = args.rows * len(result.history) / train_seconds

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{args.arch} batch {args.batch_size}, {args.rows} rows x {args.epochs} epochs")
    print(f"bare PyTorch loop : {bare:8.0f} rows/s")
    print(f"vae-lab Trainer   : {ours:8.0f} rows/s  ({ours / bare:.0%} of bare)")
    print(f"validation pass   : {np.mean([h['val_time_s'] for h in result.history]):.2f} s/epoch on {len(val)} rows")


if __name__ == "__main__":
    main()
