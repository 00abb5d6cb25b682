"""One page that tells a study's story, built from plain data, and two studies side by side.

`study_report_html` takes a `StudyView` (what the study runtime or `vae-lab study report`
gathers: the YAML, the trials with their summaries and curves, the champion's arrays) and
returns one HTML page: the study's YAML; planned vs real wall time; the leaderboard; the Pareto
front (several objectives) or the optimisation history (one); the best trial of each family;
every trial's val_f1 and val_kl curves overlaid, coloured by family; the champion's
reconstruction gallery, latent explorer and per-class F1; failed and pruned trials with reasons.
`compare_html` puts two studies' sections side by side. The page loads plotly.js once, as
`PlotlyAssets` says ("embed" for a file that opens offline anywhere).
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from vae_lab.selection import pareto_ranks
from vae_lab.tracking.plotly_html import PageParts, PlotlyAssets, figure_div, page_html
from vae_lab.viz.diagnostics import gallery_figure
from vae_lab.viz.explorer import BODY as EXPLORER_BODY
from vae_lab.viz.explorer import SCRIPT as EXPLORER_SCRIPT
from vae_lab.viz.explorer import STYLE as EXPLORER_STYLE
from vae_lab.viz.explorer import latent_explorer

FAMILY_COLOURS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#D55E00", "#56B4E9", "#F0E442", "#000000")
REPORT_GALLERY = 8  # scenes: with the explorer's one, well under Chrome's 16 WebGL contexts
CURVES = ("val_f1", "val_kl")


@dataclass
class TrialView:
    """One trial as the report shows it."""

    number: int
    family: str
    state: str  # complete, pruned, failed, running
    values: dict[str, float] = field(default_factory=dict)  # objectives and best-epoch summaries, plain names
    params: dict[str, object] = field(default_factory=dict)
    duration_s: float | None = None
    reason: str | None = None
    curves: dict[str, list[tuple[int, float]]] = field(default_factory=dict)  # name -> (epoch, value)


@dataclass
class ChampionView:
    """The champion's arrays: gallery samples and the validation map."""

    originals: np.ndarray  # gallery inputs (n, D, D, D)
    reconstructions: np.ndarray
    names: list[str]
    xy: np.ndarray  # (N, 2) projected validation latents
    labels: np.ndarray
    label_names: list[str]
    map_originals: np.ndarray  # (N, D, D, D) the mapped samples' grids and reconstructions
    map_reconstructions: np.ndarray
    per_class_f1: dict[str, float] = field(default_factory=dict)


@dataclass
class StudyView:
    name: str
    spec_yaml: str
    objectives: dict[str, str]  # metric -> maximize / minimize
    trials: list[TrialView]
    champion: int | None = None
    rule: str = "best"
    planned_s: float | None = None
    real_s: float | None = None
    champion_view: ChampionView | None = None
    learned: dict[str, int] = field(default_factory=dict)  # trials learned from other studies (learn_from), by study


def family_colours(trials: Sequence[TrialView]) -> dict[str, str]:
    families = sorted({t.family for t in trials})
    return {f: FAMILY_COLOURS[i % len(FAMILY_COLOURS)] for i, f in enumerate(families)}


def complete(view: StudyView) -> list[TrialView]:
    return [t for t in view.trials if t.state == "complete"]


def ranks(view: StudyView) -> dict[int, int]:
    return pareto_ranks({t.number: t.values for t in complete(view)}, view.objectives)


def ordered(view: StudyView) -> list[TrialView]:
    """Finished trials first, by the first objective in its direction; then the rest by number."""
    metric, direction = next(iter(view.objectives.items()))
    sign = -1 if direction == "maximize" else 1

    def key(t: TrialView):
        value = t.values.get(metric)
        return (value is None or not math.isfinite(value), sign * value if value is not None else 0.0, t.number)

    return sorted(view.trials, key=key)


