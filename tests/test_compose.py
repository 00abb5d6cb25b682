"""docker-compose.yml agrees with the CLI, the settings, .env.example and the Dockerfile.

No Docker engine is needed: the compose files are read as YAML and interpolated here the way
`docker compose` does it, with the values of .env.example. The worker's command is parsed (not
run) by the real `vae-lab` command line and the MLflow server's by MLflow's, so a renamed flag,
subcommand or setting fails a test here before it fails a deployment. If the compose plugin is
installed, `docker compose config` checks the files' syntax as well.
"""

from __future__ import annotations

import configparser
import fnmatch
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from vae_lab.config import ENV_NAMES, Settings, get_settings, load_settings, uri_scheme

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
GPU_OVERRIDE = ROOT / "docker-compose.gpu.yml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERFILE = ROOT / "Dockerfile"

SECRET = re.compile(r"PASSWORD|TOKEN|SECRET", re.IGNORECASE)
TEST_PASSWORD = "Test-pw_4-compose"  # what a user would set POSTGRES_PASSWORD to in .env
SETTING_NAMES = set(ENV_NAMES.values())
# $$ (a literal $), ${NAME}, ${NAME<op><arg>} with op one of :- - :? ? :+ +, or $NAME.
REFERENCE = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}|(?P<bare>[A-Za-z_][A-Za-z0-9_]*)|(?P<bad>))"
)


# --- reading the files ---------------------------------------------------------------------------


def load_yaml(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def env_example_lines() -> list[tuple[int, str, str]]:
    """(line index, name, value) of each assignment in .env.example, as docker compose reads it."""
    rows = []
    for index, line in enumerate(ENV_EXAMPLE.read_text().splitlines()):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, sep, value = line.partition("=")
        assert sep and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name), (
            f".env.example line {index + 1} is not NAME=value: {line!r}"
        )
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        rows.append((index, name, value))
    return rows


def example_env() -> dict[str, str]:
    """The variables of a .env copied from .env.example, with its empty secrets filled in."""
    env = {name: value for _, name, value in env_example_lines()}
    return {name: (TEST_PASSWORD if SECRET.search(name) and not value else value) for name, value in env.items()}


def interpolate(text: str, env: dict[str, str]) -> str:
    """`text` with ${...} replaced as docker compose does; a missing required variable raises."""

    def replace(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        if match["bad"] is not None:
            raise ValueError(f"invalid interpolation in {text!r}")
        name = match["braced"] or match["bare"]
        op, arg = match["op"] or "", match["arg"] or ""
        assert "$" not in arg, f"nested interpolation is not used here: {text!r}"
        value = env.get(name)
        set_, non_empty = value is not None, bool(value)
        if op in (":-", "-"):
            return value if (non_empty if op == ":-" else set_) else arg  # type: ignore[return-value]
        if op in (":?", "?"):
            if not (non_empty if op == ":?" else set_):
                raise LookupError(f"{name}: {arg}")
            return value  # type: ignore[return-value]
        if op in (":+", "+"):
            return arg if (non_empty if op == ":+" else set_) else ""
        return value or ""

    return REFERENCE.sub(replace, text)


def interpolated(node: Any, env: dict[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, list):
        return [interpolated(item, env) for item in node]
    if isinstance(node, dict):
        return {key: interpolated(value, env) for key, value in node.items()}
    return node


def strings(node: Any) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, list):
        return [s for item in node for s in strings(item)]
    if isinstance(node, dict):
        return [s for value in node.values() for s in strings(value)]
    return []


def references(node: Any) -> list[tuple[str, str, str]]:
    """(name, op, arg) of every variable a compose file interpolates."""
    found = []
    for text in strings(node):
        for match in REFERENCE.finditer(text):
            assert match["bad"] is None, f"invalid interpolation in {text!r}"
            if not match["escaped"]:
                found.append((match["braced"] or match["bare"], match["op"] or "", match["arg"] or ""))
    return found


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(key): "" if value is None else str(value) for key, value in env.items()}


def merged_worker(*files: Path) -> dict[str, Any]:
    """The worker service as docker compose merges it from `files` (top-level keys replace)."""
    worker: dict[str, Any] = {}
    for path in files:
        override = load_yaml(path)["services"]["worker"]
        env = {**environment(worker), **environment(override)}
        worker = {**worker, **override}
        if env:
            worker["environment"] = env
    return worker


