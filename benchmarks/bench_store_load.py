"""Load on the shared stores: many workers of tiny trials, and what the stores make of it.

Eight `vae-lab study run` processes (as if on eight machines, one compute thread each) share one
grid study of tiny trials, for a few minutes, against
  * `shared`: a throwaway PostgreSQL cluster (Optuna and MLflow's store) and `mlflow server` with
    its login, started by the helpers the tests use (tests/services.py); and
  * `embedded`: the default local stores, a journal file and an SQLite MLflow database.
At the deadline each worker gets SIGINT, as Ctrl-C: its running trial is recorded as interrupted
(FAIL in Optuna, its run KILLED) and it stops.
Meanwhile a probe times one store call of each kind every half second (an MLflow metric write,
an Optuna read of the running trials), for the p95 latency a worker sees under that load.

Checked afterwards: "database is locked" nowhere in the workers' output, every finished trial's
run holds one point per epoch of each per-epoch metric (none lost), and no grid point finished
twice (no trial run twice).

    .venv/bin/python benchmarks/bench_store_load.py [--workers 8] [--seconds 180] [--modes shared,embedded] [--trials 80]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.services import WORKER, make_account, mlflow_login_server, signed_in, start_postgres  # noqa: E402

VAE_LAB = shutil.which("vae-lab", path=os.path.dirname(sys.executable)) or "vae-lab"
EPOCHS = 3


def study_yaml(trials: int) -> str:
    """A grid of `trials` tiny fc trials (latent sizes x two losses)."""
    latents = ", ".join(str(d) for d in range(2, 2 + max(1, trials // 2)))
    return f"""
name: load
data: {{path: voxels.parquet}}
training: {{epochs: {EPOCHS}, patience: {EPOCHS}}}
space: {{architecture: [fc], latent_dim: [{latents}], loss: [mse, bce]}}
artifacts: {{pca: false, reconstructions: 0, interpolation: false, plotlyjs: cdn}}
"""


class Probe(threading.Thread):
    """Times an MLflow metric write and an Optuna read every half second until stopped."""

    def __init__(self, tracking_uri: str, storage: str):
        super().__init__(daemon=True)
        self.tracking_uri, self.storage = tracking_uri, storage
        self.latencies: dict[str, list[float]] = {"mlflow log_metric": [], "optuna running trials": []}
        self.stop = threading.Event()

    def run(self) -> None:
        import mlflow
        import optuna

        from vae_lab.study.trial.storage import open_storage
        from vae_lab.tracking.sqlite_store import PatientClient

        client = mlflow.MlflowClient(tracking_uri=self.tracking_uri)
        if self.tracking_uri.startswith("sqlite:"):
            client = PatientClient(client)  # as the lab's own client waits out a held lock
        experiment = client.create_experiment(f"probe-{os.getpid()}-{time.time_ns()}")
        run_id = client.create_run(experiment).info.run_id
        storage = open_storage(self.storage)
        study_id = None
        step = 0
        while not self.stop.wait(0.5):
            started = time.perf_counter()
            client.log_metric(run_id, "probe", float(step), step=step)
            self.latencies["mlflow log_metric"].append(time.perf_counter() - started)
            step += 1
            try:
                study_id = study_id if study_id is not None else storage.get_study_id_from_name("load")
            except KeyError:
                continue  # the workers have not made the study yet
            started = time.perf_counter()
            storage.get_all_trials(study_id, deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
            self.latencies["optuna running trials"].append(time.perf_counter() - started)
        client.set_terminated(run_id)


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1] if len(values) >= 20 else max(values, default=float("nan"))


def run_load(env: dict[str, str], lab: Path, workers: int, seconds: float, tracking_uri: str, storage: str) -> dict:
    probe = Probe(tracking_uri, storage)
    probe.start()
    command = [VAE_LAB, "study", "run", "load", "--threads", "1", "--json"]
    logs = [open(lab / f"worker-{i}.log", "w+") for i in range(workers)]
    processes = [subprocess.Popen(command, cwd=lab, env=env, stdout=log, stderr=subprocess.STDOUT) for log in logs]
    # The clock starts once the workers have made the study (imports and the preflight of eight
    # fresh interpreters take minutes on a loaded 2-core machine), so it times the load itself.
    waiting = time.perf_counter()
    while not probe.latencies["optuna running trials"] and time.perf_counter() - waiting < 900:
        time.sleep(1)
    started = time.perf_counter()
    while time.perf_counter() - started < seconds and any(p.poll() is None for p in processes):
        time.sleep(1)
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)  # the running trial is recorded as interrupted
    codes = [process.wait(timeout=600) for process in processes]
    wall = time.perf_counter() - started
    probe.stop.set()
    probe.join(timeout=60)
    output = ""
    for log in logs:
        log.seek(0)
        output += log.read()
    return {"wall_s": wall, "codes": codes, "output": output, "latencies": probe.latencies}


def check_stores(tracking_uri: str, storage: str) -> dict:
    import mlflow
    import optuna

    from vae_lab.study.trial.storage import open_storage
    from vae_lab.tracking.metric_names import mlflow_key

    study = optuna.load_study(study_name="load", storage=open_storage(storage))
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    points = [(t.params["latent_dim"], t.params["loss"]) for t in complete]
    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    lost, counted = [], 0
    for trial in complete:
        run_id = trial.user_attrs["mlflow_run_id"]
        for metric in ("train_loss", "val_loss"):
            points_logged = len(client.get_metric_history(run_id, mlflow_key(metric)))
            counted += points_logged
            if points_logged != EPOCHS:
                lost.append(f"trial {trial.number} {metric}: {points_logged} of {EPOCHS}")
    experiment = client.get_experiment_by_name("load")
    trial_runs = [r for r in client.search_runs([experiment.experiment_id], "tags.trial != ''", max_results=5000)]
    numbers = [r.data.tags["trial"] for r in trial_runs if r.info.status == "FINISHED"]
    return {
        "trials_complete": len(complete),
        "trials_by_state": {
            s: sum(t.state.name == s for t in study.trials) for s in {t.state.name for t in study.trials}
        },
        "grid_points_twice": len(points) - len(set(points)),
        "finished_runs_per_trial_max": max((numbers.count(n) for n in set(numbers)), default=0),
        "metric_points_counted": counted,
        "metric_points_lost": lost,
    }


def first_traceback(output: str, lines: int = 25) -> str | None:
    """The end of the first traceback in the workers' output, to say what failed."""
    start = output.find("Traceback")
    if start < 0:
        return None
    block = output[start:].splitlines()
    end = next((i for i, line in enumerate(block[1:], 1) if line and not line.startswith((" ", "Traceback"))), 0)
    return "\n".join(block[: end + 1][-lines:])


