"""Tests for wavegan_dist.models: architecture, phase shuffle, determinism, checkpoints, gradients."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from conftest import run_module  # noqa: E402
from wavegan_dist.errors import UserError  # noqa: E402
from wavegan_dist.models import (  # noqa: E402
    ModelSpec,
    WaveGANCritic,
    WaveGANGenerator,
    build_models,
    layer_strides,
)
from wavegan_dist.models.phase_shuffle import phase_shuffle  # noqa: E402

TINY = dict(slice_len=1024, dim=4, kernel_len=25, latent_dim=100, phase_shuffle=2)


def _build(**changes):
    return build_models(ModelSpec(**{**TINY, **changes}))


@pytest.fixture(scope="module")
def tiny():
    return _build(seed=0)


def _random_shifts(batch, layers, radius, seed=0):
    return tf.constant(
        np.random.default_rng(seed).integers(-radius, radius + 1, (batch, layers)), tf.int32
    )


def _reference_shuffle(x, shifts, radius):
    padded = np.pad(x, ((0, 0), (radius, radius), (0, 0)), mode="reflect")
    length = x.shape[1]
    return np.stack([padded[b, radius - s : radius - s + length] for b, s in enumerate(shifts)])


# Architecture.


def test_default_parameter_counts():
    generator, critic = _build(slice_len=16384, dim=64)
    assert generator.count_params() == 19_065_345
    assert critic.count_params() == 17_427_969


@pytest.mark.parametrize(
    "slice_len,strides",
    [
        (1024, [4, 4, 4]),
        (2048, [4, 4, 4, 2]),
        (4096, [4, 4, 4, 4]),
        (16384, [4, 4, 4, 4, 4]),
        (32768, [4, 4, 4, 4, 4, 2]),
        (65536, [4, 4, 4, 4, 4, 4]),
    ],
)
def test_layer_strides(slice_len, strides):
    assert layer_strides(slice_len) == strides


@pytest.mark.parametrize(
    "slice_len", [0, -1024, 16, 32, 64 * 3, 1000, 8192 + 16, 16384 * 3, 2**20 * 3]
)
def test_bad_slice_len_raises_user_error(slice_len):
    with pytest.raises(UserError, match=f"--slice_len={slice_len} is not supported"):
        layer_strides(slice_len)
    with pytest.raises(UserError):
        WaveGANGenerator(ModelSpec(slice_len=slice_len))
    with pytest.raises(UserError):
        WaveGANCritic(ModelSpec(slice_len=slice_len))


@pytest.mark.parametrize(
    "slice_len,dim", [(1024, 4), (4096, 4), (16384, 2), (32768, 2), (65536, 2)]
)
def test_output_shapes(slice_len, dim):
    generator, critic = _build(slice_len=slice_len, dim=dim, seed=1)
    z = tf.random.stateless_uniform([1, 100], seed=[1, 2], minval=-1.0, maxval=1.0)
    wave = generator(z)
    assert wave.shape == (1, slice_len, 1) and wave.dtype == tf.float32
    shifts = _random_shifts(1, critic.num_shuffle_layers, 2)
    score = critic(wave, shifts)
    assert score.shape == (1,) and score.dtype == tf.float32


@pytest.mark.parametrize(
    "slice_len,dim,start_width",
    [(1024, 4, 16), (4096, 4, 32), (16384, 64, 1024), (32768, 64, 2048), (65536, 64, 2048)],
)
def test_layer_widths(slice_len, dim, start_width):
    # Unbuilt models: only the layer configuration is checked, so full-size widths are cheap.
    strides = layer_strides(slice_len)
    n = len(strides)
    generator = WaveGANGenerator(ModelSpec(slice_len=slice_len, dim=dim))
    critic = WaveGANCritic(ModelSpec(slice_len=slice_len, dim=dim))
    assert generator.start_width == start_width == dim * 2 ** (n - 1)
    assert generator.dense.units == 16 * start_width
    gen_widths = [layer.filters for layer in generator.upconvs]
    assert gen_widths == [start_width // 2**i for i in range(1, n)] + [1]
    assert gen_widths[-2] == dim
    assert [layer.strides[0] for layer in generator.upconvs] == strides
    assert [layer.filters for layer in critic.convs] == [dim * 2**i for i in range(n)]
    assert critic.convs[-1].filters == start_width
    assert [layer.strides[0] for layer in critic.convs] == strides
    assert critic.num_shuffle_layers == min(4, n - 1)  # after conv_0..conv_3 at most
    assert (
        WaveGANCritic(ModelSpec(slice_len=slice_len, dim=dim, phase_shuffle=0)).num_shuffle_layers
        == 0
    )


def test_generator_output_in_range(tiny):
    generator, _ = tiny
    z = tf.random.stateless_normal([8, 100], seed=[3, 4]) * 10.0
    wave = generator(z).numpy()
    assert np.all(np.abs(wave) <= 1.0)
    assert wave.std() > 0


# Phase shuffle.


def test_phase_shuffle_matches_numpy_reference():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 17, 3)).astype(np.float32)
    shifts = np.array([-2, -1, 0, 1, 2], np.int32)
    out = phase_shuffle(tf.constant(x), tf.constant(shifts), 2).numpy()
    assert out.shape == x.shape
    np.testing.assert_array_equal(out, _reference_shuffle(x, shifts, 2))
    for b, s in enumerate(shifts):  # each example moved by its own amount, later for s > 0
        lo, hi = max(s, 0), 17 + min(s, 0)
        np.testing.assert_array_equal(out[b, lo:hi], x[b, lo - s : hi - s])


def test_phase_shuffle_reflects_edges():
    x = tf.reshape(tf.range(8, dtype=tf.float32), [1, 8, 1])
    x = tf.concat([x, x], axis=0)
    out = phase_shuffle(x, tf.constant([2, -2]), 2).numpy()[..., 0]
    np.testing.assert_array_equal(out[0], [2, 1, 0, 1, 2, 3, 4, 5])
    np.testing.assert_array_equal(out[1], [2, 3, 4, 5, 6, 7, 6, 5])


def test_phase_shuffle_identity_cases():
    x = tf.random.stateless_normal([3, 16, 2], seed=[5, 6])
    np.testing.assert_array_equal(phase_shuffle(x, tf.zeros([3], tf.int32), 2), x)
    np.testing.assert_array_equal(phase_shuffle(x, None, 2), x)
    np.testing.assert_array_equal(phase_shuffle(x, tf.constant([1, -1, 1]), 0), x)


@pytest.mark.slow
def test_phase_shuffle_compiles_under_xla():
    x = tf.random.stateless_normal([6, 32, 4], seed=[7, 8])
    shifts = tf.constant([-3, -2, 0, 1, 2, 3], tf.int32)
    compiled = tf.function(lambda x, s: phase_shuffle(x, s, 3), jit_compile=True)
    expected = _reference_shuffle(x.numpy(), shifts.numpy(), 3)
    np.testing.assert_array_equal(compiled(x, shifts), expected)
    np.testing.assert_array_equal(phase_shuffle(x, shifts, 3), expected)


# Critic.


def test_critic_zero_shifts_equal_no_shuffle(tiny):
    _, critic = tiny
    x = tf.random.stateless_uniform([4, 1024, 1], seed=[9, 10], minval=-1.0, maxval=1.0)
    zeros = tf.zeros([4, critic.num_shuffle_layers], tf.int32)
    np.testing.assert_array_equal(critic(x, zeros), critic(x))
    shifted = critic(x, _random_shifts(4, critic.num_shuffle_layers, 2, seed=1)).numpy()
    assert not np.allclose(shifted, critic(x).numpy())


@pytest.mark.slow
def test_critic_compiles_under_xla(tiny):
    _, critic = tiny
    x = tf.random.stateless_uniform([4, 1024, 1], seed=[11, 12], minval=-1.0, maxval=1.0)
    shifts = _random_shifts(4, critic.num_shuffle_layers, 2, seed=2)
    compiled = tf.function(lambda x, s: critic(x, s), jit_compile=True)
    np.testing.assert_allclose(compiled(x, shifts), critic(x, shifts), rtol=1e-4, atol=1e-5)


# Determinism and checkpoints.


def _weights(model):
    return [w.numpy() for w in model.weights]


def test_seeded_initialisation_is_deterministic():
    keras.utils.set_random_seed(1)
    g1, c1 = _build(seed=3)
    keras.utils.set_random_seed(2)  # global RNG state must not matter
    tf.random.uniform([10])
    g2, c2 = _build(seed=3)
    g3, c3 = _build(seed=4)
    for a, b in [(g1, g2), (c1, c2)]:
        for wa, wb in zip(_weights(a), _weights(b), strict=True):
            np.testing.assert_array_equal(wa, wb)
    for a, b in [(g1, g3), (c1, c3)]:
        assert not np.array_equal(a.dense.kernel.numpy(), b.dense.kernel.numpy())
    # Kernels start random (Glorot), biases at zero.
    assert all(np.any(layer.kernel.numpy() != 0) for layer in g1.upconvs + c1.convs)
    assert all(not np.any(layer.bias.numpy()) for layer in g1.upconvs + c1.convs)


def test_checkpoint_round_trip(tmp_path):
    g1, c1 = _build(seed=5)
    path = tf.train.Checkpoint(generator=g1, critic=c1).save(str(tmp_path / "ckpt"))
    saved = [
        name
        for name, _ in tf.train.list_variables(path)
        if name.startswith(("generator/", "critic/"))
    ]
    assert len(saved) == len(g1.weights) + len(c1.weights)

    g2, c2 = _build(seed=6)
    assert not np.array_equal(g1.upconvs[0].kernel.numpy(), g2.upconvs[0].kernel.numpy())
    tf.train.Checkpoint(generator=g2, critic=c2).restore(path).assert_consumed()
    for a, b in [(g1, g2), (c1, c2)]:
        for wa, wb in zip(_weights(a), _weights(b), strict=True):
            np.testing.assert_array_equal(wa, wb)


# Gradients (WGAN-GP needs double backprop through phase shuffle).


def _gradient_penalty(critic, x, shifts, unconnected=tf.UnconnectedGradients.NONE):
    with tf.GradientTape() as outer:
        with tf.GradientTape() as inner:
            inner.watch(x)
            scores = critic(x, shifts)
        grad_x = inner.gradient(scores, x)
        norms = tf.sqrt(tf.reduce_sum(tf.square(grad_x), axis=[1, 2]) + 1e-12)
        penalty = tf.reduce_mean(tf.square(norms - 1.0))
    # The underlying tf.Variables (`.value`), not the Keras 3 wrappers: with
    # unconnected_gradients=ZERO, TF's tape reads `var.dtype` expecting a tf.DType and
    # fails on the Keras variable's string dtype ('str' object has no attribute '_type_enum').
    variables = [v.value for v in critic.trainable_variables]
    grads = outer.gradient(penalty, variables, unconnected_gradients=unconnected)
    return grad_x, penalty, grads


def test_phase_shuffle_gradient_is_the_adjoint():
    x = tf.random.stateless_normal([2, 10, 1], seed=[13, 14])
    shifts = tf.constant([2, -1])
    with tf.GradientTape() as tape:
        tape.watch(x)
        out = phase_shuffle(x, shifts, 2)
    jac = tape.batch_jacobian(out, x).numpy()[:, :, 0, :, 0]  # [B, L_out, L_in]
    # Shuffling unit impulse k gives column k of the Jacobian.
    impulses = np.eye(10, dtype=np.float32)[:, :, None]
    for b, s in enumerate(shifts.numpy()):
        expected = _reference_shuffle(impulses, [s] * 10, 2)[..., 0].T
        np.testing.assert_array_equal(jac[b], expected)


def test_critic_first_and_second_order_gradients(tiny):
    _, critic = tiny
    x = tf.random.stateless_uniform([3, 1024, 1], seed=[15, 16], minval=-1.0, maxval=1.0)
    shifts = _random_shifts(3, critic.num_shuffle_layers, 2, seed=3)
    grad_x, penalty, grads = _gradient_penalty(critic, x, shifts)
    assert grad_x is not None and grad_x.shape == x.shape
    assert np.all(np.isfinite(grad_x.numpy())) and np.any(grad_x.numpy() != 0)
    assert np.isfinite(penalty.numpy())
    assert len(grads) == len(critic.trainable_variables)
    # d critic / d x does not depend on the output bias, so the penalty alone gives it
    # no gradient (None). The conv biases move it only through LeakyReLU's piecewise-
    # constant slope: a zero derivative, which kernels="fast" leaves out of the graph
    # (None) and Keras's LeakyReLU computes as zeros. Every kernel is connected through
    # double backprop.
    conv_biases = [conv.bias for conv in critic.convs]
    for var, grad in zip(critic.trainable_variables, grads, strict=True):
        if var is critic.dense.bias:
            assert grad is None
        elif any(var is b for b in conv_biases):
            assert grad is None or not np.any(grad.numpy()), var.path
        else:
            assert grad is not None, var.path
            assert np.all(np.isfinite(grad.numpy())), var.path
    for layer in critic.convs + [critic.dense]:
        grad = grads[[v is layer.kernel for v in critic.trainable_variables].index(True)]
        assert np.any(grad.numpy() != 0), layer.name


@pytest.mark.slow
def test_gradient_penalty_compiles_under_xla(tiny):
    _, critic = tiny
    x = tf.random.stateless_uniform([3, 1024, 1], seed=[17, 18], minval=-1.0, maxval=1.0)
    shifts = _random_shifts(3, critic.num_shuffle_layers, 2, seed=4)
    zero = tf.UnconnectedGradients.ZERO
    compiled = tf.function(lambda x, s: _gradient_penalty(critic, x, s, zero)[1:], jit_compile=True)
    penalty_xla, grads_xla = compiled(x, shifts)
    _, penalty, grads = _gradient_penalty(critic, x, shifts, zero)
    np.testing.assert_allclose(penalty_xla, penalty, rtol=1e-3)
    for a, b in zip(grads_xla, grads, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)


@pytest.mark.slow
def test_layer_table_cli_prints_the_papers_totals():
    proc = run_module("models", "--model=wavegan", "--slice_len=16384", "--dim=64", timeout=120)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    out = proc.stdout
    assert "upconv_4  Conv1DTranspose  (16384, 1)         1,601  tanh" in out
    assert "conv_0   Conv1D   (4096, 64)         1,664  LeakyReLU 0.2, phase shuffle ±2" in out
    assert "total parameters: 19,065,345" in out and "total parameters: 17,427,969" in out
