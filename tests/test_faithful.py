"""Where the defaults follow the authors' WaveGAN code, pinned as numbers.

The networks, the WGAN-GP loss and its gradients were compared with the authors'
TF1 code on the same weights and inputs; what that comparison depends on is held
here without any of their code: parameter counts per slice length at the paper's
width, the critic layers followed by phase shuffle, and Adam's epsilon. And a run
recorded before these defaults changed resumes exactly as it would have gone on.
"""

import gc
import json
import os
import shutil

import pytest
import tensorflow as tf

from conftest import TINY_TEST_FLAGS, checkpoint_weights, max_diff, run_module
from wavegan_dist import models
from wavegan_dist.config import make_config
from wavegan_dist.models.spec import ModelSpec
from wavegan_dist.training import checkpoints
from wavegan_dist.training.loop import make_trainer

OLD_RUN = os.path.join(os.path.dirname(__file__), "data", "run_before_faithful_defaults")
# The flags the run in OLD_RUN was made with (its README).
OLD_RUN_FLAGS = (
    "--slice_len=32768",
    "--dim=1",
    "--kernel_len=5",
    "--latent_dim=4",
    "--batch_size=2",
    "--n_critic=1",
    "--train_steps=2",
    "--ckpt_every=1",
    "--log_every=1",
    "--sample_every=100",
    "--num_wavs=0",
    "--keep_checkpoints=3",
)


# Each layer's weights and biases of the authors' networks at d = 64, kernel 25, z of
# 100 (32768 and 65536 differ only in the last stride, not in any weight's shape).
@pytest.mark.parametrize(
    "slice_len,generator_params,critic_params",
    [
        (16384, 19_065_345, 17_427_969),
        # Building 73 M parameters takes several seconds: the full suite only.
        pytest.param(32768, 73_149_953, 69_875_201, marks=pytest.mark.slow),
        pytest.param(65536, 73_149_953, 69_875_201, marks=pytest.mark.slow),
    ],
)
def test_parameter_counts_at_the_papers_width(slice_len, generator_params, critic_params):
    generator, critic = models.build_models(ModelSpec(slice_len=slice_len, dim=64))
    assert (generator.count_params(), critic.count_params()) == (generator_params, critic_params)
    del generator, critic
    gc.collect()


@pytest.mark.parametrize(
    "slice_len,layers,shuffled",
    [
        (16384, 4, 4),
        (32768, 4, 4),
        (65536, 4, 4),
        (4096, 4, 3),  # 4 conv layers: never after the last
        (32768, 5, 5),  # every layer but the last, as before the default followed the authors
        (32768, 0, 0),
    ],
)
def test_critic_shuffles_after_its_first_four_layers(slice_len, layers, shuffled):
    spec = ModelSpec(slice_len=slice_len, dim=1, phase_shuffle_layers=layers)
    critic = models.build_models(spec)[1]
    assert critic.num_shuffle_layers == shuffled
    marked = [layer.name for layer, after in critic.summary_layers if "phase shuffle" in after]
    assert marked == [f"conv_{i}" for i in range(shuffled)]
    # The shifts of the last shuffled layer move the score; one column more is refused.
    x = tf.random.stateless_uniform([2, slice_len, 1], [1, 2], -1, 1)
    if shuffled:
        shifts = tf.zeros([2, shuffled], tf.int32)
        moved = tf.tensor_scatter_nd_update(shifts, [[0, shuffled - 1]], [2])
        assert float(tf.abs(critic(x, shifts)[0] - critic(x, moved)[0])) > 0


def test_the_paper_preset_and_training_use_the_authors_defaults():
    cfg = make_config("paper")
    assert (cfg.adam_epsilon, cfg.net.phase_shuffle_layers) == (1e-8, 4)
    cfg = make_config("tiny", **TINY_TEST_FLAGS)
    cpu = tf.distribute.OneDeviceStrategy("/cpu:0")
    for kernels in ("fast", "reference"):
        trainer = make_trainer(cfg.replace(kernels=kernels), cpu)
        assert trainer.g_opt.epsilon == trainer.d_opt.epsilon == 1e-8


def _copy_old_run(tmp_path):
    run = tmp_path / "old_run"
    shutil.copytree(OLD_RUN, run, ignore=shutil.ignore_patterns("README.md"))
    return run


@pytest.mark.slow
def test_a_run_recorded_before_resumes_with_what_it_trained_with(tmp_path):
    run = _copy_old_run(tmp_path)
    proc = run_module("train", *OLD_RUN_FLAGS, f"--model_dir={run}", "--resume_from=ckpt-1")
    assert proc.returncode == 0, proc.stderr
    assert (
        "note: the run was started before --adam_epsilon, --phase_shuffle_layers, --kernels "
        "existed and keeps what it trained with: --adam_epsilon=1e-07 "
        "--phase_shuffle_layers=5 --kernels=fast (new runs: --adam_epsilon=1e-08 "
        "--phase_shuffle_layers=4 --kernels=auto); give the flag to change it"
        in proc.stdout.splitlines()
    ), proc.stdout
    # The very ckpt-2 the code that made ckpt-1 went on to make.
    for part in ("models/", "optimizers/", "generator_ema/"):
        assert (
            max_diff(
                checkpoint_weights(run, part, min_keys=6),
                checkpoint_weights(OLD_RUN, part, min_keys=6),
            )
            == 0.0
        )
    # The record still says "from before", so the next resume keeps the same values.
    recorded = json.loads((run / "config.json").read_text())
    assert not {"adam_epsilon", "phase_shuffle_layers", "kernels"} & set(recorded)
    assert recorded["conv_impl"] == "fast"


@pytest.mark.slow
def test_a_run_recorded_before_takes_a_flag_given_on_resume(tmp_path):
    run = _copy_old_run(tmp_path)
    cfg = make_config(
        slice_len=32768,
        dim=1,
        kernel_len=5,
        latent_dim=4,
        batch_size=2,
        n_critic=1,
        model_dir=str(run),
        adam_epsilon=1e-8,
        phase_shuffle_layers=5,
        kernels="fast",
    )
    notes = checkpoints.check_config(str(run), cfg.to_dict())
    assert (
        "--adam_epsilon changed from 1e-07 to 1e-08 since the run started; both "
        "optimizers use the new epsilon from the resumed step on (Adam's moment "
        "estimates are kept)"
    ) in notes
    assert notes[0].startswith(
        "the run was started before --phase_shuffle_layers, --kernels "
        "existed and keeps what it trained with: "
        "--phase_shuffle_layers=5 --kernels=fast"
    )
    checkpoints.record_config(str(run), cfg.to_dict())
    recorded = json.loads((run / "config.json").read_text())
    assert recorded["adam_epsilon"] == 1e-8 and "phase_shuffle_layers" not in recorded