def dockerfile_entrypoint() -> list[str]:
    match = re.search(r"^ENTRYPOINT\s+(\[.*\])\s*$", DOCKERFILE.read_text(), re.MULTILINE)
    assert match, "the Dockerfile has no exec-form ENTRYPOINT"
    return json.loads(match[1])


def parse_vae_lab(args: list[str]) -> Any:
    """Parse `vae-lab ARGS` with the real Typer app down to the leaf command; run nothing."""
    import typer

    import vae_lab.cli

    # Typer may ship its own copy of click, so groups are told apart by what they do.
    command = typer.main.get_command(vae_lab.cli.app)
    ctx = command.make_context("vae-lab", list(args), resilient_parsing=False)
    while hasattr(ctx.command, "resolve_command"):
        rest = [*getattr(ctx, "_protected_args", []), *ctx.args]
        assert rest, f"`vae-lab {' '.join(args)}` names no command under {ctx.command_path}"
        name, sub, rest = ctx.command.resolve_command(ctx, rest)
        assert sub is not None, f"{name}: no such command"
        ctx = sub.make_context(name, rest, parent=ctx, resilient_parsing=False)
    assert not ctx.args, f"`vae-lab {' '.join(args)}` has extra arguments {ctx.args}"
    return ctx


@pytest.fixture
def no_settings_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No vae-lab setting in the environment and no .env in the working directory."""
    for name in SETTING_NAMES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def settings_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    return load_settings()


# --- settings -------------------------------------------------------------------------------------


def test_every_setting_has_an_environment_name():
    assert set(Settings.model_fields) == set(ENV_NAMES)


def test_service_environments_name_only_real_settings():
    for path in (COMPOSE, GPU_OVERRIDE):
        for service_name, service in load_yaml(path)["services"].items():
            for key in environment(service):
                if key.startswith("VAE_LAB_") or key == "MLFLOW_TRACKING_URI":
                    assert key in SETTING_NAMES, (
                        f"{path.name}: {service_name} sets {key}, which is no vae-lab setting ({sorted(SETTING_NAMES)})"
                    )


@pytest.mark.parametrize(
    "remote",
    [{}, {"POSTGRES_ADDRESS": "head-machine:5432", "MLFLOW_ADDRESS": "head-machine:5000"}],
    ids=["beside-the-stores", "on-another-machine"],
)
def test_worker_environment_validates_as_settings(remote, no_settings_env, monkeypatch):
    env = interpolated(environment(merged_worker(COMPOSE, GPU_OVERRIDE)), {**example_env(), **remote})
    for needed in ("MLFLOW_TRACKING_URI", "VAE_LAB_OPTUNA_STORAGE"):
        assert needed in env, f"the worker does not set {needed}"
    settings = settings_from({k: v for k, v in env.items() if k in SETTING_NAMES}, monkeypatch)

    mlflow_address = remote.get("MLFLOW_ADDRESS", "mlflow:5000")
    assert settings.mlflow_tracking_uri == f"http://{mlflow_address}"
    assert uri_scheme(settings.optuna_storage) == "postgresql"
    assert settings.optuna_storage.startswith("postgresql+psycopg2://")  # the driver the image installs
    # The password reaches libpq as PGPASSWORD, never through a setting that could be shown.
    assert env.get("PGPASSWORD") == TEST_PASSWORD
    assert all(TEST_PASSWORD not in str(value) for value in settings.model_dump().values())
    assert all(TEST_PASSWORD not in value for value in settings.masked().values())


# --- commands ------------------------------------------------------------------------------------


def test_the_image_runs_vae_lab():
    assert dockerfile_entrypoint() == ["vae-lab"]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["vae-lab"] == "vae_lab.cli:main"


@pytest.mark.parametrize(
    "args",
    [
        ["study", "run", "quick", "--no-such-flag"],
        ["study", "no-such-command", "quick"],
        ["study", "run", "quick", "--workers", "0"],
    ],
)
def test_the_parser_used_here_rejects_what_vae_lab_would(args):
    with pytest.raises(Exception) as error:
        parse_vae_lab(args)
    assert getattr(error.value, "exit_code", None) == 2, repr(error.value)  # a usage error, as vae-lab exits


@pytest.mark.parametrize("files", [(COMPOSE,), (COMPOSE, GPU_OVERRIDE)], ids=["cpu", "gpu"])
def test_worker_command_parses_with_the_cli(files, monkeypatch):
    from vae_lab.study.design.spec import load_study_spec

    worker = interpolated(merged_worker(*files), example_env())
    assert worker.get("entrypoint", dockerfile_entrypoint()) == ["vae-lab"]
    args = worker["command"]
    assert isinstance(args, list), "write the worker's command in exec form (a list), as the container gets it"
    ctx = parse_vae_lab(args)
    assert ctx.command_path == "vae-lab study run"
    assert ctx.params["workers"] == int(example_env()["WORKERS"])
    if GPU_OVERRIDE in files:
        assert ctx.params["device"] == "cuda"
    monkeypatch.chdir(ROOT)  # the container's /app/studies is this repository's studies/
    spec, _ = load_study_spec(ctx.params["study"])
    assert spec.name == example_env()["STUDY"]


def test_mlflow_service_serves_artifacts_from_postgresql():
    from mlflow.cli import cli as mlflow_cli

    compose = load_yaml(COMPOSE)
    env = example_env()
    mlflow = interpolated(compose["services"]["mlflow"], env)
    assert mlflow["entrypoint"] == ["mlflow"]
    args = mlflow["command"]
    assert isinstance(args, list) and args[0] == "server"
    server = mlflow_cli.commands["server"]  # parsed by the installed MLflow: every flag must exist
    ctx = server.make_context(
        "server", args[1:], parent=click.Context(mlflow_cli, info_name="mlflow"), resilient_parsing=False
    )
    params = ctx.params
    assert "--serve-artifacts" in args  # said, not left to MLflow's default
    assert params["serve_artifacts"] is True
    assert params["artifacts_destination"] == "/mlartifacts"
    assert params["host"] == "0.0.0.0"
    store = params["backend_store_uri"]
    assert store.startswith("postgresql+psycopg2://")
    assert store == f"postgresql+psycopg2://{env['POSTGRES_USER']}@postgres:5432/{env['MLFLOW_DB']}"
    assert environment(mlflow)["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
    assert environment(mlflow)["PGPASSWORD"] == TEST_PASSWORD

    port = int(params["port"])
    assert any(str(p).endswith(f":{port}") for p in mlflow["ports"]), "the published port is not the server's"
    assert f"127.0.0.1:{port}/health" in " ".join(mlflow["healthcheck"]["test"])
    assert env["MLFLOW_ADDRESS"] == f"mlflow:{port}"
    volumes = {str(v).split(":")[1]: str(v).split(":")[0] for v in mlflow["volumes"]}
    assert volumes.get("/mlartifacts") in load_yaml(COMPOSE)["volumes"], "the artifacts are not on a named volume"

    # The workers call the server `mlflow`: it must accept that Host header (MLflow refuses
    # unknown ones, against DNS rebinding), and the names it is reached by on the head machine.
    try:
        from mlflow.server.security_utils import is_allowed_host_header
    except ImportError:  # moved: the rule it applies

        def is_allowed_host_header(allowed: list[str], host: str) -> bool:
            return "*" in allowed or any(fnmatch.fnmatch(host, a) if "*" in a else host == a for a in allowed)

    allowed = [h.strip() for h in (params["allowed_hosts"] or "").split(",") if h.strip()]
    if allowed:
        for host in (f"mlflow:{port}", "mlflow", f"localhost:{port}", f"127.0.0.1:{port}"):
            assert is_allowed_host_header(allowed, host), f"the MLflow server would refuse Host: {host}"


def test_postgres_holds_both_databases():
    compose = load_yaml(COMPOSE)
    env = example_env()
    postgres = interpolated(compose["services"]["postgres"], env)
    assert str(postgres["image"]).split(":")[1].split(".")[0] == "15"
    penv = environment(postgres)
    assert penv["POSTGRES_DB"] == env["OPTUNA_DB"] and penv["MLFLOW_DB"] == env["MLFLOW_DB"]
    assert penv["POSTGRES_USER"] == env["POSTGRES_USER"] and penv["POSTGRES_PASSWORD"] == TEST_PASSWORD
    assert penv["POSTGRES_DB"] != penv["MLFLOW_DB"]
    worker_storage = interpolated(environment(compose["services"]["worker"]), env)["VAE_LAB_OPTUNA_STORAGE"]
    assert worker_storage.endswith(f"/{penv['POSTGRES_DB']}")

    mounts = {src: dst for src, dst, *_ in (str(v).split(":") for v in postgres["volumes"])}
    scripts = {src: dst for src, dst in mounts.items() if dst.startswith("/docker-entrypoint-initdb.d/")}
    assert scripts, "no init script creates the MLflow database"
    for src in scripts:
        script = ROOT / src
        assert script.is_file(), f"{src} does not exist"
        text = script.read_text()
        assert "$MLFLOW_DB" in text or "${MLFLOW_DB" in text, f"{src} does not create MLFLOW_DB"
        if script.suffix == ".sh":
            assert script.stat().st_mode & stat.S_IXUSR, f"{src} is not executable"
            subprocess.run(["sh", "-n", str(script)], check=True)


# --- the login -------------------------------------------------------------------------------------


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> source of each volume of `service`."""
    return {str(v).split(":")[1]: str(v).split(":")[0] for v in service.get("volumes", [])}


