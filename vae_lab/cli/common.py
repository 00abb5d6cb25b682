"""What every command shares: where output goes, and the `--json` contract.

Tables and results go to stdout; progress, logs and hints go to stderr. With `--json` a command
prints exactly one JSON document on stdout and nothing else there, so scripts can pipe it.
Libraries print too (MLflow writes "View run ... at" links to stdout when it talks to a
server), so while a command runs, anything printed to stdout goes to stderr and only
`out` and `emit_json` reach the real stdout.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import sys
from typing import Annotated, Any, Callable, TypeVar

import typer
from rich.console import Console

from vae_lab.errors import VaeLabError


class ResultStream:
    """File-like: the stdout a command's results go to, even while sys.stdout is redirected."""

    target: Any = None

    def _file(self) -> Any:
        return self.target or sys.stdout

    def write(self, text: str) -> int:
        return self._file().write(text)

    def flush(self) -> None:
        self._file().flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._file(), name)


results = ResultStream()
out = Console(file=results, soft_wrap=True)  # type: ignore[arg-type]
err = Console(stderr=True)

JsonFlag = Annotated[
    bool, typer.Option("--json", help="Print exactly one JSON document on stdout (progress stays on stderr).")
]


F = TypeVar("F", bound=Callable[..., Any])


def report_user_error(exc: VaeLabError) -> None:
    err.print("[bold red]error:[/] ", end="")
    err.print(str(exc), markup=False, highlight=False, soft_wrap=True)


def user_errors(command: F) -> F:
    """Decorate a command: a VaeLabError becomes one line on stderr and exit code 2."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        results.target = sys.stdout
        try:
            with contextlib.redirect_stdout(sys.stderr):
                return command(*args, **kwargs)
        except VaeLabError as exc:
            report_user_error(exc)
            raise typer.Exit(code=2) from None
        finally:
            results.target = None

    return run  # type: ignore[return-value]


def _plain(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy / torch scalars
        return value.item()
    if hasattr(value, "__fspath__"):
        return str(value)
    return value


def emit_json(document: Any) -> None:
    """The one JSON document of a `--json` command (NaN and infinities become null)."""
    results.write(json.dumps(_plain(document), indent=2) + "\n")
    results.flush()


def fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)
