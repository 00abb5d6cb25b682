"""The shared base of every VAE family: config, output type, the registry of architectures.

A family is one file in this package: a `BaseVAE` subclass decorated with `@register("name")`.
`build_model(ModelConfig(...))` is the only way the rest of vae-lab makes a model, so adding a
family never touches the trainer, the studies or the CLI.

A family owns everything that depends on what it reads and writes: `inputs` (the tensors it
takes from a `Batch`), `reconstruction_loss` and `predict_grid`. The trainer, the metrics and
evaluation call those hooks and never ask which kind of model they hold. Every family is
judged against the same target, the voxel grid of classes 0-4.

Dense families read the grid as one float channel scaled to [0, 1] (value / 4) and decode
through a head (`vae_lab.models.heads`): `scalar` or `categorical`. Sparse families read the
padded point set of `vae_lab.data.sparse` (`reads_points`) and decode a set of slots.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, ClassVar, TypeVar

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import Tensor, nn

from vae_lab.choices import LOSS_HEAD, NUM_CLASSES, OutputHead
from vae_lab.errors import VaeLabError
from vae_lab.losses import LossSettings
from vae_lab.models.heads import HEADS, MAX_VALUE

# The largest log-variance a posterior may have (a standard deviation of e^3, 20 prior widths).
LOGVAR_MAX = 6.0

__all__ = ["MAX_VALUE", "NUM_CLASSES"]  # re-exported for the families and tests


class ModelConfig(BaseModel):
    """Everything needed to rebuild a model; logged with every run."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    architecture: str
    latent_dim: int = Field(default=2, ge=1)
    output: OutputHead = Field(
        default=None, description="scalar or categorical (dense families), set (sparse); default: the family's first"
    )
    grid: int = Field(default=11, ge=3, description="edge length of the cubic voxel grid")
    max_points: int = Field(default=8, ge=1, description="K, the padded set size of sparse families")
    width: int | None = Field(
        default=None, ge=8, description="hidden width, for families that have one (pointnet); default: the family's"
    )

    @model_validator(mode="before")
    @classmethod
    def _default_head(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("output") is None:
            family = ARCHITECTURES.get(data.get("architecture", ""))
            data = {**data, "output": family.heads[0] if family else "scalar"}
        return data


@dataclass
class VAEOutput:
    """What a forward pass returns.

    recon: dense families: (B, 1, D, H, W) value logits (scalar head) or (B, 5, D, H, W) class
        logits (categorical head); sparse families: their own slot tensor (see the family).
        Under autocast it may be bf16/fp16; losses and predictions read it in fp32.
    mu, logvar: (B, latent_dim) parameters of q(z|x).
    z: (B, latent_dim) the latent used for decoding (a sample when training, mu in eval mode).
    """

    recon: Tensor
    mu: Tensor
    logvar: Tensor
    z: Tensor


@dataclass
class Batch:
    """One mini-batch, as every family and loss sees it.

    grid: (B, D, H, W) uint8 classes 0-4, the reconstruction target of every family.
    points: (B, K, F) float32 padded point set (sparse families only, else None).
    mask: (B, K) bool, True where a slot holds a real point (sparse families only, else None).
    """

    grid: Tensor
    points: Tensor | None = None
    mask: Tensor | None = None

    def to(self, device: torch.device | str) -> "Batch":
        move = lambda t: None if t is None else t.to(device, non_blocking=True)  # noqa: E731
        return Batch(move(self.grid), move(self.points), move(self.mask))

    def head(self, n: int) -> "Batch":
        """The first `n` samples."""
        first = lambda t: None if t is None else t[:n]  # noqa: E731
        return Batch(first(self.grid), first(self.points), first(self.mask))


class BaseVAE(nn.Module):
    """encode -> reparameterize -> decode, plus the hooks the trainer and metrics need.

    The defaults are those of the dense families; a sparse family overrides `inputs`,
    `reconstruction_loss`, `predict_grid` and `example_input`.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    # Heads the family can be built with; the first is its default.
    heads: ClassVar[tuple[str, ...]] = ("scalar", "categorical")
    # Whether batches must carry the padded point set (`Batch.points`, `Batch.mask`).
    reads_points: ClassVar[bool] = False
    # Edge length the family is built for, or None if it follows `config.grid`.
    fixed_grid: ClassVar[int | None] = None
    # The hidden width when `config.width` is unset, for families whose width is a knob; the
    # journal's families have fixed layer sizes (None), so `width` is an error for them.
    default_width: ClassVar[int | None] = None
    # The smallest latent_dim the family can be built with (a split latent needs two parts).
    min_latent_dim: ClassVar[int] = 1

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config

    @property
    def width(self) -> int:
        """The hidden width of a family that has one (config.width, else its default)."""
        return self.config.width or self.default_width or 0

    @property
    def pose_dims(self) -> int:
        """Trailing latent dimensions that hold the pose, apart from the content (0 here: the whole
        latent is content). Latent metrics and figures read only the content part."""
        return 0

    @property
    def content_dims(self) -> int:
        """Latent dimensions that hold content: all but the pose part."""
        return self.config.latent_dim - self.pose_dims

    @property
    def out_channels(self) -> int:
        return HEADS[self.config.output].channels

    def add_latent_heads(self, features: int) -> None:
        """The journal's "latent FC branching": two linear heads from the encoder's features."""
        self.to_mu = nn.Linear(features, self.config.latent_dim)
        self.to_logvar = nn.Linear(features, self.config.latent_dim)

    # The plain shape of a family: `self.encoder` -> latent heads, `self.decoder`. Families with
    # skip paths or masks override these two.
    def encode(self, x: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        h = self.encoder(x)
        return self.to_mu(h), self.to_logvar(h)

    def decode(self, z: Tensor) -> Tensor:
        return self.decoder(z)

    def posterior(self, x: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """`encode`, with the log-variance held at most `LOGVAR_MAX`: one bad step once sent a
        split model's log-variances from 1 to 22 and then 655, whose exp overflowed the KL and
        the sample into NaN (the molecules study on the synthetic set, epoch 11). No posterior
        wider than the prior (log-variance 0) helps a VAE, so the bound costs nothing else."""
        mu, logvar = self.encode(x, mask)
        return mu, logvar.clamp(max=LOGVAR_MAX)

    def reparameterize(self, mu: Tensor, logvar: Tensor) -> Tensor:
        # Sample while training; the mean in eval mode so evaluation is deterministic.
        if not self.training:
            return mu
        return mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> VAEOutput:
        mu, logvar = self.posterior(x, mask)
        z = self.reparameterize(mu, logvar)
        return VAEOutput(recon=self.decode(z), mu=mu, logvar=logvar, z=z)

    def inputs(self, batch: Batch) -> tuple[Tensor, Tensor | None]:
        """The tensors this family reads from a batch (dense: the grid scaled to [0, 1])."""
        x = batch.grid.unsqueeze(1).to(torch.float32) / MAX_VALUE
        return x, None

    def forward_batch(self, batch: Batch) -> VAEOutput:
        return self(*self.inputs(batch))

    def reconstruction_loss(
        self, out: VAEOutput, batch: Batch, settings: LossSettings, weights: Tensor | None = None
    ) -> Tensor:
        """(B,) the reconstruction term of each sample, summed over its cells (see `vae_lab.losses`)."""
        return HEADS[self.config.output].loss(out.recon, batch.grid, settings, weights)

    def predict_grid(self, out: VAEOutput) -> Tensor:
        """(B, D, H, W) int64 classes 0-4 decoded from `out.recon`."""
        return HEADS[self.config.output].predict(out.recon)

    def metric_latent(self, out: VAEOutput) -> Tensor:
        """(B, L') the latent that latent metrics and figures measure: the posterior mean here; a
        family whose latent holds a pose part returns only its pose-free (content) part."""
        return out.mu[:, : self.content_dims]

    @torch.no_grad()
    def reconstruct(self, grid: Tensor) -> Tensor:
        """Decode a (B, D, H, W) grid of classes 0-4 back to classes, whatever the family reads."""
        return self.predict_grid(self.forward_batch(Batch(grid=grid)))

    def example_input(self, batch_size: int = 2) -> Batch:
        """A small all-zero batch of the right shapes, for tracing, logging and tests."""
        g = self.config.grid
        return Batch(grid=torch.zeros(batch_size, g, g, g, dtype=torch.uint8))

    def example_array(self) -> np.ndarray | None:
        """One sample of the tensor `forward` takes, as numpy (MLflow's input example), if it is one tensor."""
        x, _ = self.inputs(self.example_input(batch_size=1))
        return x.cpu().numpy()


ARCHITECTURES: dict[str, type[BaseVAE]] = {}

V = TypeVar("V", bound=type[BaseVAE])


def register(name: str) -> Callable[[V], V]:
    """Class decorator: make a family buildable by its study name."""

    def add(cls: V) -> V:
        if name in ARCHITECTURES:
            raise RuntimeError(f"architecture {name!r} registered twice")
        cls.name = name
        ARCHITECTURES[name] = cls
        return cls

    return add


def check_architecture(config: ModelConfig, where: str = "model") -> type[BaseVAE]:
    """The family class for `config`, or a VaeLabError a user can act on."""
    cls = ARCHITECTURES.get(config.architecture)
    if cls is None:
        known = ", ".join(sorted(ARCHITECTURES))
        raise VaeLabError(where, f"unknown architecture {config.architecture!r}", f"use one of: {known}")
    if cls.fixed_grid is not None and config.grid != cls.fixed_grid:
        g = cls.fixed_grid
        raise VaeLabError(
            where,
            f"architecture {config.architecture!r} is built for a {g}x{g}x{g} grid, the data is "
            f"{config.grid}x{config.grid}x{config.grid}",
            "pick a family that follows the grid size (see `vae-lab models list`)",
        )
    if config.latent_dim < cls.min_latent_dim:
        raise VaeLabError(
            where,
            f"architecture {config.architecture!r} needs latent_dim >= {cls.min_latent_dim}, got {config.latent_dim}",
            "its latent holds a content part and a pose part: give it more dimensions",
        )
    if config.width is not None and cls.default_width is None:
        raise VaeLabError(
            where, f"architecture {config.architecture!r} has fixed layer sizes, so no width", "leave width out for it"
        )
    if config.output not in cls.heads:
        raise VaeLabError(
            where,
            f"architecture {config.architecture!r} has no {config.output!r} output",
            f"use output {' or '.join(cls.heads)} (or leave it out: it follows the loss)",
        )
    return cls


def check_loss(architecture: str, output: str, loss: str, where: str = "model") -> None:
    """A loss trains one head; a trial whose loss does not fit its head and family is an error."""
    cls = ARCHITECTURES[architecture]
    head = LOSS_HEAD[loss]
    if head not in cls.heads:
        fits = ", ".join(name for name, h in LOSS_HEAD.items() if h in cls.heads)
        raise VaeLabError(where, f"loss {loss!r} does not fit architecture {architecture!r}", f"use one of: {fits}")
    if head != output:
        fits = ", ".join(name for name, h in LOSS_HEAD.items() if h == output)
        raise VaeLabError(
            where,
            f"loss {loss!r} trains the {head} head, not the {output} head",
            f"with output {output} use {fits}; or leave output out (it follows the loss)",
        )


def build_model(config: ModelConfig) -> BaseVAE:
    return check_architecture(config)(config)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
