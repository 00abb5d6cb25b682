"""A registered version's model card: the Markdown description MLflow's registry page shows.

A card has two parts. The first says what the trial's run recorded (what the model is, the data
it was trained on, how well it did); it never changes once the version exists, so it is written
once, when the version is registered, from one read of the run (`RunFacts.of_run`). The second
says where the version stands in its study (its aliases, the champion rule, its Pareto rank, the
study's trial count) and how to use it; it moves with the champion, so every crowning rebuilds it
from what the crowning already knows and puts it after the stored first part (`restand`): keeping
the cards current costs no reads, and a write only where the text differs.

The registered model's own description lists its aliases and the version each points at
(`model_description`). The aliases' names, and how to use a version (`usage`, which `vae-lab
registry show` prints too), are here because every card explains them. Everything here is a pure
function of plain values; `vae_lab.registry` reads and writes.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping

from vae_lab.choices import direction_of
from vae_lab.study.trial.provenance import SUMMARY_METRICS, RunTag, VersionTag
from vae_lab.tracking import plain_metrics

if TYPE_CHECKING:
    from vae_lab.registry import Candidate

CHAMPION = "champion"
FAMILY_PREFIX = "best-"
PARETO_PREFIX = "pareto-"
# MLflow's registry keeps a description in a VARCHAR(5000) (PostgreSQL refuses a longer one):
# each part of a card, and the model's description, is cut to fit at a line's end.
DESCRIPTION_LIMIT = 5000
FIRST_PART_LIMIT = 2900
# Where a card's second part begins: `restand` keeps what comes before it.
CHOSEN_HEADING = "### How it was chosen"
# The run params a card names besides the family and latent size.
SETTINGS = ("loss", "beta", "learning_rate", "batch_size")


@dataclass(frozen=True)
class SplitFacts:
    """One split a run trained or validated on, as its MLflow dataset input records it."""

    context: str  # MLflow's dataset context: training, validation
    dataset: str  # the data file's stem
    rows: int | None
    digest: str


@dataclass(frozen=True)
class RunFacts:
    """What a trial's run recorded about its model: the first part of its card."""

    latent_dim: str | None = None
    parameters: int | None = None
    device: str | None = None
    settings: dict[str, str] = field(default_factory=dict)  # SETTINGS, as logged
    splits: tuple[SplitFacts, ...] = ()
    best: dict[str, float] = field(default_factory=dict)  # metrics at the best epoch, plain names
    best_epoch: int | None = None  # counted from 0, as the trainer counts
    epochs_run: int | None = None
    select_metric: str | None = None  # what picked the best epoch, whose weights the model holds

    @classmethod
    def of_run(cls, run: Any) -> RunFacts:
        """The facts in an MLflow `Run` (from `MlflowClient.get_run`)."""
        params, tags = run.data.params, run.data.tags
        metrics = plain_metrics(run.data.metrics)
        best = {name.removeprefix("best_"): value for name, value in metrics.items() if name.startswith("best_")}
        best_epoch = best.pop("epoch", None)
        inputs = getattr(run, "inputs", None)
        return cls(
            latent_dim=params.get("latent_dim"),
            parameters=_as_int(tags.get(RunTag.PARAMETERS)),
            device=tags.get(RunTag.DEVICE),
            settings={name: params[name] for name in SETTINGS if name in params},
            splits=tuple(_split_facts(item) for item in (inputs.dataset_inputs if inputs else ())),
            best=best,
            best_epoch=_as_int(best_epoch),
            epochs_run=_as_int(metrics.get("epochs_run")),
            select_metric=params.get("select_metric"),
        )


def _split_facts(dataset_input: Any) -> SplitFacts:
    dataset = dataset_input.dataset
    context = next((t.value for t in dataset_input.tags if t.key == "mlflow.data.context"), "")
    try:
        rows = _as_int(json.loads(dataset.profile or "{}").get("rows"))
    except (ValueError, AttributeError):
        rows = None
    stem, _, split = dataset.name.rpartition("/")
    return SplitFacts(context or split, stem or dataset.name, rows, dataset.digest)


