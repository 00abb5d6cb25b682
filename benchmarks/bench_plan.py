"""How good is `vae-lab study plan`? Its estimate against the real wall time of the study.

For each study: a throwaway lab (own stores, cache and calibration), `study plan --json`
(calibration included, timed separately), then `study run` of the same study, timed. Both go
through the installed CLI, as a user runs them.

    .venv/bin/python benchmarks/bench_plan.py [--studies quick,seed-grid]
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


def measure(study: str, data: Path) -> dict:
    with tempfile.TemporaryDirectory(prefix="vae-lab-plan-") as folder:
        root = Path(folder)
        env = os.environ | {
            "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
            "VAE_LAB_ARTIFACT_ROOT": str(root / "mlruns"),
            "VAE_LAB_OPTUNA_STORAGE": str(root / "optuna.log"),
            "VAE_LAB_CACHE_DIR": str(root / "cache"),
            "VAE_LAB_DATA": str(data),
        }
        started = time.perf_counter()
        planned = subprocess.run(
            [VAE_LAB, "study", "plan", study, "--json"], cwd=root, env=env, capture_output=True, text=True, check=True
        )
        plan_s = time.perf_counter() - started
        plan = json.loads(planned.stdout)
        started = time.perf_counter()
        subprocess.run(
            [VAE_LAB, "study", "run", study, "--json"], cwd=root, env=env, capture_output=True, text=True, check=True
        )
        wall = time.perf_counter() - started
    return {
        "study": study,
        "trials": plan["trials"],
        "estimated_s": round(plan["estimated_s"], 1),
        "real_s": round(wall, 1),
        "error": round(plan["estimated_s"] / wall - 1, 3),
        "plan_s": round(plan_s, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", default="quick,seed-grid")
    args = parser.parse_args()
    from vae_lab.data import default_dataset

    data = default_dataset(None).resolve()
    for study in args.studies.split(","):
        result = measure(study, data)
        print(json.dumps(result), flush=True)
        print(
            f"{study}: estimated {result['estimated_s']} s, real {result['real_s']} s ({result['error']:+.0%}); plan itself {result['plan_s']} s",
            flush=True,
        )


if __name__ == "__main__":
    main()
