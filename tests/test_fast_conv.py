"""The polyphase conv layers equal Keras's Conv1D / Conv1DTranspose to float32 round-off.

Checked: outputs, first-order gradients (input, kernel, bias), the WGAN-GP second-order
pattern (kernel gradient of the squared norm of an input gradient), the same under XLA,
and checkpoint compatibility with the plain Keras layers.
"""

import numpy as np
import pytest
import tensorflow as tf
import keras

from wavegan_dist.models.fast_conv import (
    PolyphaseConv1D,
    PolyphaseConv1DTranspose,
    choose_conv1d_method,
    choose_conv1d_transpose_method,
    polyphase_conv1d,
    same_padding_1d,
)

BATCH, C_IN, C_OUT = 2, 3, 5


def _pair(transpose, kernel_size, stride, length, method, padding="same", **kwargs):
    """(Keras layer, polyphase layer with the same weights, input, upstream weights)."""
    keras_cls, fast_cls = (
        (keras.layers.Conv1DTranspose, PolyphaseConv1DTranspose)
        if transpose
        else (keras.layers.Conv1D, PolyphaseConv1D)
    )
    args = dict(filters=C_OUT, kernel_size=kernel_size, strides=stride, padding=padding, **kwargs)
    ref, fast = keras_cls(**args), fast_cls(method=method, **args)
    rng = np.random.default_rng(kernel_size * 1000 + stride * 100 + length)
    x = tf.constant(rng.standard_normal((BATCH, length, C_IN)), tf.float32)
    ref.build(x.shape)
    fast.build(x.shape)
    # Non-zero bias so its gradient path and the output offset are both exercised.
    ref.set_weights([ref.kernel.numpy(), rng.standard_normal(C_OUT).astype("float32")])
    fast.set_weights(ref.get_weights())
    out_shape = ref.compute_output_shape(x.shape)
    r = tf.constant(rng.standard_normal(out_shape), tf.float32)
    return ref, fast, x, r


def _quantities(layer, x, r):
    """Output, grads of sum(tanh(y) * r) w.r.t. x, kernel, bias, and the WGAN-GP second order.

    The penalty-like term is ||d sum(tanh(y) * r) / dx||^2; its kernel gradient needs the
    layer differentiated twice (tanh makes the input gradient depend on x and the kernel).
    """
    with tf.GradientTape() as outer:
        with tf.GradientTape(persistent=True) as inner:
            inner.watch(x)
            y = layer(x)
            score = tf.reduce_sum(tf.tanh(y) * r)
        dx = inner.gradient(score, x)
        dkernel, dbias = inner.gradient(score, [layer.kernel, layer.bias])
        penalty = tf.reduce_sum(tf.square(dx))
    d2kernel = outer.gradient(penalty, layer.kernel)
    return dict(y=y, dx=dx, dkernel=dkernel, dbias=dbias, d2kernel=d2kernel)


def _assert_close(ref, got, tol):
    for name in ref:
        a, b = ref[name].numpy(), got[name].numpy()
        assert a.shape == b.shape, name
        scale = max(1.0, float(np.max(np.abs(a))))
        err = float(np.max(np.abs(a - b))) / scale
        assert err <= tol, f"{name}: relative error {err:.2e} > {tol:.0e}"


def _check(ref, fast, x, r, jit=False):
    want = _quantities(ref, x, r)
    got = (tf.function(_quantities, jit_compile=True) if jit else _quantities)(fast, x, r)
    _assert_close({"y": want["y"]}, {"y": got["y"]}, 1e-5)
    _assert_close(want, got, 1e-4)


@pytest.mark.parametrize("method", ["conv", "matmul"])
@pytest.mark.parametrize("length", [1024, 1000, 16])
@pytest.mark.parametrize("stride,kernel_size", [(4, 25), (4, 4), (2, 25), (2, 4)])
def test_conv1d_matches_keras(stride, kernel_size, length, method):
    _check(*_pair(False, kernel_size, stride, length, method))


@pytest.mark.parametrize("method", ["conv", "matmul"])
@pytest.mark.parametrize("length", [16, 64, 25])
@pytest.mark.parametrize("stride,kernel_size", [(4, 25), (4, 4), (2, 25), (2, 4)])
def test_conv1d_transpose_matches_keras(stride, kernel_size, length, method):
    _check(*_pair(True, kernel_size, stride, length, method))


@pytest.mark.parametrize("transpose", [False, True])
@pytest.mark.parametrize("method", ["conv", "matmul"])
@pytest.mark.parametrize("stride,kernel_size", [(4, 25), (2, 4)])
def test_matches_keras_under_xla(transpose, method, stride, kernel_size):
    _check(*_pair(transpose, kernel_size, stride, 64, method), jit=True)


