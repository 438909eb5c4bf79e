"""`python -m wavegan_dist.bench train`: the FLOP count, the command, and the PyTorch twin."""

import functools
import json

import numpy as np
import pytest

from conftest import error_line, run_module
from wavegan_dist.bench import flops
from wavegan_dist.models.spec import ModelSpec

# slice 256 = 16 * 4^2: two stride-4 layers on each side; small enough to count by hand.
TINY = ModelSpec(slice_len=256, dim=2, kernel_len=5, latent_dim=3)


def test_flop_count_matches_a_hand_count_on_a_tiny_model():
    # Critic: conv_0 256 -> 64 samples, 1 -> 2 channels, 5 taps: 64*5*1*2 = 640 MACs;
    # conv_1 64 -> 16, 2 -> 4: 16*5*2*4 = 640; dense 16*4 = 64 features -> 1: 64.
    d_first, d_mid, d_head = 640, 640, 64
    d = d_first + d_mid + d_head  # 1344
    # Generator: dense 3 -> 16 * (2 * 2) = 64: 192 MACs; upconv_0 16 -> 64 samples,
    # 4 -> 2 channels: 16*5*4*2 = 640; upconv_1 64 -> 256, 2 -> 1: 64*5*2*1 = 640.
    g_first = 192
    g = g_first + 640 + 640  # 1472
    assert flops.forward_flops(TINY) == {"generator": 2 * g, "critic": 2 * d}

    batch = 6
    critic_macs = (
        g  # fakes
        + 2 * d  # critic on [real; fake]
        + d  # critic on the interpolates
        + d  # dD/dx_hat: input grads of conv_0, conv_1, dense
        + d  # double backward: weight grads of those three ops
        + (d - d_head)  # double backward: their incoming grads, not the head's
        + 2 * d  # weight grads, [real; fake]
        + 2 * (d - d_first)
    )  # input grads, [real; fake], none into the data
    assert critic_macs == 1472 + 7 * 1344 + 1280 + 2 * 704
    assert flops.critic_update_flops(TINY, batch) == 2 * batch * critic_macs
    generator_macs = g + d + d + g + (g - g_first)
    assert flops.generator_update_flops(TINY, batch) == 2 * batch * generator_macs
    # Not counted: weight grads of both convs, input grad of conv_1, on the interpolates.
    assert flops.zero_gradient_path_flops(TINY, batch) == 2 * batch * (640 + 640 + 640)


def test_flop_layers_describe_the_networks_build_models_builds():
    from wavegan_dist import models

    for spec in (TINY, ModelSpec(slice_len=1024, dim=4)):
        generator, critic = models.build_models(spec)
        assert flops.check_weights(spec, generator, critic) == []
    # The paper's model, from the spec alone: 5 layers each side.
    g, d = flops.layers(ModelSpec())
    assert [layer.name for layer in d] == [f"conv_{i}" for i in range(5)] + ["dense"]
    # README: 19,065,345 parameters, of which the biases: dense 16 * 1024, upconvs 512 + ... + 1.
    biases = 16 * 1024 + 512 + 256 + 128 + 64 + 1
    assert sum(layer.kernel_size for layer in g) == 19_065_345 - biases


_run_bench = functools.partial(run_module, "bench", "train", timeout=240)


