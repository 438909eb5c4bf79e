"""Phase shuffle (WaveGAN, Donahue et al. 2019, section 3.3) with externally given shifts.

The shifts are inputs rather than drawn here so that the training step can derive
them from stateless RNG keyed by global example index: the critic then sees the
same shifts for an example whatever the number of replicas.
"""

import tensorflow as tf


def phase_shuffle(x, shifts, radius):
    """Shifts each example of `x` in time by its own integer amount, reflecting at the edges.

    Convention: a positive shift moves content later in time,
    `out[b, t] = x[b, t - shifts[b]]`, where indices that fall outside [0, L) are
    reflected about the edge sample without repeating it (numpy/tf "reflect"), e.g.
    with shift +2 the output starts `x[2], x[1], x[0], x[1], ...`.

    One gather with reflected source indices (no padded copy); all shapes are static
    for a static L, so it compiles under XLA, and it is differentiable to any order.

    Args:
      x: float tensor [B, L, C]; L must be greater than `radius`.
      shifts: int tensor [B] with values in [-radius, radius], or None.
      radius: Python int >= 0, the largest allowed |shift|.

    Returns:
      Tensor [B, L, C], same dtype as `x`. Identity if `radius` is 0 or `shifts` is None.
    """
    if radius == 0 or shifts is None:
        return x
    x = tf.convert_to_tensor(x)
    length = x.shape[1]
    if length is None:
        length = tf.shape(x)[1]
    # out[t] = x[t - s], with an index outside [0, L) reflected about the edge sample:
    # one gather straight from x (no padded copy); needs L > radius.
    source = tf.range(length, dtype=tf.int32)[None, :] - tf.cast(shifts, tf.int32)[:, None]
    source = tf.abs(source)  # -i -> i
    source = (length - 1) - tf.abs((length - 1) - source)  # L - 1 + i -> L - 1 - i
    return tf.gather(x, source, axis=1, batch_dims=1)
