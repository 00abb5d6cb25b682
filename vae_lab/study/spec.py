"""Study definitions: `studies/*.yaml` validated into a typed `StudySpec`.

A study file is data, not code. Unknown keys and wrong types are errors that name the file and
the field, so a typo never silently falls back to a default. See `studies/quick.yaml` for a
commented example of every section.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from vae_lab.errors import VaeLabError
from vae_lab.choices import ClassWeighting, EpochMetric, OptimizerName, OutputHead, ReconLoss

STUDIES_DIR = Path("studies")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FloatRange(Strict):
    """A continuous range for TPE; `log: true` samples on a log scale (learning rates)."""

    low: float
    high: float
    log: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> "FloatRange":
        if not self.low < self.high:
            raise ValueError("low must be below high")
        if self.log and self.low <= 0:
            raise ValueError("a log range needs low > 0")
        return self


class IntRange(Strict):
    low: int
    high: int
    step: int = 1
    log: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> "IntRange":
        if not self.low <= self.high:
            raise ValueError("low must not be above high")
        return self


class SearchSpace(Strict):
    """Each hyperparameter is a list of choices (grid or TPE) or a range (TPE only)."""

    architecture: list[str] = Field(default=["fc"], min_length=1)
    output: list[OutputHead] = Field(default=["scalar"], min_length=1)
    batch_size: Union[list[int], IntRange] = [64]
    latent_dim: Union[list[int], IntRange] = [2]
    loss: list[ReconLoss] = Field(default=["mse"], min_length=1)
    class_weighting: list[ClassWeighting] = Field(default=["log"], min_length=1)
    optimizer: list[OptimizerName] = Field(default=["adam"], min_length=1)
    learning_rate: Union[list[float], FloatRange] = [1e-3]
    weight_decay: Union[list[float], FloatRange] = [0.0]
    beta: Union[list[float], FloatRange] = [1.0]

    def ranges(self) -> list[str]:
        return [name for name, value in self if not isinstance(value, list)]

    def grid(self) -> dict[str, list]:
        return {name: list(value) for name, value in self}


class DataSpec(Strict):
    path: Path | None = Field(default=None, description="dataset file; default VAE_LAB_DATA")
    toy_fraction: float = Field(default=1.0, gt=0, le=1)
    seed: int = 0
    grid: int | None = Field(default=None, description="grid edge when it cannot be inferred")


class ObjectiveSpec(Strict):
    metric: EpochMetric = "val_tradeoff"
    direction: Literal["maximize", "minimize"] = "maximize"


class TrainingSpec(Strict):
    epochs: int = Field(default=30, ge=1)
    patience: int = Field(default=5, ge=1)
    early_stopping_metric: EpochMetric = Field(default="val_loss", description="the journal stopped on val_loss")
    seed: int = 0
    kl_scale: float = Field(default=10.0, gt=0)


class PrunerSpec(Strict):
    kind: Literal["none", "median"] = "none"
    warmup_epochs: int = Field(default=3, ge=0)
    startup_trials: int = Field(default=2, ge=0)


class ArtifactSpec(Strict):
    pca: bool = True
    umap: bool = Field(default=False, description="adds ~20 s per process and ~9 s per 2,000 points")
    reconstructions: int = Field(default=4, ge=0, le=12)
    max_points: int = Field(default=2000, ge=10, description="validation samples projected")
    plotlyjs: Literal["embed", "cdn"] = Field(default="embed", description="embed: plots work offline (+3.5 MB each)")


class RegistrySpec(Strict):
    model_name: str | None = Field(default=None, description="registered model name; default: the study name")


class StudySpec(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    description: str = ""
    data: DataSpec = DataSpec()
    sampler: Literal["grid", "tpe"] = "grid"
    n_trials: int | None = Field(default=None, ge=1, description="default: the whole grid (grid) or 20 (tpe)")
    objective: ObjectiveSpec = ObjectiveSpec()
    training: TrainingSpec = TrainingSpec()
    pruner: PrunerSpec = PrunerSpec()
    space: SearchSpace = SearchSpace()
    artifacts: ArtifactSpec = ArtifactSpec()
    registry: RegistrySpec = RegistrySpec()

    @model_validator(mode="after")
    def _grid_has_no_ranges(self) -> "StudySpec":
        if self.sampler == "grid" and self.space.ranges():
            raise ValueError(f"sampler 'grid' needs lists, but space has ranges for: {', '.join(self.space.ranges())}")
        return self

    @property
    def model_name(self) -> str:
        return self.registry.model_name or self.name

    @property
    def grid_size(self) -> int:
        size = 1
        for values in self.space.grid().values():
            size *= len(values)
        return size

    @property
    def planned_trials(self) -> int:
        if self.n_trials is not None:
            return self.n_trials
        return self.grid_size if self.sampler == "grid" else 20


def renamed(spec: StudySpec, name: str) -> StudySpec:
    """The same study under another name (a separate Optuna study, experiment and model)."""
    try:
        return StudySpec.model_validate(spec.model_dump() | {"name": name})
    except ValidationError:
        raise VaeLabError("--name", f"{name!r} is not a study name", "use letters, digits, '-', '_' or '.'") from None


def find_study_file(name_or_path: str, studies_dir: Path = STUDIES_DIR) -> Path:
    """`deep-sweep` -> studies/deep-sweep.yaml; a path is taken as given."""
    candidate = Path(name_or_path)
    if candidate.suffix in {".yaml", ".yml"} or candidate.exists():
        if not candidate.is_file():
            raise VaeLabError(str(candidate), "study file not found", "check the path")
        return candidate
    for suffix in (".yaml", ".yml"):
        path = studies_dir / f"{name_or_path}{suffix}"
        if path.is_file():
            return path
    known = sorted(p.stem for p in studies_dir.glob("*.y*ml")) if studies_dir.is_dir() else []
    fix = f"use one of: {', '.join(known)}" if known else f"create {studies_dir}/{name_or_path}.yaml"
    raise VaeLabError(str(studies_dir / f"{name_or_path}.yaml"), f"no study named {name_or_path!r}", fix)


def _field(loc: tuple) -> str:
    # Drop pydantic's union-branch markers ("list[float]", "FloatRange") from the location.
    return ".".join(str(p) for p in loc if not (isinstance(p, str) and (p[:1].isupper() or "[" in p or p.startswith("function-"))))


SHAPE_ERRORS = {"list_type", "model_type", "dict_type", "model_attributes_type", "float_type", "int_type"}


def _most_specific(errors: list[dict]) -> dict:
    """Of a union's several complaints, the one about the branch the user meant."""
    return max(errors, key=lambda e: (e["type"] not in SHAPE_ERRORS, len(e["loc"])))


