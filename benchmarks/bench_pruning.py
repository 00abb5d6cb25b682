"""Does pruning pay? The same 12-trial grid study run twice, without and with a pruner.

Each run goes through the real study runner in its own throwaway lab (SQLite MLflow store,
journal file, temp artifacts) on the bundled synthetic data. Reported per run: wall time,
trials complete / pruned, epochs trained in all, the best configuration and its objective.
Pruning pays when the pruned run finds the same best configuration, or one within 2% of its
objective, with at most half the epochs.

    .venv/bin/python benchmarks/bench_pruning.py [--pruner successive_halving] [--epochs 18] [--toy-fraction 1.0] [--threads 2] [--space beta|lr]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import optuna
import torch

from vae_lab.config import Settings
from vae_lab.data import default_dataset
from vae_lab.study.design.spec import StudySpec
from vae_lab.study.execution.run import run_study
from vae_lab.study.trial.storage import open_storage

# Two 12-point grids around the quick recipe (pointnet, matched set loss, Adam cosine) on the
# full split. Trials are deterministic (fixed seed, CPU), so the pruned run finds the unpruned
# best exactly unless the pruner stops that trial.
# - "beta": three widths x four KL weights at lr 3e-3: capacity and KL pressure, whose ranking
#   shows in the first epochs.
# - "lr": three widths x four learning rates: under a cosine schedule a high rate looks worse
#   early and wins late (the curves cross), the case where early stopping misleads a pruner.
RECIPE = {
    "architecture": ["pointnet"],
    "latent_dim": [16],
    "lr_schedule": ["cosine"],
    "loss": ["set"],
    "class_weighting": ["log"],
    "batch_size": [128],
}
SPACES = {
    "beta": dict(RECIPE, width=[64, 128, 256], beta=[0.05, 0.1, 0.5, 1.0], learning_rate=[3e-3]),
    "lr": dict(RECIPE, width=[64, 128, 256], learning_rate=[3e-4, 1e-3, 3e-3, 1e-2], beta=[0.1]),
}


def run(pruner: dict, epochs: int, data: Path, toy_fraction: float, space: dict) -> dict:
    raw = {
        "name": f"prune-{pruner['kind']}",
        "data": {"toy_fraction": toy_fraction},
        "sampler": "grid",
        "objective": {"metric": "val_f1"},
        "training": {"epochs": epochs, "patience": epochs, "device": "cpu"},  # no early stopping: pruning alone
        "pruner": pruner,
        "space": space,
        "artifacts": {"pca": False, "reconstructions": 0, "interpolation": False},
    }
    spec = StudySpec.model_validate(raw)
    with tempfile.TemporaryDirectory(prefix="vae-lab-prune-") as folder:
        root = Path(folder)
        settings = Settings(
            mlflow_tracking_uri=f"sqlite:///{root / 'mlflow.db'}",
            artifact_root=root / "mlruns",
            optuna_storage=str(root / "optuna.log"),
            data=data,
            cache_dir=root / "cache",
        )
        started = time.perf_counter()
        run_study(spec, settings=settings, data_path=data)
        wall = time.perf_counter() - started
        study = optuna.load_study(study_name=spec.name, storage=open_storage(settings.optuna_storage))
        trials, best = study.trials, study.best_trial
    epochs_run = sum(len(t.intermediate_values) for t in trials)
    return {
        "pruner": pruner["kind"],
        "wall_s": round(wall, 1),
        "complete": sum(t.state.name == "COMPLETE" for t in trials),
        "pruned": sum(t.state.name == "PRUNED" for t in trials),
        "epochs": epochs_run,
        "best_value": best.value,
        "best_params": best.params,
        "trials": [
            {
                "width": t.params.get("width"),
                "learning_rate": t.params.get("learning_rate"),
                "beta": t.params.get("beta"),
                "state": t.state.name,
                "epochs": len(t.intermediate_values),
                "last_value": list(t.intermediate_values.values())[-1] if t.intermediate_values else None,
            }
            for t in trials
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pruner", default="successive_halving", choices=["median", "hyperband", "successive_halving"])
    parser.add_argument("--epochs", type=int, default=18)  # successive halving's rungs: 2, 6, 18
    parser.add_argument("--toy-fraction", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--space", default="beta", choices=sorted(SPACES))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = default_dataset(None).resolve()
    pruner = {"kind": args.pruner, "min_epochs": 2, "reduction_factor": 3, "warmup_epochs": 2, "startup_trials": 3}
    baseline = run({"kind": "none"}, args.epochs, data, args.toy_fraction, SPACES[args.space])
    pruned = run(pruner, args.epochs, data, args.toy_fraction, SPACES[args.space])
    for result in (baseline, pruned):
        print(json.dumps(result))
    gap = (baseline["best_value"] - pruned["best_value"]) / baseline["best_value"]
    share = pruned["epochs"] / baseline["epochs"]
    same = pruned["best_params"] == baseline["best_params"]
    print(
        f"best objective {baseline['best_value']:.4f} -> {pruned['best_value']:.4f} ({gap:+.1%} worse), same configuration: {same}"
    )
    print(
        f"epochs {baseline['epochs']} -> {pruned['epochs']} ({share:.0%}), wall {baseline['wall_s']} s -> {pruned['wall_s']} s"
    )
    ok = (same or gap <= 0.02) and share <= 0.5
    print("PASS" if ok else "FAIL", "(target: within 2% of the best with at most half the epochs)")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
