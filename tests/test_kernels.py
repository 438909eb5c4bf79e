"""--kernels: one switch for the polyphase convolutions, the critic's LeakyReLU and fused Adam."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import TINY_TEST_FLAGS, checkpoint_weights, error_line, max_diff, run_module
from wavegan_dist import strategy as strategies
from wavegan_dist.config import make_config
from wavegan_dist.kernels import resolve_kernels, strategy_device_type
from wavegan_dist.models import activations, fast_conv
from wavegan_dist.training.loop import make_trainer, run_training
from wavegan_dist.training.optimizers import FusedAdam


@pytest.mark.parametrize(
    "choice,device_type,kernels",
    [
        ("auto", "CPU", "fast"),
        ("auto", "GPU", "reference"),
        ("auto", "TPU", "reference"),
        ("fast", "TPU", "fast"),
        ("reference", "CPU", "reference"),
    ],
)
def test_auto_takes_the_fast_kernels_on_cpu_only(choice, device_type, kernels):
    assert resolve_kernels(choice, device_type) == kernels


def test_a_strategy_tells_its_device_type():
    assert strategy_device_type(tf.distribute.OneDeviceStrategy("/cpu:0")) == "CPU"
    assert strategy_device_type(strategies.mirrored(["/cpu:0", "/cpu:1"])) == "CPU"
    assert strategy_device_type(tf.distribute.get_strategy()) == "CPU"  # the default one


@pytest.mark.parametrize("model", ["wavegan", "seed2d"])
def test_the_switch_covers_convolutions_leaky_relu_and_adam(model):
    cpu = tf.distribute.OneDeviceStrategy("/cpu:0")
    flags = dict(TINY_TEST_FLAGS, model=model, slice_len=4096 if model == "seed2d" else 1024)
    fast = make_trainer(make_config("tiny", **flags), cpu)  # auto on a CPU
    reference = make_trainer(make_config("tiny", kernels="reference", **flags), cpu)
    assert type(fast.d_opt) is type(fast.g_opt) is FusedAdam
    assert type(reference.d_opt) is type(reference.g_opt) is keras.optimizers.Adam
    assert fast.critic.leaky_relu is activations.leaky_relu
    assert reference.critic.leaky_relu is keras.ops.leaky_relu
    if model == "wavegan":
        assert isinstance(fast.critic.conv_0, fast_conv.PolyphaseConv1D)
        assert isinstance(fast.generator.upconv_0, fast_conv.PolyphaseConv1DTranspose)
        assert type(reference.critic.conv_0) is keras.layers.Conv1D
        assert type(reference.generator.upconv_0) is keras.layers.Conv1DTranspose


@pytest.mark.slow
def test_fast_and_reference_kernels_train_alike(tmp_path):
    cpu = tf.distribute.OneDeviceStrategy("/cpu:0")
    runs = {}
    for kernels in ("fast", "reference"):
        cfg = make_config(
            "tiny",
            **{
                **TINY_TEST_FLAGS,
                "model_dir": str(tmp_path / kernels),
                "kernels": kernels,
                "train_steps": 1,
            },
        )
        runs[kernels] = run_training(cfg, cpu, log=lambda _: None)
    fast, reference = runs["fast"].metrics, runs["reference"].metrics
    assert (
        fast.keys()
        == reference.keys()
        == {"critic", "generator", "gradient_penalty", "wasserstein"}
    )
    for name in fast:
        assert fast[name] == pytest.approx(reference[name], rel=1e-4, abs=1e-6), name
    assert (
        max_diff(checkpoint_weights(tmp_path / "fast"), checkpoint_weights(tmp_path / "reference"))
        < 1e-5
    )
    assert np.isfinite(list(fast.values())).all()


@pytest.mark.slow
def test_a_bad_kernels_value_is_one_line_error(tmp_path):
    proc = run_module("train", "--kernels=gpu", f"--model_dir={tmp_path / 'run'}")
    assert error_line(proc) == (
        "error: flag --kernels=gpu: value should be one of <auto|fast|reference> (see --help)"
    )
    assert not (tmp_path / "run").exists()