def _as_int(value: Any) -> int | None:
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class Standing:
    """Where a version stands after a crowning: what the second part of its card says."""

    aliases: tuple[str, ...] = ()  # in the order `alias_order` gives
    rule: str | None = None  # the rule that crowned it, when it holds `champion`
    trials: int | None = None  # the study's completed trials, when it holds `champion`
    kept: bool = False  # it stays champion because the study's rule meets no trial now
    pareto_rank: int | None = None  # with several objectives, while it holds an alias
    objectives: tuple[str, ...] = ()


def family_alias(architecture: str) -> str:
    return f"{FAMILY_PREFIX}{architecture}"


def pareto_alias(k: int) -> str:
    return f"{PARETO_PREFIX}{k}"


def alias_order(alias: str) -> tuple[int, int, str]:
    """champion first, then best-<family> by family, then pareto-<k> by k."""
    if alias == CHAMPION:
        return (0, 0, "")
    if alias.startswith(PARETO_PREFIX) and alias.removeprefix(PARETO_PREFIX).isdigit():
        return (2, int(alias.removeprefix(PARETO_PREFIX)), "")
    return (1, 0, alias)


@dataclass(frozen=True)
class CardContext:
    """What a crowning knows that every card of a registered model says: the model's name, the
    study's completed trials, whether its rule went unmet (so the champion stays), and its
    objectives (when it has several)."""

    name: str
    trials: int
    kept: bool = False
    objectives: tuple[str, ...] = ()

    def standing(self, aliases: list[str], owned_tags: Mapping[str, str]) -> Standing:
        """A version's standing from the aliases it holds and the tags the crowning gives it."""
        held = tuple(sorted(aliases, key=alias_order))
        champion = CHAMPION in held
        rank = owned_tags.get(VersionTag.PARETO_RANK)
        return Standing(
            aliases=held,
            rule=owned_tags.get(VersionTag.CHAMPION_RULE) if champion else None,
            trials=self.trials if champion else None,
            kept=self.kept and champion,
            pareto_rank=int(rank) if rank and held else None,
            objectives=self.objectives,
        )

    def how_to_use(self, standing: Standing, version: str | None) -> dict[str, list[str]]:
        """How to use a version, by its first alias (by its number when it holds none)."""
        alias = standing.aliases[0] if standing.aliases else None
        uri = f"models:/{self.name}@{alias}" if alias else f"models:/{self.name}/{version}"
        return usage({"name": self.name, "uri": uri, "alias": alias, "version": version}, None)


def usage(info: Mapping[str, Any], tracking_uri: str | None) -> dict[str, list[str]]:
    """How to use a registered version (`info` as `registry.champion_info` gives it): python lines,
    the serve command, and vae-lab's evaluate and encode. Without `tracking_uri` (a card, which
    must name no store or credential) they are for a shell whose MLFLOW_TRACKING_URI names the store."""
    uri, name, alias = info["uri"], shlex.quote(info["name"]), info.get("alias")
    python = [
        "import mlflow",
        *([f"mlflow.set_tracking_uri({tracking_uri!r})"] if tracking_uri else []),
        f"model = mlflow.pyfunc.load_model({uri!r})",
        "latents = model.predict(frame)  # the dataset's voxel columns, or an (N, 1331) / (N, 11, 11, 11) array",
        'grids = model.predict(frame, params={"output": "reconstruction"})  # or latent_with_logvar, scores',
    ]
    store = f"MLFLOW_TRACKING_URI={tracking_uri} " if tracking_uri else ""
    serve = [f"{store}mlflow models serve -m {shlex.quote(uri)} --env-manager local --host 127.0.0.1 --port 5001"]
    chosen = f"--alias {shlex.quote(alias)}" if alias else f"--version {info['version']}"
    # `evaluate` takes an alias only: a version that holds none is encoded but not evaluated.
    evaluate = [f"vae-lab evaluate {name} --split test {chosen}"] if alias else []
    encode = [f"vae-lab encode {name} {chosen} --data FILE.parquet --out latents.parquet"]
    return {"python": python, "serve": serve, "vae_lab": evaluate + encode}