def test_mlflow_runs_with_its_login_and_the_admin_from_env(monkeypatch):
    from mlflow.cli import cli as mlflow_cli
    from mlflow.server.auth.config import read_auth_config

    env = example_env()
    mlflow = interpolated(load_yaml(COMPOSE)["services"]["mlflow"], env)
    server = mlflow_cli.commands["server"]
    ctx = server.make_context(
        "server", mlflow["command"][1:], parent=click.Context(mlflow_cli, info_name="mlflow"), resilient_parsing=False
    )
    assert ctx.params["app_name"] == "basic-auth"
    menv = environment(mlflow)
    assert menv["MLFLOW_AUTH_ADMIN_USERNAME"] == env["MLFLOW_ADMIN_USERNAME"]
    assert (
        menv["MLFLOW_AUTH_ADMIN_PASSWORD"] == TEST_PASSWORD and menv["MLFLOW_FLASK_SERVER_SECRET_KEY"] == TEST_PASSWORD
    )

    # The config file the server reads, as MLflow reads it: no password in it, users on a volume.
    config_source = mounts(mlflow)[menv["MLFLOW_AUTH_CONFIG_PATH"]]
    config_file = ROOT / config_source
    assert config_file.is_file(), f"{config_source} does not exist"
    parser = configparser.ConfigParser()
    parser.read(config_file)
    assert "admin_password" not in parser["mlflow"], f"{config_source} holds a password"
    monkeypatch.setenv("MLFLOW_AUTH_CONFIG_PATH", str(config_file))
    for name, value in menv.items():
        if name.startswith("MLFLOW_AUTH_ADMIN_"):
            monkeypatch.setenv(name, value)
    config = read_auth_config()
    assert config.admin_username == env["MLFLOW_ADMIN_USERNAME"] and config.admin_password == TEST_PASSWORD
    assert config.default_permission == "READ"  # signed-in users read; writing needs a grant
    assert config.database_uri.startswith("sqlite:////")
    folder = str(Path(config.database_uri.removeprefix("sqlite:///")).parent)
    assert mounts(mlflow).get(folder) in load_yaml(COMPOSE)["volumes"], "the users database is not on a named volume"


