"""Training through the library API on real devices, data and checkpoints.

Weights are compared by reading the checkpoints the runs wrote.
"""

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from conftest import TINY_TEST_FLAGS, checkpoint_weights, max_diff
from wavegan_dist import strategy as strategies
from wavegan_dist.config import make_config
from wavegan_dist.errors import UserError
from wavegan_dist.training.loop import run_training

pytestmark = pytest.mark.slow


def _cfg(model_dir, **kw):
    return make_config("tiny", **{**TINY_TEST_FLAGS, "model_dir": str(model_dir), **kw})


def _ema(model_dir):
    return checkpoint_weights(model_dir, "generator_ema/", min_keys=6)


def _max_rel_diff(a, b):
    assert a.keys() == b.keys()
    return max(
        float(np.max(np.abs(a[k] - b[k]) / (np.abs(a[k]) + 1e-8)))
        for k in a
        if np.abs(a[k]).max() > 1e-6
    )


@pytest.fixture(scope="module")
def one_device_run(tmp_path_factory, cache_dir):
    d = tmp_path_factory.mktemp("one")
    logs = []
    result = run_training(
        _cfg(d, train_steps=4), tf.distribute.OneDeviceStrategy("/cpu:0"), log=logs.append
    )
    return d, result, logs


def test_one_device_trains_and_writes_outputs(one_device_run):
    d, result, logs = one_device_run
    assert result.step == 4 and result.num_replicas == 1
    assert set(result.metrics) == {"critic", "generator", "gradient_penalty", "wasserstein"}
    assert all(np.isfinite(v) for v in result.metrics.values())
    assert sorted(os.listdir(d / "checkpoints"))[:1] == ["checkpoint"]
    assert len(result.wavs) == 2 and all(os.path.getsize(p) == 44 + 2 * 1024 for p in result.wavs)
    # WAVs at every --sample_every (2), the last ones written once and returned.
    assert sorted(os.listdir(d / "samples")) == ["step_0000002", "step_0000004"]
    assert all(len(os.listdir(d / "samples" / f)) == 2 for f in os.listdir(d / "samples"))
    assert [line for line in logs if line.startswith("wrote ")] == [
        f"wrote 2 WAV files to {d}/samples/step_0000002",
        f"wrote 2 WAV files to {d}/samples/step_0000004",
    ]
    assert result.wavs[0].startswith(f"{d}/samples/step_0000004/")
    assert any(line.startswith("step 4/4  critic") for line in logs)
    assert (d / "config.json").exists()


def test_two_replicas_match_one_device(one_device_run, tmp_path):
    """Same seed and global batch, 1 vs 2 replicas -> same weights after K steps."""
    d1, *_ = one_device_run
    two = strategies.mirrored(["/cpu:0", "/cpu:1"])
    result = run_training(_cfg(tmp_path, train_steps=4), two, log=lambda _: None)
    assert result.num_replicas == 2 and result.replica_divergence == 0.0
    assert max_diff(checkpoint_weights(d1), checkpoint_weights(tmp_path)) < 1e-5
    assert max_diff(_ema(d1), _ema(tmp_path)) < 1e-5
    # Adam's moments carry the gradient scale: equal moments mean equal gradients.
    moments1, moments2 = (
        checkpoint_weights(d1, "optimizers/"),
        checkpoint_weights(tmp_path, "optimizers/"),
    )
    assert max_diff(moments1, moments2) < 1e-5
    # Relative: a gradient scaled wrongly (say 2x) moves it to about 1; float round-off in
    # the near-zero moments of 4 steps at the tiny preset's 5e-4 reached 1.01e-2 once.
    assert _max_rel_diff(moments1, moments2) < 5e-2
    # And the check is sharp: a different seed moves the weights far more than that.
    other = tmp_path / "other_seed"
    run_training(_cfg(other, train_steps=4, seed=1), two, log=lambda _: None)
    assert max_diff(checkpoint_weights(d1), checkpoint_weights(other)) > 1e-3


