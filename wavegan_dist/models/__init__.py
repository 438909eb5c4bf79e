"""WaveGAN generator and critic networks (Keras 3 models) and the phase shuffle op."""

from wavegan_dist.models.wavegan import (
    WaveGANCritic,
    WaveGANGenerator,
    build_models,
    layer_strides,
)

__all__ = ["WaveGANCritic", "WaveGANGenerator", "build_models", "layer_strides"]
