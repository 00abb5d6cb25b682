"""The classes of the errors typer raises for a bad command line: vae-lab's one reach into a
dependency's private module.

Since 0.26 typer ships its own copy of click as `typer._click` (not for outside use, its
authors say) and exports only the base of these errors (`typer.TyperException`) and
`BadParameter`. `main` needs three more by class: a usage error (one line, exit 2, a `--help`
hint), "no arguments, help shown" (nothing to add) and any other click error.
`tests/test_hygiene.py` allows this import here only and checks the classes against typer's
behaviour, so a typer release that moves them fails there, loudly.
"""

from __future__ import annotations

from types import ModuleType


def click_exceptions() -> ModuleType:
    """typer's bundled `click.exceptions` (UsageError, NoArgsIsHelpError, ClickException, ...)."""
    from typer._click import exceptions

    return exceptions
