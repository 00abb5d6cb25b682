"""What the per-epoch diagnostics cost: the validation pass with all of them against a bare one.

The trainer's validation pass computes, besides the loss, the confusion of cell classes (F1 per
class, occupancy precision / recall / IoU), exact matches, active units and the KL of each
latent dimension, all on the device. This times, on the full split of the bundled synthetic
data: one training epoch, the full validation pass, and a bare pass (forward and loss only),
and reports the diagnostics' share of an epoch (target: under 10% on `fc`). It also times the
end-of-trial latent metrics (silhouette, kNN accuracy, trustworthiness), which run once a trial.

    .venv/bin/python benchmarks/bench_diagnostics.py [--threads 2]
"""

from __future__ import annotations

import argparse
import time

import torch

from vae_lab.data import default_dataset, prepare_dataset
from vae_lab.losses import kl_divergence
from vae_lab.models import ModelConfig, build_model
from vae_lab.runtime import Runtime
from vae_lab.training import TensorData, TrainConfig, Trainer, training_weights, validate
from vae_lab.training.latent_metrics import latent_scores


@torch.no_grad()
def bare_pass(model, data: TensorData, config: TrainConfig, weights) -> None:
    model.eval()
    settings = config.loss_settings()
    for batch in data.batches(1024):
        out = model.forward_batch(batch)
        (
            model.reconstruction_loss(out, batch, settings, weights).sum() + kl_divergence(out.mu, out.logvar).sum()
        ).item()


def best_of(repeats: int, work) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = prepare_dataset(default_dataset(None))
    print(
        "| family / head | train epoch s | validation s (all diagnostics) | bare validation s "
        "| diagnostics share of the epoch | latent metrics s (once a trial) |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for output, loss in (("scalar", "mse"), ("categorical", "weighted_ce")):
        torch.manual_seed(0)
        model = build_model(ModelConfig(architecture="fc", latent_dim=16, output=output))
        config = TrainConfig(loss=loss, batch_size=64, epochs=1, beta=0.1)
        trainer = Trainer(model, config, runtime=Runtime(device="cpu"))
        train = TensorData.for_model(model, data.train.grids, data.train.labels, 8)
        val = TensorData.for_model(model, data.val.grids, data.val.labels, 8)
        trainer.weights = weights = training_weights(train.grid, config)
        epoch = best_of(1, lambda: trainer.train_epoch(train, 0.1))
        full = best_of(
            args.repeats, lambda: validate(model, val, loss=config.loss_settings(), beta=0.1, weights=weights)
        )
        bare = best_of(args.repeats, lambda: bare_pass(model, val, config, weights))
        result = validate(model, val, loss=config.loss_settings(), beta=0.1, weights=weights, keep_latents=True)
        latent = best_of(1, lambda: latent_scores(result.latents, val.labels.numpy()))
        share = (full - bare) / (epoch + full)
        print(f"| fc / {output} | {epoch:.2f} | {full:.3f} | {bare:.3f} | {share:.1%} | {latent:.2f} |", flush=True)


if __name__ == "__main__":
    main()