def measure(mode: str, workers: int, seconds: float, trials: int) -> dict:
    from vae_lab.data import synthesize, write_dataset

    root = Path(tempfile.mkdtemp(prefix=f"vae-lab-load-{mode}-"))
    os.chmod(root, 0o755)
    lab = root / "lab"
    (lab / "studies").mkdir(parents=True)
    (lab / "studies" / "load.yaml").write_text(study_yaml(trials))
    write_dataset(synthesize(rows=600, seed=11), lab / "voxels.parquet")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "VAE_LAB_"))}
    env |= {"VAE_LAB_CACHE_DIR": str(lab / "cache"), "VAE_LAB_ARTIFACT_ROOT": str(lab / "mlruns")}
    with contextlib.ExitStack() as services:
        if mode == "shared":
            cluster = start_postgres()
            services.callback(cluster.stop)
            tracking_uri = services.enter_context(
                mlflow_login_server(f"{cluster.url}/mlflow", root / "server", log=root / "mlflow.log", wait_s=600)
            )
            make_account(tracking_uri, WORKER, "EDIT")
            storage = f"{cluster.url}/optuna"
            env |= signed_in(WORKER)
            os.environ.update(signed_in(WORKER))  # the probe and the checks sign in too
        else:
            tracking_uri, storage = f"sqlite:///{lab / 'mlflow.db'}", str(lab / "optuna.log")
        env |= {"MLFLOW_TRACKING_URI": tracking_uri, "VAE_LAB_OPTUNA_STORAGE": storage}
        os.environ["VAE_LAB_CACHE_DIR"] = env["VAE_LAB_CACHE_DIR"]
        load = run_load(env, lab, workers, seconds, tracking_uri, storage)
        server_log = (root / "mlflow.log").read_text() if (root / "mlflow.log").exists() else ""
        checks = check_stores(tracking_uri, storage)
    locked = load["output"].count("database is locked") + server_log.count("database is locked")
    latencies = {
        name: {"n": len(v), "p50_ms": round(1000 * statistics.median(v), 1), "p95_ms": round(1000 * p95(v), 1)}
        for name, v in load["latencies"].items()
        if v
    }
    result = {
        "mode": mode,
        "workers": workers,
        "wall_s": round(load["wall_s"], 1),
        "exit_codes": load["codes"],
        "trials_per_min": round(checks["trials_complete"] / (load["wall_s"] / 60), 1),
        "database_is_locked": locked,
        "tracebacks": load["output"].count("Traceback"),
        "first_traceback": first_traceback(load["output"]),
        **checks,
        "latency": latencies,
    }
    shutil.rmtree(root, ignore_errors=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=180, help="how long the workers run before SIGINT")
    parser.add_argument("--modes", default="shared,embedded")
    parser.add_argument("--trials", type=int, default=80, help="grid size; more than the workers finish in --seconds")
    args = parser.parse_args()
    print(
        f"# {time.strftime('%Y-%m-%d %H:%M:%S %Z')}, {os.cpu_count()} cpus, load {os.getloadavg()[0]:.1f}", flush=True
    )
    for mode in args.modes.split(","):
        print(json.dumps(measure(mode, args.workers, args.seconds, args.trials)), flush=True)


if __name__ == "__main__":
    main()
