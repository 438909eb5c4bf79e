"""FusedAdam (one TensorFlow kernel per variable) takes Keras Adam's steps exactly."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from wavegan_dist import strategy as strategies
from wavegan_dist.training.optimizers import FusedAdam


def _train(strategy, optimizer_cls, jit=False, steps=4, **adam_args):
    """Weights and moments after `steps` Adam steps on a fixed quadratic-ish loss."""
    rng = np.random.default_rng(0)
    init = [rng.standard_normal((7, 5)).astype("float32"), rng.standard_normal(5).astype("float32")]
    data = tf.constant(rng.standard_normal((4, 7)), tf.float32)
    with strategy.scope():
        kernel, bias = keras.Variable(init[0]), keras.Variable(init[1])
        opt = optimizer_cls(1e-2, beta_1=0.5, beta_2=0.9, **adam_args)
        opt.build([kernel, bias])

    def replica_step():
        with tf.GradientTape() as tape:
            out = tf.tanh(tf.matmul(data, kernel.value) + bias.value)
            loss = tf.reduce_sum(tf.square(out - 0.3)) / strategy.num_replicas_in_sync
        grads = tape.gradient(loss, [kernel.value, bias.value])
        opt.apply_gradients(zip(grads, [kernel, bias]))

    step = tf.function(lambda: strategy.run(tf.function(replica_step, jit_compile=jit)))
    for _ in range(steps):
        step()
    return [np.asarray(v.numpy()) for v in [kernel, bias] + list(opt.variables)]


@pytest.mark.parametrize("replicas,jit", [(1, False), (2, False), (1, True)])
def test_fused_adam_equals_keras_adam(replicas, jit):
    strategy = (
        strategies.make_strategy("cpu")
        if replicas == 1
        else strategies.make_strategy("mirrored", cpu_replicas=2)
    )
    want = _train(strategy, keras.optimizers.Adam, jit)
    got = _train(strategy, FusedAdam, jit)
    # kernel, bias, the step count and learning rate, and two moments of each weight
    assert len(want) == len(got) == 8
    for a, b in zip(want, got):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)
    # And the weights moved: the comparison is not between two untouched copies.
    assert np.abs(got[0] - np.random.default_rng(0).standard_normal((7, 5))).max() > 1e-2


def test_fused_adam_takes_its_epsilon():
    """The fused kernel adds epsilon where Keras does: lr_t * m / (sqrt(v) + epsilon)."""
    cpu = strategies.make_strategy("cpu")
    want = _train(cpu, keras.optimizers.Adam, epsilon=0.05)
    got = _train(cpu, FusedAdam, epsilon=0.05)
    for a, b in zip(want, got):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)
    # An epsilon this large shortens the steps: the comparison sees epsilon at all.
    assert np.abs(got[0] - _train(cpu, FusedAdam, epsilon=1e-8)[0]).max() > 1e-3


def test_fused_adam_keeps_keras_adam_variables_and_config():
    var = keras.Variable(np.ones((3,), "float32"))
    fused, plain = FusedAdam(1e-3, name="adam"), keras.optimizers.Adam(1e-3, name="adam")
    fused.build([var])
    plain.build([var])
    assert [v.path for v in fused.variables] == [v.path for v in plain.variables]
    assert fused.get_config() == plain.get_config()
    assert FusedAdam(1e-3).name.startswith("adam")
