"""The MLflow model registry: each study's champion, the best of each family, and reloading them.

A study's models are registered under one registered model (named after the study unless the
study says otherwise). Alias `champion` points at the best trial's version, and `best-<family>`
at the best trial of each architecture (`models:/architecture-sweep@best-conv`), so comparing
families is a registry lookup. Versions carry the tags a researcher filters on
(`best_architecture`, `study`, `trial`, `objective`, `value`, `run_id`, `model_id`).

The champion follows the study's stated rule (`vae_lab.selection`: best, constrained or knee)
and its version carries the tag `champion_rule`. With several objectives every Pareto-optimal
trial also gets an alias `pareto-<k>` (k = 1 is the front's best on the first objective), and
every aliased version carries the tag `pareto_rank`. Both tags describe the last reconcile: a
version that loses its role loses them. The registered model's own tags name the champion's
trial, value and rule.

Each version's description is its model card (`vae_lab.model_card`: what the model is, what it
was trained on, how well it does, how it was chosen and how to use it), and the registered
model's description lists its aliases. A card's first part is written once, from one read of the
trial's run, when the version is registered; its second part follows the aliases, the rule, the
Pareto rank and the champion's trial count, and is rewritten only when its text changes.

`reconcile` makes the aliases agree with the study's trials as stored in Optuna, the one source
of truth. It reads the registry once and writes only what differs, so a crowning that changes
nothing writes nothing, and one that was cut short is finished by the next. The study runner
calls it under the study's lock whenever a trial finishes: reading the trials, reading the
registry and writing the differences must not interleave with another worker's, or a worker with
an older view of the trials could write last and leave `champion` off the true best trial.
Calling it with another rule re-crowns without retraining. A rule no trial meets leaves
`champion` (and its tags) where it was and says so in the returned `Crowning`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from mlflow.exceptions import MlflowException

from vae_lab.errors import VaeLabError
from vae_lab.model_card import (
    CHAMPION,
    PARETO_PREFIX,
    AliasLine,
    CardContext,
    RunFacts,
    card,
    family_alias,
    model_description,
    pareto_alias,
    restand,
)
from vae_lab.selection import ChampionRule, best, choose_champion, pareto_ranks
from vae_lab.study.trial.provenance import VersionTag
from vae_lab.tracking import Tracker, load_model


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
            VersionTag.BEST_ARCHITECTURE: self.architecture,
            VersionTag.STUDY: self.study,
            VersionTag.TRIAL: str(self.trial),
            VersionTag.OBJECTIVE: self.objective,
            VersionTag.DIRECTION: self.direction,
            VersionTag.VALUE: repr(float(self.value)),
            VersionTag.RUN_ID: self.run_id,
            VersionTag.MODEL_ID: self.model_id,
        }


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


def _best_by_value(entries: list[Candidate]) -> Candidate | None:
    """The entry with the best value in the study's direction (ties: the earlier trial)."""
    by_trial = {e.trial: e for e in entries}
    number = best({e.trial: {"value": e.value} for e in entries}, "value", entries[0].direction)
    return by_trial.get(number)


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
        if rule is None:
            champion = _best_by_value(entries)
        else:
            champion = by_trial.get(choose_champion(rule, points, objectives))
        if champion is not None:
            wanted[CHAMPION] = champion
    except VaeLabError as error:
        unmet = error
    for family in sorted({e.architecture for e in entries}):
        family_best = _best_by_value([e for e in entries if e.architecture == family])
        if family_best is not None:
            wanted[family_alias(family)] = family_best
    if len(objectives) > 1:
        sign = 1 if entries[0].direction == "maximize" else -1
        front = sorted((by_trial[n] for n, r in ranks.items() if r == 1), key=lambda e: (-sign * e.value, e.trial))
        wanted.update({pareto_alias(k): e for k, e in enumerate(front, start=1)})
    return wanted, ranks, unmet


# The version tags a crowning owns: set on the versions that should carry them and deleted from
# the others, so they always describe the last crowning, never a version's former role.
CROWNING_TAGS = (VersionTag.CHAMPION_RULE, VersionTag.PARETO_RANK)
# The registered model's own tags: which trial is its champion, and by which rule.
CHAMPION_MODEL_TAGS = (
    VersionTag.STUDY,
    VersionTag.BEST_ARCHITECTURE,
    VersionTag.OBJECTIVE,
    VersionTag.VALUE,
    VersionTag.TRIAL,
)


