"""The networks: WaveGAN (1-D, the paper's) and seed2d (2-D, on a square frame), their
shared label conditioning, and building either from a ModelSpec.

Layering, lowest first: spec.py (the ModelSpec, a leaf) and shapes.py; registry.py
(family name -> module, defaults); the network modules; build.py.

Exports are loaded on first use, so `python -m wavegan_dist.models` can quiet
TensorFlow's logs before TensorFlow is imported.
"""

_EXPORTS = {
    "ModelSpec": "spec",
    "build_models": "build",
    "build_generator": "build",
    "check_slice_len": "registry",
    "layer_strides": "shapes",
    "frame_side": "shapes",
    "WaveGANGenerator": "wavegan",
    "WaveGANCritic": "wavegan",
    "Seed2DGenerator": "seed2d",
    "Seed2DCritic": "seed2d",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(f"wavegan_dist.models.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
