"""The Ray cluster a `--engine ray` invocation runs on: found, checked and connected before anything is written.

A study's workers on a Ray cluster must reach what the driver reaches, so every refusal here is
made before the parent run starts (one line, exit 2, nothing written):

- Ray is an optional extra: without it, the line names the install.
- On a cluster (an address given, or RAY_ADDRESS), the embedded stores are refused: a journal
  or SQLite file and an MLflow store that is not a server live on this machine only.
- An address that does not answer is refused at once (Ray itself retries for minutes).
- Every node's vae-lab must be the driver's version (each worker checks again on arrival, for
  nodes that join later).

Credentials never travel with the job: a local instance's workers inherit this process's
environment, and a cluster's nodes have their own (the compose file's or the KubeRay manifest's
`env`), because Ray shows a job's arguments and `runtime_env` in its dashboard and logs.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import socket
from dataclasses import dataclass
from typing import Any, Iterator

import vae_lab
from vae_lab.config import Settings, get_settings, mask_uri, uri_scheme
from vae_lab.errors import VaeLabError

RAY_INSTALL = "pip install -e '.[ray]' (or pip install 'vae-lab[ray]')"
CONNECT_TIMEOUT_S = 5.0
# What the address names when it is not host:port (Ray's defaults).
RAY_PORT, RAY_CLIENT_PORT = 6379, 10001


@dataclass(frozen=True)
class RayPlacement:
    """Where the workers go: the cluster (None: a local instance started for the run) and what
    each worker asks of a node (fractions allowed, so two workers can share a GPU)."""

    address: str | None = None
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0

    @classmethod
    def of(cls, address: str | None, cpus_per_worker: float, gpus_per_worker: float) -> RayPlacement:
        """`--ray-address`, else RAY_ADDRESS, else a local instance."""
        return cls(address or os.environ.get("RAY_ADDRESS") or None, cpus_per_worker, gpus_per_worker)

    @property
    def shown_address(self) -> str:
        """The address as tags and logs may show it (a password in it masked)."""
        return mask_uri(self.address) if self.address else "local"

    def describe(self) -> str:
        return f"{self.cpus_per_worker:g} CPU" + (f", {self.gpus_per_worker:g} GPU" if self.gpus_per_worker else "")

    def worker_device(self, device: str | None) -> str:
        """The device each worker resolves on its node: `--device` if given, else the GPU Ray
        assigned it (Ray sets CUDA_VISIBLE_DEVICES to the worker's GPUs) or the CPU."""
        return device or ("cuda" if self.gpus_per_worker > 0 else "cpu")

    def worker_threads(self, threads: int | None) -> int:
        return threads or max(1, math.floor(self.cpus_per_worker))


def require_ray() -> Any:
    """The `ray` module, or a VaeLabError naming the install."""
    try:
        import ray
    except ImportError:
        raise VaeLabError("--engine ray", "Ray is not installed", f"install it with {RAY_INSTALL}") from None
    return ray


def code_version() -> str:
    """The vae-lab version of this process (the driver's is compared with every node's)."""
    return vae_lab.__version__


def check_same_version(node: str, found: str, expected: str) -> None:
    """Refuse to run on a node whose vae-lab (`found`) differs from the driver's (`expected`):
    its trials would not compare."""
    if found != expected:
        raise VaeLabError(
            f"Ray node {node[:12]}",
            f"runs vae-lab {found}, the driver {expected}",
            "install the same vae-lab on every node (the same image, or the same runtime_env)",
        )


def check_shared_stores(settings: Settings) -> None:
    """On a cluster, refuse stores only this machine can reach."""
    storage = settings.optuna_storage
    if uri_scheme(storage.removeprefix("journal:")) in ("", "sqlite"):
        raise VaeLabError(
            "VAE_LAB_OPTUNA_STORAGE",
            f"{mask_uri(storage)} is a file on this machine, which a Ray cluster's nodes cannot share",
            "use PostgreSQL (postgresql+psycopg2://host/optuna, as docker compose runs it) for --engine ray on a cluster",
        )
    tracking = settings.mlflow_tracking_uri
    if uri_scheme(tracking) not in ("http", "https"):
        raise VaeLabError(
            "MLFLOW_TRACKING_URI",
            f"{mask_uri(tracking)} is not an MLflow server, so a Ray cluster's nodes cannot share its runs and artifacts",
            "run an MLflow server (docker compose up mlflow) and set MLFLOW_TRACKING_URI=http://host:5000",
        )


def check_reachable(address: str) -> None:
    """A quick TCP check of `host:port` or `ray://host:port` (Ray's own connect retries for minutes)."""
    if address == "auto":  # the cluster `ray start` left on this machine: Ray finds it or says so
        return
    client = address.startswith("ray://")
    netloc = address.split("://", 1)[-1].rsplit("@", 1)[-1].split("/", 1)[0]
    host, _, port = netloc.rpartition(":") if ":" in netloc else (netloc, "", "")
    try:
        with socket.create_connection(
            (host, int(port or (RAY_CLIENT_PORT if client else RAY_PORT))), CONNECT_TIMEOUT_S
        ):
            pass
    except (OSError, ValueError) as error:
        raise VaeLabError(
            "--ray-address",
            f"no Ray cluster answers at {mask_uri(address)} ({error.strerror or error})",
            "start one (`ray start --head`, or the compose `ray` profile) or fix the address",
        ) from None


@contextlib.contextmanager
def open_cluster(placement: RayPlacement, workers: int, settings: Settings | None = None) -> Iterator[Any]:
    """Every refusal of the module docstring, then Ray connected for the block (the cluster, or a
    local instance sized for `workers`), shut down after."""
    require_ray()
    if placement.address:
        check_shared_stores(settings or get_settings())
    with connected(placement, workers) as ray:
        check_cluster(ray, placement)
        yield ray


@contextlib.contextmanager
def connected(placement: RayPlacement, workers: int) -> Iterator[Any]:
    """Ray, connected to the cluster or to a local instance sized for `workers`; shut down after."""
    ray = require_ray()
    # Ray's own notices (token authentication, start-up) would break the progress display; its
    # errors reach the driver as exceptions, and the workers' as their events.
    quiet = {"logging_level": logging.ERROR, "log_to_driver": False}
    try:
        if placement.address:
            check_reachable(placement.address)
            ray.init(address=placement.address, **quiet)
        else:
            cpus = max(1, math.ceil(workers * placement.cpus_per_worker))
            ray.init(address="local", num_cpus=cpus, include_dashboard=False, **quiet)
    except (ConnectionError, RuntimeError, ray.exceptions.RayError) as error:  # e.g. a wrong token
        raise VaeLabError(
            "--ray-address", f"cannot connect to Ray at {placement.shown_address}: {str(error).splitlines()[0]}"
        ) from None
    try:
        yield ray
    finally:
        ray.shutdown()


def check_cluster(ray: Any, placement: RayPlacement) -> list[str]:
    """Refuse a cluster no node of which can hold one worker, or whose vae-lab differs from this
    one; returns the ids of its live nodes."""
    nodes = [node for node in ray.nodes() if node.get("Alive")]
    cpus, gpus = placement.cpus_per_worker, placement.gpus_per_worker
    if not any(n["Resources"].get("CPU", 0) >= cpus and n["Resources"].get("GPU", 0) >= gpus for n in nodes):
        largest = max((n["Resources"].get("CPU", 0), n["Resources"].get("GPU", 0)) for n in nodes)
        raise VaeLabError(
            "--cpus-per-worker/--gpus-per-worker",
            f"no Ray node has {placement.describe()} for one worker (the largest: {largest[0]:g} CPU, {largest[1]:g} GPU)",
            "ask for less per worker, or add a node that has it",
        )
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    probe = ray.remote(code_version)
    ids = [node["NodeID"] for node in nodes]
    versions = ray.get(
        [
            probe.options(num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False)).remote()
            for node in ids
        ]
    )
    for node, version in zip(ids, versions, strict=True):
        check_same_version(node, version, code_version())
    return ids
