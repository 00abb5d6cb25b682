"""`study run` start-up, two code trees back to back: the time of a `study run` that has nothing
left to train (open the stores, settle, crown, report), which is the work every invocation does
before its first trial.

    python benchmarks/bench_startup.py BEFORE_TREE AFTER_TREE [--rounds 5]

Each tree runs in its own lab (a tiny one-trial grid trained once first), through its own CLI
(`PYTHONPATH=TREE`); the rounds alternate the trees so load drifts fall on both alike. Prints one
JSON line: each tree's start-up times and median.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STUDY = """name: startup
data: {path: voxels.parquet}
training: {epochs: 1}
space: {architecture: [fc], latent_dim: [2]}
artifacts: {pca: false, reconstructions: 0, interpolation: false}
"""
CLI = "import sys; from vae_lab.cli import main; sys.argv[0] = 'vae-lab'; sys.exit(main())"


def vae_lab(tree: Path, lab: Path, *args: str) -> float:
    env = os.environ | {"PYTHONPATH": str(tree)}
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", CLI, *args], cwd=lab, env=env, check=True, capture_output=True)
    return time.perf_counter() - started


def make_lab(root: Path, name: str) -> Path:
    from vae_lab.data import synthesize, write_dataset

    lab = root / name
    (lab / "studies").mkdir(parents=True)
    (lab / "studies" / "startup.yaml").write_text(STUDY)
    write_dataset(synthesize(rows=1500, seed=0), lab / "voxels.parquet")
    return lab


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trees", nargs=2, type=Path, help="two checkouts of vae-lab: before, after")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as root:
        labs = {tree: make_lab(Path(root), f"lab{i}") for i, tree in enumerate(args.trees)}
        for tree, lab in labs.items():
            vae_lab(tree, lab, "study", "run", "startup")  # train the one point
        times: dict[Path, list[float]] = {tree: [] for tree in args.trees}
        for _ in range(args.rounds):
            for tree, lab in labs.items():
                times[tree].append(vae_lab(tree, lab, "study", "run", "startup"))
    print(
        json.dumps(
            {
                str(t): {"seconds": [round(s, 2) for s in v], "median_s": round(statistics.median(v), 2)}
                for t, v in times.items()
            }
        )
    )


if __name__ == "__main__":
    main()