@dataclass
class RegistryState:
    """A registered model's aliases (alias -> version), its tags and description, and the tags a
    crowning owns on each version and their descriptions (model cards); as read, or as a crowning
    wants them. Versions are strings, as MLflow takes them."""

    aliases: dict[str, str] = field(default_factory=dict)
    model_tags: dict[str, str] = field(default_factory=dict)
    version_tags: dict[str, dict[str, str]] = field(default_factory=dict)
    runs: dict[str, str] = field(default_factory=dict)  # version -> run id (as read)
    descriptions: dict[str, str] = field(default_factory=dict)  # version -> its card
    model_description: str = ""

    def version_of(self, run_id: str) -> str | None:
        """The earliest version registered for `run_id`, if there is one."""
        found = [version for version, run in self.runs.items() if run == run_id]
        return min(found, key=int) if found else None


def reconcile(tracker: Tracker, name: str, entries: list[Candidate], rule: ChampionRule | None = None) -> Crowning:
    """Point every alias at its wanted entry, registering a version only where its run has none,
    drop pareto-<k> aliases past the current front, and tag as the module docstring says.

    The registry is read once (two calls) and only what differs is written, so a crowning that
    changes nothing costs two reads; a new version costs one more read, of its run, for its card.
    Call it under the study's lock (see the module docstring).
    """
    wanted, ranks, unmet = wanted_aliases(entries, rule)
    crowning = Crowning(ranks=ranks, unmet=unmet)
    if not wanted:
        return crowning
    client = tracker.client
    rule_text = rule.describe() if rule is not None else f"best {entries[0].objective}"
    objectives = _objectives(entries)
    cards = CardContext(name, len(entries), unmet is not None, tuple(objectives) if len(objectives) > 1 else ())
    current = _read(client, name, _model_tags(wanted.get(CHAMPION), rule_text))
    target = _target(client, name, current, wanted, entries, rule_text, ranks if len(objectives) > 1 else {}, cards)
    _describe(client, cards, current, target, entries)
    _write_differences(client, name, current, target)
    crowning.versions = {alias: int(target.aliases[alias]) for alias in wanted}
    return crowning


def _target(
    client,
    name: str,
    current: RegistryState,
    wanted: dict[str, Candidate],
    entries: list[Candidate],
    rule_text: str | None,
    ranks: dict[int, int],
    cards: CardContext,
) -> RegistryState:
    """The state `wanted` asks for, registering the versions it needs; `ranks` is empty for one objective."""

    def owned_tags(entry: Candidate | None, champion_rule: str | None) -> dict[str, str]:
        tags = {VersionTag.CHAMPION_RULE: champion_rule} if champion_rule is not None else {}
        if entry is not None and entry.trial in ranks:
            tags[VersionTag.PARETO_RANK] = str(ranks[entry.trial])
        return tags

    champion = wanted.get(CHAMPION)
    target = RegistryState()
    for alias, entry in wanted.items():
        tags = owned_tags(entry, rule_text if entry is champion else None)
        version = current.aliases.get(alias)
        if version is None or current.runs.get(version) != entry.run_id:
            if (version := current.version_of(entry.run_id)) is None:
                held = [a for a, e in wanted.items() if e.run_id == entry.run_id]
                version = _register(client, name, entry, tags, _new_card(client, cards, entry, held, tags), current)
        target.aliases[alias], target.version_tags[version] = version, tags
    if champion is None and CHAMPION in current.aliases:  # an unmet rule: the champion stays, as it was crowned
        kept = target.aliases[CHAMPION] = current.aliases[CHAMPION]
        champion = next((e for e in entries if e.run_id == current.runs.get(kept)), None)
        rule_text = current.version_tags.get(kept, {}).get(VersionTag.CHAMPION_RULE)
        target.version_tags[kept] = owned_tags(champion, rule_text)
    target.model_tags = _model_tags(champion, rule_text)
    return target


def _model_tags(champion: Candidate | None, champion_rule: str | None) -> dict[str, str]:
    if champion is None:
        return {}
    tags = {key: champion.tags()[key] for key in CHAMPION_MODEL_TAGS}
    return tags | ({VersionTag.CHAMPION_RULE: champion_rule} if champion_rule is not None else {})


def _write_differences(client, name: str, current: RegistryState, target: RegistryState) -> None:
    """Move the aliases that point elsewhere, drop pareto-<k> past the front, and set or delete
    the tags that differ; nothing else is written."""
    for alias, version in target.aliases.items():
        if current.aliases.get(alias) != version:
            client.set_registered_model_alias(name, alias, version)
    for alias in current.aliases:
        if alias.startswith(PARETO_PREFIX) and alias not in target.aliases:
            client.delete_registered_model_alias(name, alias)
    for version, tags in current.version_tags.items():
        owned = target.version_tags.get(version, {})
        for key, value in owned.items():
            if tags.get(key) != value:
                client.set_model_version_tag(name, version, key, value)
        for key in CROWNING_TAGS:
            if key in tags and key not in owned:
                client.delete_model_version_tag(name, version, key)
    for key, value in target.model_tags.items():
        if current.model_tags.get(key) != value:
            client.set_registered_model_tag(name, key, value)
    for version, text in target.descriptions.items():
        if current.descriptions.get(version) != text:
            client.update_model_version(name, version, description=text)
    if target.model_description and current.model_description != target.model_description:
        client.update_registered_model(name, description=target.model_description)