def pareto_figure(view: StudyView) -> go.Figure:
    """All finished trials on the first two objectives, the front joined and highlighted, the
    champion starred; hover names the trial, its family and rank."""
    (mx, dx), (my, dy) = list(view.objectives.items())[:2]
    rank = ranks(view)
    colours = family_colours(view.trials)
    figure = go.Figure()
    done = [t for t in complete(view) if t.number in rank]
    for family, colour in colours.items():
        mine = [t for t in done if t.family == family]
        if mine:
            figure.add_trace(
                go.Scatter(
                    x=[t.values[mx] for t in mine],
                    y=[t.values[my] for t in mine],
                    mode="markers",
                    name=family,
                    marker={
                        "color": colour,
                        "size": [13 if rank[t.number] == 1 else 8 for t in mine],
                        "line": {"width": [2 if rank[t.number] == 1 else 0 for t in mine], "color": "#222"},
                    },
                    text=[f"trial {t.number} ({family}), Pareto rank {rank[t.number]}" for t in mine],
                    hovertemplate="%{text}<br>" + mx + " %{x:.4g}<br>" + my + " %{y:.4g}<extra></extra>",
                )
            )
    front = sorted((t for t in done if rank[t.number] == 1), key=lambda t: t.values[mx])
    figure.add_trace(
        go.Scatter(
            x=[t.values[mx] for t in front],
            y=[t.values[my] for t in front],
            mode="lines",
            name="Pareto front",
            line={"color": "#444", "dash": "dot"},
            hoverinfo="skip",
        )
    )
    if (champ := next((t for t in done if t.number == view.champion), None)) is not None:
        figure.add_trace(
            go.Scatter(
                x=[champ.values[mx]],
                y=[champ.values[my]],
                mode="markers",
                name=f"champion ({view.rule})",
                marker={"symbol": "star", "size": 20, "color": "gold", "line": {"width": 1, "color": "#000"}},
                hovertemplate=f"champion: trial {champ.number}<extra></extra>",
            )
        )
    arrow = {"maximize": "higher is better", "minimize": "lower is better"}
    figure.update_layout(
        title=f"{view.name}: {len(front)} Pareto-optimal of {len(done)} trials",
        template="plotly_white",
        xaxis_title=f"{mx} ({arrow[dx]})",
        yaxis_title=f"{my} ({arrow[dy]})",
        height=480,
    )
    return figure


def history_figure(view: StudyView) -> go.Figure:
    """The objective of each finished trial by number, and the best so far."""
    metric, direction = next(iter(view.objectives.items()))
    done = sorted((t for t in complete(view) if metric in t.values), key=lambda t: t.number)
    pick = max if direction == "maximize" else min
    running = [pick(t.values[metric] for t in done[: i + 1]) for i in range(len(done))]
    colours = family_colours(view.trials)
    figure = go.Figure(
        go.Scatter(
            x=[t.number for t in done],
            y=[t.values[metric] for t in done],
            mode="markers",
            name="trial",
            marker={"color": [colours[t.family] for t in done], "size": 9},
            text=[t.family for t in done],
            hovertemplate="trial %{x} (%{text}): %{y:.4g}<extra></extra>",
        )
    )
    figure.add_trace(
        go.Scatter(x=[t.number for t in done], y=running, mode="lines", name="best so far", line={"shape": "hv"})
    )
    figure.update_layout(
        title=f"{view.name}: {metric} by trial",
        xaxis_title="trial",
        yaxis_title=metric,
        template="plotly_white",
        height=420,
    )
    return figure


def curves_figure(view: StudyView) -> go.Figure:
    """Every trial's val_f1 and val_kl per epoch, one line per trial, coloured by family."""
    figure = make_subplots(rows=1, cols=len(CURVES), subplot_titles=list(CURVES))
    colours = family_colours(view.trials)
    shown: set[str] = set()
    for t in sorted(view.trials, key=lambda t: t.number):
        for col, name in enumerate(CURVES, start=1):
            points = t.curves.get(name) or []
            if not points:
                continue
            first = t.family not in shown
            shown.add(t.family)
            figure.add_trace(
                go.Scatter(
                    x=[p[0] for p in points],
                    y=[p[1] for p in points],
                    mode="lines",
                    name=t.family,
                    legendgroup=t.family,
                    showlegend=first,
                    line={"color": colours[t.family], "width": 1.5},
                    hovertemplate=f"trial {t.number} ({t.family}) epoch %{{x}}: %{{y:.4g}}<extra></extra>",
                ),
                row=1,
                col=col,
            )
    figure.update_xaxes(title_text="epoch")
    figure.update_layout(
        title=f"{view.name}: validation curves of every trial",
        template="plotly_white",
        height=420,
        legend_title="family",
    )
    return figure


