"""Do workers that share a machine share it well? One study with 1 and with N workers, the plan's
estimate beside each wall time.

For each worker count: a throwaway lab (own stores, cache and calibration), `study plan --workers
N --json` (calibrating at the threads each worker will have), then `study run --workers N` of the
same study, timed, through the installed CLI as a user runs them. Target (issue 16): 2 workers no
slower than 1 on 2 cores, and each plan within +-30% of its run.

    .venv/bin/python benchmarks/bench_workers.py [--study seed-grid] [--workers 1,2]
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


def load_average() -> float:
    return round(os.getloadavg()[0], 1)


def measure(study: str, workers: int, data: Path) -> dict:
    with tempfile.TemporaryDirectory(prefix="vae-lab-workers-") as folder:
        root = Path(folder)
        env = os.environ | {
            "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
            "VAE_LAB_ARTIFACT_ROOT": str(root / "mlruns"),
            "VAE_LAB_OPTUNA_STORAGE": str(root / "optuna.log"),
            "VAE_LAB_CACHE_DIR": str(root / "cache"),
            "VAE_LAB_DATA": str(data),
        }
        flags = ["--workers", str(workers)]
        planned = subprocess.run(
            [VAE_LAB, "study", "plan", study, *flags, "--json"],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        plan = json.loads(planned.stdout)
        load_before = load_average()
        started = time.perf_counter()
        done = subprocess.run(
            [VAE_LAB, "study", "run", study, *flags, "--json"], cwd=root, env=env, capture_output=True, text=True
        )
        wall = time.perf_counter() - started
        if done.returncode != 0:
            sys.exit(f"study run failed ({done.returncode}): {done.stderr[-2000:]}")
        report = json.loads(done.stdout)
    return {
        "study": study,
        "workers": workers,
        "device": plan["device"],
        "trials": len(report["trials"]),
        "estimated_s": round(plan["estimated_s"], 1),
        "real_s": round(wall, 1),
        "error": round(plan["estimated_s"] / wall - 1, 3),
        "load_before": load_before,
        "load_after": load_average(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", default="seed-grid")
    parser.add_argument("--workers", default="1,2", help="worker counts to measure, comma-separated")
    args = parser.parse_args()
    from vae_lab.data import default_dataset

    data = default_dataset(None).resolve()
    print(f"# {time.strftime('%Y-%m-%d %H:%M:%S %Z')}, {os.cpu_count()} cpus, load {load_average()}", flush=True)
    results = []
    for workers in (int(w) for w in args.workers.split(",")):
        result = measure(args.study, workers, data)
        results.append(result)
        print(json.dumps(result), flush=True)
    for r in results:
        cells = [r["workers"], r["device"], r["trials"], f"{r['estimated_s']} s", f"{r['real_s']} s"]
        cells.append(f"{r['error']:+.0%}")
        print("| " + " | ".join(str(c) for c in cells) + f" | {r['load_before']} -> {r['load_after']} |")
    if len(results) > 1:
        first, last = results[0], results[-1]
        print(f"{last['workers']} workers vs {first['workers']}: {first['real_s'] / last['real_s']:.2f}x as fast")


if __name__ == "__main__":
    main()