@pytest.mark.parametrize("kernel_size,stride,length", [(25, 4, 1000), (5, 3, 17), (3, 4, 9)])
def test_conv1d_valid_padding(kernel_size, stride, length):
    _check(*_pair(False, kernel_size, stride, length, "conv", padding="valid"))


@pytest.mark.parametrize(
    "kernel_size,stride,length", [(1, 4, 7), (3, 5, 11), (8, 3, 10), (25, 4, 17)]
)
def test_odd_geometries(kernel_size, stride, length):
    """Kernels shorter than the stride, strides other than 2 and 4, lengths not a multiple."""
    _check(*_pair(False, kernel_size, stride, length, "matmul"))
    _check(*_pair(True, kernel_size, stride, length, "conv"))


@pytest.mark.parametrize("transpose", [False, True])
def test_fallbacks_and_auto_match_keras(transpose):
    # stride 1 and causal padding fall back to Keras's op; "auto" picks a fast path.
    _check(*_pair(transpose, 25, 4, 64, "auto"))
    _check(*_pair(transpose, 5, 1, 20, "auto"))
    if not transpose:
        _check(*_pair(False, 5, 4, 20, "auto", padding="causal"))


def test_same_padding_1d():
    assert same_padding_1d(16384, 25, 4) == (10, 11)
    assert same_padding_1d(1000, 4, 4) == (0, 0)
    assert same_padding_1d(1001, 4, 4) == (1, 2)
    assert same_padding_1d(5, 1, 4) == (0, 0)


def test_unknown_batch_size():
    fast = PolyphaseConv1D(C_OUT, 25, strides=4, padding="same", method="matmul")
    fast_t = PolyphaseConv1DTranspose(C_OUT, 25, strides=4, padding="same", method="matmul")
    fn = tf.function(
        lambda x: fast_t(fast(x)), input_signature=[tf.TensorSpec([None, 64, C_IN], tf.float32)]
    )
    assert fn(tf.zeros([3, 64, C_IN])).shape == (3, 64, C_OUT)


def test_method_choice_is_a_known_method():
    for shape in [(16384, 1, 64), (64, 512, 1024), (1024, 128, 256)]:
        assert choose_conv1d_method(*shape, 25, 4) in ("conv", "matmul", "keras")
        assert choose_conv1d_transpose_method(*shape, 25, 4) in ("conv", "matmul", "keras")
    with pytest.raises(ValueError):
        PolyphaseConv1D(4, 25, strides=4, method="fft")
    with pytest.raises(ValueError):
        polyphase_conv1d(tf.zeros([1, 8, 1]), tf.zeros([3, 1, 1]), 2, method="fft")


@pytest.mark.parametrize("transpose", [False, True])
def test_config_round_trip(transpose):
    cls = PolyphaseConv1DTranspose if transpose else PolyphaseConv1D
    layer = cls(7, 25, strides=4, padding="same", method="matmul", name="up")
    clone = cls.from_config(layer.get_config())
    assert clone.method == "matmul" and clone.strides == (4,) and clone.name == "up"


@pytest.mark.parametrize("transpose", [False, True])
def test_checkpoints_interchangeable_with_keras(tmp_path, transpose):
    ref, fast, x, _ = _pair(transpose, 25, 4, 64, "conv", name="conv_0")
    # Keras -> polyphase.
    path = tf.train.Checkpoint(layer=ref).write(str(tmp_path / "keras"))
    restored = _pair(transpose, 25, 4, 64, "conv", name="conv_0")[1]
    assert not np.allclose(restored.kernel.numpy(), ref.kernel.numpy())
    tf.train.Checkpoint(layer=restored).read(path).assert_consumed()
    np.testing.assert_array_equal(restored(x).numpy(), fast(x).numpy())
    # Polyphase -> Keras, and both write the same keys and shapes.
    fast_path = tf.train.Checkpoint(layer=fast).write(str(tmp_path / "fast"))
    keys = [(k, s) for k, s in tf.train.list_variables(path) if k != "_CHECKPOINTABLE_OBJECT_GRAPH"]
    fast_keys = [
        (k, s) for k, s in tf.train.list_variables(fast_path) if k != "_CHECKPOINTABLE_OBJECT_GRAPH"
    ]
    assert keys == fast_keys and len(keys) == 2
    ref2 = _pair(transpose, 25, 4, 64, "conv", name="conv_0")[0]
    tf.train.Checkpoint(layer=ref2).read(fast_path).assert_consumed()
    for a, b in zip(ref2.get_weights(), fast.get_weights()):
        np.testing.assert_array_equal(a, b)


# --- LeakyReLU without the second-order path (models/activations.py) ---