def test_workers_sign_in_with_their_own_account_made_by_the_admin():
    env = example_env()
    services = interpolated(load_yaml(COMPOSE)["services"], env)
    worker, accounts = environment(services["worker"]), services["mlflow-accounts"]
    assert worker["MLFLOW_TRACKING_USERNAME"] == env["MLFLOW_WORKER_USERNAME"] != env["MLFLOW_ADMIN_USERNAME"]
    assert worker["MLFLOW_TRACKING_PASSWORD"] == TEST_PASSWORD
    assert "@" not in worker["MLFLOW_TRACKING_URI"]  # never in the URI
    aenv = environment(accounts)
    assert (aenv["MLFLOW_TRACKING_USERNAME"], aenv["MLFLOW_ACCOUNT_USERNAME"]) == (
        env["MLFLOW_ADMIN_USERNAME"],
        env["MLFLOW_WORKER_USERNAME"],
    )
    assert aenv["MLFLOW_ACCOUNT_PERMISSION"] == "EDIT"  # writes runs and models; administers nothing
    assert aenv["MLFLOW_TRACKING_URI"] == f"http://{env['MLFLOW_ADDRESS']}"
    script = accounts["entrypoint"] + accounts["command"]
    assert script[0] == "python" and (ROOT / mounts(accounts)[script[1]]).is_file()
    subprocess.run([sys.executable, "-m", "py_compile", str(ROOT / mounts(accounts)[script[1]])], check=True)
    depends = load_yaml(COMPOSE)["services"]["worker"]["depends_on"]
    assert depends["mlflow-accounts"]["condition"] == "service_completed_successfully"
    assert load_yaml(COMPOSE)["services"]["mlflow-accounts"]["depends_on"]["mlflow"]["condition"] == "service_healthy"