@pytest.mark.slow
def test_train_bench_json_reports_every_documented_figure():
    proc = _run_bench(
        "--slice_len=1024", "--dim=4", "--batch_size=8", "--repeats=1", "--json", "--no_torch"
    )
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout)
    assert (r["slice_len"], r["dim"], r["batch_size"], r["repeats"]) == (1024, 4, 8, 1)
    spec = ModelSpec(slice_len=1024, dim=4)
    assert r["critic_update_flops"] == flops.critic_update_flops(spec, 8)
    assert r["generator_update_flops"] == flops.generator_update_flops(spec, 8)
    assert r["critic_update_zero_gradient_path_flops"] == flops.zero_gradient_path_flops(spec, 8)
    assert r["flops_match_built_models"] is True
    # The whole training step (n_critic 1): both updates in one strategy.run.
    assert r["train_step_flops"] == r["critic_update_flops"] + r["generator_update_flops"]
    positive = ["peak_gflops", "peak_matmul_gflops", "peak_conv_gflops"]
    for update in ("critic_update", "generator_update", "train_step"):
        for replicas in ("1_replica", "2_replicas"):
            for what in (
                "examples_per_sec",
                "seconds",
                "gflops",
                "fraction_of_peak",
                "first_call_seconds",
            ):
                positive.append(f"{update}_{what}_{replicas}")
    positive += [f"two_over_one_replica_{u}" for u in ("critic", "generator", "step")]
    for key in positive:
        assert isinstance(r[key], float) and r[key] > 0, key
    assert r["critic_update_samples_seconds_2_replicas"] == [r["critic_update_seconds_2_replicas"]]
    assert r["critic_update_best_seconds_2_replicas"] == r["critic_update_seconds_2_replicas"]
    assert r["peak_source"] in ("matmul", "conv")
    assert r["peak_gflops"] == max(r["peak_matmul_gflops"], r["peak_conv_gflops"])
    one = r["critic_update_examples_per_sec_1_replica"]
    assert abs(one - 8 / r["critic_update_seconds_1_replica"]) < 1e-6 * one
    gflops = r["critic_update_flops"] / r["critic_update_seconds_1_replica"] / 1e9
    fraction = gflops / r["peak_gflops"]
    assert abs(r["critic_update_fraction_of_peak_1_replica"] - fraction) < 1e-9
    assert (
        abs(r["two_over_one_replica_critic"] - r["critic_update_examples_per_sec_2_replicas"] / one)
        < 1e-9
    )
    # Skipped PyTorch: its figures are null, and the report says why.
    assert r["torch_critic_update_examples_per_sec"] is None
    assert (r["precision"], r["jit_compile"], r["device"]) == ("fp32", False, "cpu")
    assert r["peak_dtype"] == "float32"
    # The plain formulation is measured beside the default one.
    assert r["kernels"] == "fast"
    for update in ("critic", "generator"):
        assert r[f"plain_{update}_update_examples_per_sec"] > 0
        assert (
            abs(
                r[f"{update}_update_fast_over_plain"]
                - r[f"{update}_update_examples_per_sec_1_replica"]
                / r[f"plain_{update}_update_examples_per_sec"]
            )
            < 1e-9
        )
    assert r["critic_update_tf_over_torch"] is None and r["meets_tf_over_torch_target"] is None
    import importlib.util

    from wavegan_dist.bench.train import TORCH_MISSING, TORCH_SKIPPED

    installed = importlib.util.find_spec("torch") is not None
    assert r["torch_status"] == (TORCH_SKIPPED if installed else TORCH_MISSING)
    assert isinstance(r["meets_fraction_of_peak_target"], bool)
    assert isinstance(r["meets_two_over_one_replica_target"], bool)


@pytest.mark.slow
def test_train_bench_runs_bf16_and_xla_as_training_would():
    proc = _run_bench(
        "--slice_len=1024",
        "--dim=4",
        "--batch_size=8",
        "--repeats=1",
        "--json",
        "--precision=bf16",
        "--jit_compile",
        "--no_plain",
    )
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout)
    assert (r["precision"], r["jit_compile"], r["device"]) == ("bf16", True, "cpu")
    assert r["peak_dtype"] == "bfloat16" and r["peak_gflops"] > 0
    assert r["critic_update_examples_per_sec_1_replica"] > 0
    assert r["generator_update_examples_per_sec_1_replica"] > 0
    # XLA on 2 mirrored replicas too (each replica's forward and backward compiled).
    assert r["critic_update_examples_per_sec_2_replicas"] > 0
    assert isinstance(r["meets_two_over_one_replica_target"], bool)
    # The fp32 PyTorch twin is no like-for-like comparison for bf16.
    from wavegan_dist.bench.train import TORCH_NOT_LIKE_FOR_LIKE

    assert r["torch_status"] == TORCH_NOT_LIKE_FOR_LIKE.format(what="bf16 on cpu")
    assert r["critic_update_tf_over_torch"] is None


@pytest.mark.slow
def test_gpu_bench_without_two_gpus_is_a_one_line_error():
    line = error_line(_run_bench("--device=gpu", timeout=120))
    assert "--device=gpu" in line and "sees 0" in line and "--device=cpu" in line


@pytest.mark.slow
def test_batch_that_does_not_split_over_two_replicas_is_a_one_line_error():
    line = error_line(_run_bench("--batch_size=7", timeout=120))
    assert "--batch_size=7" in line and "2 replicas" in line