def test_resume_continues_exactly(one_device_run, tmp_path):
    d1, *_ = one_device_run
    cpu = tf.distribute.OneDeviceStrategy("/cpu:0")
    first = run_training(_cfg(tmp_path, train_steps=2), cpu, log=lambda _: None)
    assert first.step == 2
    logs = []
    second = run_training(_cfg(tmp_path, train_steps=4), cpu, log=logs.append)
    assert second.start_step == 2 and second.step == 4
    assert any(line.startswith("resumed from step 2") for line in logs)
    # Data order, noise and optimizer state all resume: the same weights as an unbroken run.
    assert max_diff(checkpoint_weights(d1), checkpoint_weights(tmp_path)) < 1e-6
    assert max_diff(_ema(d1), _ema(tmp_path)) < 1e-6  # and the EMA, restored, not reset
    again = run_training(_cfg(tmp_path, train_steps=4), cpu, log=lambda _: None)
    assert again.start_step == 4 and again.step == 4


def test_xla_compiled_steps_train_like_the_plain_ones(one_device_run, tmp_path):
    """--jit_compile: the per-replica steps as single XLA clusters (what a TPU runs)."""
    d1, *_ = one_device_run
    result = run_training(
        _cfg(tmp_path, train_steps=4, jit_compile=True),
        tf.distribute.OneDeviceStrategy("/cpu:0"),
        log=lambda _: None,
    )
    assert result.step == 4 and all(np.isfinite(v) for v in result.metrics.values())
    assert max_diff(checkpoint_weights(d1), checkpoint_weights(tmp_path)) < 1e-4
    assert (
        max_diff(checkpoint_weights(d1, "optimizers/"), checkpoint_weights(tmp_path, "optimizers/"))
        < 1e-4
    )


def test_xla_compiled_steps_on_two_replicas_train_like_one_device(one_device_run, tmp_path):
    """--jit_compile on MirroredStrategy: each replica's forward and backward pass is
    compiled, the all-reduce and Adam run outside (it crashed with a traceback)."""
    d1, *_ = one_device_run
    two = strategies.mirrored(["/cpu:0", "/cpu:1"])
    result = run_training(_cfg(tmp_path, train_steps=4, jit_compile=True), two, log=lambda _: None)
    assert result.step == 4 and all(np.isfinite(v) for v in result.metrics.values())
    assert max_diff(checkpoint_weights(d1), checkpoint_weights(tmp_path)) < 1e-4
    assert (
        max_diff(checkpoint_weights(d1, "optimizers/"), checkpoint_weights(tmp_path, "optimizers/"))
        < 1e-4
    )


def test_xla_on_two_replicas_runs_loops_and_conditional_models(tmp_path):
    two = strategies.mirrored(["/cpu:0", "/cpu:1"])
    runs = {}
    for jit in (False, True):
        runs[jit] = tmp_path / f"jit_{jit}"
        result = run_training(
            _cfg(runs[jit], train_steps=2, steps_per_loop=2, condition="pitch", jit_compile=jit),
            two,
            log=lambda _: None,
        )
        assert result.step == 2 and all(np.isfinite(v) for v in result.metrics.values())
    assert max_diff(checkpoint_weights(runs[False]), checkpoint_weights(runs[True])) < 1e-4


def test_resume_takes_the_new_learning_rate_and_notes_order_changes(tmp_path):
    cpu = tf.distribute.OneDeviceStrategy("/cpu:0")
    run_training(_cfg(tmp_path, train_steps=1), cpu, log=lambda _: None)
    logs = []
    first_rate = _cfg(tmp_path).learning_rate
    assert abs(first_rate - 2e-4) > 1e-6  # the resumed run's rate below is a change
    run_training(
        _cfg(tmp_path, train_steps=2, learning_rate=2e-4, n_critic=1, generator_ema=0.99),
        cpu,
        log=logs.append,
    )
    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(tmp_path / "checkpoints")))
    rates = [
        reader.get_tensor(k)
        for k in reader.get_variable_to_shape_map()
        if k.endswith("_learning_rate/.ATTRIBUTES/VARIABLE_VALUE")
    ]
    assert len(rates) == 2 and all(abs(r - 2e-4) < 1e-9 for r in rates)
    assert any(line.startswith("note: --n_critic changed from 2 to 1") for line in logs)
    # Flags that change training but not the data order say what happens from here on.
    assert (
        "note: --learning_rate changed from 0.0005 to 0.0002 since the run started; both "
        "optimizers use the new learning rate from the resumed step on (Adam's moment "
        "estimates are kept)" in logs
    )
    assert any(
        line.startswith(
            "note: --generator_ema changed from 0.995 to 0.99 since the run "
            "started; the generator's moving average goes on from its "
            "saved weights with the new decay"
        )
        for line in logs
    )


