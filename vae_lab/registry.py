"""The MLflow model registry: each study's champion, the best of each family, and reloading them.

A study's models are registered under one registered model (named after the study unless the
study says otherwise). Alias `champion` points at the best trial's version, and `best-<family>`
at the best trial of each architecture (`models:/architecture-sweep@best-conv`), so comparing
families is a registry lookup. Versions carry the tags a researcher filters on
(`best_architecture`, `study`, `trial`, `objective`, `value`, `run_id`, `model_id`).

With several objectives the champion follows the study's stated rule (`vae_lab.selection`:
best, constrained or knee), every Pareto-optimal trial gets an alias `pareto-<k>` (k = 1 is the
front's best on the first objective), and every aliased version carries the tags
`champion_rule` and `pareto_rank` (as of the last reconcile).

`reconcile` makes the aliases agree with the study's trials as stored in Optuna, the one source
of truth; the study runner calls it under the study's lock whenever a trial finishes, so two
workers finishing at once still leave `champion` on the true best trial. Calling it with another
rule re-crowns without retraining. A rule no trial meets leaves `champion` where it was and
says so in the returned `Crowning`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from mlflow.exceptions import MlflowException

from vae_lab.errors import VaeLabError
from vae_lab.selection import ChampionRule, choose_champion, pareto_ranks
from vae_lab.tracking import Tracker, load_model

CHAMPION = "champion"
PARETO_PREFIX = "pareto-"


def family_alias(architecture: str) -> str:
    return f"best-{architecture}"


@dataclass(frozen=True)
class Candidate:
    """A finished trial with a logged model: a candidate the registry can crown."""

    study: str
    trial: int
    architecture: str
    value: float
    run_id: str
    model_id: str
    objective: str
    direction: str
    values: Mapping[str, float] = field(default_factory=dict)  # every objective's value, by metric

    def tags(self) -> dict[str, str]:
        return {
            "best_architecture": self.architecture,
            "study": self.study,
            "trial": str(self.trial),
            "objective": self.objective,
            "direction": self.direction,
            "value": repr(float(self.value)),
            "run_id": self.run_id,
            "model_id": self.model_id,
        }


def best(entries: Iterable[Candidate]) -> Candidate | None:
    """The best entry by value in its study's direction; ties go to the earlier trial."""
    entries = list(entries)
    if not entries:
        return None
    sign = 1 if entries[0].direction == "maximize" else -1
    return max(entries, key=lambda e: (sign * e.value, -e.trial))


def pareto_alias(k: int) -> str:
    return f"{PARETO_PREFIX}{k}"


@dataclass
class Crowning:
    """What `reconcile` did: alias -> version, each entry's Pareto rank, and why `champion`
    stayed where it was (a rule no trial meets), if it did."""

    versions: dict[str, int] = field(default_factory=dict)
    ranks: dict[int, int] = field(default_factory=dict)
    unmet: VaeLabError | None = None


def _objectives(entries: list[Candidate]) -> dict[str, str]:
    """metric -> direction of the study's objectives (several when the entries carry values)."""
    first = entries[0]
    if not first.values:
        return {first.objective: first.direction}
    from vae_lab.choices import direction_of

    return {metric: direction_of(metric) for metric in first.values}


def wanted_aliases(
    entries: list[Candidate], rule: ChampionRule | None = None
) -> tuple[dict[str, Candidate], dict[int, int], VaeLabError | None]:
    """(alias -> entry, Pareto rank by trial, an unmet rule's error): champion by `rule` (default:
    the best value), best-<family> by value, and pareto-<k> for each Pareto-optimal entry when
    the study has several objectives."""
    wanted: dict[str, Candidate] = {}
    if not entries:
        return wanted, {}, None
    objectives = _objectives(entries)
    points = {e.trial: (dict(e.values) or {e.objective: e.value}) for e in entries}
    by_trial = {e.trial: e for e in entries}
    ranks = pareto_ranks(points, objectives)
    unmet = None
    try:
        number = choose_champion(rule, points, objectives) if rule is not None else best(entries).trial
        if number is not None:
            wanted[CHAMPION] = by_trial[number]
    except VaeLabError as error:
        unmet = error
    for family in sorted({e.architecture for e in entries}):
        wanted[family_alias(family)] = best(e for e in entries if e.architecture == family)
    if len(objectives) > 1:
        sign = 1 if entries[0].direction == "maximize" else -1
        front = sorted((by_trial[n] for n, r in ranks.items() if r == 1), key=lambda e: (-sign * e.value, e.trial))
        wanted.update({pareto_alias(k): e for k, e in enumerate(front, start=1)})
    return wanted, ranks, unmet


def reconcile(tracker: Tracker, name: str, entries: list[Candidate], rule: ChampionRule | None = None) -> Crowning:
    """Point every alias at its wanted entry, registering a version where one is missing, and
    drop pareto-<k> aliases past the current front. Call it under the study's lock."""
    client = tracker.client
    wanted, ranks, unmet = wanted_aliases(entries, rule)
    crowning = Crowning(ranks=ranks, unmet=unmet)
    if not wanted:
        return crowning
    _ensure_registered_model(client, name)
    for alias, entry in wanted.items():
        current = _version_by_alias(client, name, alias)
        if current is not None and current.run_id == entry.run_id:
            crowning.versions[alias] = int(current.version)
            continue
        version = _version_of(client, name, entry)
        client.set_registered_model_alias(name, alias, version)
        crowning.versions[alias] = int(version)
    registered = client.get_registered_model(name)
    for alias in registered.aliases:
        if alias.startswith(PARETO_PREFIX) and alias not in wanted:
            client.delete_registered_model_alias(name, alias)
    _tag_versions(client, name, wanted, crowning, rule)
    champion = wanted.get(CHAMPION) or _current_champion(client, name, entries)
    if champion is not None:
        for key in ("study", "best_architecture", "objective", "value", "trial"):
            client.set_registered_model_tag(name, key, champion.tags()[key])
        if rule is not None:
            client.set_registered_model_tag(name, "champion_rule", rule.describe())
    return crowning


