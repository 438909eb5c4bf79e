"""The generator's exponential moving average (--generator_ema): the update and its
warm-up on one and two replicas, checkpoints (round trip, rollback, runs without an
EMA), which weights load_generator returns, and the flags' one-line errors."""

import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from conftest import TINY_TEST_FLAGS, error_line, run_module
from wavegan_dist import strategy as strategies
from wavegan_dist.config import make_config
from wavegan_dist.errors import UserError
from wavegan_dist.inference.restore import load_generator
from wavegan_dist.training import checkpoints, consensus, controller, faults, loop
from wavegan_dist.training.steps import ema_decay

pytestmark = pytest.mark.slow

# Low, so that 3 steps go through the warm-up (0.1, 0.18) and then the decay itself (0.2).
DECAY = 0.2


def _cfg(model_dir, **kw):
    return make_config(
        "tiny",
        **{**TINY_TEST_FLAGS, "n_critic": 1, "num_wavs": 0, "model_dir": str(model_dir), **kw},
    )


def _dataset_fn(strategy, cfg):
    """A dataset function of endless real-shaped batches (fixed noise)."""
    per_replica = cfg.batch_size // strategy.num_replicas_in_sync

    def dataset_fn(ctx):
        x = 0.1 * tf.random.stateless_normal(
            [per_replica, cfg.net.slice_len, 1], [ctx.input_pipeline_id, 0]
        )
        return tf.data.Dataset.from_tensors((x, tf.zeros([per_replica], tf.int32))).repeat()

    return dataset_fn


def _iterator(strategy, cfg):
    """Endless real-shaped batches (fixed noise) for the trainer's critic updates."""
    return iter(strategy.distribute_datasets_from_function(_dataset_fn(strategy, cfg)))


def _values(model):
    return [v.numpy() for v in model.trainable_variables]


def _saved(model_dir, prefix):
    """{key minus `prefix`: array} of the latest checkpoint's values under `prefix`."""
    reader = tf.train.load_checkpoint(
        tf.train.latest_checkpoint(os.path.join(model_dir, "checkpoints"))
    )
    return {
        k[len(prefix) :]: reader.get_tensor(k)
        for k in reader.get_variable_to_shape_map()
        if k.startswith(prefix)
    }


def _max_diff(a, b):
    return max(float(np.max(np.abs(np.asarray(x, np.float64) - y))) for x, y in zip(a, b))


def test_warmup_decay_formula():
    """d(step) = min(decay, (1 + step) / (10 + step))."""
    assert float(ema_decay(0.999, 0)) == pytest.approx(0.1)
    assert float(ema_decay(0.999, 9)) == pytest.approx(10 / 19)
    assert float(ema_decay(0.999, 90)) == pytest.approx(0.91)
    assert float(ema_decay(0.999, 8990)) == pytest.approx(0.999)  # the end of the warm-up
    assert float(ema_decay(0.999, 10**6)) == pytest.approx(0.999)
    assert float(ema_decay(0.995, tf.constant(1790, tf.int64))) == pytest.approx(0.995)
    assert float(ema_decay(DECAY, 2)) == pytest.approx(DECAY)  # 3/12 > 0.2


STRATEGIES = {
    "one_device": (lambda: tf.distribute.OneDeviceStrategy("/cpu:0"), {}),
    "one_device_xla": (lambda: tf.distribute.OneDeviceStrategy("/cpu:0"), {"jit_compile": True}),
    "two_replicas": (lambda: strategies.mirrored(["/cpu:0", "/cpu:1"]), {}),
}


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_ema_is_the_closed_form_average_of_the_weight_trajectory(name, tmp_path):
    make_strategy, extra = STRATEGIES[name]
    strategy = make_strategy()
    cfg = _cfg(tmp_path, generator_ema=DECAY, **extra)
    trainer = loop.make_trainer(cfg, strategy)
    iterator = _iterator(strategy, cfg)
    trajectory = [_values(trainer.generator)]
    assert _max_diff(_values(trainer.generator_ema), trajectory[0]) == 0.0  # starts equal
    for _ in range(3):
        # The compiled loop the training loop calls (--steps_per_loop), one step a call
        # so that the generator's weights can be read after each step.
        trainer.train_steps(iterator, tf.constant(1, tf.int32))
        trajectory.append(_values(trainer.generator))
    expected = [w.astype(np.float64) for w in trajectory[0]]
    for step, weights in enumerate(trajectory[1:]):
        d = min(DECAY, (1 + step) / (10 + step))
        expected = [d * e + (1 - d) * w for e, w in zip(expected, weights)]
    ema = _values(trainer.generator_ema)
    assert _max_diff(ema, expected) < 1e-6
    assert _max_diff(ema, trajectory[-1]) > 1e-5  # and it is not the generator itself
    copies = trainer.generator_ema.trainable_variables[0].value
    assert len(getattr(copies, "values", [copies])) == strategy.num_replicas_in_sync
    assert loop.replica_divergence(trainer.generator_ema.variables) == 0.0


