"""The Ray deployments agree with the CLI, the settings and Ray: the compose `ray` profile and the
KubeRay manifest (deploy/kuberay/raycluster.yaml), read as YAML; nothing is started.

Ray's own commands (`ray start`, `ray health-check`) are parsed by Ray's command line, vae-lab's by
vae-lab's, so a renamed flag fails here before it fails a deployment.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest

from tests.test_compose import (
    COMPOSE,
    SECRET,
    SETTING_NAMES,
    environment,
    example_env,
    interpolated,
    load_yaml,
    no_settings_env,  # noqa: F401 - a fixture
    parse_vae_lab,
    settings_from,
)
from vae_lab.config import uri_scheme

ROOT = Path(__file__).resolve().parents[1]
KUBERAY = ROOT / "deploy" / "kuberay" / "raycluster.yaml"
RAY_SERVICES = ("ray-head", "ray-node")


def parse_ray(args: list[str]) -> Any:
    """Parse `ray ARGS` with Ray's own command line; run nothing."""
    scripts = pytest.importorskip("ray.scripts.scripts", reason="the `ray` extra is not installed")
    command = scripts.cli.commands[args[0]]
    return command.make_context(f"ray {args[0]}", list(args[1:]), resilient_parsing=False)


def documented_commands(path: Path) -> list[list[str]]:
    """The `vae-lab ...` commands a file's comments tell the user to run."""
    found = re.findall(r"vae-lab (study run [^\n#]+)", path.read_text())
    return [shlex.split(command) for command in found]


def kuberay_containers() -> list[dict[str, Any]]:
    spec = load_yaml(KUBERAY)["spec"]
    groups = [spec["headGroupSpec"], *spec["workerGroupSpecs"]]
    return [container for group in groups for container in group["template"]["spec"]["containers"]]


def test_the_drivers_documented_for_ray_parse_with_the_cli():
    for path in (COMPOSE, KUBERAY):
        commands = [c for c in documented_commands(path) if "--engine" in c]
        assert commands, f"{path.name} documents no `vae-lab study run --engine ray`"
        for command in commands:
            ctx = parse_vae_lab(command)
            assert ctx.params["engine"] == "ray" and ctx.params["workers"] > 1


# --- the compose `ray` profile ---------------------------------------------------------------------


def test_ray_services_run_the_project_image_with_the_workers_stores():
    services = interpolated(load_yaml(COMPOSE)["services"], example_env())
    worker = environment(services["worker"])
    for name in RAY_SERVICES:
        service = services[name]
        assert service["profiles"] == ["ray"], f"{name} must only start with --profile ray"
        assert service["image"] == services["worker"]["image"] and service["build"] == services["worker"]["build"]
        env = environment(service)
        stores = {k: v for k, v in worker.items() if k in SETTING_NAMES or k.startswith(("PG", "MLFLOW_TRACKING_"))}
        assert stores.items() <= env.items(), f"{name} does not get the workers' stores and credentials"
        assert env["RAY_AUTH_MODE"] == "token" and env["RAY_AUTH_TOKEN"], f"{name} joins without Ray's token"
        assert service["shm_size"], f"{name} leaves Ray's object store Docker's 64 MB of /dev/shm"


def test_ray_services_start_ray_as_rays_cli_parses_it():
    services = interpolated(load_yaml(COMPOSE)["services"], example_env())
    head = services["ray-head"]
    assert head["entrypoint"] == ["ray"] == services["ray-node"]["entrypoint"]
    started = parse_ray(head["command"])
    assert started.params["head"] and started.params["block"] and started.params["port"] == 6379
    joined = parse_ray(services["ray-node"]["command"])
    assert joined.params["address"] == "ray-head:6379" and joined.params["block"]
    assert "container_name" not in services["ray-node"] and not services["ray-node"].get("ports")  # it scales


# --- the KubeRay manifest ----------------------------------------------------------------------------


def test_the_kuberay_cluster_runs_the_compose_image_and_real_ray_start_options():
    manifest = load_yaml(KUBERAY)
    assert (manifest["apiVersion"], manifest["kind"]) == ("ray.io/v1", "RayCluster")
    image = interpolated(load_yaml(COMPOSE)["services"]["worker"]["image"], example_env())
    assert {c["image"] for c in kuberay_containers()} == {image}
    options = {p.name.replace("_", "-") for p in parse_ray(["start"]).command.params}
    spec = manifest["spec"]
    for group in [spec["headGroupSpec"], *spec["workerGroupSpecs"]]:
        unknown = set(group["rayStartParams"]) - options
        assert not unknown, f"rayStartParams that `ray start` does not have: {sorted(unknown)}"
    head_service = f"{manifest['metadata']['name']}-head-svc:6379"  # what KubeRay names the head's service
    for container in kuberay_containers():
        for probe in ("readinessProbe", "livenessProbe"):
            command = container[probe]["exec"]["command"]
            assert command[0] == "ray"
            parsed = parse_ray(command[1:])
            assert parsed.params["address"] in ("127.0.0.1:6379", head_service)


def test_the_kuberay_pods_get_the_stores_from_settings_and_secrets(no_settings_env, monkeypatch):  # noqa: F811
    compose_node = environment(load_yaml(COMPOSE)["services"]["ray-node"])
    for container in kuberay_containers():
        env = {item["name"]: item for item in container["env"]}
        assert set(env) >= {n for n in compose_node if n != "PGSSLMODE"}, "KubeRay pods miss what compose's nodes get"
        for name, item in env.items():
            if SECRET.search(name):
                assert "value" not in item and item["valueFrom"]["secretKeyRef"]["name"], (
                    f"{name} must come from a secret"
                )
            if name.startswith("VAE_LAB_") or name == "MLFLOW_TRACKING_URI":
                assert name in SETTING_NAMES, f"{name} is no vae-lab setting"
        settings = settings_from({n: item["value"] for n, item in env.items() if n in SETTING_NAMES}, monkeypatch)
        assert uri_scheme(settings.mlflow_tracking_uri) == "http"  # what --engine ray on a cluster accepts
        assert uri_scheme(settings.optuna_storage) == "postgresql" and "@" in settings.optuna_storage
        assert ":" not in settings.optuna_storage.split("//", 1)[1].split("@", 1)[0], "a password in the URI"