def _tag_versions(
    client, name: str, wanted: dict[str, Candidate], crowning: Crowning, rule: ChampionRule | None
) -> None:
    """Each aliased version's Pareto rank, and the champion's rule, as of now."""
    for alias, entry in wanted.items():
        version = str(crowning.versions[alias])
        if entry.trial in crowning.ranks:
            client.set_model_version_tag(name, version, "pareto_rank", str(crowning.ranks[entry.trial]))
        if alias == CHAMPION:
            client.set_model_version_tag(
                name, version, "champion_rule", rule.describe() if rule else f"best {entry.objective}"
            )


def _current_champion(client, name: str, entries: list[Candidate]) -> Candidate | None:
    current = _version_by_alias(client, name, CHAMPION)
    return next((e for e in entries if current is not None and e.run_id == current.run_id), None)


def _ensure_registered_model(client, name: str) -> None:
    try:
        client.get_registered_model(name)
    except MlflowException:
        try:
            client.create_registered_model(
                name,
                description="VAEs of a vae-lab study: alias champion is the best, best-<family> the best of each family.",
            )
        except MlflowException:
            client.get_registered_model(name)  # another worker created it first


def _version_by_alias(client, name: str, alias: str):
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def _version_of(client, name: str, entry: Candidate) -> str:
    """The version registered for `entry`'s run, registered now if there is none."""
    existing = client.search_model_versions(f"name='{name}' and run_id='{entry.run_id}'")
    if existing:
        return str(min(int(v.version) for v in existing))
    # The logged model's own artifact location as the source: a `models:/m-...` source makes
    # MLflow's SQL registry look the model up through the process-wide tracking URI, which this
    # client does not use (an MLflow TODO), so it fails whenever the two differ.
    location = client.get_logged_model(entry.model_id).artifact_location
    version = client.create_model_version(
        name, source=location, run_id=entry.run_id, tags=entry.tags(), model_id=entry.model_id
    )
    return str(version.version)


def champion_info(tracker: Tracker, name: str, alias: str = CHAMPION, version: int | None = None) -> dict[str, Any]:
    """A version's number, tags, source run and every alias of the model, or a VaeLabError saying how to get one.

    The version is the one `alias` points at, or `version` when given (then `alias` is unused).
    """
    client = tracker.client
    try:
        registered = client.get_registered_model(name)
    except MlflowException:
        raise VaeLabError(
            f"registry: {name}", "no registered model of that name", "run the study first: vae-lab study run NAME"
        ) from None
    if version is not None:
        found = _version_by_number(client, name, version)
        uri = f"models:/{name}/{version}"
    else:
        found = _version_by_alias(client, name, alias)
        uri = f"models:/{name}@{alias}"
    if found is None:
        known = ", ".join(sorted(registered.aliases)) or "none"
        if version is not None:
            raise VaeLabError(f"registry: {name}", f"no version {version}", "pass a version the MLflow UI lists")
        what = f"no version has the alias '{alias}' (aliases: {known})"
        raise VaeLabError(f"registry: {name}", what, "finish at least one trial of the study, or use an alias listed")
    aliases = {a: int(v) for a, v in sorted(registered.aliases.items())}
    return {
        "name": name,
        "alias": alias if version is None else None,
        "version": int(found.version),
        "run_id": found.run_id,
        "model_id": found.tags.get("model_id") or getattr(found, "model_id", None),
        "source": found.source,
        "uri": uri,
        "tags": dict(found.tags),
        "aliases": aliases,
    }


def _version_by_number(client, name: str, version: int):
    try:
        return client.get_model_version(name, str(version))
    except MlflowException:
        return None


def load_version(tracker: Tracker, name: str, alias: str = CHAMPION, version: int | None = None):
    """(model on the CPU in eval mode, champion_info) for `models:/NAME@alias` (or `models:/NAME/version`)."""
    info = champion_info(tracker, name, alias, version)
    if not info["model_id"]:
        fix = "re-run the study with this vae-lab version"
        raise VaeLabError(f"registry: {info['uri']}", "the version names no logged model", fix)
    return load_model(tracker, info["model_id"]), info


def usage(info: dict[str, Any], tracking_uri: str) -> dict[str, list[str]]:
    """How to use a registered version: python lines and the serve command, with its real URI."""
    uri = info["uri"]
    python = [
        "import mlflow",
        f"mlflow.set_tracking_uri({tracking_uri!r})",
        f"model = mlflow.pyfunc.load_model({uri!r})",
        "latents = model.predict(frame)  # the dataset's voxel columns, or an (N, 1331) / (N, 11, 11, 11) array",
        'grids = model.predict(frame, params={"output": "reconstruction"})  # or latent_with_logvar, scores',
    ]
    serve = [
        f"MLFLOW_TRACKING_URI={tracking_uri} mlflow models serve -m {uri} --env-manager local"
        " --host 127.0.0.1 --port 5001"
    ]
    return {"python": python, "serve": serve}
