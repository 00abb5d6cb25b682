"""VAE families. Importing this package registers every family in `ARCHITECTURES`."""

from vae_lab.models.base import (
    ARCHITECTURES,
    BaseVAE,
    Batch,
    ModelConfig,
    VAEOutput,
    build_model,
    check_architecture,
    count_parameters,
    register,
)
from vae_lab.models import fc, conv  # noqa: F401  (registration side effect)

__all__ = [
    "ARCHITECTURES",
    "BaseVAE",
    "Batch",
    "ModelConfig",
    "VAEOutput",
    "build_model",
    "check_architecture",
    "count_parameters",
    "register",
]
