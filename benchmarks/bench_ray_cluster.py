"""The journal's deep sweep over a three-node Ray cluster on one machine: wall, plan, trials per node.

Starts what a real cluster has, natively: a throwaway PostgreSQL (Optuna), an MLflow login server
on it (tracking), and a `ray.cluster_utils.Cluster` of a head and two worker nodes holding
`--cpus-per-node` CPUs each (the nodes inherit the stores' environment, as compose or KubeRay
give it to them). Then, in a throwaway lab: `study plan deep-sweep --engine ray --workers 3`
(the estimate before anything runs), `study run deep-sweep --engine ray --workers 3
--ray-address ...` timed as a user runs it, and the trial runs' `node_id` tags counted.

The study is the bundled `deep-sweep` (9 grid points on the toy share) cut to `--epochs` epochs
(default 2), as issue 22 asks; nothing else of it changes.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_ray_cluster.py [--epochs 2] [--cpus-per-node 1]
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
from collections import Counter
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.services: the same throwaway services the tests start

from tests.services import ADMIN, mlflow_login_server, signed_in, start_postgres  # noqa: E402

VAE_LAB = shutil.which("vae-lab", path=os.path.dirname(sys.executable)) or "vae-lab"
STUDY = "deep-sweep"


def write_study(lab: Path, epochs: int) -> None:
    """The bundled deep-sweep, cut to `epochs` (patience too), in the lab's studies/."""
    from vae_lab.study.design.spec import find_study_file

    spec = yaml.safe_load(find_study_file(STUDY).read_text())
    spec["training"].update(epochs=epochs, patience=epochs)
    (lab / "studies").mkdir()
    (lab / "studies" / f"{STUDY}.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))


def vae_lab(lab: Path, *args: str) -> subprocess.CompletedProcess:
    done = subprocess.run([VAE_LAB, *args, "--json"], cwd=lab, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"vae-lab {' '.join(args)} failed ({done.returncode}): {done.stderr[-3000:]}")
    return done


def trials_per_node(tracking_uri: str, experiment_id: str) -> dict[str, int]:
    import mlflow

    runs = mlflow.MlflowClient(tracking_uri).search_runs([experiment_id], max_results=1000)
    nodes = Counter(run.data.tags["node_id"][:12] for run in runs if "node_id" in run.data.tags)
    return dict(sorted(nodes.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--cpus-per-node", type=int, default=1)
    args = parser.parse_args()
    from ray.cluster_utils import Cluster

    postgres = start_postgres()
    try:
        with tempfile.TemporaryDirectory(prefix="vae-lab-ray-cluster-") as folder:
            lab = Path(folder)
            with mlflow_login_server(f"{postgres.url}/mlflow", lab / "mlflow") as url:
                stores = {"MLFLOW_TRACKING_URI": url, "VAE_LAB_OPTUNA_STORAGE": f"{postgres.url}/optuna"}
                os.environ.update(stores | signed_in(ADMIN) | {"VAE_LAB_CACHE_DIR": str(lab / "cache")})
                write_study(lab, args.epochs)
                plan = json.loads(vae_lab(lab, "study", "plan", STUDY, "--engine", "ray", "--workers", "3").stdout)
                print(json.dumps({"plan": plan}), flush=True)

                started = time.perf_counter()
                cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": args.cpus_per_node})
                try:
                    for _ in range(2):
                        cluster.add_node(num_cpus=args.cpus_per_node)
                    cluster.wait_for_nodes()
                    up = time.perf_counter() - started
                    load, began = os.getloadavg()[0], time.strftime("%H:%M", time.gmtime())
                    started = time.perf_counter()
                    command = ["study", "run", STUDY, "--engine", "ray", "--workers", "3"]
                    report = json.loads(vae_lab(lab, *command, "--ray-address", cluster.address).stdout)
                    wall = time.perf_counter() - started
                finally:
                    cluster.shutdown()
                states = Counter(trial["state"] for trial in report["trials"])
                print(
                    json.dumps(
                        {
                            "utc": f"{began}-{time.strftime('%H:%M', time.gmtime())}",
                            "cluster_up_s": round(up, 1),
                            "wall_s": round(wall, 1),
                            "trials": dict(states),
                            "trials_per_node": trials_per_node(url, report["experiment_id"]),
                            "load": f"{load:.1f} -> {os.getloadavg()[0]:.1f}",
                        }
                    ),
                    flush=True,
                )
    finally:
        postgres.stop()


if __name__ == "__main__":
    main()
