"""seed2d: a small 2-D convolutional GAN (DCGAN-style) trained on audio as a square frame.

The 2-D design it starts from had a generator ending at 128 x 128 x 1 and a critic
taking 64 x 64 x 1. Here both work on one square frame of the audio slice: slice_len
samples, row-major, side x side (16384 = 128 x 128, each row 128 consecutive samples).
The critic therefore takes exactly what the generator makes, and a 16384-sample slice
is the same second of audio WaveGAN sees (see BUILD_NOTES.md for why not 64 x 64).

With dim = 64 and slice_len = 16384 the layers are the design's: generator dense 256
+ LeakyReLU, reshape 16 x 16 x 1, Conv2DTranspose 128 and 64 (4 x 4, stride 2,
"same") each + LeakyReLU, Conv2DTranspose 1 (tanh); critic Conv2D 64, 128, 256
(4 x 4, stride 2, "same") each + LeakyReLU, flatten, dense 1. Other square sizes
(16 * 2^k)^2 add or drop stride-2 stages with the same doubling of widths.
"""

from __future__ import annotations

import math

import keras

from wavegan_dist.models import activations
from wavegan_dist.models.conditioning import (
    Projection,
    class_head,
    class_logits,
    critic_score,
    with_label,
)
from wavegan_dist.models.network import SpecNetwork
from wavegan_dist.models.shapes import START_SIDE, frame_side
from wavegan_dist.models.spec import ModelSpec

SKETCH_SLOPE = 0.3  # the design's bare LeakyReLU(): Keras's default negative slope
_GENERATOR_SEED_OFFSET = 200
_CRITIC_SEED_OFFSET = 700


def _num_stages(side: int) -> int:
    return int(math.log2(side // START_SIDE))


def _init(seed, offset, index):
    return keras.initializers.GlorotUniform(seed=(seed * 1000 + offset + index) % 2**31)


class Seed2DGenerator(SpecNetwork):
    """2-D generator: z [B, latent_dim] (+ label) -> waveform [B, slice_len, 1] in [-1, 1]."""

    def __init__(self, spec: ModelSpec, name="generator"):
        super().__init__(spec, name)
        spec = self.spec  # with the family defaults filled in
        self.side = frame_side(spec.slice_len)
        self.num_stages = _num_stages(self.side)
        k = self.num_stages
        self.dense = keras.layers.Dense(
            START_SIDE * START_SIDE,
            name="dense",
            kernel_initializer=_init(spec.seed, _GENERATOR_SEED_OFFSET, 0),
        )
        self.reshape = keras.layers.Reshape((START_SIDE, START_SIDE, 1), name="reshape")
        for i in range(k):
            last = i == k - 1
            # Attributes, not a list, so tf.train.Checkpoint tracks each layer.
            setattr(
                self,
                f"upconv_{i}",
                keras.layers.Conv2DTranspose(
                    1 if last else spec.dim * 2 ** (k - 2 - i),
                    spec.kernel_len,
                    strides=2,
                    padding="same",
                    activation="tanh" if last else None,
                    name=f"upconv_{i}",
                    kernel_initializer=_init(spec.seed, _GENERATOR_SEED_OFFSET, i + 1),
                ),
            )
        self.to_audio = keras.layers.Reshape((spec.slice_len, 1), name="to_audio")

    @property
    def summary_layers(self):
        """(layer, what follows it) in call order, for layer tables."""
        k = self.num_stages
        convs = [
            (getattr(self, f"upconv_{i}"), "tanh" if i == k - 1 else "LeakyReLU") for i in range(k)
        ]
        return (
            [(self.dense, "LeakyReLU"), (self.reshape, "")]
            + convs
            + [(self.to_audio, "rows joined into the waveform")]
        )

    def call(self, z, labels=None, training=False):
        """Args: z float [B, latent_dim]; labels int [B] (conditional models) or None.
        Returns float32 [B, slice_len, 1]."""
        x = with_label(keras.ops.cast(z, "float32"), labels, self.num_classes)
        x = self.reshape(keras.ops.leaky_relu(self.dense(x), SKETCH_SLOPE))
        for i in range(self.num_stages):
            x = getattr(self, f"upconv_{i}")(x)
            if i < self.num_stages - 1:
                x = keras.ops.leaky_relu(x, SKETCH_SLOPE)
        return keras.ops.cast(self.to_audio(x), "float32")  # float32 under mixed precision


class Seed2DCritic(SpecNetwork):
    """2-D critic: waveform [B, slice_len, 1] as a side x side frame -> score [B].

    No phase shuffle (the design has none), so `num_shuffle_layers` is 0.
    """

    num_shuffle_layers = 0

    def __init__(self, spec: ModelSpec, name="critic"):
        super().__init__(spec, name)
        spec = self.spec  # with the family defaults filled in
        self.side = frame_side(spec.slice_len)
        self.num_stages = _num_stages(self.side)
        self.to_frame = keras.layers.Reshape((self.side, self.side, 1), name="to_frame")
        self.leaky_relu = activations.critic_leaky_relu(spec.kernels)  # (x, negative_slope)
        for i in range(self.num_stages):
            setattr(
                self,
                f"conv_{i}",
                keras.layers.Conv2D(
                    spec.dim * 2**i,
                    spec.kernel_len,
                    strides=2,
                    padding="same",
                    name=f"conv_{i}",
                    kernel_initializer=_init(spec.seed, _CRITIC_SEED_OFFSET, i),
                ),
            )
        self.flatten = keras.layers.Flatten(name="flatten")
        self.dense = keras.layers.Dense(
            1,
            name="dense",
            kernel_initializer=_init(spec.seed, _CRITIC_SEED_OFFSET, self.num_stages),
        )
        if spec.num_classes:
            self.projection = Projection(
                spec.num_classes,
                spec.seed * 1000 + _CRITIC_SEED_OFFSET + self.num_stages + 1,
                name="projection",
            )
        self.classifier = class_head(
            spec, spec.seed * 1000 + _CRITIC_SEED_OFFSET + self.num_stages + 2
        )

    @property
    def summary_layers(self):
        """(layer, what follows it) in call order, for layer tables."""
        convs = [(getattr(self, f"conv_{i}"), "LeakyReLU") for i in range(self.num_stages)]
        tail = (
            [(self.dense, "+ projection"), (self.projection, "linear score")]
            if self.num_classes
            else [(self.dense, "linear score")]
        )
        if self.classifier is not None:
            tail.append((self.classifier, "auxiliary class logits", "flatten"))
        return [(self.to_frame, "")] + convs + [(self.flatten, "")] + tail

    def call(self, x, shifts=None, labels=None, training=False, with_logits=False):
        """Scores waveforms.

        Args:
          x: float [B, slice_len, 1].
          shifts: ignored (no phase shuffle); accepted so every critic is called alike.
          labels: int [B] for a conditional critic, else None.
          training: unused; kept for the Keras call convention.
          with_logits: also return the auxiliary classifier's logits.
        Returns:
          float32 [B]; with_logits: (that, float32 [B, num_classes]).
        """
        x = self.to_frame(keras.ops.cast(x, "float32"))
        for i in range(self.num_stages):
            x = self.leaky_relu(getattr(self, f"conv_{i}")(x), SKETCH_SLOPE)
        features = self.flatten(x)
        score = critic_score(
            self.dense, self.projection if self.num_classes else None, features, labels
        )
        return (score, class_logits(self.classifier, features)) if with_logits else score