def test_resume_with_other_model_shape_is_refused(one_device_run):
    d1, *_ = one_device_run
    before = checkpoint_weights(d1)
    with pytest.raises(UserError, match="--dim=8 \\(run has 4\\)"):
        run_training(_cfg(d1, train_steps=6, dim=8), tf.distribute.OneDeviceStrategy("/cpu:0"))
    assert max_diff(before, checkpoint_weights(d1)) == 0.0  # the existing run is untouched


def test_bad_inputs_raise_user_errors(tmp_path, builtin_root):
    cpu = tf.distribute.OneDeviceStrategy("/cpu:0")
    two = strategies.mirrored(["/cpu:0", "/cpu:1"])
    with pytest.raises(UserError, match="--model_dir is required"):
        run_training(_cfg(""), cpu)
    with pytest.raises(UserError, match="does not divide over 2 replicas"):
        run_training(_cfg(tmp_path, batch_size=7), two)
    with pytest.raises(UserError, match="no such file or folder"):
        run_training(_cfg(tmp_path, data=str(tmp_path / "missing")), cpu)
    with pytest.raises(UserError, match="fewer than one global batch"):
        run_training(_cfg(tmp_path, data=builtin_root, num_samples=4), cpu)
    with pytest.raises(UserError, match="--slice_len=1000 is not supported"):
        run_training(_cfg(tmp_path, slice_len=1000), cpu)
    # TF cannot compile the batch norm's all-reduce inside MirroredStrategy's run;
    # refused before anything is written.
    run_dir = tmp_path / "xla_two"
    with pytest.raises(UserError, match="--jit_compile with --gen_batchnorm needs one replica"):
        run_training(_cfg(run_dir, jit_compile=True, gen_batchnorm=True), two)
    assert not run_dir.exists()


# Every model and option through the same trainer.

