"""WGAN-GP losses (Gulrajani et al. 2017) as WaveGAN trains with them, and the
auxiliary classifier's cross-entropy (--aux_classifier).

Functions return PER-EXAMPLE values; the training step averages them over the
global batch with tf.nn.compute_average_loss, so summing replicas' results gives
the global mean whatever the replica count.
"""

from __future__ import annotations

import tensorflow as tf

GP_EPSILON = 1e-10  # keeps the norm's gradient finite when a gradient is exactly 0


def gradient_penalty(grads: tf.Tensor) -> tf.Tensor:
    """(||g||_2 - 1)^2 per example.

    Args:
      grads: [B, T, C] gradient of the critic's output w.r.t. each interpolate.
    Returns:
      [B] float32: the penalty, with the norm taken over time and channels.
    """
    grads = tf.cast(grads, tf.float32)
    norm = tf.sqrt(
        tf.reduce_sum(tf.square(grads), axis=list(range(1, grads.shape.rank))) + GP_EPSILON
    )
    return tf.square(norm - 1.0)


def critic_loss(
    d_real: tf.Tensor, d_fake: tf.Tensor, penalty: tf.Tensor, gp_weight: float
) -> tf.Tensor:
    """D(G(z)) - D(x) + lambda * penalty, per example: [B] from three [B] tensors."""
    return d_fake - d_real + gp_weight * penalty


def wasserstein_estimate(d_real: tf.Tensor, d_fake: tf.Tensor) -> tf.Tensor:
    """D(x) - D(G(z)) per example, [B]; its mean estimates the Wasserstein distance."""
    return d_real - d_fake


def generator_loss(d_fake: tf.Tensor) -> tf.Tensor:
    """-D(G(z)) per example: [B] from [B]."""
    return -d_fake


def interpolate(real: tf.Tensor, fake: tf.Tensor, alpha: tf.Tensor) -> tf.Tensor:
    """x + alpha (G(z) - x), with alpha [B] broadcast over time and channels; [B, T, C]."""
    alpha = tf.reshape(alpha, [-1] + [1] * (real.shape.rank - 1))
    return real + alpha * (fake - real)


def auxiliary_classification(logits: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
    """Cross-entropy of the critic's auxiliary classifier, per example.

    Args:
      logits: float32 [B, num_classes].
      labels: int [B], each clip's class (the real label, or the one the generator was
        asked for).
    Returns:
      [B] float32.
    """
    return tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=tf.cast(labels, tf.int32), logits=tf.cast(logits, tf.float32)
    )