@pytest.mark.parametrize("slope", [0.2, 0.0])
def test_leaky_relu_matches_tf_to_second_order_and_drops_the_zero_path(slope):
    from wavegan_dist.models.activations import leaky_relu

    x = np.random.default_rng(0).standard_normal((4, 33, 3))
    x[:, ::5] = 0.0  # pre-activations exactly 0, where input and output tests could differ
    x = tf.constant(x, tf.float32)
    w = tf.Variable(np.random.default_rng(1).standard_normal((3, 3)), dtype=tf.float32)
    r = tf.constant(np.random.default_rng(2).standard_normal((4, 33, 3)), tf.float32)

    def quantities(act):
        # The penalty pattern: a weight gradient of the squared norm of an input gradient.
        with tf.GradientTape(persistent=True) as outer:
            outer.watch(x)
            with tf.GradientTape() as inner:
                inner.watch(x)
                pre = tf.einsum("blc,cd->bld", x, w)
                y = act(pre, slope)
                # Linear after the activation, as in the critic (convs and a dense):
                # the penalty's only dependence on `pre` is LeakyReLU's derivative.
                score = tf.reduce_sum(y * r)
            dx = inner.gradient(score, x)
            penalty = tf.reduce_sum(tf.square(dx))
        return y, dx, outer.gradient(penalty, w), outer.gradient(penalty, pre)

    want = quantities(lambda v, a: tf.nn.leaky_relu(v, alpha=a))
    got = quantities(leaky_relu)
    for a, b in zip(want[:3], got[:3]):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-5, atol=1e-6)
    # TensorFlow's own gradient sends explicit zeros into the forward pre-activations
    # (work autodiff then pushes back through the layer); ours has no such path.
    assert want[3] is not None and not np.any(want[3].numpy())
    assert got[3] is None


def test_leaky_relu_refuses_a_negative_slope():
    from wavegan_dist.models.activations import leaky_relu

    with pytest.raises(ValueError, match="negative_slope"):
        leaky_relu(tf.ones([2]), -0.1)


# --- im2col / col2im (the matmul method's windows) ---


@pytest.mark.parametrize("jit", [False, True])
@pytest.mark.parametrize("taps,last", [(7, 2), (7, 5), (1, 3), (3, 5)])
def test_im2col_and_col2im_are_adjoint_and_each_others_gradient(taps, last, jit):
    from wavegan_dist.models.fast_conv import _col2im, _im2col

    out_len, channels = 6, 5
    length = out_len + taps - 1
    rng = np.random.default_rng(taps * 10 + last)
    x = tf.constant(rng.standard_normal((2, length, channels)), tf.float32)
    d = tf.constant(rng.standard_normal((2, out_len, (taps - 1) * channels + last)), tf.float32)
    want_cols = np.concatenate(
        [x.numpy()[:, q : q + out_len, : channels if q < taps - 1 else last] for q in range(taps)],
        axis=-1,
    )

    @tf.function(jit_compile=jit)
    def quantities(x, d):
        with tf.GradientTape() as outer:
            outer.watch(d)
            with tf.GradientTape() as inner:
                inner.watch(x)
                cols = _im2col(x, taps, out_len, length, channels, last)
                y = tf.reduce_sum(cols * d)
            dx = inner.gradient(y, x)  # col2im(d)
            z = tf.reduce_sum(dx * x)
        return cols, dx, _col2im(d, taps, out_len, length, channels, last), outer.gradient(z, d)

    cols, dx, col2im, ddx = quantities(x, d)
    np.testing.assert_array_equal(cols.numpy(), want_cols)
    # <im2col(x), d> = <x, col2im(d)>: the adjoint, and the gradient of the first.
    np.testing.assert_allclose(
        np.sum(want_cols * d.numpy()), np.sum(x.numpy() * col2im.numpy()), rtol=1e-5
    )
    np.testing.assert_allclose(dx.numpy(), col2im.numpy(), rtol=1e-6, atol=1e-6)
    # d/dd <x, col2im(d)> = im2col(x): the gradient of the gradient.
    np.testing.assert_allclose(ddx.numpy(), want_cols, rtol=1e-6, atol=1e-6)


# --- the matmul pair (the matmul method's products) ---


