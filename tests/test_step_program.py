"""One training step is one device program: one strategy.run per generator step (and per
--steps_per_loop loop iteration), and the function it runs compiles whole with XLA."""

import numpy as np
import pytest
import tensorflow as tf

from conftest import TINY_TEST_FLAGS
from wavegan_dist import private_apis
from wavegan_dist.config import make_config
from wavegan_dist.training import loop

pytestmark = pytest.mark.slow


class _Counting:
    """Records every strategy.run (the function it was given) and strategy.reduce."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.runs, self.reduces = [], 0

    def run(self, fn, args=(), kwargs=None, options=None):
        self.runs.append(fn)
        return super().run(fn, args, kwargs, options)

    def reduce(self, reduce_op, value, axis):
        self.reduces += 1
        return super().reduce(reduce_op, value, axis)


class CountingOneDevice(_Counting, tf.distribute.OneDeviceStrategy):
    pass


class CountingMirrored(_Counting, tf.distribute.MirroredStrategy):
    pass


def _mirrored_counting():
    # Fresh collective keys, as strategies.mirrored gives every MirroredStrategy.
    return private_apis.with_own_collective_keys(lambda: CountingMirrored(["/cpu:0", "/cpu:1"]))


def _cfg(**kw):
    return make_config("tiny", **{**TINY_TEST_FLAGS, "model_dir": "", **kw})


def _counts(cfg):
    classes = cfg.model_spec().num_classes
    return np.arange(1, classes + 1) if classes else None


def _batch(cfg, rows, index):
    """One real-shaped batch: (audio float32 [rows, slice_len, 1], labels int32 [rows])."""
    audio = 0.1 * tf.random.stateless_normal([rows, cfg.net.slice_len, 1], [index, 7])
    classes = max(cfg.model_spec().num_classes, 1)
    return audio, tf.random.stateless_uniform([rows], [index, 8], 0, classes, tf.int32)


def _iterator(strategy, cfg):
    per_replica = cfg.batch_size // strategy.num_replicas_in_sync
    return iter(
        strategy.distribute_datasets_from_function(
            lambda ctx: tf.data.Dataset.range(10**6).map(
                lambda i: _batch(cfg, per_replica, i + 100 * ctx.input_pipeline_id)
            )
        )
    )


@pytest.mark.parametrize("replicas", [1, 2])
def test_one_strategy_run_per_step_and_no_host_reductions(replicas):
    """n_critic=2: today's formulation traced n_critic + 1 = 3 strategy.runs and reduces."""
    strategy = CountingOneDevice("/cpu:0") if replicas == 1 else _mirrored_counting()
    cfg = _cfg(condition="pitch", gen_batchnorm=True)
    trainer = loop.make_trainer(cfg, strategy, _counts(cfg))
    iterator = _iterator(strategy, cfg)
    assert cfg.n_critic == 2
    strategy.runs, strategy.reduces = [], 0  # building the trainer reads sync-on-read values
    out = trainer.train_step(iterator)
    assert trainer.train_step.experimental_get_tracing_count() == 1
    assert (len(strategy.runs), strategy.reduces) == (1, 0)
    assert strategy.runs == [trainer.replica_step]
    assert int(trainer.step.numpy()) == 1 and set(out) == set(
        ("critic", "gradient_penalty", "wasserstein", "generator")
    )
    # The compiled loop: one strategy.run inside the tf.range, run once per step.
    strategy.runs.clear()
    looped = trainer.train_steps(iterator, tf.constant(3, tf.int32))
    assert trainer.train_steps.experimental_get_tracing_count() == 1
    assert (len(strategy.runs), strategy.reduces) == (1, 0)
    assert strategy.runs == [trainer.replica_step]
    assert int(trainer.step.numpy()) == 4 and looped["critic"].shape == [3]
    assert all(np.all(np.isfinite(v.numpy())) for v in looped.values())


VARIANTS = {
    "plain": {},
    "pitch": dict(condition="pitch"),
    "gen_batchnorm": dict(gen_batchnorm=True),
    "bf16": dict(precision="bf16"),
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_the_whole_replica_step_compiles_with_xla(variant):
    """The function train_step passes to strategy.run, compiled whole with
    jit_compile=True (optimizer steps, EMA, step counter, metric all-reduce included),
    takes the same step as the uncompiled one."""
    cfg = _cfg(**VARIANTS[variant])
    strategy = tf.distribute.get_strategy()
    xla, plain = (loop.make_trainer(cfg, strategy, _counts(cfg)) for _ in range(2))
    for a, b in ((xla.generator, plain.generator), (xla.critic, plain.critic)):
        b.set_weights(a.get_weights())
    plain.reset_ema()
    batches = tuple(_batch(cfg, cfg.batch_size, i) for i in range(cfg.n_critic))
    compiled = tf.function(xla.replica_step, jit_compile=True)
    hlo = compiled.experimental_get_compiler_ir(batches)(stage="hlo")
    assert hlo.startswith("HloModule") and "ENTRY" in hlo
    got, want = compiled(batches), tf.function(plain.replica_step)(batches)
    assert int(xla.step.numpy()) == int(plain.step.numpy()) == 1
    assert all(np.isfinite(float(v)) for v in got.values())
    tolerance = 5e-2 if variant == "bf16" else 1e-4  # bfloat16 rounds at 2^-8
    assert max(abs(float(got[k]) - float(want[k])) for k in got) < tolerance
    weights = lambda t: (
        t.generator.get_weights() + t.critic.get_weights() + t.generator_ema.get_weights()
    )
    # Adam moves a weight by up to about the learning rate (5e-4) per update whatever its
    # gradient's size (down to its epsilon, 1e-8), so round-off in a gradient near zero
    # shows at a fraction of that scale: bfloat16's often, float32's now and then (1.02e-5
    # measured with --gen_batchnorm). A missed or doubled update would move a weight by ~5e-4.
    assert max(float(np.max(np.abs(a - b))) for a, b in zip(weights(xla), weights(plain))) < (
        1e-2 if variant == "bf16" else 1e-4
    )