def test_text_report_marks_the_targets():
    from wavegan_dist.bench.train import TORCH_MISSING, format_text

    r = {
        "slice_len": 1024,
        "dim": 4,
        "batch_size": 8,
        "repeats": 1,
        "warmup": 1,
        "cpu_cores": 2,
        "tensorflow_version": "2.17.1",
        "torch_version": None,
        "kernels": "fast",
        "critic_update_fast_over_plain": 1.7,
        "device": "cpu",
        "precision": "fp32",
        "jit_compile": False,
        "peak_dtype": "float32",
        "generator_update_fast_over_plain": 1.2,
        "torch_status": TORCH_MISSING,
        "torch_threads": None,
        "critic_update_flops": 1e9,
        "generator_update_flops": 5e8,
        "flops_match_built_models": True,
        "peak_gflops": 100.0,
        "peak_source": "matmul",
        "peak_matmul_gflops": 100.0,
        "peak_conv_gflops": 90.0,
        "two_over_one_replica_critic": 0.95,
        "two_over_one_replica_generator": 0.8,
        "two_over_one_replica_step": 0.85,
        "critic_update_fraction_of_peak_1_replica": 0.5,
        "critic_update_zero_gradient_path_flops": 2e8,
        "meets_fraction_of_peak_target": False,
        "meets_two_over_one_replica_target": True,
    }
    for update in ("critic_update", "generator_update", "train_step"):
        for replicas in ("_1_replica", "_2_replicas"):
            for what in (
                "seconds",
                "examples_per_sec",
                "gflops",
                "fraction_of_peak",
                "first_call_seconds",
                "best_seconds",
            ):
                r.setdefault(f"{update}_{what}{replicas}", 0.5)
            r.setdefault(f"plain_{update}_{what}", 0.8)
    text = format_text(r)
    assert "TF reference, 1 replica" in text and "TF fast, 2 replicas" in text
    assert "TF fast / TF reference, 1 replica (examples/s): critic 1.70x, generator 1.20x" in text
    assert "PyTorch not installed: pip install -c constraints.txt '.[bench]'" in text
    assert "of peak (1 replica): 50.0% [NOT met]" in text
    assert "0.95x [met]" in text
    assert "generator 0.80x, whole step 0.85x" in text
    assert [line.split()[0] for line in text.splitlines() if "TF fast, 2 replicas" in line] == [
        "critic",
        "generator",
        "step",
    ]


# --- the PyTorch twin (only where the optional `bench` extra is installed) ---


def _keras_layer_and_input(layer, shape, seed):
    x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    return layer(x).numpy(), x


def _torch_output(torch, conv, x):
    """A PyTorch layer on channels-last numpy `x` [B, L, C], output channels-last."""
    with torch.no_grad():
        return conv(torch.from_numpy(x.transpose(0, 2, 1))).numpy().transpose(0, 2, 1)


def test_torch_conv_padding_matches_keras_same():
    torch = pytest.importorskip("torch")
    import keras

    from wavegan_dist.bench import torch_wavegan as tw

    # The paper's first critic layer: 16384 samples, stride 4, 25 taps: 21 padding
    # samples, 10 on the left and 11 on the right, as TensorFlow's "SAME".
    assert tw.same_padding(16384, 4, 25) == (10, 11)
    for length, stride in ((16384, 4), (1024, 4), (512, 2)):
        keras_conv = keras.layers.Conv1D(3, 25, strides=stride, padding="same")
        expected, x = _keras_layer_and_input(keras_conv, (2, length, 2), length)
        conv = tw.SameConv1d(2, 3, 25, stride, length)
        tw.copy_conv_weights(conv, keras_conv)
        got = _torch_output(torch, conv, x)
        # The other split (11 left, 10 right) is one sample off: it must not match.
        conv.pad = conv.pad[::-1]
        shifted = _torch_output(torch, conv, x)
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, atol=1e-4)
        assert np.abs(shifted - expected).max() > 1e-2


def test_torch_transposed_conv_matches_keras_same():
    torch = pytest.importorskip("torch")
    import keras

    from wavegan_dist.bench import torch_wavegan as tw

    for length, stride in ((4096, 4), (256, 4), (256, 2)):
        keras_conv = keras.layers.Conv1DTranspose(3, 25, strides=stride, padding="same")
        expected, x = _keras_layer_and_input(keras_conv, (2, length, 5), length)
        conv = tw.SameConvTranspose1d(5, 3, 25, stride, length)
        tw.copy_conv_weights(conv, keras_conv)
        got = _torch_output(torch, conv, x)
        assert got.shape == expected.shape == (2, length * stride, 3)
        np.testing.assert_allclose(got, expected, atol=1e-4)


