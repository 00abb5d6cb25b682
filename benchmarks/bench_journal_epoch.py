"""The journal's first configuration at the journal's first size: one epoch, timed.

The journal trained `fc` at batch 64 on 196,262 raw training rows and after 12.5 hours had not
finished the first configuration (about 4.6 hours an epoch). This trains the same model, loss
and batch size on the same number of rows of the bundled synthetic data (raw rows, duplicates
and all, as the journal had them), with the vae-lab trainer, and times one epoch plus its
validation pass.

    .venv/bin/python benchmarks/bench_journal_epoch.py [--threads 2] [--rows 196262]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from vae_lab.data import synthesize
from vae_lab.data.synth import voxel_columns
from vae_lab.models import ModelConfig, build_model
from vae_lab.runtime import Runtime
from vae_lab.training import TensorData, TrainConfig, Trainer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=196_262)
    parser.add_argument("--val-rows", type=int, default=2_702)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    frame = synthesize()
    grids = frame[voxel_columns(11)].to_numpy(dtype=np.uint8).reshape(-1, 11, 11, 11)
    train = TensorData.from_arrays(grids[: args.rows])
    val = TensorData.from_arrays(grids[args.rows : args.rows + args.val_rows])
    torch.manual_seed(0)
    model = build_model(ModelConfig(architecture="fc", latent_dim=2, output="scalar"))
    config = TrainConfig(loss="mse", class_weighting="log", beta=0.1, batch_size=64, learning_rate=1e-3, epochs=1)
    started = time.perf_counter()
    result = Trainer(model, config, runtime=Runtime(device=args.device)).fit(train, val)
    wall = time.perf_counter() - started
    epoch = result.history[0]
    print(
        f"fc, batch 64, {len(train):,} training rows, {torch.get_num_threads()} threads: "
        f"train {epoch['train_time_s']:.1f} s ({len(train) / epoch['train_time_s']:,.0f} rows/s) + validation {epoch['val_time_s']:.2f} s; "
        f"fit() {wall:.1f} s in all (the journal: ~4.6 h)"
    )


if __name__ == "__main__":
    main()
