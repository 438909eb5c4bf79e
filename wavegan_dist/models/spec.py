"""ModelSpec: everything that fixes the networks' shapes, and building them from it."""

from __future__ import annotations

import contextlib
import dataclasses


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """Plain description of a generator/critic pair (see Config.model_spec()).

    Attributes:
      model: "wavegan" (1-D, the paper's) or "seed2d" (2-D, on a square frame).
      slice_len: waveform samples per example.
      dim: model width d.
      kernel_len: convolution kernel length (seed2d: kernel_len x kernel_len).
      latent_dim: length of z.
      phase_shuffle: critic phase-shuffle radius (0 = none).
      phase_shuffle_layers: wavegan critic layers followed by phase shuffle, from the
        waveform end; at most all but the last (the authors' code: 4).
      upsample: "zeros" or "nn" (wavegan generator).
      post_filter: learned 512-tap output filter (wavegan generator).
      gen_batchnorm: batch norm in the generator (wavegan).
      num_classes: label classes for conditioning; 0 = unconditional.
      seed: initial-weight seed.
      precision: "fp32", or "bf16" for bfloat16 compute with float32 weights; either
        way the networks take and return float32.
      kernels: "fast" (WaveGAN's strided convolutions as the polyphase layers of
        models/fast_conv.py, the critic's LeakyReLU without a second-order path,
        models/activations.py) or "reference" (Keras's own layers and activation);
        see wavegan_dist/kernels.py. Same variables and mathematics either way, so
        checkpoints are interchangeable.
    """

    model: str = "wavegan"
    slice_len: int = 16384
    dim: int = 64
    kernel_len: int = 25
    latent_dim: int = 100
    phase_shuffle: int = 2
    phase_shuffle_layers: int = 4
    upsample: str = "zeros"
    post_filter: bool = False
    gen_batchnorm: bool = False
    num_classes: int = 0
    seed: int = 0
    precision: str = "fp32"
    kernels: str = "fast"


def check_slice_len(spec: ModelSpec) -> None:
    """Raises UserError if spec.model cannot produce spec.slice_len samples."""
    from wavegan_dist.models import seed2d, wavegan
    if spec.model == "seed2d":
        seed2d.frame_side(spec.slice_len)
    else:
        wavegan.layer_strides(spec.slice_len)


def _classes(spec: ModelSpec):
    from wavegan_dist.models import seed2d, wavegan
    if spec.model == "seed2d":
        return seed2d.Seed2DGenerator, seed2d.Seed2DCritic
    return wavegan.WaveGANGenerator, wavegan.WaveGANCritic


@contextlib.contextmanager
def _dtype_policy(precision: str):
    # Keras layers take the global policy when they are created; it is set only while
    # this spec's layers are made, so other models in the process are unaffected.
    import keras

    before = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16" if precision == "bf16" else "float32")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(before)


def build_generator(spec: ModelSpec):
    """Creates only the generator `spec` describes, with its variables (for inference).

    Returns:
      generator(z [B, latent_dim], labels [B] int or None) -> float32 [B, slice_len, 1].
    """
    import tensorflow as tf

    check_slice_len(spec)
    with _dtype_policy(spec.precision):
        generator = _classes(spec)[0](spec)
    generator(tf.zeros([1, spec.latent_dim], tf.float32),
              tf.zeros([1], tf.int32) if spec.num_classes else None)
    return generator


def build_models(spec: ModelSpec):
    """Creates the generator and critic that `spec` describes, with their variables.

    Each network is called once on a batch of one zero input so that all variables
    exist before any tf.function trace (call this inside a strategy scope to get
    distributed variables).

    Returns:
      (generator, critic): generator(z [B, latent_dim], labels [B] int or None) ->
      float32 [B, slice_len, 1] in [-1, 1] (beyond it only with the post filter);
      critic(x [B, slice_len, 1], shifts [B, L] int or None, labels [B] or None) ->
      float32 [B]. Raises UserError for a slice_len the model cannot make.
    """
    import tensorflow as tf

    generator = build_generator(spec)
    with _dtype_policy(spec.precision):
        critic = _classes(spec)[1](spec)
    critic(tf.zeros([1, spec.slice_len, 1], tf.float32), None,
           tf.zeros([1], tf.int32) if spec.num_classes else None)
    return generator, critic