def _read(client, name: str, model_tags: dict[str, str]) -> RegistryState:
    """The registered model `name` as it stands (two reads), created with `model_tags` if it does not exist."""
    try:
        model = client.get_registered_model(name)
    except MlflowException:
        try:
            # Its description lists the aliases, written once the crowning has made them.
            client.create_registered_model(name, tags=model_tags)
            return RegistryState(model_tags=dict(model_tags))
        except MlflowException:
            model = client.get_registered_model(name)  # another worker created it first
    state = RegistryState({alias: str(v) for alias, v in model.aliases.items()}, dict(model.tags))
    state.model_description = model.description or ""
    page = client.search_model_versions(f"name='{name}'")
    while True:
        for version in page:
            number = str(version.version)
            state.runs[number] = version.run_id
            state.version_tags[number] = {k: v for k, v in version.tags.items() if k in CROWNING_TAGS}
            state.descriptions[number] = version.description or ""
        if not page.token:
            return state
        page = client.search_model_versions(f"name='{name}'", page_token=page.token)


def _register(
    client, name: str, entry: Candidate, owned_tags: dict[str, str], description: str, current: RegistryState
) -> str:
    """A new version for `entry`'s run, tagged and described as wanted from the start; `current` learns of it."""
    # The logged model's own artifact location as the source: a `models:/m-...` source makes
    # MLflow's SQL registry look the model up through the process-wide tracking URI, which this
    # client does not use (an MLflow TODO), so it fails whenever the two differ.
    location = client.get_logged_model(entry.model_id).artifact_location
    tags = entry.tags() | owned_tags
    created = client.create_model_version(
        name, source=location, run_id=entry.run_id, tags=tags, model_id=entry.model_id, description=description
    )
    version = str(created.version)
    current.runs[version], current.version_tags[version] = entry.run_id, dict(owned_tags)
    current.descriptions[version] = description
    return version


def _new_card(client, cards: CardContext, entry: Candidate, aliases: list[str], owned_tags: dict[str, str]) -> str:
    """The card of a version about to be registered for `entry` (empty if its run cannot be read
    now: the next crowning writes it)."""
    facts = _run_facts(client, entry.run_id)
    standing = cards.standing(aliases, owned_tags)
    return card(entry, facts, standing, cards.how_to_use(standing, None)) if facts is not None else ""


def _describe(
    client, cards: CardContext, current: RegistryState, target: RegistryState, entries: list[Candidate]
) -> None:
    """Set `target`'s descriptions: the card of every version that holds or held an alias (its
    second part rebuilt on the stored first part; the run read only where there is none) and the
    registered model's table of aliases."""
    by_run = {e.run_id: e for e in entries}
    held: dict[str, list[str]] = {}
    for alias, version in target.aliases.items():
        held.setdefault(version, []).append(alias)
    for version in sorted({*target.aliases.values(), *current.aliases.values()}, key=int):
        entry = by_run.get(current.runs.get(version, ""))
        if entry is None:  # its trial is no longer one of the study's: its card stays as it was
            continue
        standing = cards.standing(held.get(version, []), target.version_tags.get(version, {}))
        use = cards.how_to_use(standing, version)
        text = restand(current.descriptions.get(version), entry, standing, use)
        if text is None and (facts := _run_facts(client, entry.run_id)) is not None:
            text = card(entry, facts, standing, use)
        if text is not None:
            target.descriptions[version] = text
    lines = [
        AliasLine(alias, version, by_run[current.runs[version]])
        for alias, version in target.aliases.items()
        if current.runs.get(version) in by_run
    ]
    target.model_description = model_description(lines, target.model_tags.get(VersionTag.CHAMPION_RULE))


def _run_facts(client, run_id: str) -> RunFacts | None:
    """What a trial's run recorded, for its card; None if the run cannot be read now."""
    try:
        return RunFacts.of_run(client.get_run(run_id))
    except MlflowException:
        return None


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
        "model_id": found.tags.get(VersionTag.MODEL_ID) or getattr(found, "model_id", None),
        "source": found.source,
        "uri": uri,
        "tags": dict(found.tags),
        "aliases": aliases,
    }


def _version_by_alias(client, name: str, alias: str):
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


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
