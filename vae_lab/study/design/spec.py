"""Study definitions: YAML files validated into a typed `StudySpec`.

A study file is data, not code. Unknown keys and wrong types are errors that name the file and
the field, so a typo never silently falls back to a default; so is a hyperparameter that no
trial of the study could use (see `vae_lab.study.design.space`). `vae_lab/studies/quick.yaml` shows
every section with a comment.

Where studies are found: a name (`quick`) is looked up in `./studies/` first, then among the
studies shipped with vae-lab, so a local file adds to or overrides a shipped one and
`vae-lab study run quick` works from any folder; a path to a YAML file is taken as given.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Optional, Union

import yaml
from pydantic import Field, ValidationError, model_validator

from vae_lab.choices import WEIGHTED_LOSSES, ObjectiveMetric, Precision, PrunerKind, direction_of
from vae_lab.errors import VaeLabError
from vae_lab.runtime import Runtime
from vae_lab.study.design.space import (
    MODEL_FIELDS,
    SearchSpace,
    Strict,
    check_point,
    check_space,
    grid_points,
    head_and_loss,
)

if TYPE_CHECKING:
    from vae_lab.data import PreparedDataset

STUDIES_DIR = Path("studies")  # the local folder, relative to where vae-lab runs
SHIPPED_STUDIES = Path(__file__).resolve().parents[2] / "studies"


class DataSpec(Strict):
    path: Path | None = Field(default=None, description="dataset file; default VAE_LAB_DATA")
    toy_fraction: float = Field(default=1.0, gt=0, le=1)
    seed: int = 0
    grid: int | None = Field(default=None, description="grid edge when it cannot be inferred")

    def prepare(self, path: Path, cache_dir: Path) -> PreparedDataset:
        """The file at `path` (this section's, or one given instead) cleaned and split as it says."""
        from vae_lab.data import prepare_dataset

        return prepare_dataset(
            path, toy_fraction=self.toy_fraction, seed=self.seed, grid=self.grid, cache_dir=cache_dir
        )


class ObjectiveSpec(Strict):
    """One metric (`metric: val_f1`) or several (`metrics: [val_f1, val_kl]`: an Optuna
    multi-objective study); each direction follows its metric."""

    metric: ObjectiveMetric = "val_tradeoff"
    metrics: Optional[list[ObjectiveMetric]] = Field(
        default=None, min_length=2, description="several objectives: a Pareto front"
    )
    direction: Literal["maximize", "minimize"] | None = Field(
        default=None, description="default: the way the metric improves"
    )

    @model_validator(mode="before")
    @classmethod
    def _first_is_primary(cls, raw: object) -> object:
        # With several objectives the first one is the primary (leaderboard order, best-<family>).
        # (A dumped spec holds both, the first of metrics as metric: it reads back as it was.)
        metrics = raw.get("metrics") if isinstance(raw, dict) else None
        if isinstance(metrics, list) and metrics and raw.get("metric", metrics[0]) != metrics[0]:
            raise ValueError("give metric (one objective) or metrics (several), not both")
        if isinstance(raw, dict) and isinstance(raw.get("metrics"), list) and raw["metrics"]:
            return {**raw, "metric": raw["metrics"][0]}
        return raw

    @model_validator(mode="after")
    def _direction_fits(self) -> "ObjectiveSpec":
        natural = direction_of(self.metric)
        if self.direction is not None and self.metrics:
            raise ValueError("with several metrics each direction follows its metric: drop objective.direction")
        if self.metrics and len(set(self.metrics)) < len(self.metrics):
            raise ValueError("a metric is listed twice in objective.metrics")
        if self.direction is not None and self.direction != natural:
            raise ValueError(
                f"{self.metric} is {natural[:-1]}ed, not {self.direction[:-1]}ed: "
                "drop objective.direction (it follows the metric)"
            )
        return self

    @property
    def resolved_direction(self) -> Literal["maximize", "minimize"]:
        return self.direction or direction_of(self.metric)

    @property
    def names(self) -> list[str]:
        return list(self.metrics or [self.metric])

    @property
    def directions(self) -> dict[str, Literal["maximize", "minimize"]]:
        """metric -> direction, in the study's order."""
        return (
            {name: direction_of(name) for name in self.names}
            if self.metrics
            else {self.metric: self.resolved_direction}
        )

    @property
    def several(self) -> bool:
        return len(self.names) > 1


class ChampionSpec(Strict):
    """How the champion is crowned: `best` (one metric), `constrained` (the best metric among
    trials meeting every `where` condition, e.g. {val_kl: "<= 25"}) or `knee` (several objectives:
    the Pareto point nearest the ideal). See `vae_lab.selection`."""

    rule: Literal["best", "constrained", "knee"] = "best"
    metric: Optional[ObjectiveMetric] = None
    where: dict[ObjectiveMetric, Union[str, float]] = Field(default_factory=dict)


class TrainingSpec(Strict):
    epochs: int = Field(default=30, ge=1)
    patience: int = Field(default=5, ge=1)
    early_stopping_metric: ObjectiveMetric = Field(
        default="val_loss", description="the research journal stopped on val_loss"
    )
    seed: int = 0
    kl_scale: float = Field(default=10.0, gt=0)
    device: str = Field(default="auto", pattern=r"^(auto|cpu|cuda|cuda:\d+)$", description="auto, cpu, cuda or cuda:N")
    precision: Precision = "fp32"
    compile: bool = False
    generation_samples: int = Field(
        default=256, ge=0, le=100_000, description="grids decoded from the prior to score generation (0: off)"
    )

    def runtime(self) -> Runtime:
        return Runtime(device=self.device, precision=self.precision, compile=self.compile)


class PrunerSpec(Strict):
    kind: PrunerKind = "none"
    warmup_epochs: int = Field(default=3, ge=0, description="median: epochs before a trial may be pruned")
    startup_trials: int = Field(default=2, ge=0, description="median: trials that run in full before pruning starts")
    min_epochs: int = Field(
        default=1, ge=1, description="hyperband / successive_halving: the smallest budget, in epochs"
    )
    reduction_factor: int = Field(
        default=3, ge=2, description="hyperband / successive_halving: 1/eta of trials go on at each rung"
    )


class ArtifactSpec(Strict):
    pca: bool = True
    umap: bool = Field(default=False, description="adds ~20 s per process and ~1-9 s per 2,000 points")
    reconstructions: int = Field(
        default=2, ge=0, le=6, description="gallery: samples per label, plus as many of the worst"
    )
    interpolation: bool = Field(
        default=True, description="decode the path between two validation samples of different labels"
    )
    max_points: int = Field(default=2000, ge=10, description="validation samples projected")
    plotlyjs: Literal["shared", "embed", "cdn"] = Field(
        default="shared",
        description="shared: one plotly.js per study run; embed: +3.5 MB per figure; cdn: needs internet",
    )


class RegistrySpec(Strict):
    model_name: str | None = Field(default=None, description="registered model name; default: the study name")


class StudySpec(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    description: str = ""
    data: DataSpec = DataSpec()
    sampler: Literal["grid", "tpe", "nsga2"] = "grid"
    n_trials: int | None = Field(default=None, ge=1, description="default: the whole grid (grid) or 20 (tpe)")
    objective: ObjectiveSpec = ObjectiveSpec()
    champion: ChampionSpec = ChampionSpec()
    training: TrainingSpec = TrainingSpec()
    pruner: PrunerSpec = PrunerSpec()
    space: SearchSpace = SearchSpace()
    artifacts: ArtifactSpec = ArtifactSpec()
    registry: RegistrySpec = RegistrySpec()
    warm_start: list[dict[str, Any]] = Field(
        default_factory=list,
        description="configurations to run first, each complete (every hyperparameter of the space that applies)",
    )
    learn_from: list[str] = Field(
        default_factory=list,
        description="studies in the same Optuna storage whose complete trials inform the sampler (tpe, nsga2)",
    )

    @model_validator(mode="after")
    def _grid_has_no_ranges(self) -> "StudySpec":
        if self.is_grid and self.space.ranges():
            raise ValueError(f"sampler 'grid' needs lists, but space has ranges for: {', '.join(self.space.ranges())}")
        if self.objective.several and self.pruner.kind != "none":
            raise ValueError(
                f"pruner {self.pruner.kind} needs one objective: Optuna cannot prune a study of several "
                "(set pruner.kind: none)"
            )
        if self.is_grid and self.learn_from:
            raise ValueError(
                "learn_from informs a sampler (tpe or nsga2); a grid runs its points whatever ran before: "
                "drop learn_from, or use warm_start to run chosen points first"
            )
        return self

    def champion_rule(self, where: str = "study"):
        """The checked champion rule (`vae_lab.selection.ChampionRule`); a VaeLabError names the field."""
        from vae_lab.selection import make_rule

        c = self.champion
        return make_rule(c.rule, c.metric, c.where, self.objective.directions, place=f"{where}: champion")

    @property
    def model_name(self) -> str:
        return self.registry.model_name or self.name

    @property
    def direction(self) -> Literal["maximize", "minimize"]:
        return self.objective.resolved_direction

    @property
    def grid_size(self) -> int:
        """Distinct configurations of a grid study (see `space.grid_points`)."""
        return len(grid_points(self.space))

    @property
    def is_grid(self) -> bool:
        """A grid study runs each configuration once (queued points); the others sample."""
        return self.sampler == "grid"

    @property
    def planned_trials(self) -> int:
        if self.n_trials is not None:
            return self.n_trials
        return self.grid_size if self.is_grid else 20


def renamed(spec: StudySpec, name: str) -> StudySpec:
    """The same study under another name (a separate Optuna study, experiment and model)."""
    try:
        return StudySpec.model_validate(spec.model_dump() | {"name": name})
    except ValidationError:
        raise VaeLabError("--name", f"{name!r} is not a study name", "use letters, digits, '-', '_' or '.'") from None


def study_folders(studies_dir: Path = STUDIES_DIR) -> list[Path]:
    """Where names are looked up, first match wins: the local folder, then the shipped studies."""
    folders = [studies_dir]
    if SHIPPED_STUDIES.resolve() != Path(studies_dir).resolve():
        folders.append(SHIPPED_STUDIES)
    return [f for f in folders if f.is_dir()]


def known_studies(studies_dir: Path = STUDIES_DIR) -> dict[str, Path]:
    """Study name (file stem) -> file, local files overriding shipped ones."""
    found: dict[str, Path] = {}
    for folder in reversed(study_folders(studies_dir)):
        for path in sorted(folder.glob("*.y*ml")):
            found[path.stem] = path
    return dict(sorted(found.items()))


def find_study_file(name_or_path: str, studies_dir: Path = STUDIES_DIR) -> Path:
    """`deep-sweep` -> ./studies/deep-sweep.yaml or the shipped one; a path is taken as given."""
    candidate = Path(name_or_path)
    if candidate.suffix in {".yaml", ".yml"} or candidate.exists():
        if not candidate.is_file():
            raise VaeLabError(str(candidate), "study file not found", "check the path")
        return candidate
    for folder in study_folders(studies_dir):
        for suffix in (".yaml", ".yml"):
            path = folder / f"{name_or_path}{suffix}"
            if path.is_file():
                return path
    known = list(known_studies(studies_dir))
    fix = f"use one of: {', '.join(known)}" if known else f"create {studies_dir}/{name_or_path}.yaml"
    raise VaeLabError(f"study {name_or_path!r}", f"not found in {studies_dir}/ or the shipped studies", fix)


def _field(loc: tuple) -> str:
    # Drop pydantic's union-branch markers ("list[float]", "FloatRange") from the location.
    return ".".join(
        str(p) for p in loc if not (isinstance(p, str) and (p[:1].isupper() or "[" in p or p.startswith("function-")))
    )


PATTERN_HINTS = {"device": "use auto, cpu, cuda or cuda:N", "name": "use letters, digits, '-', '_' or '.'"}
SHAPE_ERRORS = {
    "list_type",
    "model_type",
    "dict_type",
    "model_attributes_type",
    "float_type",
    "int_type",
    "none_required",
}


def _most_specific(errors: list[dict]) -> dict:
    """Of a union's several complaints, the one about the branch the user meant."""
    return max(errors, key=lambda e: (e["type"] not in SHAPE_ERRORS, len(e["loc"])))


def parse_study(raw: object, where: str) -> StudySpec:
    """Validate a parsed YAML document; every problem becomes one VaeLabError naming the field."""
    if not isinstance(raw, dict):
        raise VaeLabError(where, "a study must be a YAML mapping", "start from `vae-lab study show quick`")
    try:
        spec = StudySpec.model_validate(raw)
    except ValidationError as exc:
        error = _most_specific(exc.errors())
        field = _field(error["loc"]) or "(top level)"
        problem = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            problem = "unknown key"
        elif error["type"] == "string_pattern_mismatch":
            problem = f"{error.get('input')!r} is not allowed here: " + PATTERN_HINTS.get(
                field.rsplit(".", 1)[-1], "see the schema"
            )
        more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise VaeLabError(
            f"{where}: {field}", problem + more, "see `vae-lab study show quick` for every field"
        ) from None
    check_space(spec.space, where)
    spec.champion_rule(where)
    return spec.model_copy(update={"warm_start": warm_start_points(spec, where)})


def warm_start_points(spec: StudySpec, where: str) -> list[dict[str, Any]]:
    """The spec's warm-start points, checked against its space, each value as the space holds it
    (so a grid's point matches its queued twin); a VaeLabError names the entry and the field."""
    points: list[dict[str, Any]] = []
    grid = grid_points(spec.space) if spec.is_grid and spec.warm_start else []
    for index, entry in enumerate(spec.warm_start):
        place = f"{where}: warm_start[{index}]"
        point = check_point(entry, spec.space, place)
        if grid and point not in grid:
            raise VaeLabError(place, "is not a point of the grid", "use values listed in space")
        if point in points:
            raise VaeLabError(place, f"repeats warm_start[{points.index(point)}]", "remove one of them")
        points.append(point)
    if len(points) > spec.planned_trials:
        raise VaeLabError(
            f"{where}: warm_start",
            f"{len(points)} points, but the study plans {spec.planned_trials} trials",
            "raise n_trials, or list fewer points",
        )
    return points


def load_study_spec(name_or_path: str, studies_dir: Path = STUDIES_DIR) -> tuple[StudySpec, Path]:
    """Read and validate a study; every problem becomes one VaeLabError naming file and field."""
    path = find_study_file(name_or_path, studies_dir)
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise VaeLabError(where, f"not valid YAML ({getattr(exc, 'problem', exc)})", "fix the syntax") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise VaeLabError(str(path), f"cannot be read ({exc.__class__.__name__})", "check the file") from None
    return parse_study(raw, str(path)), path


def build_configs(chosen: dict[str, Any], spec: StudySpec, grid: int, max_points: int, seed: int):
    """(ModelConfig, TrainConfig) of a trial from its chosen hyperparameters and the study's defaults."""
    from vae_lab.models import ModelConfig
    from vae_lab.training import TrainConfig

    head, loss = head_and_loss(chosen)
    sizes = {k: chosen[k] for k in ("latent_dim", "width") if k in chosen}
    model = ModelConfig(architecture=chosen["architecture"], output=head, grid=grid, max_points=max_points, **sizes)
    options = {k: v for k, v in chosen.items() if k not in (*MODEL_FIELDS, "output", "loss")}
    if loss not in WEIGHTED_LOSSES:
        options["class_weighting"] = "none"
    train = TrainConfig(
        loss=loss,
        epochs=spec.training.epochs,
        patience=spec.training.patience,
        early_stopping_metric=spec.training.early_stopping_metric,
        seed=seed,
        kl_scale=spec.training.kl_scale,
        select_metric=spec.objective.metric,
        select_mode="max" if spec.direction == "maximize" else "min",
        **options,
    )
    return model, train
