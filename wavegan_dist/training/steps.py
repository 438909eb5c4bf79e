"""The compiled WGAN-GP training step: n_critic critic updates and one generator update.

`WganGpTrainer` owns the models, optimizers and step counter (all created under
the strategy's scope) and exposes two `tf.function`s: `train_steps(iterator, n)`, n steps
in one compiled loop (what the training loop calls), and `train_step(iterator)`, one.
A step is ONE `strategy.run` of `replica_step`: the n_critic real batches are taken from
the distributed iterator first and passed in, and the replica function runs the
n_critic critic updates, the generator update, the generator EMA's update, the step
counter's increment and one all-reduce of the step's metrics, so the host only reads
replica 0's (identical) values. A `--steps_per_loop` loop is a `tf.range` around that
one `strategy.run` (as Orbit runs its steps). The per-replica functions stay small:
draw this replica's randomness, run the networks, compute per-example losses, average
them over the GLOBAL batch and apply gradients (Keras sums gradients across replicas
inside `apply_gradients`, so the update equals the single-device update on the whole
global batch). `critic_update` and `generator_update` run one update each (what
`bench train` times).

With --jit_compile the whole replica step is one XLA program on one device; on several
mirrored replicas each replica's forward and backward passes are (the optimizer step and
its all-reduce run after them, uncompiled: see check_jit_compile); a TPU compiles the
whole step anyway.

Conditional models: in a critic update the fakes take the real batch's labels (so
real and fake share one label distribution and the penalty's interpolates have
one label each); in a generator update labels are drawn with the training set's
class frequencies.

Auxiliary classifier (StepConfig.aux_weight > 0, a critic built with aux_classifier):
the critic's loss gains aux_weight x its classifier's cross-entropy on the real clips'
labels, the generator's gains aux_weight x the cross-entropy of its clips against the
labels they were asked for (GANSynth's AC losses).

Generator EMA (StepConfig.generator_ema > 0): a second generator of the same
architecture holds an exponential moving average of the generator's weights, and
draws every sample (`generate`). Each replica updates its own copy after each generator
update, in replica context (see `ema_decay` and `WganGpTrainer._update_ema`).
"""

from __future__ import annotations

import dataclasses
import functools

import keras
import numpy as np
import tensorflow as tf

from wavegan_dist import losses, noise
from wavegan_dist.errors import UserError
from wavegan_dist.training.optimizers import FusedAdam


@dataclasses.dataclass(frozen=True, kw_only=True)
class StepConfig:
    """What the step needs to know; plain values, taken from Config."""

    global_batch: int
    n_critic: int
    gp_weight: float
    latent_dim: int
    phase_shuffle: int
    seed: int
    jit_compile: bool = False  # XLA-compile each replica's forward and backward pass
    debug_nan_at_step: int = 0  # test hook: NaN generator loss at this step (1-based)
    generator_ema: float = 0.0  # EMA decay of the generator's weights; 0 = no EMA
    aux_weight: float = 0.0  # weight of the auxiliary classifier's cross-entropy; 0 = none


def ema_decay(decay: float, step) -> tf.Tensor:
    """The decay the EMA update after generator step `step` (0-based) uses:

        d(step) = min(decay, (1 + step) / (10 + step))

    (tf.train.ExponentialMovingAverage's num_updates warm-up). The first updates
    then follow the generator closely (d(0) = 0.1, d(9) = 0.53, d(90) = 0.91), so
    early checkpoints are not dominated by the random initial weights; d reaches
    `decay` at step (10 decay - 1) / (1 - decay) (8,990 for 0.999, 1,790 for 0.995).

    Args:
      decay: the configured decay, in [0, 1).
      step: int scalar (Python or tensor): generator updates done before this one.
    Returns:
      float32 scalar tensor.
    """
    step = tf.cast(step, tf.float32)
    return tf.minimum(tf.constant(decay, tf.float32), (1.0 + step) / (10.0 + step))