def per_class_figure(scores: Mapping[str, float], title: str) -> go.Figure:
    names = sorted(scores)
    figure = go.Figure(
        go.Bar(
            x=names, y=[scores[n] for n in names], marker_color="#0072B2", hovertemplate="%{x}: %{y:.3f}<extra></extra>"
        )
    )
    figure.update_layout(title=title, yaxis_range=[0, 1], yaxis_title="F1", template="plotly_white", height=360)
    return figure


# --- HTML pieces ---------------------------------------------------------------------------------------


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return "" if not math.isfinite(value) else f"{value:.4g}"
    return "" if value is None else str(value)


def table(header: Sequence[str], rows: Sequence[Sequence[object]], cls: str = "") -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table class='{cls}'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def leaderboard_rows(view: StudyView, limit: int | None = None) -> tuple[list[str], list[list[object]]]:
    rank = ranks(view)
    metrics = list(view.objectives)
    extra = [m for m in ("val_f1", "val_kl", "val_active_units") if m not in metrics]
    header = ["trial", "family", "state", *metrics, *extra, "Pareto rank", "time (s)"]
    rows = []
    for t in ordered(view)[:limit]:
        mark = " ★" if t.number == view.champion else ""
        rows.append(
            [
                f"{t.number}{mark}",
                t.family,
                t.state,
                *(t.values.get(m) for m in metrics + extra),
                rank.get(t.number),
                t.duration_s,
            ]
        )
    return header, rows


def best_per_family(view: StudyView) -> list[list[object]]:
    metric, direction = next(iter(view.objectives.items()))
    rows = []
    for family in sorted({t.family for t in complete(view)}):
        mine = [t for t in complete(view) if t.family == family and metric in t.values]
        if mine:
            top = (max if direction == "maximize" else min)(mine, key=lambda t: t.values[metric])
            rows.append([family, top.number, top.values[metric], len(mine)])
    return rows


def timing(view: StudyView) -> str:
    planned = f"{view.planned_s:.0f} s planned" if view.planned_s is not None else "no plan recorded"
    real = f"{view.real_s:.0f} s real" if view.real_s is not None else "not finished"
    ratio = f" ({view.real_s / view.planned_s:.2f}x the plan)" if view.planned_s and view.real_s is not None else ""
    return f"<p class='timing'>{planned}, {real}{ratio}</p>"


def _learned(view: StudyView) -> str:
    if not view.learned:
        return ""
    sources = ", ".join(f"{n} trial(s) of study {html.escape(name)}" for name, n in view.learned.items())
    return f"<p>Its sampler also learned from {sources}: history only, not trials of this study (not shown here).</p>"


def _troubles(view: StudyView) -> str:
    rows = [[t.number, t.family, t.state, t.reason or ""] for t in view.trials if t.state in ("failed", "pruned")]
    return table(["trial", "family", "state", "reason"], rows) if rows else "<p>None: every trial finished.</p>"


def study_sections(view: StudyView, prefix: str, explorer: go.Figure | None = None) -> list[tuple[str, str]]:
    """(heading, HTML) of each section; figure divs are named `prefix`-something. `explorer`, the
    champion's latent explorer map, goes in the champion's section (one per page)."""
    front = pareto_figure(view) if len(view.objectives) > 1 else history_figure(view)
    header, rows = leaderboard_rows(view)
    rule = f"champion: trial {view.champion} by rule {view.rule}" if view.champion is not None else "no champion yet"
    sections = [
        (
            "Study",
            f"<p>{html.escape(rule)}; objectives: {html.escape(', '.join(f'{m} ({d})' for m, d in view.objectives.items()))}</p>"
            f"{_learned(view)}<pre>{html.escape(view.spec_yaml)}</pre>",
        ),
        ("Wall time", timing(view)),
        ("Leaderboard", table(header, rows, "board")),
        ("Pareto front" if len(view.objectives) > 1 else "Optimisation history", figure_div(front, f"{prefix}-front")),
        (
            "Best trial per family",
            table(["family", "trial", next(iter(view.objectives)), "trials"], best_per_family(view)),
        ),
        ("Validation curves", figure_div(curves_figure(view), f"{prefix}-curves")),
    ]
    if (champ := view.champion_view) is not None:
        gallery = gallery_figure(
            champ.originals[:REPORT_GALLERY],
            champ.reconstructions[:REPORT_GALLERY],
            champ.names[:REPORT_GALLERY],
            title=f"trial {view.champion}: validation reconstructions",
        )
        parts = [figure_div(gallery, f"{prefix}-gallery")]
        if explorer is not None:
            parts.append(EXPLORER_BODY.replace("{figure}", figure_div(explorer)))
        if champ.per_class_f1:
            parts.append(
                figure_div(
                    per_class_figure(champ.per_class_f1, f"trial {view.champion}: F1 per class"), f"{prefix}-classes"
                )
            )
        sections.append(("Champion", "".join(parts)))
    sections.append(("Failed and pruned trials", _troubles(view)))
    return sections


