"""What every command shares: where output goes, and the `--json` contract.

Tables and results go to stdout; progress, logs and hints go to stderr. With `--json` a command
prints exactly one JSON document on stdout and nothing else there, so scripts can pipe it.
"""

from __future__ import annotations

import json
import math
from typing import Annotated, Any

import typer
from rich.console import Console

out = Console(soft_wrap=True)
err = Console(stderr=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print exactly one JSON document on stdout (progress stays on stderr).")]


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
    typer.echo(json.dumps(_plain(document), indent=2))


def fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)