@pytest.mark.parametrize("jit", [False, True])
@pytest.mark.parametrize("rows", [4, 64])  # 4 * 16 <= 96: the transposed-copy route
def test_matmul_pair_equals_tf_matmul_to_second_order(rows, jit):
    from wavegan_dist.models.fast_conv import FEW_ROWS_RATIO, _matmul, _matmul_by_transpose

    depth, width = 96, 40
    assert (rows * FEW_ROWS_RATIO <= depth) == (rows == 4)
    rng = np.random.default_rng(rows)
    a = tf.constant(rng.standard_normal((rows, depth)), tf.float32)
    w = tf.constant(rng.standard_normal((depth, width)), tf.float32)
    d = tf.constant(rng.standard_normal((rows, depth)), tf.float32)
    wt = tf.constant(rng.standard_normal((width, depth)), tf.float32)

    def quantities(forward, transposed, a, w, d, wt):
        # Value, both first-order gradients, and the penalty's pattern: the weight
        # gradient of the squared norm of an input gradient, for each of the pair.
        with tf.GradientTape(persistent=True) as outer:
            outer.watch([a, w, d, wt])
            with tf.GradientTape(persistent=True) as inner:
                inner.watch([a, d])
                y = forward(a, w)
                z = transposed(d, wt)
                score = tf.reduce_sum(tf.tanh(y)) + tf.reduce_sum(tf.tanh(z))
            da, dd = inner.gradient(score, [a, d])
            penalty = tf.reduce_sum(tf.square(da)) + tf.reduce_sum(tf.square(dd))
        first = outer.gradient(score, [w, wt])
        second = outer.gradient(penalty, [w, wt, a, d])
        return [y, z, da, dd] + first + second

    plain = quantities(tf.matmul, lambda d, w: tf.matmul(d, w, transpose_b=True), a, w, d, wt)
    run = tf.function(quantities, jit_compile=True) if jit else quantities
    fast = run(_matmul, _matmul_by_transpose, a, w, d, wt)
    names = ["y", "z", "da", "dd", "dw", "dwt", "d2w", "d2wt", "d2a", "d2d"]
    _assert_close(dict(zip(names, plain)), dict(zip(names, fast)), 1e-5)


# --- whole networks: kernels="fast" is the same function as kernels="reference" ---


def _critic_and_generator_quantities(generator, critic, batch, spec, seed=0):
    from wavegan_dist import losses

    rng = np.random.default_rng(seed)
    z = tf.constant(rng.uniform(-1, 1, (batch, spec.latent_dim)), tf.float32)
    real = tf.constant(rng.uniform(-1, 1, (batch, spec.slice_len, 1)), tf.float32)
    alpha = tf.constant(rng.uniform(0, 1, batch), tf.float32)
    shifts = tf.constant(rng.integers(-2, 3, (3 * batch, critic.num_shuffle_layers)), tf.int32)
    fake = generator(z)
    x_hat = losses.interpolate(real, fake, alpha)
    with tf.GradientTape() as tape:
        scores = critic(tf.concat([real, fake], 0), shifts[: 2 * batch])
        with tf.GradientTape() as gp_tape:
            gp_tape.watch(x_hat)
            d_hat = critic(x_hat, shifts[2 * batch :])
        penalty = losses.gradient_penalty(gp_tape.gradient(d_hat, x_hat))
        loss = tf.reduce_mean(losses.critic_loss(scores[:batch], scores[batch:], penalty, 10.0))
    critic_grads = tape.gradient(loss, critic.trainable_variables)
    with tf.GradientTape() as tape:
        g_loss = tf.reduce_mean(losses.generator_loss(critic(generator(z), shifts[:batch])))
    generator_grads = tape.gradient(g_loss, generator.trainable_variables)
    return [fake, loss, g_loss] + critic_grads + generator_grads


@pytest.mark.parametrize("slice_len", [1024, 2048])
def test_fast_networks_equal_the_plain_keras_networks(slice_len):
    """Outputs, the WGAN-GP critic loss and every gradient of both updates."""
    import dataclasses

    from wavegan_dist import models
    from wavegan_dist.models.spec import ModelSpec

    fast_spec = ModelSpec(slice_len=slice_len, dim=4)
    plain_spec = dataclasses.replace(fast_spec, kernels="reference")
    fast_g, fast_d = models.build_models(fast_spec)
    plain_g, plain_d = models.build_models(plain_spec)
    assert isinstance(fast_d.conv_0, PolyphaseConv1D)
    assert isinstance(fast_g.upconv_0, PolyphaseConv1DTranspose)
    assert type(plain_d.conv_0) is keras.layers.Conv1D
    # Same initialisers and seeds: the very same weights, so checkpoints carry over.
    for a, b in zip(
        fast_g.get_weights() + fast_d.get_weights(), plain_g.get_weights() + plain_d.get_weights()
    ):
        np.testing.assert_array_equal(a, b)
    want = _critic_and_generator_quantities(plain_g, plain_d, 3, plain_spec)
    got = _critic_and_generator_quantities(fast_g, fast_d, 3, fast_spec)
    assert len(want) == len(got)
    for i, (a, b) in enumerate(zip(want, got)):
        a, b = a.numpy(), b.numpy()
        scale = max(1e-3, float(np.max(np.abs(a))))
        assert float(np.max(np.abs(a - b))) / scale < 1e-4, f"quantity {i}"
