"""Per-example randomness is the same for any replica count; WGAN-GP loss arithmetic."""

import numpy as np
import tensorflow as tf

from wavegan_dist import strategy as strategies
from wavegan_dist import losses, noise


def _draws(strategy, fn):
    out = strategy.run(tf.function(fn))
    return np.concatenate([t.numpy() for t in strategy.experimental_local_results(out)])


def test_global_draws_are_split_identically_over_replicas():
    one = tf.distribute.OneDeviceStrategy("/cpu:0")
    two = strategies.mirrored(["/cpu:0", "/cpu:1"])
    k = noise.key(7, tf.constant(3, tf.int64), noise.Streams.critic_latent(1))
    for fn_of in [
        lambda p: lambda: noise.latent(k, 8, p, 5),
        lambda p: lambda: noise.unit_uniform(k, 8, p),
    ]:
        np.testing.assert_array_equal(_draws(one, fn_of(8)), _draws(two, fn_of(4)))
    # Shifts with copies: each replica stacks its rows of each copy.
    a = _draws(one, lambda: noise.shifts(k, 8, 8, 3, 2, copies=2)).reshape(2, 8, 3)
    b = _draws(two, lambda: noise.shifts(k, 8, 4, 3, 2, copies=2)).reshape(2, 2, 4, 3)
    np.testing.assert_array_equal(a, np.concatenate([b[0], b[1]], axis=1))
    assert a.min() == -2 and a.max() == 2


def test_draws_are_the_same_under_xla():
    k = noise.key(0, tf.constant(3, tf.int64), 1)

    def draws():
        return (
            noise.latent(k, 8, 8, 5),
            noise.unit_uniform(k, 8, 8),
            noise.shifts(k, 8, 8, 3, 2, 3),
        )

    for plain, compiled in zip(draws(), tf.function(draws, jit_compile=True)()):
        np.testing.assert_array_equal(plain.numpy(), compiled.numpy())
    z = draws()[0].numpy()
    assert z.min() >= -1.0 and z.max() < 1.0 and z.std() > 0.4


def test_streams_and_steps_give_different_numbers():
    z = lambda step, stream: noise.latent(
        noise.key(0, tf.constant(step, tf.int64), stream), 4, 4, 3
    )
    assert not np.allclose(z(0, 0), z(1, 0))
    assert not np.allclose(z(0, 0), z(0, 1))
    np.testing.assert_array_equal(z(5, 2), z(5, 2))


def test_gradient_penalty_per_example():
    g = np.zeros([3, 4, 1], np.float32)
    g[0, 0, 0] = 1.0  # norm 1 -> 0
    g[1, :, 0] = 1.5  # norm 3 -> 4
    pen = losses.gradient_penalty(tf.constant(g)).numpy()
    np.testing.assert_allclose(pen, [0.0, 4.0, 1.0], atol=1e-4)


def test_losses_and_interpolation():
    d_real, d_fake, pen = tf.constant([2.0, 1.0]), tf.constant([0.5, -1.0]), tf.constant([0.1, 0.0])
    np.testing.assert_allclose(losses.critic_loss(d_real, d_fake, pen, 10.0), [-0.5, -2.0])
    np.testing.assert_allclose(losses.wasserstein_estimate(d_real, d_fake), [1.5, 2.0])
    np.testing.assert_allclose(losses.generator_loss(d_fake), [-0.5, 1.0])
    real, fake = tf.zeros([2, 3, 1]), tf.ones([2, 3, 1])
    x = losses.interpolate(real, fake, tf.constant([0.25, 1.0])).numpy()
    np.testing.assert_allclose(x[:, :, 0], [[0.25] * 3, [1.0] * 3])


def test_auxiliary_classification_is_the_cross_entropy_of_the_requested_label():
    logits = np.array([[2.0, 0.0, -1.0], [0.0, 0.0, 0.0]], np.float32)
    labels = np.array([0, 2])
    expected = [
        -np.log(np.exp(2.0) / (np.exp(2.0) + 1.0 + np.exp(-1.0))),
        np.log(3.0),
    ]
    got = losses.auxiliary_classification(tf.constant(logits), tf.constant(labels)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-6)
