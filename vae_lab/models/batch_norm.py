"""The journal's `deep` VAE with batch normalisation after every layer but the last.

BatchNorm3d after each encoder and decoder convolution (64/128/256/256 channels) and a
BatchNorm1d(55,296) after the decoder's FC: the journal's 110,592-parameter BatchNorm1d is
its weight and bias over the 256 * 6^3 units. 6,255,365 parameters at latent dim 2.
"""

from __future__ import annotations

from vae_lab.models.base import register
from vae_lab.models.deep import DeepConvVAE


@register("batch_norm")
class BatchNormVAE(DeepConvVAE):
    description = "deep with BatchNorm3d after each convolution and BatchNorm1d after the decoder FC"
    use_batch_norm = True