def card(entry: Candidate, facts: RunFacts, standing: Standing, usage: Mapping[str, list[str]]) -> str:
    """The whole card of `entry`'s version."""
    return _fit(first_part(entry, facts) + second_part(entry, standing, usage), DESCRIPTION_LIMIT)


def restand(stored: str | None, entry: Candidate, standing: Standing, usage: Mapping[str, list[str]]) -> str | None:
    """The stored card with its second part rebuilt for `standing`; None when `stored` is no card
    (a version registered before cards, or a description someone rewrote), which needs the run read."""
    start = (stored or "").find(f"\n{CHOSEN_HEADING}\n")
    if start < 0:
        return None
    return _fit(stored[: start + 1] + second_part(entry, standing, usage), DESCRIPTION_LIMIT)


# --- the first part: the run's facts -----------------------------------------------------------------


def first_part(entry: Candidate, facts: RunFacts) -> str:
    """What the model is, what it was trained on and how well it does (ends with a blank line)."""
    sections = [_headline(entry, facts), _what_it_is(entry, facts), _trained_on(facts), _how_well(entry, facts)]
    return _fit("\n\n".join(s for s in sections if s), FIRST_PART_LIMIT) + "\n\n"


def _headline(entry: Candidate, facts: RunFacts) -> str:
    shape = [f"`{entry.architecture}` VAE"]
    if facts.latent_dim is not None:
        shape.append(f"latent size {facts.latent_dim}")
    if facts.parameters is not None:
        shape.append(f"{facts.parameters:,} parameters")
    return f"**{', '.join(shape)}**: trial {entry.trial} of the vae-lab study `{entry.study}` (run `{entry.run_id}`)."


def _what_it_is(entry: Candidate, facts: RunFacts) -> str:
    lines = ["### What it is", "", f"- family `{entry.architecture}`"]
    if facts.latent_dim is not None:
        lines.append(f"- latent size {facts.latent_dim}")
    if facts.parameters is not None:
        lines.append(f"- {facts.parameters:,} trainable parameters")
    if facts.settings:
        lines.append("- " + ", ".join(f"{name.replace('_', ' ')} `{value}`" for name, value in facts.settings.items()))
    if facts.epochs_run is not None:
        trained = f"- trained {facts.epochs_run} epoch{'s' if facts.epochs_run != 1 else ''}"
        trained += f" on `{facts.device}`" if facts.device else ""
        if facts.best_epoch is not None:
            by = f" by {facts.select_metric}" if facts.select_metric else ""
            trained += f"; the weights are its best epoch's{by} (epoch {facts.best_epoch}, counting from 0)"
        lines.append(trained)
    return "\n".join(lines)


def _trained_on(facts: RunFacts) -> str:
    if not facts.splits:
        return ""
    lines = [f"- {s.context}: `{s.dataset}`, {_rows(s.rows)} rows, digest `{s.digest}`" for s in facts.splits]
    return "\n".join(["### What it was trained on", "", *lines])


def _rows(rows: int | None) -> str:
    return f"{rows:,}" if rows is not None else "?"


def _how_well(entry: Candidate, facts: RunFacts) -> str:
    objectives = _objective_values(entry)
    stated = ", ".join(
        f"**{metric} = {value:.4g}** ({_direction(entry, metric)})" for metric, value in objectives.items()
    )
    noun = "objectives" if len(objectives) > 1 else "objective"
    lines = ["### How well it does", "", f"The study's {noun}: {stated}, at the best epoch on the validation split."]
    shown = [m for m in (*objectives, *SUMMARY_METRICS) if m in facts.best]
    shown = list(dict.fromkeys(shown))
    if shown:
        lines += ["", "| metric at the best epoch | value | better |", "|---|---:|---|"]
        for metric in shown:
            better = "higher" if direction_of(metric) == "maximize" else "lower"
            lines.append(f"| {_metric_label(metric)} | {facts.best[metric]:.4g} | {better} |")
    return "\n".join(lines)