CRITIC_METRICS = ("critic", "gradient_penalty", "wasserstein")


METRICS = CRITIC_METRICS + ("generator",)

# With the auxiliary classifier: its cross-entropy on real clips (critic updates) and
# on generated ones (generator updates), unweighted.
AUX_CRITIC_METRICS = ("classifier_real",)
AUX_METRICS = AUX_CRITIC_METRICS + ("classifier_fake",)


def check_jit_compile(
    strategy: tf.distribute.Strategy, jit_compile: bool, gen_batchnorm: bool
) -> None:
    """Raises UserError for --jit_compile that TensorFlow cannot run on `strategy`.

    On one device the whole replica step compiles (compiles_whole_step). On several
    mirrored replicas only each replica's forward and backward passes do; the optimizer
    update, whose gradient all-reduce is a collective, runs outside them (TensorFlow
    cannot run a collective inside a tf.function nested in MirroredStrategy's
    strategy.run: "`merge_call` called while defining a new graph"). The generator's
    batch norm all-reduces its statistics inside the forward pass, so with it only one
    replica (or a TPU, which compiles the whole step) can compile.
    """
    if (
        jit_compile
        and gen_batchnorm
        and strategy.num_replicas_in_sync > 1
        and not isinstance(strategy, tf.distribute.TPUStrategy)
    ):
        raise UserError(
            f"--jit_compile with --gen_batchnorm needs one replica (or a TPU), "
            f"but {type(strategy).__name__} has {strategy.num_replicas_in_sync}: "
            "the batch norm all-reduces inside the compiled step, which "
            "TensorFlow cannot do under strategy.run; drop one of the two flags "
            "or train on one device"
        )


def compiles_whole_step(strategy: tf.distribute.Strategy) -> bool:
    """Whether --jit_compile can compile the whole replica step (optimizer steps, EMA
    and step counter included) as one XLA function on `strategy`: on one device (the
    default strategy or OneDeviceStrategy), where no merge_call leaves the replica.
    A TPU compiles the whole step by itself; mirrored replicas cannot (check_jit_compile).
    """
    if isinstance(strategy, tf.distribute.OneDeviceStrategy):
        return True
    try:
        strategy.extended.worker_devices
    except RuntimeError:  # only the default strategy has no worker devices
        return True
    return False


