"""The 2-D model (seed2d), WaveGAN's options and label conditioning, built for real."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from wavegan_dist.config import make_config  # noqa: E402
from wavegan_dist.errors import UserError  # noqa: E402
from wavegan_dist.models import ModelSpec, Seed2DCritic, Seed2DGenerator, build_models  # noqa: E402
from wavegan_dist.models import frame_side  # noqa: E402


def _z(batch, latent_dim=100, seed=1):
    return tf.random.stateless_uniform([batch, latent_dim], [seed, 2], -1.0, 1.0)


def _conv_params(kernel, fan_in, filters, bias=True):
    return kernel * fan_in * filters + (filters if bias else 0)


# seed2d: generator and critic agreeing on one square frame.


@pytest.mark.parametrize("slice_len,side", [(1024, 32), (4096, 64), (16384, 128), (65536, 256)])
def test_seed2d_frame_side_and_shapes(slice_len, side):
    assert frame_side(slice_len) == side
    generator, critic = build_models(
        ModelSpec(model="seed2d", slice_len=slice_len, dim=2, kernel_len=4, phase_shuffle=0)
    )
    wave = generator(_z(2))
    assert wave.shape == (2, slice_len, 1) and np.abs(wave.numpy()).max() <= 1.0
    assert critic(wave).shape == (2,)
    assert critic.num_shuffle_layers == 0


@pytest.mark.parametrize("slice_len", [0, 512, 2048, 16384 * 2, 48 * 48, 100, 16 * 16])
def test_seed2d_refuses_non_square_frames(slice_len):
    with pytest.raises(UserError, match=f"--slice_len={slice_len} is not supported by seed2d"):
        frame_side(slice_len)


def test_seed2d_default_layers_and_matching_shapes():
    spec = make_config("paper", model="seed2d").model_spec()
    assert (spec.slice_len, spec.dim, spec.kernel_len, spec.phase_shuffle) == (16384, 64, 4, 0)
    generator, critic = build_models(spec)
    # Generator: dense 256, reshape 16x16x1, Conv2DTranspose 128, 64, 1 (4x4, stride 2).
    convs = [generator.upconv_0, generator.upconv_1, generator.upconv_2]
    assert generator.dense.units == 256
    assert [c.filters for c in convs] == [128, 64, 1]
    assert all(c.kernel_size == (4, 4) and c.strides == (2, 2) for c in convs)
    # Critic: Conv2D 64, 128, 256 (4x4, stride 2) on the generator's 128x128 frame.
    assert [getattr(critic, f"conv_{i}").filters for i in range(3)] == [64, 128, 256]
    assert critic.to_frame.compute_output_shape((None, 16384, 1)) == (None, 128, 128, 1)
    assert generator.count_params() == (
        100 * 256
        + 256
        + _conv_params(16, 1, 128)
        + _conv_params(16, 128, 64)
        + _conv_params(16, 64, 1)
    )
    assert critic.count_params() == (
        _conv_params(16, 1, 64)
        + _conv_params(16, 64, 128)
        + _conv_params(16, 128, 256)
        + 16 * 16 * 256
        + 1
    )


def test_seed2d_frame_rows_are_consecutive_samples():
    critic = Seed2DCritic(
        ModelSpec(model="seed2d", slice_len=1024, dim=2, kernel_len=4, phase_shuffle=0)
    )
    frame = critic.to_frame(tf.reshape(tf.range(1024, dtype=tf.float32), [1, 1024, 1]))
    np.testing.assert_array_equal(frame[0, 3, :, 0], np.arange(96, 128))
    generator = Seed2DGenerator(
        ModelSpec(model="seed2d", slice_len=1024, dim=2, kernel_len=4, phase_shuffle=0)
    )
    np.testing.assert_array_equal(
        generator.to_audio(frame), tf.reshape(tf.range(1024.0), [1, 1024, 1])
    )


def test_seed2d_refuses_wavegan_options():
    for option in (
        dict(upsample="nn"),
        dict(post_filter=True),
        dict(gen_batchnorm=True),
        dict(phase_shuffle=2),
    ):
        with pytest.raises(UserError, match="is a WaveGAN option; --model=seed2d takes only"):
            make_config("paper", model="seed2d", **option)


# WaveGAN options.


def test_nearest_neighbour_upsampling_keeps_shapes_and_parameter_counts():
    zeros, _ = build_models(ModelSpec(slice_len=2048, dim=4))
    nn, _ = build_models(ModelSpec(slice_len=2048, dim=4, upsample="nn"))
    assert nn(_z(2)).shape == (2, 2048, 1)
    assert nn.count_params() == zeros.count_params()  # a conv per stage either way
    assert [u.size for u in (nn.upsample_0, nn.upsample_3)] == [4, 2]
    assert all(c.strides == (1,) for c in nn.upconvs)
    # Nearest-neighbour: before its conv, each sample is repeated `stride` times.
    up = nn.upsample_0(tf.reshape(tf.range(3.0), [1, 3, 1]))[0, :, 0].numpy()
    np.testing.assert_array_equal(up, [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2])


def test_post_filter_is_a_learned_512_tap_filter_without_bias():
    plain, _ = build_models(ModelSpec(slice_len=1024, dim=4, seed=3))
    filtered, _ = build_models(ModelSpec(slice_len=1024, dim=4, seed=3, post_filter=True))
    assert filtered.count_params() - plain.count_params() == 512
    assert filtered.post_filter.kernel.shape == (512, 1, 1) and not filtered.post_filter.use_bias
    z = _z(2)
    # Same seed, same other weights: the filter is exactly a 512-tap convolution of G's output.
    before = plain(z)
    kernel = filtered.post_filter.kernel
    manual = tf.nn.conv1d(tf.pad(before, [[0, 0], [255, 256], [0, 0]]), kernel, 1, "VALID")
    np.testing.assert_allclose(filtered(z), manual, atol=1e-5)


def test_generator_batchnorm_uses_batch_statistics_when_training():
    generator, critic = build_models(ModelSpec(slice_len=1024, dim=4, gen_batchnorm=True))
    norms = [generator.norm_dense, generator.norm_0, generator.norm_1]
    assert all(n.synchronized for n in norms)  # global-batch statistics
    # No bias right before a batch norm (it would cancel it); the output layer keeps its own.
    assert not generator.dense.use_bias and not generator.upconv_0.use_bias
    assert generator.upconv_2.use_bias
    assert not any("norm" in v.path for v in critic.weights)  # never in the critic
    z = _z(8)
    train, infer = generator(z, training=True), generator(z, training=False)
    assert train.shape == infer.shape == (8, 1024, 1)
    assert not np.allclose(train, infer)
    # Training mode moved the running mean away from its initial zeros.
    assert np.abs(generator.norm_dense.moving_mean.numpy()).max() > 0


# Conditioning.


@pytest.mark.parametrize("model,slice_len", [("wavegan", 1024), ("seed2d", 1024)])
def test_conditional_networks_depend_on_the_label(model, slice_len):
    spec = ModelSpec(
        model=model,
        slice_len=slice_len,
        dim=2,
        kernel_len=4 if model == "seed2d" else 25,
        phase_shuffle=0,
        num_classes=128,
        seed=2,
    )
    generator, critic = build_models(spec)
    assert generator.dense.kernel.shape[0] == 100 + 128  # one-hot label appended to z
    z = tf.tile(_z(1), [2, 1])
    wave = generator(z, tf.constant([60, 61]))
    assert not np.allclose(wave[0], wave[1])
    np.testing.assert_allclose(generator(z[:1], tf.constant([60])), wave[:1], atol=1e-6)
    # The critic's projection: same audio, other label, other score.
    x = tf.tile(wave[:1], [2, 1, 1])
    critic.projection.embedding.assign(
        tf.random.stateless_normal(critic.projection.embedding.shape, [3, 4])
    )
    scores = critic(x, None, tf.constant([60, 61])).numpy()
    assert scores[0] != scores[1]
    with pytest.raises(ValueError, match="conditional: pass labels"):
        generator(z)
    with pytest.raises(ValueError, match="conditional: pass labels"):
        critic(x)


@pytest.mark.parametrize("model,kernel_len", [("wavegan", 25), ("seed2d", 4)])
def test_auxiliary_classifier_adds_logits_beside_an_unchanged_score(model, kernel_len):
    base = dict(model=model, slice_len=1024, dim=2, kernel_len=kernel_len, phase_shuffle=0)
    spec = ModelSpec(**base, num_classes=11, seed=2)
    _, plain = build_models(spec)
    _, aux = build_models(ModelSpec(**base, num_classes=11, seed=2, aux_classifier=True))
    features = plain.dense.kernel.shape[0]
    assert aux.classifier.kernel.shape == (features, 11)  # built with the critic
    assert aux.count_params() == plain.count_params() + features * 11 + 11
    x = tf.random.stateless_uniform([3, 1024, 1], [5, 6], -1.0, 1.0)
    labels = tf.constant([0, 3, 10])
    score, logits = aux(x, None, labels, with_logits=True)
    assert score.dtype == logits.dtype == tf.float32 and logits.shape == (3, 11)
    # The head only reads the features: the score is the head-less critic's.
    np.testing.assert_allclose(score, plain(x, None, labels), rtol=1e-5)
    np.testing.assert_allclose(aux(x, None, labels), score, rtol=1e-6)
    with pytest.raises(ValueError, match="no auxiliary classifier"):
        plain(x, None, labels, with_logits=True)
    # Different clips, different logits: the head sees the audio.
    assert not np.allclose(logits[0], logits[1])


def test_conditional_critic_penalty_gradients_compile_under_xla():
    _, critic = build_models(ModelSpec(slice_len=1024, dim=2, num_classes=11))
    x = tf.random.stateless_uniform([3, 1024, 1], [5, 6], -1.0, 1.0)
    labels = tf.constant([0, 3, 10])

    def penalty(x, labels):
        with tf.GradientTape() as tape:
            tape.watch(x)
            scores = critic(x, None, labels)
        grad = tape.gradient(scores, x)
        return tf.reduce_mean(tf.square(tf.norm(tf.reshape(grad, [3, -1]), axis=1) - 1.0))

    np.testing.assert_allclose(
        tf.function(penalty, jit_compile=True)(x, labels), penalty(x, labels), rtol=1e-4
    )


def test_bf16_networks_compute_in_bfloat16_and_return_float32():
    import keras

    generator, critic = build_models(
        ModelSpec(slice_len=1024, dim=4, precision="bf16", gen_batchnorm=True, num_classes=11)
    )
    assert keras.config.dtype_policy().name == "float32"  # only these layers are mixed
    assert (
        generator.upconv_0.compute_dtype == "bfloat16" and critic.conv_0.compute_dtype == "bfloat16"
    )
    assert all(v.dtype == "float32" for v in generator.weights + critic.weights)
    wave = generator(_z(2), tf.constant([1, 2]), training=True)
    score = critic(wave, None, tf.constant([1, 2]))
    assert wave.dtype == tf.float32 and score.dtype == tf.float32
    assert np.all(np.isfinite(wave.numpy())) and np.all(np.isfinite(score.numpy()))
