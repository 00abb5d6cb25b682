"""VAE families. Importing this package registers every family in `ARCHITECTURES`."""

# Registration side effect; the order here is the journal's, which `vae-lab models list` keeps.
from vae_lab.models import (  # noqa: F401, I001
    batch_norm,
    conv,
    conv_pool,
    conv_skip,
    deep,
    fc,
    pointnet,
    pose,  # noqa: F401, E402  (after the journal's seven)
    split,
)
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