@pytest.mark.slow
def test_torch_wavegan_matches_tensorflow_for_the_same_weights_and_trains():
    torch = pytest.importorskip("torch")
    import tensorflow as tf

    from wavegan_dist import losses, models
    from wavegan_dist.bench import torch_wavegan as tw

    spec = ModelSpec(slice_len=1024, dim=4)
    generator, critic = models.build_models(spec)
    gan = tw.TorchWaveGAN(spec, batch=4)
    tw.load_keras_weights(gan.generator, gan.critic, generator, critic)

    rng = np.random.default_rng(0)
    z = rng.uniform(-1, 1, (4, 100)).astype(np.float32)
    real = rng.uniform(-1, 1, (4, 1024, 1)).astype(np.float32)
    shifts = rng.integers(-2, 3, (12, critic.num_shuffle_layers)).astype(np.int32)
    alpha = rng.uniform(0, 1, 4).astype(np.float32)
    channels_first = lambda a: torch.from_numpy(np.ascontiguousarray(a.transpose(0, 2, 1)))

    fake = generator(z).numpy()
    with torch.no_grad():
        torch_fake = gan.generator(torch.from_numpy(z))
        torch_scores = gan.critic(channels_first(real), torch.from_numpy(shifts[:4]))
    np.testing.assert_allclose(torch_fake.numpy().transpose(0, 2, 1), fake, atol=1e-4)
    # The critic with phase shuffle (per-example shifts, reflect padding).
    np.testing.assert_allclose(torch_scores.numpy(), critic(real, shifts[:4]).numpy(), atol=1e-4)

    # The WGAN-GP critic loss, penalty (double backward) included, for the same inputs.
    x_hat = losses.interpolate(tf.constant(real), tf.constant(fake), tf.constant(alpha))
    with tf.GradientTape() as tape:
        tape.watch(x_hat)
        d_hat = critic(x_hat, shifts[8:])
    penalty = losses.gradient_penalty(tape.gradient(d_hat, x_hat))
    scores = critic(tf.concat([real, fake], 0), shifts[:8])
    tf_loss = tf.reduce_mean(losses.critic_loss(scores[:4], scores[4:], penalty, 10.0))
    torch_loss, torch_penalty = tw.critic_loss(
        gan.critic,
        channels_first(real),
        torch_fake,
        torch.from_numpy(alpha),
        torch.from_numpy(shifts),
    )
    np.testing.assert_allclose(torch_penalty.item(), float(tf.reduce_mean(penalty)), rtol=1e-4)
    np.testing.assert_allclose(torch_loss.item(), float(tf_loss), rtol=1e-4, atol=1e-4)

    # One critic update and one generator update run and change only their own network.
    before = [p.detach().clone() for p in gan.critic.parameters()]
    g_before = [p.detach().clone() for p in gan.generator.parameters()]
    assert np.isfinite(gan.critic_update(channels_first(real)))
    # Every critic parameter moves but the output bias, whose gradient is exactly 0
    # (it cancels in D(fake) - D(real) and the penalty does not see it).
    moved = [not torch.equal(a, b) for a, b in zip(before, gan.critic.parameters())]
    assert moved == [True] * (len(moved) - 1) + [False]
    assert all(torch.equal(a, b) for a, b in zip(g_before, gan.generator.parameters()))
    before = [p.detach().clone() for p in gan.critic.parameters()]
    assert np.isfinite(gan.generator_update())
    assert all(torch.equal(a, b) for a, b in zip(before, gan.critic.parameters()))
    assert all(not torch.equal(a, b) for a, b in zip(g_before, gan.generator.parameters()))


def test_flop_count_matches_what_pytorch_counts_for_its_twin():
    torch = pytest.importorskip("torch")
    from torch.utils.flop_counter import FlopCounterMode

    from wavegan_dist.bench import torch_wavegan as tw

    spec, batch = ModelSpec(slice_len=1024, dim=4), 3
    gan = tw.TorchWaveGAN(spec, batch)
    with FlopCounterMode(display=False) as counter:
        gan.generator_update()
    assert counter.get_total_flops() == flops.generator_update_flops(spec, batch)

    # The critic update as TorchWaveGAN.critic_update runs it, except that the penalty
    # differentiates with respect to a non-leaf x_hat (FlopCounterMode's hooks refuse
    # autograd.grad to a leaf); the convolutions and matmuls are the same.
    real = torch.rand(batch, 1, 1024) * 2 - 1
    with FlopCounterMode(display=False) as counter:
        with torch.no_grad():
            fake = gan.generator(gan.latent())
        shifts = gan.shifts(3)
        x_hat = torch.lerp(real, fake, torch.rand(batch)[:, None, None]) + torch.zeros(
            1, requires_grad=True
        )
        scores = gan.critic(torch.cat([real, fake]), shifts[: 2 * batch])
        d_hat = gan.critic(x_hat, shifts[2 * batch :])
        (grads,) = torch.autograd.grad(d_hat.sum(), x_hat, create_graph=True)
        penalty = (grads.square().sum(dim=(1, 2)).add(1e-10).sqrt() - 1).square()
        loss = (scores[batch:] - scores[:batch] + 10 * penalty).mean()
        loss.backward(inputs=list(gan.critic.parameters()))
    # PyTorch also pushes LeakyReLU's zero second-derivative gradient back through the
    # interpolates' forward convolutions: the documented, uncounted extra.
    assert counter.get_total_flops() == (
        flops.critic_update_flops(spec, batch) + flops.zero_gradient_path_flops(spec, batch)
    )
