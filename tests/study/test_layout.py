"""The study package's imports run one way (design <- trial <- reading <- execution) and never in a circle."""

from __future__ import annotations

import ast
from pathlib import Path

import vae_lab

PACKAGE = Path(vae_lab.__file__).parent
LAYERS = {"design": 0, "trial": 1, "reading": 2, "execution": 3}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every vae_lab module `path` imports, at any depth (function-level imports count too),
    except under `if TYPE_CHECKING:`."""
    tree = ast.parse(path.read_text())
    skipped = {
        id(n)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for n in ast.walk(node)
    }
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return {name for name in found if name.startswith("vae_lab.")}


def study_graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in (PACKAGE / "study").rglob("*.py")}
    return {name: {d for d in imports_of(path) if d in modules and d != name} for name, path in modules.items()}


def test_no_module_of_the_study_package_imports_itself_back():
    graph = study_graph()
    state: dict[str, str] = {}

    def visit(module: str, trail: list[str]) -> None:
        state[module] = "open"
        for dep in sorted(graph[module]):
            assert state.get(dep) != "open", "import cycle: " + " -> ".join([*trail, dep])
            if dep not in state:
                visit(dep, [*trail, dep])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


def test_layers_import_one_way():
    def layer(module: str) -> int | None:
        parts = module.split(".")
        return LAYERS.get(parts[2]) if len(parts) > 2 else None

    for module, deps in study_graph().items():
        for dep in deps:
            if layer(module) is not None and layer(dep) is not None:
                assert layer(dep) <= layer(module), f"{module} imports {dep}, a later layer"


def test_the_design_layer_needs_no_mlflow_and_no_storage():
    for path in (PACKAGE / "study" / "design").rglob("*.py"):
        text = path.read_text()
        assert "mlflow" not in imports_of(path) and "import mlflow" not in text, path
        assert "vae_lab.tracking" not in text and "storages" not in text, path


def test_every_module_of_the_study_package_sits_in_a_layer():
    outside = [
        name
        for name in study_graph()
        if name != "vae_lab.study" and (len(name.split(".")) < 3 or name.split(".")[2] not in LAYERS)
    ]
    assert not outside, f"modules outside design/trial/reading/execution: {outside}"


def test_the_reading_layer_never_trains_or_crowns():
    for path in (PACKAGE / "study" / "reading").rglob("*.py"):
        deps = imports_of(path)
        assert not any(d.startswith("vae_lab.study.execution") for d in deps), path
        assert "vae_lab.registry.reconcile" not in deps and "vae_lab.training.trainer" not in deps, path