def load_study_spec(name_or_path: str, studies_dir: Path = STUDIES_DIR) -> tuple[StudySpec, Path]:
    """Read and validate a study; every problem becomes one VaeLabError naming file and field."""
    path = find_study_file(name_or_path, studies_dir)
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise VaeLabError(where, f"not valid YAML ({getattr(exc, 'problem', exc)})", "fix the syntax") from None
    if not isinstance(raw, dict):
        raise VaeLabError(str(path), "a study must be a YAML mapping", "start from studies/quick.yaml")
    try:
        spec = StudySpec.model_validate(raw)
    except ValidationError as exc:
        error = _most_specific(exc.errors())
        field = _field(error["loc"]) or "(top level)"
        problem = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            problem = "unknown key"
        more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise VaeLabError(f"{path}: {field}", problem + more, "see studies/quick.yaml for the schema") from None
    _check_architectures(spec, path)
    return spec, path


def _check_architectures(spec: StudySpec, path: Path) -> None:
    from vae_lab.models import ARCHITECTURES

    unknown = [a for a in spec.space.architecture if a not in ARCHITECTURES]
    if unknown:
        raise VaeLabError(
            f"{path}: space.architecture",
            f"unknown architecture {unknown[0]!r}",
            f"use any of: {', '.join(sorted(ARCHITECTURES))}",
        )
