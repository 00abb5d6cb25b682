"""Every trial attribute, study attribute and run tag is named in `provenance.py` and nowhere else:
a raw string where one is read or written fails here, naming the file and line."""

from __future__ import annotations

import ast
from pathlib import Path

import vae_lab

PACKAGE = Path(vae_lab.__file__).parent
PROVENANCE = PACKAGE / "study" / "trial" / "provenance.py"
ATTRIBUTE_BAGS = {"user_attrs", "system_attrs", "tags"}  # trial / study attrs and a run's tags
WRITERS = {"set_user_attr": 0, "set_trial_user_attr": 1, "set_study_user_attr": 1, "set_tag": 1}


def literal(node: ast.AST | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def bag_name(node: ast.AST) -> str | None:
    return node.attr if isinstance(node, ast.Attribute) and node.attr in ATTRIBUTE_BAGS else None


def raw_names(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, literal) for each attribute or tag named by a string literal."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript) and bag_name(node.value) and literal(node.slice):
            found.append((node.lineno, literal(node.slice)))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            name, args = node.func.attr, node.args
            if name == "get" and bag_name(node.func.value) and args and literal(args[0]):
                found.append((node.lineno, literal(args[0])))
            elif name in WRITERS and len(args) > WRITERS[name] and literal(args[WRITERS[name]]):
                found.append((node.lineno, literal(args[WRITERS[name]])))
            elif name in ("set_tags", "start_run"):
                dicts = [a for a in args if isinstance(a, ast.Dict)]
                dicts += [k.value for k in node.keywords if k.arg == "tags" and isinstance(k.value, ast.Dict)]
                found += [(node.lineno, literal(k)) for d in dicts for k in d.keys if literal(k)]
        elif literal(node) and "tags." in node.value and "'" in node.value:  # a search filter by tag
            if "`mlflow." not in node.value:  # MLflow's own tags are MLflow's to name
                found.append((node.lineno, node.value))
    return found


def test_no_raw_attribute_or_tag_name_outside_provenance():
    offences = [
        f"{path.relative_to(PACKAGE.parent)}:{line}: {name!r}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path != PROVENANCE
        for line, name in raw_names(ast.parse(path.read_text()))
    ]
    assert not offences, "name these in vae_lab/study/trial/provenance.py:\n" + "\n".join(offences)


def test_the_check_sees_each_kind_of_raw_name():
    source = """
t.user_attrs["a"]; t.system_attrs.get("b"); run.data.tags.get("c")
trial.set_user_attr("d", 1); storage.set_trial_user_attr(1, "e", 2); client.set_tag(run_id, "f", 3)
tracker.set_tags(run_id, {"g": 1}); tracker.start_run(x, y, tags={"h": 2})
client.search_runs([e], "tags.i = 'x'")
t.user_attrs[TrialAttr.RUN_ID]; tracker.set_tags(run_id, {RunTag.STUDY: 1})
"""
    assert [name for _, name in raw_names(ast.parse(source))] == [*"abcdefgh", "tags.i = 'x'"]
