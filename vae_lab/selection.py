"""Which trials win: Pareto fronts and ranks, and the champion rules a study states.

Pure functions of plain numbers, so the study runtime, the registry, the report and the tests
all decide the same way. A trial is a key (its number) mapping to its objective values; each
objective has a direction ("maximize" or "minimize").

Rules:
- `best`: the best value of one metric.
- `constrained`: the best value of one metric among trials that meet every `where` condition
  (`{val_kl: "<= 25", val_f1_c1: ">= 0.8"}`).
- `knee`: the Pareto-optimal trial nearest the ideal point once each objective is scaled to
  [0, 1] over the front (so a metric in nats and one in [0, 1] weigh the same).
Ties go to the earlier trial everywhere, so a rule picks the same trial on every worker.
"""

from __future__ import annotations

import math
import operator
import re
from dataclasses import dataclass, field
from typing import Callable, Hashable, Literal, Mapping, TypeVar

from vae_lab.choices import direction_of
from vae_lab.errors import VaeLabError

K = TypeVar("K", bound=Hashable)
Direction = Literal["maximize", "minimize"]
Points = Mapping[K, Mapping[str, float]]
RuleName = Literal["best", "constrained", "knee"]

OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "<": operator.lt,
    ">": operator.gt,
    "==": operator.eq,
}
CONDITION = re.compile(r"^\s*(<=|>=|==|<|>)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$")


@dataclass(frozen=True)
class Condition:
    """`metric op bound`, e.g. val_kl <= 25."""

    metric: str
    op: str
    bound: float

    def holds(self, values: Mapping[str, float]) -> bool:
        value = values.get(self.metric)
        return value is not None and math.isfinite(value) and OPERATORS[self.op](value, self.bound)

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.bound:g}"


def parse_condition(metric: str, text: str | float, where: str = "champion.where") -> Condition:
    """`"<= 25"` for `metric` as a Condition; anything else is a one-line VaeLabError."""
    match = CONDITION.match(str(text))
    if match is None:
        raise VaeLabError(
            f"{where}.{metric}",
            f"cannot read the condition {str(text)!r}",
            'write an operator and a number, e.g. "<= 25" or ">= 0.8"',
        )
    return Condition(metric, match.group(1), float(match.group(2)))


@dataclass(frozen=True)
class ChampionRule:
    """How a study crowns its champion; see the module docstring."""

    rule: RuleName = "best"
    metric: str | None = None
    where: tuple[Condition, ...] = field(default=())

    def describe(self) -> str:
        if self.rule == "knee":
            return "knee"
        conditions = " and ".join(map(str, self.where))
        return f"{self.rule} {self.metric}" + (f" where {conditions}" if conditions else "")


def make_rule(
    rule: str,
    metric: str | None,
    where: Mapping[str, str | float] | None,
    objectives: Mapping[str, Direction],
    place: str = "champion",
) -> ChampionRule:
    """A checked ChampionRule: `best` and `constrained` need a metric (default: the only objective),
    `constrained` needs conditions, `knee` needs at least two objectives."""
    if rule not in ("best", "constrained", "knee"):
        raise VaeLabError(f"{place}.rule", f"unknown rule {rule!r}", "use best, constrained or knee")
    conditions = tuple(parse_condition(name, text, f"{place}.where") for name, text in (where or {}).items())
    if rule == "knee":
        if len(objectives) < 2:
            raise VaeLabError(
                f"{place}.rule", "knee needs several objectives", "list them in objective.metrics, or use rule: best"
            )
        return ChampionRule("knee")
    if metric is None:
        if len(objectives) != 1:
            raise VaeLabError(
                f"{place}.metric",
                f"rule {rule} needs a metric when the study has {len(objectives)} objectives",
                f"add metric: one of {', '.join(objectives)}",
            )
        metric = next(iter(objectives))
    if rule == "constrained" and not conditions:
        raise VaeLabError(
            f"{place}.where",
            "rule constrained needs at least one condition",
            'add where: {val_kl: "<= 25"}, or use rule: best',
        )
    return ChampionRule(rule, metric, conditions)  # type: ignore[arg-type]


