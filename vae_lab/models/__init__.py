"""VAE families. Importing this package registers every family in `ARCHITECTURES`."""

from vae_lab.models.base import (
    ARCHITECTURES,
    BaseVAE,
    Batch,
    ModelConfig,
    VAEOutput,
    build_model,
    check_architecture,
    check_loss,
    count_parameters,
    register,
)

# Registration side effect; the order here is the journal's, which `vae-lab models list` keeps.
from vae_lab.models import fc, conv, conv_pool, conv_skip, deep, batch_norm, pointnet  # noqa: F401, I001
from vae_lab.models import pose  # noqa: F401, E402  (after the journal's seven)

__all__ = [
    "ARCHITECTURES",
    "BaseVAE",
    "Batch",
    "ModelConfig",
    "VAEOutput",
    "build_model",
    "check_architecture",
    "check_loss",
    "count_parameters",
    "register",
]