class WganGpTrainer:
    """Holds the GAN's state and its compiled step for one tf.distribute strategy.

    Args:
      strategy: the strategy whose scope the models and optimizers were built in.
      generator: maps (z [B, latent_dim], labels [B] or None) to [B, T, 1].
      critic: maps ([B, T, 1], shifts [B, L] int32 or None, labels [B] or None) to [B].
      g_opt, d_opt: Keras optimizers, already built under the scope.
      step: int64 scalar variable counting generator steps, created under the scope.
      noise_seed: int64 scalar variable keying every random draw (the run's seed, or
        a fresh one after a rollback), created under the scope.
      cfg: StepConfig.
      label_counts: int [num_classes] rows per class of the training set; required
        when the networks are conditional (generator.num_classes > 0).
      generator_ema: a second generator of the same architecture, built under the
        scope, for the weights' moving average; required when cfg.generator_ema > 0.
        Its weights are set to the generator's here.
    """

    def __init__(
        self,
        strategy: tf.distribute.Strategy,
        generator: keras.Model,
        critic: keras.Model,
        g_opt: keras.optimizers.Optimizer,
        d_opt: keras.optimizers.Optimizer,
        step: tf.Variable,
        noise_seed: tf.Variable,
        cfg: StepConfig,
        label_counts: np.ndarray | None = None,
        generator_ema: keras.Model | None = None,
    ):
        self.conditional = bool(getattr(generator, "num_classes", 0))
        if self.conditional:
            if label_counts is None or len(label_counts) != generator.num_classes:
                raise ValueError(
                    f"a conditional generator needs label_counts of length {generator.num_classes}"
                )
            self._cumulative_counts = np.cumsum(label_counts).astype(np.int32)
        check_jit_compile(
            strategy,
            cfg.jit_compile,
            bool(getattr(getattr(generator, "spec", None), "gen_batchnorm", False)),
        )
        self.auxiliary = cfg.aux_weight > 0
        if self.auxiliary and (not self.conditional or getattr(critic, "classifier", None) is None):
            raise ValueError(
                "aux_weight > 0 needs conditional networks and a critic with a classifier"
            )
        self.critic_metric_names = CRITIC_METRICS + (AUX_CRITIC_METRICS if self.auxiliary else ())
        # What each step returns, and the training loop logs and summarises.
        self.metric_names = METRICS + (AUX_METRICS if self.auxiliary else ())
        self.strategy = strategy
        self.generator = generator
        self.critic = critic
        # A classifier head trained with weight 0 gets no gradient: leave it out of the
        # critic's update (its weights stay as built; Keras would warn of a missing gradient).
        head = getattr(critic, "classifier", None)
        unused = {id(v) for v in head.trainable_variables} if head and not self.auxiliary else set()
        self._critic_trained = [v for v in critic.trainable_variables if id(v) not in unused]
        self.g_opt = g_opt
        self.d_opt = d_opt
        self.step = step
        self.noise_seed = noise_seed
        self.cfg = cfg
        self.per_replica = cfg.global_batch // strategy.num_replicas_in_sync
        if (generator_ema is None) != (cfg.generator_ema == 0):
            raise ValueError("pass generator_ema exactly when cfg.generator_ema > 0")
        self.generator_ema = generator_ema
        if generator_ema is not None:
            shapes = lambda model: [tuple(v.shape) for v in model.variables]
            if shapes(generator_ema) != shapes(generator):
                raise ValueError("generator_ema must have the generator's architecture")
            self.reset_ema()
        tpu = isinstance(strategy, tf.distribute.TPUStrategy)
        whole = cfg.jit_compile and compiles_whole_step(strategy)
        # With --jit_compile on mirrored replicas each forward and backward pass is its own
        # XLA function; on one device the whole replica step is one; a TPU compiles it all.
        parts = self._compiled if cfg.jit_compile and not (whole or tpu) else (lambda fn: fn)
        # One function per critic iteration: `i` names the random streams (see below).
        self._critic_grad_fns = [
            parts(functools.partial(self._critic_gradients, i=i)) for i in range(cfg.n_critic)
        ]
        self._generator_grad_fn = parts(self._generator_gradients)
        self._whole = whole
        self._run_step = self._replica_fn(self.replica_step)
        self.train_step = tf.function(self._train_step)
        self.train_steps = tf.function(self._train_steps)
        self._samplers = {
            name: tf.function(functools.partial(self._sample_replica, generator=model))
            for name, model in (("raw", generator), ("ema", generator_ema))
            if model is not None
        }

    def _replica_fn(self, fn):
        # What strategy.run gets: fn, or with --jit_compile on one device fn compiled whole.
        return self._compiled(fn) if self._whole else fn

    def _compiled(self, fn):
        # fn as one XLA function, called on the replica's own device.
        compiled = tf.function(fn, jit_compile=True)
        try:
            devices = self.strategy.extended.worker_devices
        except RuntimeError:  # the default strategy has none, and one device
            return compiled

        def on_replica_device(*args, **kwargs):
            # MirroredStrategy placed the call of an XLA function that reads Keras 3
            # variables on its first device ("Trying to access resource .../replica_1
            # located in device CPU:1 from device CPU:0"): pin it to the replica's own.
            # The replica id is global under multi-worker, where each worker has
            # len(devices) replicas; on a TPU it is not static, and not needed.
            replica = tf.get_static_value(
                tf.distribute.get_replica_context().replica_id_in_sync_group
            )
            if replica is None:
                return compiled(*args, **kwargs)
            with tf.device(devices[int(replica) % len(devices)]):
                return compiled(*args, **kwargs)

        return on_replica_device

    def _shifts(self, rng_key: tf.Tensor, copies: int) -> tf.Tensor | None:
        layers = self.critic.num_shuffle_layers
        if not layers:
            return None
        return noise.shifts(
            rng_key, self.cfg.global_batch, self.per_replica, layers, self.cfg.phase_shuffle, copies
        )

    def _after_critic_updates(self, step: tf.Tensor) -> tf.Tensor:
        # Replicas must issue their collectives in one order. The generator pass that
        # starts an update reads no critic weight, so without this it could run (and
        # start a batch-norm all-reduce) on one replica before the previous critic
        # update's gradient all-reduce; reading a critic weight orders it after that.
        with tf.control_dependencies([tf.identity(self._critic_trained[-1].value)]):
            return tf.identity(step)

    def _critic_replica_update(self, batch: tuple, step: tf.Tensor, i: int) -> dict:
        grads, metrics = self._critic_grad_fns[i](batch, step)
        self.d_opt.apply_gradients(zip(grads, self._critic_trained))
        return metrics

    def _critic_gradients(self, batch: tuple, step: tf.Tensor, i: int):
        """(gradients of the critic's trainable variables, metrics) of one replica's critic
        update: all of it but the optimizer step (what --jit_compile compiles)."""
        cfg, p, seed = self.cfg, self.per_replica, self.noise_seed
        step = self._after_critic_updates(step)
        real, labels = batch
        labels = labels if self.conditional else None
        z = noise.latent(
            noise.key(seed, step, noise.Streams.critic_latent(i)),
            cfg.global_batch,
            p,
            cfg.latent_dim,
        )
        alpha = noise.unit_uniform(
            noise.key(seed, step, noise.Streams.critic_alpha(i)), cfg.global_batch, p
        )
        shifts = self._shifts(noise.key(seed, step, noise.Streams.critic_shifts(i)), 3)
        fake = self.generator(z, labels, training=True)
        x_hat = losses.interpolate(real, fake, alpha)
        with tf.GradientTape() as tape:
            # Real and fake share one critic call; interpolates need their own for the penalty.
            scores = self.critic(
                tf.concat([real, fake], 0),
                None if shifts is None else shifts[: 2 * p],
                None if labels is None else tf.concat([labels, labels], 0),
                training=True,
                with_logits=self.auxiliary,
            )
            if self.auxiliary:
                scores, logits = scores
                # Only real clips teach the classifier (as in GANSynth): fakes would
                # teach it the generator's mistakes.
                ac_real = losses.auxiliary_classification(logits[:p], labels)
            with tf.GradientTape() as gp_tape:
                gp_tape.watch(x_hat)
                d_hat = self.critic(
                    x_hat, None if shifts is None else shifts[2 * p :], labels, training=True
                )
            penalty = losses.gradient_penalty(gp_tape.gradient(d_hat, x_hat))
            d_real, d_fake = scores[:p], scores[p:]
            per_example = losses.critic_loss(d_real, d_fake, penalty, cfg.gp_weight)
            if self.auxiliary:
                per_example += cfg.aux_weight * ac_real
            loss = self._global_mean(per_example)
        grads = tape.gradient(loss, self._critic_trained)
        metrics = {
            "critic": loss,
            "gradient_penalty": self._global_mean(penalty),
            "wasserstein": self._global_mean(losses.wasserstein_estimate(d_real, d_fake)),
        }
        if self.auxiliary:
            metrics["classifier_real"] = self._global_mean(ac_real)
        return grads, metrics

    def _global_mean(self, per_example: tf.Tensor) -> tf.Tensor:
        """This replica's share of the global-batch mean of `per_example` ([B] -> scalar);
        summed over replicas it is the mean over the global batch."""
        return tf.nn.compute_average_loss(per_example, global_batch_size=self.cfg.global_batch)

    def _generator_replica_update(self, step: tf.Tensor) -> dict:
        grads, metrics = self._generator_grad_fn(step)
        self.g_opt.apply_gradients(zip(grads, self.generator.trainable_variables))
        if self.generator_ema is not None:
            self._update_ema(ema_decay(self.cfg.generator_ema, step), in_replica=True)
        return metrics

    def replica_step(self, batches: tuple) -> dict:
        """One generator step on one replica: the function `train_step` passes to
        strategy.run (and the one --jit_compile compiles whole on one device).

        The n_critic critic updates (the i-th on batches[i]), the generator update, the
        EMA update, the step counter's increment, and one all-reduce of the metrics.
        Replica context.

        Args:
          batches: n_critic (audio [per_replica, slice_len, 1], label [per_replica])
            tuples, this replica's parts of n_critic global batches.
        Returns:
          {metric: float32 scalar} for metric_names, global means (the same on every
          replica);
          critic ones averaged over the n_critic updates.
        """
        step = self.step.read_value()
        sums = {k: tf.constant(0.0) for k in self.critic_metric_names}
        for i, batch in enumerate(batches):
            out = self._critic_replica_update(batch, step, i)
            sums = {k: sums[k] + out[k] for k in self.critic_metric_names}
        metrics = {k: v / len(batches) for k, v in sums.items()}
        metrics.update(self._generator_replica_update(step))
        self.step.assign_add(1)
        return _all_reduce_sum(metrics)

    def _generator_gradients(self, step: tf.Tensor):
        """(gradients of the generator's trainable variables, metrics) of one replica's
        generator update, without the optimizer step."""
        cfg, p, seed = self.cfg, self.per_replica, self.noise_seed
        step = self._after_critic_updates(step)
        z = noise.latent(
            noise.key(seed, step, noise.Streams.GENERATOR_LATENT),
            cfg.global_batch,
            p,
            cfg.latent_dim,
        )
        shifts = self._shifts(noise.key(seed, step, noise.Streams.GENERATOR_SHIFTS), 1)
        labels = None
        if self.conditional:
            labels = noise.labels(
                noise.key(seed, step, noise.Streams.GENERATOR_LABELS),
                cfg.global_batch,
                p,
                tf.constant(self._cumulative_counts),
            )
        metrics = {}
        with tf.GradientTape() as tape:
            d_fake = self.critic(
                self.generator(z, labels, training=True),
                shifts,
                labels,
                training=True,
                with_logits=self.auxiliary,
            )
            aux_term = 0.0
            if self.auxiliary:
                d_fake, logits = d_fake
                ac_fake = losses.auxiliary_classification(logits, labels)
                aux_term = cfg.aux_weight * ac_fake
                metrics["classifier_fake"] = self._global_mean(ac_fake)
            loss = self._global_mean(losses.generator_loss(d_fake) + aux_term)
            if cfg.debug_nan_at_step:
                loss += self._debug_nan(step)
        metrics["generator"] = loss
        return tape.gradient(loss, self.generator.trainable_variables), metrics

    def _debug_nan(self, step: tf.Tensor) -> tf.Tensor:
        # NaN at the chosen (1-based) step, only under the run's own noise seed, so a
        # rollback (which draws a new seed) gets past it, as it would past a real blow-up.
        hit = tf.logical_and(
            tf.equal(step + 1, self.cfg.debug_nan_at_step), tf.equal(self.noise_seed, self.cfg.seed)
        )
        return tf.where(hit, tf.constant(float("nan")), 0.0)

    def critic_update(self, batch, step: tf.Tensor, i: int = 0) -> dict:
        """The i-th critic update of generator step `step`, on one real batch.

        Cross-replica: call inside a tf.function, outside strategy.run.

        Args:
          batch: a distributed (audio [per_replica, slice_len, 1], label [per_replica])
            element of the strategy's distributed dataset.
          step: int64 scalar, the generator step (names the random streams).
          i: Python int < n_critic, which of the step's critic updates this is.
        Returns:
          {metric: float32 scalar} for critic_metric_names, summed over replicas (global
          means).
        """
        # `i` goes in through a closure: as a strategy.run argument it would become a
        # tensor on TPU, and it names Python-level random streams.
        update = lambda b, s: _all_reduce_sum(self._critic_replica_update(b, s, i))
        return self._first_replica(self.strategy.run(self._replica_fn(update), args=(batch, step)))

    def generator_update(self, step: tf.Tensor) -> tf.Tensor:
        """The generator update of generator step `step`, then the EMA update after it.

        Cross-replica, like critic_update; does not advance `self.step`.

        Returns:
          float32 scalar, the generator loss summed over replicas (its global mean).
        """
        update = lambda s: _all_reduce_sum(self._generator_replica_update(s))
        out = self.strategy.run(self._replica_fn(update), args=(step,))
        return self._first_replica(out)["generator"]

    def _first_replica(self, out: dict) -> dict:
        # Values all-reduced in the replica function are the same on every replica.
        return {k: self.strategy.experimental_local_results(v)[0] for k, v in out.items()}

    def _train_step(self, iterator) -> dict:
        """One generator step: one strategy.run of replica_step on the next n_critic
        batches of `iterator` (a distributed iterator: next() cannot run inside a
        replica function). Returns replica_step's global-mean scalars."""
        batches = tuple(next(iterator) for _ in range(self.cfg.n_critic))
        return self._first_replica(self.strategy.run(self._run_step, args=(batches,)))

    def _train_steps(self, iterator, num_steps: tf.Tensor) -> dict:
        """`num_steps` generator steps in one compiled loop (--steps_per_loop).

        Returns:
          {metric: float32 [num_steps]}, each step's global-mean scalars, so logs
          stay exact per step however many steps one host call runs.
        """
        names = self.metric_names
        arrays = {k: tf.TensorArray(tf.float32, size=num_steps) for k in names}
        for j in tf.range(num_steps):
            out = self._train_step(iterator)
            arrays = {k: arrays[k].write(j, out[k]) for k in names}
        return {k: arrays[k].stack() for k in names}

    def _update_ema(self, decay: tf.Tensor | None, in_replica: bool) -> None:
        """w_ema <- decay * w_ema + (1 - decay) * w for every trainable weight, and a
        copy of every non-trainable one (batch-norm moving statistics); decay None
        copies everything.

        Every replica blends its own copy of each EMA variable with its own copy of the
        generator variable: no collective and no merge_call, and since the generator's
        copies are identical on all replicas, so are the EMA's. In replica context (the
        training step) that is a plain assign: the EMA's weights are mirrored with
        aggregation NONE, which TensorFlow updates replica-locally, and its batch-norm
        statistics are sync-on-read. In cross-replica context (in_replica False: reset_ema)
        strategy.extended.update calls `blend` once per local copy.
        """

        def blend(ema, weight, decay):
            if decay is None:
                return ema.assign(weight)
            return ema.assign(decay * ema + (1.0 - decay) * weight)

        assert self.generator_ema is not None, "only a trainer with an EMA updates it"
        pairs = [
            (e, w, decay)
            for e, w in zip(
                self.generator_ema.trainable_variables, self.generator.trainable_variables
            )
        ]
        # Moving statistics are already an average over batches; they are copied (as
        # StyleGAN2-ADA copies its buffers), not averaged a second time.
        pairs += [
            (e, w, None)
            for e, w in zip(
                self.generator_ema.non_trainable_variables, self.generator.non_trainable_variables
            )
        ]
        for ema, weight, d in pairs:
            # Keras 3 variables wrap the (distributed) tf.Variable that update() needs.
            if in_replica:
                if (
                    ema.value.aggregation != tf.VariableAggregation.NONE
                    and ema.value.synchronization != tf.VariableSynchronization.ON_READ
                ):
                    raise ValueError(
                        f"{ema.path}: a replica-local EMA update needs "
                        "aggregation NONE or a sync-on-read variable"
                    )
                blend(ema.value, weight.value, d)
            else:
                self.strategy.extended.update(
                    ema.value, functools.partial(blend, decay=d), args=(weight.value,)
                )

    def reset_ema(self) -> None:
        """Sets the EMA weights to the generator's (a new run, or a checkpoint without
        an EMA). Call outside tf.function, in cross-replica context."""
        self._update_ema(None, in_replica=False)

    def _sample_replica(self, z: tf.Tensor, labels: tf.Tensor, generator) -> tf.Tensor:
        return generator(z, labels if self.conditional else None, training=False)

    def generate(self, z: tf.Tensor, labels=None, raw: bool = False) -> tf.Tensor:
        """Runs the generator's EMA copy (or the generator, if no EMA or `raw`) on every
        replica with the same inputs; returns replica 0's output (works for every
        strategy, TPU included).

        Args:
          z: float32 [B, latent_dim].
          labels: int [B] for a conditional generator (ignored otherwise).
          raw: use the trained generator's own weights even if there is an EMA.
        Returns:
          float32 [B, T, 1].
        """
        if labels is None:
            if self.conditional:
                raise ValueError("this generator is conditional: pass labels")
            labels = tf.zeros([z.shape[0]], tf.int32)
        sample = self._samplers["raw" if raw or self.generator_ema is None else "ema"]
        out = self.strategy.run(sample, args=(z, tf.cast(labels, tf.int32)))
        return self.strategy.experimental_local_results(out)[0]


