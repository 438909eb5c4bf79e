"""Batch normalisation for the WaveGAN generator that is safe under tf.distribute.

Keras's BatchNormalization keeps its moving statistics in mirrored variables, so
under a MirroredStrategy every forward pass in training mode updates them with a
cross-replica collective. On CPU replicas those collectives raced with the
optimizer's (BUILD_NOTES.md). Here the moving statistics are sync-on-read
variables: each replica updates its own copy with no communication, and reading
them outside the replicas (a checkpoint) gives their mean.
"""

from __future__ import annotations

import keras
import tensorflow as tf


class GeneratorBatchNorm(keras.layers.Layer):
    """Batch norm over all axes but the last (channels), with learned scale and offset.

    Args:
      synchronized: take the batch statistics over the global batch (one
        all-reduce per call) instead of each replica's own examples.
      momentum, epsilon: as Keras's BatchNormalization (0.99, 1e-3, the public
        WaveGAN code's values too).
    Call:
      x float32 [B, ..., C], training: bool -> float32 [B, ..., C].
    """

    def __init__(
        self, synchronized: bool = False, momentum: float = 0.99, epsilon: float = 1e-3, **kwargs
    ):
        super().__init__(**kwargs)
        self.synchronized = synchronized
        self.momentum = momentum
        self.epsilon = epsilon

    def build(self, input_shape):
        channels = int(input_shape[-1])
        # autocast=False: under mixed precision these stay float32 inside call(), where
        # the normalisation is computed in float32.
        self.gamma = self.add_weight(
            shape=(channels,), initializer="ones", name="gamma", autocast=False
        )
        self.beta = self.add_weight(
            shape=(channels,), initializer="zeros", name="beta", autocast=False
        )
        self.moving_mean = self._statistic(channels, "zeros", "moving_mean")
        self.moving_variance = self._statistic(channels, "ones", "moving_variance")

    def _statistic(self, channels, initializer, name):
        # add_weight cannot make sync-on-read variables; an initializer object (not a
        # value) lets Keras defer creation the way add_weight does.
        return keras.Variable(
            keras.initializers.get(initializer),
            shape=(channels,),
            dtype="float32",
            trainable=False,
            name=name,
            autocast=False,
            synchronization="on_read",
            aggregation="mean",
        )

    def _moments(self, x):
        axes = list(range(len(x.shape) - 1))
        ctx = tf.distribute.get_replica_context()
        if not self.synchronized or ctx is None or ctx.num_replicas_in_sync == 1:
            # keras.ops, so Keras's symbolic first pass over the model works too.
            return keras.ops.moments(x, axes)
        # One all-reduce of [sum, sum of squares, count] per call.
        count = tf.cast(tf.reduce_prod(tf.shape(x)[:-1]), x.dtype)
        local = tf.stack(
            [
                tf.reduce_sum(x, axes),
                tf.reduce_sum(tf.square(x), axes),
                tf.fill(tf.shape(x)[-1:], count),
            ]
        )
        total = ctx.all_reduce(tf.distribute.ReduceOp.SUM, local)
        mean = total[0] / total[2]
        return mean, tf.maximum(total[1] / total[2] - tf.square(mean), 0.0)

    def call(self, x, training=False):
        # Statistics in float32 under mixed precision too (as Keras's own batch norm).
        dtype = x.dtype
        x = keras.ops.cast(x, "float32")
        if training:
            mean, variance = self._moments(x)
            m = self.momentum
            self.moving_mean.assign(self.moving_mean * m + mean * (1.0 - m))
            self.moving_variance.assign(self.moving_variance * m + variance * (1.0 - m))
        else:
            mean, variance = self.moving_mean, self.moving_variance
        inv = keras.ops.rsqrt(variance + self.epsilon) * self.gamma
        return keras.ops.cast((x - mean) * inv + self.beta, dtype)

    def compute_output_shape(self, input_shape):
        return input_shape
