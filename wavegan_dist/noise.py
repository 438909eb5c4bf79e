"""Per-example randomness that does not depend on how many replicas share a batch.

Every random tensor of a training step (latent vectors, interpolation weights,
phase-shuffle shifts) is drawn for the whole global batch with a stateless RNG
keyed by (seed, step, stream), and each replica keeps its own rows. Example i of
global step s therefore sees the same numbers on 1, 2 or 64 replicas, which is
what makes runs reproducible across replica counts and exactly resumable.
"""

from __future__ import annotations

import tensorflow as tf

_ALG = "philox"
_STREAMS_PER_STEP = 4096
_FLOAT_BITS = 1 << 24  # float32 represents every multiple of 2^-24 in [0, 1) exactly


def key(seed, step: tf.Tensor, stream: int) -> tf.Tensor:
    """Returns the stateless RNG key (int64 [2]) of one random stream at one step.

    Args:
      seed: the run's noise seed, an int or a scalar integer tensor (--seed, or a
        fresh one after a rollback).
      step: scalar int64 tensor, the generator step.
      stream: a small int (< 4096) naming what is drawn (see Streams).
    """
    step = tf.cast(step, tf.int64)
    # On TPU every strategy.run argument arrives as a tensor (int32 for a Python int).
    stream = tf.cast(stream, tf.int64)
    return tf.stack([tf.cast(seed, tf.int64), step * _STREAMS_PER_STEP + stream])


class Streams:
    """Stream ids: one per kind of draw, per critic iteration `i` (i < MAX_CRITIC_UPDATES)."""

    MAX_CRITIC_UPDATES = 200  # 16 * 200 stays below the generator's ids and the next step

    @staticmethod
    def critic_latent(i: int) -> int:
        return 16 * i + 0

    @staticmethod
    def critic_alpha(i: int) -> int:
        return 16 * i + 1

    @staticmethod
    def critic_shifts(i: int) -> int:
        return 16 * i + 2

    GENERATOR_LATENT = 4000
    GENERATOR_SHIFTS = 4001
    GENERATOR_LABELS = 4002


def replica_rows(values: tf.Tensor, per_replica: int) -> tf.Tensor:
    """Returns this replica's rows of a tensor drawn for the global batch.

    Args:
      values: [global_batch, ...] tensor.
      per_replica: rows per replica (static).
    Returns:
      [per_replica, ...]: rows [r * per_replica, (r + 1) * per_replica) for replica r.
    """
    ctx = tf.distribute.get_replica_context()
    replica = 0 if ctx is None else ctx.replica_id_in_sync_group
    # Reshape-and-gather keeps the static [per_replica, ...] shape even when the
    # replica id is a tensor (TPU), which a dynamic slice would lose.
    grouped = tf.reshape(values, [-1, per_replica] + values.shape.as_list()[1:])
    return tf.gather(grouped, tf.cast(replica, tf.int32))


def _uniform01(shape: list[int], rng_key: tf.Tensor) -> tf.Tensor:
    """Uniform float32 in [0, 1) built from 24 random integer bits.

    XLA's float path of the stateless Philox RNG gives other numbers than the CPU
    kernel (seen here), while its integer draws agree; building floats from integers
    keeps the noise the same with and without --jit_compile.
    """
    bits = tf.random.stateless_uniform(
        shape, rng_key, minval=0, maxval=_FLOAT_BITS, dtype=tf.int32, alg=_ALG
    )
    return tf.cast(bits, tf.float32) * (1.0 / _FLOAT_BITS)


def latent(rng_key: tf.Tensor, global_batch: int, per_replica: int, latent_dim: int) -> tf.Tensor:
    """Latent vectors, uniform in [-1, 1): float32 [per_replica, latent_dim]."""
    z = _uniform01([global_batch, latent_dim], rng_key) * 2.0 - 1.0
    return replica_rows(z, per_replica)


def unit_uniform(rng_key: tf.Tensor, global_batch: int, per_replica: int) -> tf.Tensor:
    """One uniform [0, 1) number per example: float32 [per_replica]."""
    return replica_rows(_uniform01([global_batch], rng_key), per_replica)


def shifts(
    rng_key: tf.Tensor,
    global_batch: int,
    per_replica: int,
    num_layers: int,
    radius: int,
    copies: int = 1,
) -> tf.Tensor:
    """Phase-shuffle shifts, integers in [-radius, radius].

    Args:
      copies: how many critic inputs of the global batch size are stacked in one
        critic call (for example 2 for [real; fake]); each gets its own draws.
    Returns:
      int32 [copies * per_replica, num_layers], this replica's rows of each copy
      stacked in the same order as the critic's input.
    """
    s = tf.random.stateless_uniform(
        [copies, global_batch, num_layers],
        rng_key,
        minval=-radius,
        maxval=radius + 1,
        dtype=tf.int32,
        alg=_ALG,
    )
    parts = [replica_rows(s[c], per_replica) for c in range(copies)]
    return tf.concat(parts, axis=0)


def labels(
    rng_key: tf.Tensor, global_batch: int, per_replica: int, cumulative_counts: tf.Tensor
) -> tf.Tensor:
    """Class labels drawn with the training set's class frequencies.

    Args:
      cumulative_counts: int32 [num_classes], running sum of each class's row count
        (the last entry is the number of rows).
    Returns:
      int32 [per_replica]: class c with probability count_c / rows.
    """
    total = cumulative_counts[-1]
    u = tf.random.stateless_uniform(
        [global_batch], rng_key, minval=0, maxval=total, dtype=tf.int32, alg=_ALG
    )
    # The class is the number of running sums at or below u (an inverse CDF made of
    # elementwise ops, which XLA compiles without a search).
    picked = tf.reduce_sum(tf.cast(u[:, None] >= cumulative_counts[None, :], tf.int32), axis=1)
    return replica_rows(picked, per_replica)