def _metric_label(metric: str) -> str:
    """`val_f1_c2 (class 2)` for a per-class metric, the name otherwise."""
    stem, _, code = metric.rpartition("_c")
    return f"{metric} (class {code})" if stem and code.isdigit() else metric


def _objective_values(entry: Candidate) -> dict[str, float]:
    return dict(entry.values) or {entry.objective: entry.value}


def _direction(entry: Candidate, metric: str) -> str:
    return entry.direction if metric == entry.objective else direction_of(metric)


# --- the second part: where it stands, and how to use it ---------------------------------------------


def second_part(entry: Candidate, standing: Standing, usage: Mapping[str, list[str]]) -> str:
    """How it was chosen and how to use it; starts with CHOSEN_HEADING."""
    lines = [CHOSEN_HEADING, ""]
    lines += [f"- {_role(alias, entry, standing)}" for alias in standing.aliases]
    if standing.aliases and standing.pareto_rank is not None:
        lines.append(f"- Pareto rank {standing.pareto_rank} on the objectives {', '.join(standing.objectives)}.")
    if not standing.aliases:
        lines.append(
            f"It holds no alias since the last crowning of `{entry.study}`: the registered model's"
            " description names the versions that do."
        )
    lines += ["", "### Use it", "", "With `MLFLOW_TRACKING_URI` set to this registry's tracking store:", ""]
    lines += ["```bash", *usage.get("vae_lab", []), *usage.get("serve", []), "```", ""]
    lines += ["```python", *usage.get("python", []), "```"]
    return "\n".join(lines)


def _role(alias: str, entry: Candidate, standing: Standing) -> str:
    if alias == CHAMPION:
        trials = f"{standing.trials} completed trials" if standing.trials is not None else "trials"
        if standing.kept:
            return (
                f"`champion`: crowned by the rule **{standing.rule}**; the study's rule now meets none of"
                f" its {trials}, so it stays."
            )
        return f"`champion`: chosen by the rule **{standing.rule}** among the study's {trials}."
    if alias.startswith(PARETO_PREFIX):
        k = alias.removeprefix(PARETO_PREFIX)
        return f"`{alias}`: point {k} of the Pareto front, ordered by {entry.objective}."
    return f"`{alias}`: the best `{alias.removeprefix(FAMILY_PREFIX)}` trial by {entry.objective}."


# --- the registered model's description --------------------------------------------------------------


@dataclass(frozen=True)
class AliasLine:
    """One alias of a registered model, the version it points at, and that version's trial."""

    alias: str
    version: str
    entry: Candidate


def model_description(lines: list[AliasLine], rule: str | None) -> str:
    """The registered model's description: what it holds, and a table of its aliases."""
    ordered = sorted(lines, key=lambda line: alias_order(line.alias))
    objectives = list(_objective_values(ordered[0].entry)) if ordered else []
    study = f" `{ordered[0].entry.study}`" if ordered else ""
    text = [
        f"VAEs of the vae-lab study{study}. Each version's description is its model card.",
        "",
        f"`champion` is the study's choice (rule: **{rule or '?'}**), `best-<family>` the best of each family"
        + (", `pareto-<k>` the Pareto front" if len(objectives) > 1 else "")
        + ".",
    ]
    if ordered:
        text += ["", "| alias | version | trial | family | " + " | ".join(objectives) + " |"]
        text.append("|---|---:|---:|---|" + "---:|" * len(objectives))
        for line in ordered:
            values = _objective_values(line.entry)
            cells = " | ".join(f"{values[m]:.4g}" if m in values else "" for m in objectives)
            text.append(
                f"| `{line.alias}` | {line.version} | {line.entry.trial} | `{line.entry.architecture}` | {cells} |"
            )
    return _fit("\n".join(text), DESCRIPTION_LIMIT)


def _fit(text: str, limit: int) -> str:
    """`text`, cut at a line's end to stay within `limit` characters."""
    if len(text) <= limit:
        return text
    cut = "\n\n(cut to fit MLflow's description limit)"
    return text[: text.rfind("\n", 0, limit - len(cut))] + cut