def test_postgres_is_local_by_default_and_checks_passwords_with_scram():
    env = example_env()
    postgres = interpolated(load_yaml(COMPOSE)["services"]["postgres"], env)
    penv = environment(postgres)
    assert penv["POSTGRES_HOST_AUTH_METHOD"] == "scram-sha-256"
    assert "--auth-host=scram-sha-256" in penv["POSTGRES_INITDB_ARGS"]
    assert all(str(port).startswith("127.0.0.1:") for port in postgres["ports"])
    assert interpolated(environment(load_yaml(COMPOSE)["services"]["worker"]), env)["PGSSLMODE"] == "prefer"


# --- scaling ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("files", [(COMPOSE,), (COMPOSE, GPU_OVERRIDE)], ids=["cpu", "gpu"])
def test_worker_scales_and_waits_for_healthy_stores(files):
    services = load_yaml(COMPOSE)["services"]
    worker = merged_worker(*files)
    assert "container_name" not in worker, "a worker with a container_name cannot be scaled"
    assert not worker.get("ports"), "a worker that publishes a port cannot be scaled on one machine"
    assert str(worker.get("restart", "")).startswith("on-failure")
    depends = worker["depends_on"]
    assert {"postgres", "mlflow"} <= set(depends)
    for name in ("postgres", "mlflow"):
        assert isinstance(depends, dict) and depends[name]["condition"] == "service_healthy"
    for name, service in services.items():
        for dependency, condition in (service.get("depends_on") or {}).items():
            if isinstance(condition, dict) and condition.get("condition") == "service_healthy":
                assert services[dependency].get("healthcheck"), (
                    f"{name} waits for {dependency} to be healthy, which has no healthcheck"
                )


