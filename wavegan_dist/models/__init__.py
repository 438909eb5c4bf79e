"""WaveGAN generator and critic networks (Keras 3 models) and the phase shuffle op.

Exports are loaded on first use, so `python -m wavegan_dist.models` can quiet
TensorFlow's logs before TensorFlow is imported.
"""

__all__ = ["WaveGANCritic", "WaveGANGenerator", "build_models", "layer_strides"]


def __getattr__(name):
    if name in __all__:
        from wavegan_dist.models import wavegan
        return getattr(wavegan, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
