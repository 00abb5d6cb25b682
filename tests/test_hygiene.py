"""House rules that no other test would notice breaking: no private module of a dependency
imported (one wrapper excepted, and checked against the dependency), and no warning category
silenced wholesale in the test configuration."""

from __future__ import annotations

import ast
import sys
import tomllib
from pathlib import Path

import pytest
import typer

from vae_lab.cli import app, main
from vae_lab.cli.click_errors import click_exceptions

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "vae_lab"
# (file, private import) pairs allowed because the dependency offers no public way; each has a
# test below that fails when the dependency changes.
ALLOWED_PRIVATE_IMPORTS = {("vae_lab/cli/click_errors.py", "typer._click")}


def is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def imported_paths(tree: ast.AST) -> list[str]:
    """Every absolute dotted path an `import` or `from ... import` names, the imported names included."""
    paths = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            paths += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            paths += [f"{node.module}.{alias.name}" for alias in node.names if alias.name != "*"]
    return paths


def private_dependency_imports() -> set[tuple[str, str]]:
    """(file, import up to its first private part) for each import of a third-party private module or name."""
    found = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        for dotted in imported_paths(ast.parse(path.read_text(), filename=str(path))):
            parts = dotted.split(".")
            if parts[0] in ("vae_lab", "__future__") or parts[0] in sys.stdlib_module_names:
                continue
            private_at = next((i for i, part in enumerate(parts) if is_private(part)), None)
            if private_at is not None:
                found.add((path.relative_to(ROOT).as_posix(), ".".join(parts[: private_at + 1])))
    return found


def test_no_module_imports_a_private_part_of_a_dependency():
    found = private_dependency_imports()
    assert found - ALLOWED_PRIVATE_IMPORTS == set(), "use the dependency's public API (or one tested wrapper)"
    assert ALLOWED_PRIVATE_IMPORTS <= found, "an allowed private import is gone: drop it from the list"


def test_the_private_import_check_sees_every_form_of_import():
    tree = ast.parse(
        "import plotly.io._utils\nfrom typer._click import exceptions\nfrom plotly.io import _utils\n"
        "from mlflow import __version__\nfrom . import _local\nimport os._private\n"
    )
    assert imported_paths(tree) == [
        "plotly.io._utils",
        "typer._click.exceptions",
        "plotly.io._utils",
        "mlflow.__version__",
        "os._private",
    ]
    assert [p for p in imported_paths(tree) if any(is_private(part) for part in p.split("."))] == [
        "plotly.io._utils",
        "typer._click.exceptions",
        "plotly.io._utils",
        "os._private",
    ]


# typer (since 0.26) vendors click and exports only `TyperException`, the base of its errors; `main`
# tells the kinds apart by the classes `click_exceptions` reaches for. These fail if typer moves them.


def test_typer_still_raises_the_error_classes_main_catches():
    errors = click_exceptions()
    assert issubclass(errors.UsageError, errors.ClickException)
    assert issubclass(errors.ClickException, typer.TyperException)
    with pytest.raises(errors.UsageError) as bad_option:
        app(["--no-such-option"], standalone_mode=False)
    assert bad_option.value.ctx is not None and bad_option.value.ctx.command_path
    with pytest.raises(errors.NoArgsIsHelpError):
        app(["study"], standalone_mode=False, prog_name="vae-lab")


def test_a_bad_option_is_one_line_and_exit_2(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["vae-lab", "study", "runn"])
    with pytest.raises(SystemExit) as exit:
        main()
    assert exit.value.code == 2
    stderr = capsys.readouterr().err
    assert stderr.count("\n") == 1 and "No such command 'runn'" in stderr and "vae-lab study --help" in stderr


def test_no_warning_category_is_ignored_wholesale():
    """Warnings are errors in tests; only named third-party noise (by message or module) may be ignored."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    filters = config["filterwarnings"]
    assert filters[0] == "error"
    for entry in filters[1:]:
        action, message, _category, module = (entry.split(":") + ["", "", "", ""])[:4]
        assert action == "ignore", entry
        assert message.strip() or module.strip(), f"{entry!r} ignores a whole category"