def test_gpu_override_reserves_one_gpu_per_worker():
    override = load_yaml(GPU_OVERRIDE)
    assert set(override["services"]) == {"worker"}
    devices = override["services"]["worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]


def test_images_build_with_the_dockerfile_args():
    args = set(re.findall(r"^ARG\s+([A-Za-z_][A-Za-z0-9_]*)", DOCKERFILE.read_text(), re.MULTILINE))
    assert {"TORCH_SPEC", "TORCH_INDEX"} <= args
    for name in ("mlflow", "worker"):
        build = load_yaml(COMPOSE)["services"][name]["build"]
        assert build["context"] == "."
        assert set(build.get("args", {})) <= args, f"{name} passes build args the Dockerfile does not declare"
    assert '".[postgres,ray]"' in DOCKERFILE.read_text()
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert any(dep.startswith("psycopg2") for dep in extras["postgres"])


# --- credentials and .env.example ---------------------------------------------------------------


def test_every_variable_is_documented_and_secrets_are_required():
    documented = {name for _, name, _ in env_example_lines()}
    for path in (COMPOSE, GPU_OVERRIDE):
        for name, op, arg in references(load_yaml(path)):
            assert name in documented, f"{path.name} reads {name}, which .env.example does not document"
            if SECRET.search(name):
                assert op == ":?" and arg.strip(), f"{path.name}: ${{{name}}} must be required (${{{name}:?message}})"


def test_no_credential_is_written_in_the_compose_files():
    for path in (COMPOSE, GPU_OVERRIDE):
        text = path.read_text()
        for value in strings(load_yaml(path)):
            # ${...} references become placeholders first: their defaults may hold a colon.
            refs: list[str] = []
            plain = REFERENCE.sub(lambda m: refs.append(m[0]) or f"\x00{len(refs) - 1}\x00", value)
            for userinfo in re.findall(r"://([^/\s@]*)@", plain):
                _, _, password = userinfo.partition(":")
                whole = re.fullmatch(r"\x00(\d+)\x00", password)
                assert not password or (whole and re.fullmatch(r"\$\{[A-Za-z0-9_]+:\?[^}]+\}", refs[int(whole[1])])), (
                    f"{path.name}: a password is written in a URI: {value.split('@')[-1]}"
                )
        for service_name, service in load_yaml(path)["services"].items():
            for key, value in environment(service).items():
                if SECRET.search(key):
                    assert re.fullmatch(r"\$\{[A-Za-z0-9_]+:\?[^}]+\}", value), (
                        f"{path.name}: {service_name}.{key} must be a required ${{VAR:?...}} from .env, not a value"
                    )
        for _, name, value in env_example_lines():
            if SECRET.search(name) and value:
                assert value not in text, f"{path.name} contains the example {name}"
        assert TEST_PASSWORD not in text


def test_env_example_lists_each_variable_once_under_a_comment():
    lines = ENV_EXAMPLE.read_text().splitlines()
    rows = env_example_lines()
    names = [name for _, name, _ in rows]
    assert len(names) == len(set(names)), f"listed twice: {sorted({n for n in names if names.count(n) > 1})}"
    for index, name, _ in rows:
        above = lines[index - 1].strip() if index else ""
        assert above.startswith("#") and len(above) > 2, f".env.example: {name} has no comment above it"
    assert SETTING_NAMES <= set(names), f"settings not documented: {sorted(SETTING_NAMES - set(names))}"
    used = {name for path in (COMPOSE, GPU_OVERRIDE) for name, _, _ in references(load_yaml(path))}
    for name in names:
        assert name in SETTING_NAMES or name in used, (
            f".env.example documents {name}, which neither vae-lab nor docker compose reads"
        )
        assert not name.startswith("VAE_LAB_") or name in SETTING_NAMES, (
            f"{name} looks like a vae-lab setting but is none"
        )


def test_env_example_values_are_the_compose_defaults_and_hold_no_secret():
    example = {name: value for _, name, value in env_example_lines()}
    for path in (COMPOSE, GPU_OVERRIDE):
        for name, op, arg in references(load_yaml(path)):
            if op == ":-" and name in example:
                assert example[name] == arg, (
                    f"{name}: .env.example says {example[name]!r}, {path.name} defaults to {arg!r}"
                )
    for name, value in example.items():
        if SECRET.search(name):
            assert value == "", f".env.example must leave {name} empty (docker compose then asks for it)"


def test_env_example_settings_and_uris_validate(no_settings_env, monkeypatch):
    import sqlalchemy

    env = example_env()
    settings = settings_from({k: v for k, v in env.items() if k in SETTING_NAMES}, monkeypatch)
    for field, name in ENV_NAMES.items():
        value = getattr(settings, field)
        assert (str(value).lower() if isinstance(value, bool) else str(value)) == env[name]

    # The URIs the comments suggest, with the example password put in.
    uris = re.findall(r"\b(?:postgresql(?:\+\w+)?|sqlite|https?)://[^\s,)]+", ENV_EXAMPLE.read_text())
    uris = [interpolate(uri.rstrip(".:;"), env) for uri in uris]
    assert any(uri.startswith("postgresql") for uri in uris) and any(uri.startswith("http") for uri in uris)
    for uri in uris:
        if uri.startswith("postgresql"):
            Settings(optuna_storage=uri)
            url = sqlalchemy.engine.make_url(uri)
            assert url.drivername == "postgresql+psycopg2" and url.password in (None, TEST_PASSWORD)
        Settings(mlflow_tracking_uri=uri)


# --- docker compose itself, where it is installed --------------------------------------------------


def compose_cli() -> list[str]:
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True, timeout=30)
        if probe.returncode == 0:
            return ["docker", "compose"]
    pytest.skip("the docker compose plugin is not installed")


def test_docker_compose_accepts_the_files(tmp_path):
    command = compose_cli()
    env_file = tmp_path / ".env"
    env_file.write_text("".join(f"{name}={value}\n" for name, value in example_env().items()))
    clean = {k: v for k, v in os.environ.items() if k not in example_env()}
    for files in ([COMPOSE], [COMPOSE, GPU_OVERRIDE]):
        flags = [arg for path in files for arg in ("-f", str(path))]
        done = subprocess.run(
            [*command, *flags, "--env-file", str(env_file), "config", "--quiet"],
            cwd=ROOT,
            env=clean,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr

    env_file.write_text(ENV_EXAMPLE.read_text())  # as copied: no password yet
    done = subprocess.run(
        [*command, "-f", str(COMPOSE), "--env-file", str(env_file), "config", "--quiet"],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0 and "POSTGRES_PASSWORD" in done.stderr
