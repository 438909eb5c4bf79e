"""The networks: WaveGAN (1-D, the paper's) and seed2d (2-D, on a square frame), their
shared label conditioning, and building either from a ModelSpec.

Exports are loaded on first use, so `python -m wavegan_dist.models` can quiet
TensorFlow's logs before TensorFlow is imported.
"""

_EXPORTS = {
    "ModelSpec": "spec", "build_models": "spec", "build_generator": "spec", "check_slice_len": "spec",
    "WaveGANGenerator": "wavegan", "WaveGANCritic": "wavegan", "layer_strides": "wavegan",
    "Seed2DGenerator": "seed2d", "Seed2DCritic": "seed2d", "frame_side": "seed2d",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        import importlib
        return getattr(importlib.import_module(f"wavegan_dist.models.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