def _all_reduce_sum(values: dict) -> dict:
    """{name: scalar} summed over replicas, in one all-reduce (replica context)."""
    return tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, values)


def build_trainer(
    strategy: tf.distribute.Strategy,
    model_fn,
    step_cfg: StepConfig,
    learning_rate: float,
    beta1: float,
    beta2: float,
    label_counts: np.ndarray | None = None,
    generator_fn=None,
    *,
    epsilon: float,
    kernels: str,
) -> WganGpTrainer:
    """Creates models, optimizers and the step counter under `strategy.scope()`.

    Optimizers are built eagerly here: Keras 3 would otherwise create their slots
    inside the first traced step, which fails under tf.distribute.

    Args:
      model_fn: () -> (generator, critic), with variables already created.
      label_counts: rows per class, for conditional networks (see WganGpTrainer).
      generator_fn: () -> a generator like model_fn's, for the EMA copy when
        step_cfg.generator_ema > 0 (then required: ValueError without it).
      epsilon: Adam's epsilon, both optimizers.
      kernels: "fast" (training/optimizers.FusedAdam) or "reference"
        (keras.optimizers.Adam), the same update (wavegan_dist/kernels.py).
    Returns:
      A WganGpTrainer ready to run.
    """
    with strategy.scope():
        generator, critic = model_fn()
        generator_ema = None
        if step_cfg.generator_ema:
            if generator_fn is None:  # model_fn()[0] would build a whole critic to drop
                raise ValueError("generator_ema needs generator_fn")
            generator_ema = generator_fn()
        adam_cls = {"fast": FusedAdam, "reference": keras.optimizers.Adam}[kernels]
        adam = lambda: adam_cls(learning_rate, beta_1=beta1, beta_2=beta2, epsilon=epsilon)
        g_opt, d_opt = adam(), adam()
        g_opt.build(generator.trainable_variables)
        d_opt.build(critic.trainable_variables)
        step = tf.Variable(
            0,
            dtype=tf.int64,
            trainable=False,
            name="step",
            aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
        )
        noise_seed = tf.Variable(
            step_cfg.seed,
            dtype=tf.int64,
            trainable=False,
            name="noise_seed",
            aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
        )
    return WganGpTrainer(
        strategy,
        generator,
        critic,
        g_opt,
        d_opt,
        step,
        noise_seed,
        step_cfg,
        label_counts,
        generator_ema,
    )
