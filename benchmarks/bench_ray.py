"""What does `--engine ray` cost over `--workers`? The same grid both ways, back to back.

For each round: a throwaway lab (own stores and cache) runs `study run STUDY --workers N`, another
`study run STUDY --engine ray --workers N` (a local Ray instance started for the run), each timed
through the installed CLI as a user runs them; then Ray's start-up alone: `ray.init` of a local
instance, a first task that imports vae-lab's trial loop, and `ray.shutdown`. Target (issue 22):
the Ray run within 1.15x of the local one.

    .venv/bin/python benchmarks/bench_ray.py [--study seed-grid] [--workers 2] [--rounds 1]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

VAE_LAB = shutil.which("vae-lab", path=os.path.dirname(sys.executable)) or "vae-lab"
RAY_STARTUP = """
import time
started = time.perf_counter()
import ray
ray.init(address="local", num_cpus={workers}, include_dashboard=False, log_to_driver=False)
def first_task():
    import vae_lab.study.execution.workers  # what a worker imports before its first trial
    return True
ray.get(ray.remote(first_task).remote())
up = time.perf_counter() - started
ray.shutdown()
print(up, time.perf_counter() - started)
"""


def lab_env(root: Path, data: Path) -> dict[str, str]:
    return os.environ | {
        "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
        "VAE_LAB_ARTIFACT_ROOT": str(root / "mlruns"),
        "VAE_LAB_OPTUNA_STORAGE": str(root / "optuna.log"),
        "VAE_LAB_CACHE_DIR": str(root / "cache"),
        "VAE_LAB_DATA": str(data),
    }


def timed_run(study: str, flags: list[str], data: Path) -> dict:
    with tempfile.TemporaryDirectory(prefix="vae-lab-ray-") as folder:
        root = Path(folder)
        load, began = os.getloadavg()[0], time.strftime("%H:%M", time.gmtime())
        started = time.perf_counter()
        done = subprocess.run(
            [VAE_LAB, "study", "run", study, *flags, "--json"],
            cwd=root,
            env=lab_env(root, data),
            capture_output=True,
            text=True,
        )
        wall = time.perf_counter() - started
        if done.returncode != 0:
            sys.exit(f"study run {' '.join(flags)} failed ({done.returncode}): {done.stderr[-2000:]}")
        trials = json.loads(done.stdout)["trials"]
    return {
        "flags": " ".join(flags),
        "utc": f"{began}-{time.strftime('%H:%M', time.gmtime())}",
        "wall_s": round(wall, 1),
        "trials": len(trials),
        "load": f"{load:.1f} -> {os.getloadavg()[0]:.1f}",
    }


def ray_startup(workers: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="vae-lab-ray-") as folder:
        done = subprocess.run(
            [sys.executable, "-c", RAY_STARTUP.format(workers=workers)],
            cwd=folder,
            capture_output=True,
            text=True,
            check=True,
        )
    up, total = map(float, done.stdout.split()[-2:])
    return {"ray_up_s": round(up, 1), "ray_up_and_down_s": round(total, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", default="seed-grid")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    from vae_lab.data import default_dataset

    data = default_dataset(None).resolve()  # the bundled synthetic dataset, as bench_workers.py uses
    workers = ["--workers", str(args.workers)]
    for _ in range(args.rounds):
        local = timed_run(args.study, workers, data)
        ray = timed_run(args.study, ["--engine", "ray", *workers], data)
        print(json.dumps(local), flush=True)
        print(json.dumps(ray | {"ratio": round(ray["wall_s"] / local["wall_s"], 3)}), flush=True)
        print(json.dumps(ray_startup(args.workers)), flush=True)


if __name__ == "__main__":
    main()
