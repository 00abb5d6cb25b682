"""The README and the documentation site name only commands, files and pages that exist.

`make docs` (mkdocs build --strict) checks the links between pages of the site; these tests
check what it cannot see: the README's links (it lives outside docs/), and that every `vae-lab`
command and `make` target shown in a shell block of either parses with the real CLI or is a
target of the Makefile, so a renamed flag fails here rather than in a reader's terminal.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from tests.test_compose import parse_vae_lab

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = sorted((ROOT / "docs").glob("*.md"))
SHELL_BLOCK = re.compile(r"^```bash\n(.*?)^```", re.MULTILINE | re.DOTALL)
VAE_LAB = re.compile(r"^(?:\.venv/bin/)?vae-lab\s+(.*)$")
MAKE = re.compile(r"^make\s+([\w-]+)")


def shell_lines(path: Path) -> list[str]:
    """Each command line of the file's bash blocks, its trailing comment removed."""
    lines = []
    for block in SHELL_BLOCK.findall(path.read_text()):
        for line in block.splitlines():
            command = re.split(r"\s+#\s", line.strip(), maxsplit=1)[0].strip()
            if command and not command.startswith("#"):
                lines.append(command)
    return lines


def documented_commands() -> list[tuple[str, str]]:
    return [(path.name, line) for path in [README, *PAGES] for line in shell_lines(path) if VAE_LAB.match(line)]


def makefile_targets() -> set[str]:
    return set(re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), re.MULTILINE))


def test_shell_blocks_are_found():
    # The extraction itself: the README shows both setup commands and the everyday commands.
    assert {"make quick", "make test"} <= set(shell_lines(README))
    assert sum(1 for name, _ in documented_commands() if name == "README.md") >= 10


@pytest.mark.parametrize(("page", "line"), documented_commands(), ids=lambda value: value)
def test_documented_vae_lab_commands_parse(page, line):
    # Optional parts are shown in brackets ("[--seed 1]"): the command must parse with them.
    arguments = shlex.split(VAE_LAB.match(line)[1].replace("[", "").replace("]", ""))
    parse_vae_lab(arguments)


def test_documented_make_targets_exist():
    targets = makefile_targets()
    shown = {MAKE.match(line)[1] for path in [README, *PAGES] for line in shell_lines(path) if MAKE.match(line)}
    assert {"quick", "test"} <= shown
    assert shown <= targets, f"not in the Makefile: {sorted(shown - targets)}"


def test_readme_links_point_at_files_in_the_repository():
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", README.read_text())
    local = [link for link in links if "://" not in link]
    assert any(link.startswith("docs/") for link in local)
    missing = [link for link in local if not (ROOT / link).exists()]
    assert not missing, f"README links to missing files: {missing}"


def test_readme_maps_every_page():
    # A new page goes into mkdocs.yml's nav (make docs fails otherwise) and into the README's map.
    # Left out: the site's home, and results.md, which only includes benchmarks/RESULTS.md (linked as such).
    readme = README.read_text()
    mapped = [page for page in PAGES if page.name not in ("index.md", "results.md")]
    unmapped = [page.name for page in mapped if f"(docs/{page.name})" not in readme]
    assert not unmapped, f"the README's map does not link: {unmapped}"
