"""Registry calls per finished trial: what `registry.reconcile` asks of MLflow as a study's trials finish.

    PYTHONPATH=TREE python benchmarks/bench_registry_calls.py [--trials 4 20]

Runs in the tree on PYTHONPATH (so two trees compare by running it twice). For each scenario (one
objective; two objectives with the knee rule; two families alternating) it logs trial runs as a
study would (params, the parameter count, best metrics, dataset inputs, a logged model) into a
fresh SQLite store, crowns after each one as the study runner does, and counts every
`MlflowClient` call the crowning makes. Then one more crowning with nothing new. Prints one JSON
line per scenario: calls, reads and writes per finished trial, and the calls by method.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import random
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any


class CountingClient:
    """An MlflowClient that counts the calls made through it, by method name."""

    def __init__(self, client: Any):
        self.client, self.calls = client, Counter()

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.client, name)

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            return method(*args, **kwargs)

        return counted


def log_trial(tracker, study: str, number: int, family: str, values: dict[str, float]):
    """A finished trial's run and logged model, and the registry's candidate for it."""
    from vae_lab.data.reference import DataRef
    from vae_lab.registry import Candidate

    experiment = tracker.ensure_experiment(study)
    run_id = tracker.start_run(experiment, f"trial-{number:03d}-{family}")
    tracker.log_params(run_id, {"architecture": family, "latent_dim": 8, "loss": "focal", "select_metric": "val_f1"})
    tracker.set_tags(run_id, {"study": study, "trial": number, "parameters": 12345, "device": "cpu"})
    best = {f"best_{name}": value for name, value in values.items()} | {"best_epoch": 1, "epochs_run": 2}
    tracker.log_metrics(run_id, best | {"best_val_f1_c1": 0.5, "best_val_f1_c2": 0.4})
    data = DataRef(path="voxels.parquet", content_hash="0" * 16, toy_fraction=1.0, seed=0, grid=11, rows={"train": 90})
    tracker.log_dataset(run_id, data, ("train",))
    model = tracker.client.create_logged_model(experiment, name="model", source_run_id=run_id)
    several = values if len(values) > 1 else {}
    kwargs = dict(study=study, trial=number, architecture=family, value=values["val_f1"], run_id=run_id)
    kwargs |= dict(model_id=model.model_id, objective="val_f1", direction="maximize")
    if "values" in inspect.signature(Candidate).parameters:
        kwargs["values"] = several
    return Candidate(**kwargs)


def scenario(tracker, study: str, trials: int, objectives: dict[str, str], seed: int = 0) -> dict:
    from vae_lab.registry import reconcile
    from vae_lab.selection import make_rule

    rng = random.Random(seed)
    rule = make_rule("knee" if len(objectives) > 1 else "best", None, None, objectives)
    real, counting = tracker.client, CountingClient(tracker.client)
    entries, per_trial = [], Counter()
    for number in range(trials):
        values = {"val_f1": rng.uniform(0.3, 0.9), "val_kl": rng.uniform(2, 40)}
        tracker.client = real
        entries.append(
            log_trial(tracker, study, number, ("fc", "conv")[number % 2], {m: values[m] for m in objectives})
        )
        tracker.client = counting
        reconcile(tracker, study, entries, rule)
    per_trial, counting.calls = counting.calls, Counter()
    reconcile(tracker, study, entries, rule)
    idle = counting.calls
    tracker.client = real
    reads = sum(n for name, n in per_trial.items() if name.startswith(("get_", "search_")))
    total = sum(per_trial.values())
    return {
        "scenario": f"{len(objectives)} objective(s), 2 families, {trials} trials",
        "calls_per_trial": round(total / trials, 2),
        "reads_per_trial": round(reads / trials, 2),
        "writes_per_trial": round((total - reads) / trials, 2),
        "nothing_new": dict(idle),
        "by_method": dict(sorted(per_trial.items())),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, nargs="+", default=[4, 20])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as root:
        lab = Path(root)
        os.chdir(lab)
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{lab / 'mlflow.db'}"
        os.environ["VAE_LAB_ARTIFACT_ROOT"] = str(lab / "mlruns")
        from vae_lab.config import get_settings
        from vae_lab.tracking import Tracker

        tracker = Tracker(get_settings())
        for trials in args.trials:
            for objectives in ({"val_f1": "maximize"}, {"val_f1": "maximize", "val_kl": "minimize"}):
                study = f"calls-{trials}-{len(objectives)}"
                print(json.dumps(scenario(tracker, study, trials, objectives)), flush=True)


if __name__ == "__main__":
    main()