STYLE = """body{margin:16px;font-size:14px}h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:13px}th,td{padding:3px 8px;border-bottom:1px solid #eee;text-align:right}
th{background:#f4f4f4}td:nth-child(-n+3),th:nth-child(-n+3){text-align:left}pre{background:#f7f7f7;padding:8px;overflow:auto;max-height:320px}
.columns{display:flex;gap:24px}.columns>div{flex:1;min-width:0}"""


def study_report_html(view: StudyView, assets: PlotlyAssets = PlotlyAssets("embed")) -> str:
    """The study's report page (see the module docstring)."""
    figure, parts = None, PageParts(style=STYLE)
    if (champ := view.champion_view) is not None:
        figure, explorer = latent_explorer(
            champ.xy,
            champ.labels,
            champ.label_names,
            champ.map_originals,
            champ.map_reconstructions,
            title=f"trial {view.champion}: validation latents (click a point)",
        )
        parts = PageParts(style=STYLE + EXPLORER_STYLE, data=explorer.data, script=EXPLORER_SCRIPT)
    body = [f"<h1>Study {html.escape(view.name)}</h1>"]
    body += [f"<h2>{html.escape(h)}</h2>{content}" for h, content in study_sections(view, "report", figure)]
    return page_html("\n".join(body), assets, f"study {view.name}", parts=parts)


def compare_html(a: StudyView, b: StudyView, assets: PlotlyAssets = PlotlyAssets("embed")) -> str:
    """Two studies' sections side by side (no explorers: one per page)."""
    left, right = study_sections(a, "a"), study_sections(b, "b")
    body = [f"<h1>{html.escape(a.name)} vs {html.escape(b.name)}</h1>"]
    for (heading, one), (_, two) in zip(left, right):
        body.append(f"<h2>{html.escape(heading)}</h2><div class='columns'><div>{one}</div><div>{two}</div></div>")
    return page_html("\n".join(body), assets, f"{a.name} vs {b.name}", parts=PageParts(style=STYLE))


def compare_rows(a: StudyView, b: StudyView) -> list[tuple[str, str, str]]:
    """The comparison as (what, A, B) rows for a terminal table."""

    def champion_values(view: StudyView) -> dict[str, float]:
        return next((t.values for t in view.trials if t.number == view.champion), {})

    rows = [
        ("trials finished", str(len(complete(a))), str(len(complete(b)))),
        ("champion", f"trial {a.champion} ({a.rule})", f"trial {b.champion} ({b.rule})"),
    ]
    for metric in dict.fromkeys([*a.objectives, *b.objectives, "val_f1", "val_kl"]):
        rows.append((f"champion {metric}", _fmt(champion_values(a).get(metric)), _fmt(champion_values(b).get(metric))))
    rows.append(("wall time (s)", _fmt(a.real_s), _fmt(b.real_s)))
    families = sorted({t.family for t in complete(a)} | {t.family for t in complete(b)})
    best_a, best_b = ({r[0]: r[2] for r in best_per_family(v)} for v in (a, b))
    metric = next(iter(a.objectives))
    rows += [(f"best {f} {metric}", _fmt(best_a.get(f)), _fmt(best_b.get(f))) for f in families]
    return rows