VARIANTS = {
    # 64 x 64 frames: two stride-2 stages each side.
    "seed2d": dict(model="seed2d", slice_len=4096),
    "seed2d_family": dict(model="seed2d", slice_len=4096, condition="instrument_family"),
    "wavegan_pitch_all_options": dict(
        condition="pitch", gen_batchnorm=True, upsample="nn", post_filter=True, aux_classifier=True
    ),
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_xla_compiles_every_model(variant, tmp_path):
    """Each model's per-replica steps compile with XLA and train like the plain ones."""
    cpu = tf.distribute.OneDeviceStrategy("/cpu:0")
    flags = dict(train_steps=2, num_wavs=0, **VARIANTS[variant])
    plain = run_training(_cfg(tmp_path / "plain", **flags), cpu, log=lambda _: None)
    xla = run_training(_cfg(tmp_path / "xla", jit_compile=True, **flags), cpu, log=lambda _: None)
    assert plain.step == xla.step == 2 and all(np.isfinite(v) for v in xla.metrics.values())
    assert (
        max_diff(checkpoint_weights(tmp_path / "plain"), checkpoint_weights(tmp_path / "xla"))
        < 1e-4
    )
    assert (
        max_diff(
            checkpoint_weights(tmp_path / "plain", "optimizers/"),
            checkpoint_weights(tmp_path / "xla", "optimizers/"),
        )
        < 1e-4
    )


def test_conditional_batchnorm_model_matches_on_one_and_two_replicas(tmp_path):
    """Labels follow their examples across replicas, and generator batch norm uses
    global-batch statistics: 2 replicas train exactly like one device."""
    flags = dict(train_steps=3, num_wavs=2, condition="pitch", gen_batchnorm=True)
    logs = []
    one = run_training(
        _cfg(tmp_path / "one", **flags), tf.distribute.OneDeviceStrategy("/cpu:0"), log=logs.append
    )
    # The two-replica run is the CLI in its own process, as users run it: this test process
    # has made many MirroredStrategy objects before, and with batch-norm collectives in the
    # replica step that intermittently paired collectives of different kinds (BUILD_NOTES).
    cli = [f"--{k}={v}" for k, v in {**TINY_TEST_FLAGS, **flags}.items()]
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "wavegan_dist.train",
            "--preset=tiny",
            "--strategy=mirrored",
            "--cpu_replicas=2",
            f"--model_dir={tmp_path / 'two'}",
            *cli,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=os.environ,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert any("pitch classes" in line for line in logs)
    assert (
        "done at step 3: 2 replica(s) in sync (max weight difference between replicas 0)"
        in proc.stdout
    )
    assert one.step == 3
    w1, w2 = checkpoint_weights(tmp_path / "one"), checkpoint_weights(tmp_path / "two")
    # Batch-norm statistics and the critic's label projection are compared too.
    assert sum("moving_mean" in k for k in w1) == 3 and any("projection" in k for k in w1)
    assert max_diff(w1, w2) < 1e-5
    # The EMA's copied moving statistics too (sync-on-read variables on 2 replicas).
    ema1, ema2 = _ema(tmp_path / "one"), _ema(tmp_path / "two")
    assert sum("moving_mean" in k for k in ema1) == 3 and max_diff(ema1, ema2) < 1e-5
    assert all(
        np.array_equal(ema1[k], w1["models/generator/" + k.split("/", 1)[1]])
        for k in ema1
        if "moving_" in k
    )  # copied, not averaged
    assert (
        max_diff(
            checkpoint_weights(tmp_path / "one", "optimizers/"),
            checkpoint_weights(tmp_path / "two", "optimizers/"),
        )
        < 1e-5
    )
    wavs = sorted((tmp_path / "two" / "samples" / "step_0000003").iterdir())
    assert len(wavs) == 2 and all(os.path.getsize(p) == 44 + 2 * 1024 for p in wavs)
    # The label is part of the model: resuming without it is refused, the run untouched.
    with pytest.raises(UserError, match="--condition=none \\(run has pitch\\)"):
        run_training(
            _cfg(tmp_path / "one", train_steps=4, gen_batchnorm=True),
            tf.distribute.OneDeviceStrategy("/cpu:0"),
        )
    assert max_diff(w1, checkpoint_weights(tmp_path / "one")) == 0.0


def test_conditioning_on_a_dataset_without_labels_is_a_user_error(tmp_path, builtin_root):
    import deeplake

    from wavegan_dist.data import schema

    # A copy of a few built-in rows whose pitch is unknown, as an ingest of a plain
    # audio folder would store it.
    src = deeplake.open_read_only(os.path.join(builtin_root, "train"))
    dst = schema.create_nsynth_dataset(str(tmp_path / "nolabels"))
    rows = {c: [src[c][i] for i in range(16)] for c in schema.COLUMNS}
    rows["pitch"] = [schema.UNKNOWN] * 16
    dst.append(rows)
    dst.commit("no pitch")
    with pytest.raises(UserError, match="--condition=pitch: none of the 16 selected rows"):
        run_training(
            _cfg(tmp_path / "run", data=str(tmp_path / "nolabels"), condition="pitch"),
            tf.distribute.OneDeviceStrategy("/cpu:0"),
        )


def _scalars(model_dir, tag):
    from tensorboard.backend.event_processing import event_accumulator

    acc = event_accumulator.EventAccumulator(str(model_dir), size_guidance={"tensors": 0})
    acc.Reload()
    return {e.step: float(tf.make_ndarray(e.tensor_proto)) for e in acc.Tensors(tag)}


def test_steps_per_loop_trains_and_logs_exactly_like_single_steps(one_device_run, tmp_path):
    """--steps_per_loop=3: loops of 3 then 1 steps (cut at the end); same weights and the
    same per-step scalars as one step per host call."""
    d1, *_ = one_device_run
    logs = []
    result = run_training(
        _cfg(tmp_path, train_steps=4, steps_per_loop=3, ckpt_every=4, sample_every=4),
        tf.distribute.OneDeviceStrategy("/cpu:0"),
        log=logs.append,
    )
    assert result.step == 4
    assert any(line.startswith("step 1: first call of 3 step(s)") for line in logs)
    assert [line.split()[1] for line in logs if line.startswith("step ") and "critic" in line] == [
        "1/4",
        "2/4",
        "3/4",
        "4/4",
    ]
    assert max_diff(checkpoint_weights(d1), checkpoint_weights(tmp_path)) < 1e-6
    assert max_diff(_ema(d1), _ema(tmp_path)) < 1e-6  # one EMA update per looped step
    for tag in ("loss/critic", "loss/generator", "loss/gradient_penalty"):
        single, looped = _scalars(d1, tag), _scalars(tmp_path, tag)
        assert sorted(looped) == [1, 2, 3, 4]
        assert all(abs(single[s] - looped[s]) < 1e-6 for s in looped), (single, looped)


def test_bf16_mixed_precision_trains_plain_and_under_xla(tmp_path):
    """--precision=bf16 on CPU: bfloat16 compute, float32 weights, finite losses, and the
    per-replica steps compile with XLA as a TPU would run them."""
    cpu = tf.distribute.OneDeviceStrategy("/cpu:0")
    for name, extra in [("plain", {}), ("xla", {"jit_compile": True})]:
        result = run_training(
            _cfg(
                tmp_path / name,
                train_steps=2,
                precision="bf16",
                num_wavs=0,
                gen_batchnorm=True,
                condition="pitch",
                **extra,
            ),
            cpu,
            log=lambda _: None,
        )
        assert result.step == 2 and all(np.isfinite(v) for v in result.metrics.values())
        reader = tf.train.load_checkpoint(
            tf.train.latest_checkpoint(str(tmp_path / name / "checkpoints"))
        )
        dtypes = {
            reader.get_variable_to_dtype_map()[k]
            for k in reader.get_variable_to_shape_map()
            if k.startswith("models/")
        }
        assert dtypes == {tf.float32}
    import keras

    assert keras.config.dtype_policy().name == "float32"  # the global policy is left alone


def test_auxiliary_classifier_trains_alike_on_two_replicas_and_is_logged(tmp_path):
    """--aux_classifier: its losses reach the classifier and the generator (other weights
    than with --aux_weight=0), 2 replicas
    train like one device, the log and TensorBoard show both cross-entropies, and a resume
    without the head is refused."""
    flags = dict(train_steps=6, num_wavs=0, condition="pitch", aux_classifier=True)
    logs = []
    one = run_training(
        _cfg(tmp_path / "one", **flags), tf.distribute.OneDeviceStrategy("/cpu:0"), log=logs.append
    )
    two = strategies.mirrored(["/cpu:0", "/cpu:1"])
    result = run_training(_cfg(tmp_path / "two", **flags), two, log=lambda _: None)
    assert result.replica_divergence == 0.0
    w1, w2 = checkpoint_weights(tmp_path / "one"), checkpoint_weights(tmp_path / "two")
    assert any("classifier" in k for k in w1) and max_diff(w1, w2) < 1e-5
    assert set(one.metrics) == {
        "critic",
        "generator",
        "gradient_penalty",
        "wasserstein",
        "classifier_real",
        "classifier_fake",
    }
    assert any(" classifier real " in line and " fake " in line for line in logs)
    real = _scalars(tmp_path / "one", "loss/classifier_real")
    fake = _scalars(tmp_path / "one", "loss/classifier_fake")
    assert sorted(real) == sorted(fake) == [1, 2, 3, 4, 5, 6]
    assert real[1] == pytest.approx(np.log(128), abs=0.2)  # 128 pitch classes, untrained
    assert all(np.isfinite(v) for v in [*real.values(), *fake.values()])
    # Weight 0 keeps the head but trains without it: the head gets no gradient (Adam
    # leaves it at its initial weights) and the generator ends elsewhere.
    run_training(
        _cfg(tmp_path / "off", aux_weight=0.0, **flags),
        tf.distribute.OneDeviceStrategy("/cpu:0"),
        log=lambda _: None,
    )
    off = checkpoint_weights(tmp_path / "off")
    moved = lambda prefix: max(
        float(np.abs(w1[k] - off[k]).max()) for k in w1 if k.startswith(prefix)
    )
    assert moved("models/critic/classifier") > 1e-4 and moved("models/generator/") > 1e-4
    with pytest.raises(UserError, match="aux_classifier"):
        run_training(
            _cfg(tmp_path / "one", train_steps=8, condition="pitch"),
            tf.distribute.OneDeviceStrategy("/cpu:0"),
        )