def _signed(values: Mapping[str, float], directions: Mapping[str, Direction]) -> tuple[float, ...]:
    """The values with every objective turned into one to maximise."""
    return tuple(values[m] if d == "maximize" else -values[m] for m, d in directions.items())


def dominates(a: Mapping[str, float], b: Mapping[str, float], directions: Mapping[str, Direction]) -> bool:
    """Whether `a` is at least as good as `b` in every objective and better in one."""
    sa, sb = _signed(a, directions), _signed(b, directions)
    return all(x >= y for x, y in zip(sa, sb)) and any(x > y for x, y in zip(sa, sb))


def _usable(points: Points, directions: Mapping[str, Direction]) -> dict:
    """The trials with a finite value for every objective (others cannot be ranked)."""
    return {
        k: v for k, v in points.items() if all(m in v and v[m] is not None and math.isfinite(v[m]) for m in directions)
    }


def pareto_ranks(points: Points, directions: Mapping[str, Direction]) -> dict:
    """Non-dominated sorting: rank 1 is the Pareto front, rank 2 the front once it is removed, ...
    Trials missing an objective get no rank."""
    left = _usable(points, directions)
    ranks: dict = {}
    rank = 1
    while left:
        front = [k for k, v in left.items() if not any(dominates(w, v, directions) for j, w in left.items() if j != k)]
        for key in front:
            ranks[key] = rank
            del left[key]
        rank += 1
    return ranks


def pareto_front(points: Points, directions: Mapping[str, Direction]) -> list:
    """The Pareto-optimal trials, in key order."""
    return sorted(k for k, rank in pareto_ranks(points, directions).items() if rank == 1)


def best(points: Points, metric: str, direction: Direction):
    """The trial with the best finite `metric`, or None; ties go to the smallest key."""
    usable = _usable(points, {metric: direction})
    if not usable:
        return None
    sign = 1 if direction == "maximize" else -1
    return min(usable, key=lambda k: (-sign * usable[k][metric], k))


def knee(points: Points, directions: Mapping[str, Direction]):
    """The Pareto point nearest the ideal after scaling each objective to [0, 1] over the front."""
    front = pareto_front(points, directions)
    if not front:
        return None
    signed = {k: _signed(points[k], directions) for k in front}
    lows = [min(s[i] for s in signed.values()) for i in range(len(directions))]
    highs = [max(s[i] for s in signed.values()) for i in range(len(directions))]

    def distance(key) -> float:
        # 1 - scaled value: 0 at the front's best, 1 at its worst; a constant objective adds nothing.
        gaps = [(hi - v) / (hi - lo) if hi > lo else 0.0 for v, lo, hi in zip(signed[key], lows, highs)]
        return math.hypot(*gaps)

    return min(front, key=lambda k: (distance(k), k))


def choose_champion(rule: ChampionRule, points: Points, directions: Mapping[str, Direction], where: str = "champion"):
    """The trial `rule` crowns among `points`, or None when there are no trials to choose from.

    A constraint no trial meets is a VaeLabError naming the closest values, so the caller can keep
    the previous champion and say why.
    """
    if not points:
        return None
    if rule.rule == "knee":
        return knee(points, directions)
    assert rule.metric is not None
    direction = directions.get(rule.metric) or direction_of(rule.metric)
    meeting = {k: v for k, v in points.items() if all(c.holds(v) for c in rule.where)}
    if rule.where and not meeting:
        conditions = " and ".join(map(str, rule.where))
        raise VaeLabError(
            where,
            f"no trial meets {conditions} ({_closest(points, rule.where)})",
            "relax champion.where or run more trials",
        )
    return best(meeting, rule.metric, direction)


def _closest(points: Points, conditions: tuple[Condition, ...]) -> str:
    """The best value seen for each condition's metric, for the error message."""
    parts = []
    for c in conditions:
        seen = [v[c.metric] for v in points.values() if c.metric in v and math.isfinite(v[c.metric])]
        if not seen:
            parts.append(f"no trial has {c.metric}")
        else:
            nearest = (
                min(seen)
                if c.op in ("<", "<=")
                else max(seen)
                if c.op in (">", ">=")
                else min(seen, key=lambda x: abs(x - c.bound))
            )
            parts.append(f"closest {c.metric} {nearest:.4g}")
    return ", ".join(parts)