def test_checkpoint_round_trip_rollback_and_load_generator(tmp_path):
    """The EMA is saved, restored exactly, rolled back with the rest, and is what
    load_generator returns unless asked for the raw weights."""
    cfg = _cfg(tmp_path, generator_ema=DECAY, on_nan="rollback")
    trainer = loop.make_trainer(cfg, tf.distribute.OneDeviceStrategy("/cpu:0"))
    ckpt = loop.make_checkpointer(cfg, trainer)
    iterator = _iterator(trainer.strategy, cfg)
    trainer.train_steps(iterator, tf.constant(2, tf.int32))
    ckpt.save()
    checkpoints.record_config(cfg.model_dir, {**cfg.to_dict(), "sample_rate": 16000})
    saved_ema, saved_raw = _values(trainer.generator_ema), _values(trainer.generator)
    assert _max_diff(saved_ema, saved_raw) > 1e-5
    # The checkpoint holds the EMA under its own node, beside models/generator.
    ema_saved, raw_saved = _saved(tmp_path, "generator_ema/"), _saved(tmp_path, "models/generator/")
    assert len(ema_saved) == len(saved_ema) and ema_saved.keys() == raw_saved.keys()

    trainer.train_steps(iterator, tf.constant(1, tf.int32))
    assert _max_diff(_values(trainer.generator_ema), saved_ema) > 1e-6
    logs = []
    runner = loop.PipelineTrainer(
        trainer=trainer,
        cfg=cfg,
        checkpointer=ckpt,
        log=logs.append,
        dataset_fn_at=lambda step: _dataset_fn(trainer.strategy, cfg),
    )
    ctl = controller.Controller(
        trainer=runner,
        checkpointer=ckpt,
        writer=None,
        schedule=controller.Schedule.of(cfg),
        stop=faults.StopRequest(),
        workers=consensus.Workers(trainer.strategy),
        step=3,
        log=logs.append,
        progress=controller.Progress(examples_per_step=cfg.batch_size),
        rollback=controller.Rollback(
            on_nan="rollback", max_rollbacks=1, seed=cfg.seed, model_dir=cfg.model_dir
        ),
        rollbacks=1,
    )
    step = ctl.rollback(ctl, faults.Diverged(3, {"generator": float("nan")}))
    assert step == 2 and ckpt.missing == ()
    assert int(trainer.noise_seed.numpy()) == faults.rollback_seed(cfg.seed, 1)
    assert _max_diff(_values(trainer.generator_ema), saved_ema) == 0.0
    assert _max_diff(_values(trainer.generator), saved_raw) == 0.0

    logs = []
    ema, _, _, ema_step, weights = load_generator(str(tmp_path), log=logs.append)
    assert (ema_step, weights) == (2, "ema") and "(ema weights)" in logs[-1]
    assert _max_diff(_values(ema), saved_ema) == 0.0
    raw, *_, weights = load_generator(str(tmp_path), weights="raw")
    assert weights == "raw" and _max_diff(_values(raw), saved_raw) == 0.0
    # The samples drawn during training come from the EMA too.
    z = tf.random.uniform([2, cfg.net.latent_dim], -1.0, 1.0, seed=1)
    assert np.abs(trainer.generate(z).numpy() - ema(z, None, training=False).numpy()).max() < 1e-6
    assert (
        np.abs(trainer.generate(z, raw=True).numpy() - raw(z, None, training=False).numpy()).max()
        < 1e-6
    )


@pytest.fixture(scope="module")
def run_without_ema(tmp_path_factory):
    """A tiny run trained 2 steps with --generator_ema=0 (checkpoint as before the EMA)."""
    d = tmp_path_factory.mktemp("no_ema")
    loop.run_training(
        _cfg(d, train_steps=2, generator_ema=0.0),
        tf.distribute.OneDeviceStrategy("/cpu:0"),
        log=lambda _: None,
    )
    return d


def test_run_without_ema_loads_raw_and_refuses_ema(run_without_ema):
    d = str(run_without_ema)
    assert _saved(d, "generator_ema/") == {} and _saved(d, "models/generator/")
    *_, step, weights = load_generator(d)
    assert (step, weights) == (2, "raw")
    with pytest.raises(
        UserError,
        match="--weights=ema: .*ckpt-2 has no generator EMA .*"
        "--generator_ema=0.*pass --weights=raw",
    ):
        load_generator(d, weights="ema")


def test_old_checkpoint_resumes_with_ema_equal_to_the_generator(run_without_ema, tmp_path):
    d = tmp_path / "run"
    shutil.copytree(run_without_ema, d)
    logs = []
    loop.run_training(
        _cfg(d, train_steps=3, generator_ema=0.99),
        tf.distribute.OneDeviceStrategy("/cpu:0"),
        log=logs.append,
    )
    assert any(line.startswith("note: ") and "has no generator EMA" in line for line in logs)
    # EMA = generator at step 2, then one update with d = min(0.99, (1 + 2) / (10 + 2)).
    before, after = _saved(run_without_ema, "models/generator/"), _saved(d, "models/generator/")
    ema, decay = _saved(d, "generator_ema/"), 3 / 12
    assert ema.keys() == after.keys() and len(ema) >= 6
    for key, value in ema.items():
        np.testing.assert_allclose(
            value, decay * before[key] + (1 - decay) * after[key], rtol=0, atol=1e-6
        )
    assert max(float(np.abs(ema[k] - after[k]).max()) for k in ema) > 1e-5


def test_bad_generator_ema_and_missing_ema_are_one_line_errors(run_without_ema, tmp_path):
    for bad in ("1", "-0.5", "nan"):
        line = error_line(
            run_module(
                "train", "--preset=tiny", f"--generator_ema={bad}", f"--model_dir={tmp_path / 'x'}"
            )
        )
        assert line.startswith("error: --generator_ema must be in [0, 1) (0 = off), got"), line
    assert not (tmp_path / "x").exists()
    line = error_line(
        run_module(
            "generate", f"--model_dir={run_without_ema}", f"--out={tmp_path / 'o'}", "--weights=ema"
        )
    )
    assert "has no generator EMA" in line and "--weights=raw" in line
    assert not (tmp_path / "o").exists()
