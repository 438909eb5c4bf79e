"""A training run: builds everything from a Config, resumes, and hands it to the Controller.

This is the only place that ties strategy, data, models, the compiled step,
checkpoints and summaries together; each of those lives in its own module and
takes plain arguments. What runs at which step is training/controller.py's.
"""

from __future__ import annotations

import dataclasses
import functools
import gc
import shutil
import tempfile
from typing import Any, Callable

import numpy as np
import tensorflow as tf

from wavegan_dist import models, run_folder, strategy as strategies
from wavegan_dist.kernels import resolve_kernels, strategy_device_type
from wavegan_dist.config import Config
from wavegan_dist.data import pipeline
from wavegan_dist.data.labels import attach_labels, label_counts
from wavegan_dist.data.prepared.manifest import is_prepared
from wavegan_dist.data.prepared.reader import PreparedSource, open_prepared
from wavegan_dist.data.source import DataSource, load_source
from wavegan_dist.errors import UserError
from wavegan_dist.training import (
    checkpoints,
    consensus,
    controller,
    faults,
    preemption,
    run_lock,
    summaries,
    tpu_input,
)
from wavegan_dist.training.steps import StepConfig, WganGpTrainer, build_trainer, check_jit_compile

SAMPLE_SEED = 20190101  # fixed z for audio summaries, so clips are comparable over steps


@dataclasses.dataclass
class TrainResult:
    """What a run ended with.

    Attributes:
      step: generator steps done (total, including resumed ones).
      start_step: the step the run started (or resumed) at.
      metrics: the last logged scalars (floats), empty if no step ran.
      replica_divergence: max |weight on replica r - weight on replica 0| at the end.
      wavs: WAV files of the final generator (empty if the run stopped early).
      num_replicas: replicas in sync.
      stopped: the run stopped early on SIGTERM, Ctrl-C or a preemption notice (after
        checkpointing).
      rollbacks: how many times a NaN/Inf loss was rolled back (--on_nan=rollback).
      stop_signal: what stopped the run ("SIGTERM", "SIGINT", "a preemption notice
        (...)"), or "".
    """

    step: int
    start_step: int
    metrics: dict
    replica_divergence: float
    wavs: list
    num_replicas: int
    stopped: bool = False
    rollbacks: int = 0
    stop_signal: str = ""


@dataclasses.dataclass(frozen=True)
class _Run:
    """What every stage of a run needs once the run lock is held.

    Attributes:
      cfg: the run's configuration.
      strategy: the run's strategy.
      stop: the active stop request (signals, preemption notices).
      log: one-line progress messages.
    """

    cfg: Config
    strategy: tf.distribute.Strategy
    stop: faults.StopRequest
    log: Callable[[str], None]


@dataclasses.dataclass(frozen=True)
class _Data:
    """The training data.

    Attributes:
      source: a data.source.Source (deeplake) or a PreparedSource (TFRecord shards).
      labels: int [rows] class of each selected row, or None (unconditional, or
        prepared data, whose records carry their labels).
      counts: int [classes] rows per class for a conditional run, or None.
    """

    source: Any
    labels: np.ndarray | None
    counts: np.ndarray | None


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True unless this is a non-chief worker of a multi-worker cluster."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief


def replica_divergence(variables) -> float:
    """Largest absolute difference between any replica's copy of a variable and replica 0's."""
    worst = 0.0
    for var in variables:
        var = getattr(var, "value", var)  # Keras 3 wraps the tf.Variable
        copies = getattr(var, "values", None)
        if not copies or len(copies) < 2:
            continue
        first = copies[0].numpy()
        for other in copies[1:]:
            worst = max(worst, float(np.max(np.abs(other.numpy() - first))))
    return worst


def _real_clips(source, count: int, slice_len: int, normalize: str) -> np.ndarray:
    """The first `count` selected notes' first slices, as the critic sees them: [K, T, 1]."""
    notes = np.asarray(source.dataset["audio"][source.rows[:count].tolist()])
    pcm, scale = pipeline.examples_from_notes(
        notes, np.zeros(len(notes), np.int64), slice_len, normalize
    )
    return (pcm.astype(np.float32) * scale[:, None])[..., None]


def run_training(
    cfg: Config,
    strategy: tf.distribute.Strategy | None = None,
    log=print,
    exit_at_once: bool = False,
) -> TrainResult:
    """Trains WaveGAN with WGAN-GP as `cfg` says, resuming from cfg.model_dir if it has a checkpoint.

    The run holds cfg.model_dir's run lock (the chief only, in a multi-worker run) from
    before it writes anything until it returns, and turns SIGTERM, Ctrl-C and a Google
    Cloud preemption notice (--preemption_watch, see preemption.py) into a
    stop at the next step boundary (see faults.StopRequest).

    Args:
      cfg: the run's configuration.
      strategy: a strategy to use instead of building one from cfg (tests, notebooks).
      log: receives one-line progress messages.
      exit_at_once: end the process on a second Ctrl-C, or on a stop signal while
        nothing new could be saved (command-line use; see faults.StopRequest). If
        False, such a Ctrl-C raises KeyboardInterrupt instead.
    Returns:
      A TrainResult. Raises UserError for problems the user can fix, among them
      another training holding cfg.model_dir.
    """
    if not cfg.model_dir:
        raise UserError("--model_dir is required: the folder for checkpoints, logs and samples")
    # Everything that can be checked without a strategy is checked before anything is written.
    models.check_slice_len(cfg.model_spec())
    changes = checkpoints.check_config(cfg.model_dir, cfg.to_dict())
    prepared = is_prepared(cfg.data)
    strategy = strategy or strategies.make_strategy(
        cfg.strategy,
        cfg.tpu,
        cfg.cpu_replicas,
        log,
        check_tpu_input=lambda hosts, remote: tpu_input.check_tpu_input(
            hosts, remote, prepared, cfg
        ),
    )
    if isinstance(strategy, tf.distribute.TPUStrategy):
        tpu_input.check_tpu_strategy(strategy, prepared, cfg)
    with (
        run_lock.RunLock(cfg.model_dir, enabled=is_chief(strategy)) as lock,
        faults.StopRequest(on_abort=lock.release, exit_at_once=exit_at_once) as stop,
        preemption.watch(
            cfg.preemption_watch, lambda why: stop.request(f"a preemption notice ({why})"), log
        ),
    ):
        log(f"strategy {strategies.describe(strategy)}")
        return _train_locked(
            _Run(cfg=cfg, strategy=strategy, stop=stop, log=log), changes=changes, prepared=prepared
        )


def _train_locked(run: _Run, *, changes: list[str], prepared: bool) -> TrainResult:
    """run_training's work once the run lock is held: data, models, restore, training.

    Args:
      changes: check_config's notes on flags changed since the run started.
      prepared: cfg.data is prepared data (TFRecord shards), not a deeplake dataset.
    """
    cfg, strategy, log = run.cfg, run.strategy, run.log
    replicas = strategy.num_replicas_in_sync
    pipeline.global_batch_size_check(cfg.batch_size, replicas)
    check_jit_compile(strategy, cfg.jit_compile, cfg.net.gen_batchnorm)  # before the data loads
    source: PreparedSource | DataSource
    if prepared:
        source = open_prepared(cfg.data, cfg, log)
        data = _Data(source=source, labels=None, counts=source.label_counts)
    else:
        source = load_source(cfg.data, cfg.split, cfg.row_filter(), cfg.data_cache, log)
        source, labels = attach_labels(source, cfg.condition, log)
        classes = "" if labels is None else f", {len(np.unique(labels))} {cfg.condition} classes"
        log(
            f"data {source.path}: {len(source.rows)} rows, {source.sample_rate} Hz, "
            f"slice {cfg.net.slice_len} samples{classes}"
        )
        pipeline.BatchPlan(len(source.rows), cfg.batch_size, cfg.seed)  # enough rows for a batch?
        data = _Data(
            source=source,
            labels=labels,
            counts=None if labels is None else label_counts(labels, cfg.condition),
        )

    # Non-chief workers must still save (the save is collective) but somewhere throwaway:
    # a local temporary folder (a copy of the model per save, not worth a bucket's
    # traffic); every worker restores from the run's own checkpoints.
    scratch = (
        None
        if is_chief(strategy)
        else tempfile.mkdtemp(
            prefix=f"wavegan_dist_{strategy.cluster_resolver.task_type}-"
            f"{strategy.cluster_resolver.task_id}_"
        )
    )
    try:
        return _train_from_checkpoint(run, data, changes=changes, scratch=scratch)
    finally:
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)


def _train_from_checkpoint(
    run: _Run, data: _Data, *, changes: list[str], scratch: str | None
) -> TrainResult:
    """_train_locked's models, restore and training, once the data is open.

    Args:
      scratch: where a non-chief worker saves, or None (the chief saves in the run).
    """
    cfg, strategy, log = run.cfg, run.strategy, run.log
    workers = consensus.Workers(strategy)
    device_type = strategy_device_type(strategy)
    log(
        f"kernels {resolve_kernels(cfg.kernels, device_type)} (--kernels={cfg.kernels} on "
        f"{device_type})"
    )
    trainer = make_trainer(cfg, strategy, data.counts)
    ckpt = make_checkpointer(cfg, trainer, save_dir=scratch)
    runner = PipelineTrainer(
        trainer=trainer,
        cfg=cfg,
        checkpointer=ckpt,
        log=log,
        dataset_fn_at=functools.partial(_dataset_fn, cfg, data),
    )
    workers.check_same_checkpoint(ckpt.to_resume(cfg.resume_from), cfg.model_dir)
    restored = ckpt.resume(cfg.resume_from, log)
    start = int(trainer.step.numpy())
    if restored is None:
        log("no checkpoint found: starting at step 0")
    else:
        log(f"resumed from step {restored} ({ckpt.restored})")
        # A new --seed wins over the saved one.
        reseeded = any(note.startswith("--seed changed") for note in changes)
        runner.restored(noise_seed=cfg.seed if reseeded else None)
        for note in changes:
            log(f"note: {note}")
    workers.check_same_state(start, runner.state(), cfg.model_dir)
    if is_chief(strategy):
        # The sample rate is recorded with the config so `generate` can write files
        # at the dataset's rate without opening the dataset; the labels the run trained
        # on, so it can refuse labels whose one-hot input the networks never saw.
        trained = None if data.counts is None else np.flatnonzero(data.counts).tolist()
        checkpoints.record_config(
            cfg.model_dir,
            {**cfg.to_dict(), "sample_rate": data.source.sample_rate, "trained_labels": trained},
        )

    evaluator = None
    if cfg.eval_every:
        from wavegan_dist.training.evaluator import TrainingEvaluator

        evaluator = TrainingEvaluator(cfg, log)
    ctl = _controller(run, data, runner, workers=workers, evaluator=evaluator)
    ctl.run()
    return _result(run, ctl, trainer, start)


def make_trainer(
    cfg: Config, strategy: tf.distribute.Strategy, counts: np.ndarray | None = None
) -> WganGpTrainer:
    """The run's WganGpTrainer (models, optimizers, EMA copy) under `strategy`.

    Args:
      counts: rows per class of the training set, for a conditional run.
    """
    spec = cfg.model_spec(strategy_device_type(strategy))
    return build_trainer(
        strategy,
        lambda: models.build_models(spec),
        StepConfig(
            global_batch=cfg.batch_size,
            n_critic=cfg.n_critic,
            gp_weight=cfg.gp_weight,
            latent_dim=spec.latent_dim,
            phase_shuffle=spec.phase_shuffle or 0,
            seed=cfg.seed,
            jit_compile=cfg.jit_compile,
            debug_nan_at_step=cfg.debug_nan_at_step,
            generator_ema=cfg.generator_ema,
            aux_weight=cfg.aux_weight if spec.aux_classifier else 0.0,
        ),
        learning_rate=cfg.learning_rate,
        beta1=cfg.beta1,
        beta2=cfg.beta2,
        label_counts=counts,
        generator_fn=lambda: models.build_generator(spec),
        epsilon=cfg.adam_epsilon,
        kernels=spec.kernels,
    )


def make_checkpointer(
    cfg: Config, trainer: WganGpTrainer, save_dir: str | None = None
) -> checkpoints.Checkpointer:
    """The Checkpointer of the run in cfg.model_dir for `trainer`'s state.

    The noise seed and the generator EMA are optional: checkpoints written before
    they existed (or with --generator_ema=0) still restore (see
    PipelineTrainer.restored).
    """
    optional = {"noise_seed": trainer.noise_seed}
    if trainer.generator_ema is not None:
        optional[run_folder.GENERATOR_EMA] = trainer.generator_ema
    return checkpoints.Checkpointer(
        cfg.model_dir,
        cfg.keep_checkpoints,
        trainer.step,
        models={"generator": trainer.generator, "critic": trainer.critic},
        optimizers={"generator": trainer.g_opt, "critic": trainer.d_opt},
        save_dir=save_dir,
        optional=optional,
    )


def state_variables(trainer: WganGpTrainer) -> list:
    """The trained state a restore brings back, in a fixed order: the models', the
    optimizers' and the generator EMA's variables."""
    parts = [trainer.generator, trainer.critic, trainer.g_opt, trainer.d_opt]
    if trainer.generator_ema is not None:
        parts.append(trainer.generator_ema)
    return [v for part in parts for v in part.variables]


class PipelineTrainer:
    """The trainer a Controller drives: a WganGpTrainer fed by the run's input pipeline.

    Args:
      trainer: the run's WganGpTrainer.
      cfg: the run's Config (its learning rate wins over a restored one).
      checkpointer: the Checkpointer of `trainer`'s state (what a restore lacked).
      log: one-line messages.
      dataset_fn_at: step -> a dataset function for
        strategy.distribute_datasets_from_function whose batches start at that step.
    """

    def __init__(
        self,
        *,
        trainer: WganGpTrainer,
        cfg: Config,
        checkpointer: checkpoints.Checkpointer,
        log: Callable[[str], None],
        dataset_fn_at: Callable[[int], Callable],
    ):
        self.trainer = trainer
        self.cfg = cfg
        self.checkpointer = checkpointer
        self.log = log
        self.dataset_fn_at = dataset_fn_at
        self._dataset: Any = None
        self._iterator: Any = None

    def start(self, step: int) -> None:
        """Opens a fresh input pipeline at `step`: after a rollback the data restart at
        the restored step, exactly where an uninterrupted run would be."""
        self._dataset = self.trainer.strategy.distribute_datasets_from_function(
            self.dataset_fn_at(step)
        )
        self._iterator = iter(self._dataset)

    def train(self, steps: int) -> dict:
        """Runs `steps` generator steps in one host call; returns {metric: float32 [steps]}."""
        return self.trainer.train_steps(self._iterator, tf.constant(steps, tf.int32))

    def finish(self) -> None:
        """Releases the input pipeline."""
        # A live from_generator iterator at interpreter exit can hang the process (seen
        # with deeplake reads in flight), so it is released here, now.
        self._dataset = self._iterator = None
        gc.collect()

    def restored(self, noise_seed: int | None = None) -> None:
        """Brings the run's flags back after the checkpointer restored a checkpoint.

        Args:
          noise_seed: replaces the restored noise seed if given.
        """
        # The optimizers keep their learning rate as a variable, so a restore would
        # silently bring back the old one; the flags of this run win.
        trainer = self.trainer
        for opt in (trainer.g_opt, trainer.d_opt):
            opt.learning_rate.assign(self.cfg.learning_rate)
        if (
            trainer.generator_ema is not None
            and run_folder.GENERATOR_EMA in self.checkpointer.missing
        ):
            # Otherwise the EMA would keep the new run's random initial weights.
            trainer.reset_ema()
            self.log(
                f"note: {self.checkpointer.latest} has no generator EMA (saved with "
                "--generator_ema=0 or before it existed): the EMA starts from the "
                "restored generator weights"
            )
        if noise_seed is not None:
            trainer.noise_seed.assign(noise_seed)

    def state(self) -> list:
        """The trained state a restore brings back (see state_variables)."""
        return state_variables(self.trainer)


def _dataset_fn(cfg: Config, data: _Data, step: int):
    """The dataset function whose batches start at generator step `step`."""
    if isinstance(data.source, PreparedSource):
        return data.source.make_dataset_fn(cfg.batch_size, cfg.seed, step * cfg.n_critic)
    return pipeline.make_dataset_fn(
        data.source,
        cfg.net.slice_len,
        cfg.batch_size,
        cfg.seed,
        cfg.shuffle,
        start_batch=step * cfg.n_critic,
        read_rows=cfg.read_rows,
        shuffle_window=cfg.shuffle_window,
        slice_offset=cfg.slice_offset,
        normalize=cfg.normalize,
        labels=data.labels,
    )


def _sample_labels(labels: np.ndarray | None, count: int) -> np.ndarray | None:
    """Labels for `count` generated clips: those of the first selected rows, repeated."""
    return None if labels is None else np.resize(labels, count).astype(np.int32)


def _controller(
    run: _Run, data: _Data, runner: PipelineTrainer, *, workers: consensus.Workers, evaluator
) -> controller.Controller:
    """The run's Controller, at the step `runner`'s trainer holds, with its summary
    writer, audio and WAV snapshots, and (if `evaluator`, a TrainingEvaluator) evaluation."""
    cfg, log, source = run.cfg, run.log, data.source
    chief = is_chief(run.strategy)
    trainer, start = runner.trainer, int(runner.trainer.step.numpy())
    writer = summaries.RunSummaries(cfg.model_dir, source.sample_rate, enabled=chief)
    writer.config(start, cfg.to_dict())
    num_clips = max(1, min(cfg.num_wavs or 4, 8))
    labels = data.labels
    if isinstance(source, PreparedSource):
        real_clips, head_labels = source.head(num_clips)
        labels = None if source.label_counts is None else head_labels
    else:
        real_clips = _real_clips(source, num_clips, cfg.net.slice_len, cfg.normalize)
    # Generated clips take the real clips' labels, so the two rows of audio compare.
    sample_z = tf.random.stateless_uniform(
        [num_clips, cfg.net.latent_dim], [SAMPLE_SEED, cfg.seed], -1.0, 1.0
    )
    sample_inputs = (sample_z, _sample_labels(labels, num_clips))
    wav_z = tf.random.stateless_uniform(
        [cfg.num_wavs, cfg.net.latent_dim], [SAMPLE_SEED, cfg.seed], -1.0, 1.0
    )
    snapshots = summaries.WavSnapshots(
        cfg.model_dir,
        lambda: trainer.generate(wav_z, _sample_labels(labels, cfg.num_wavs)).numpy(),
        source.sample_rate,
        enabled=chief and cfg.num_wavs > 0,
        log=log,
    )
    return controller.Controller(
        trainer=runner,
        checkpointer=runner.checkpointer,
        writer=writer,
        schedule=controller.Schedule.of(cfg, multi_worker=workers.multi),
        stop=run.stop,
        workers=workers,
        step=start,
        log=log,
        progress=controller.Progress(cfg.n_critic * cfg.batch_size),
        rollback=controller.Rollback(
            on_nan=cfg.on_nan,
            max_rollbacks=cfg.max_rollbacks,
            seed=cfg.seed,
            model_dir=cfg.model_dir,
        ),
        audio=controller.AudioSummary(
            generate=lambda: trainer.generate(*sample_inputs).numpy(),
            real=real_clips,
            pitches=sample_inputs[1] if cfg.condition == "pitch" else None,
        ),
        snapshots=snapshots,
        evaluate=None
        if evaluator is None
        else controller.Evaluate(
            evaluator=evaluator, model=trainer, chief=chief, model_dir=cfg.model_dir
        ),
    )


def _result(
    run: _Run, ctl: controller.Controller, trainer: WganGpTrainer, start: int
) -> TrainResult:
    """The TrainResult of a run that `ctl` ran from `start` with `trainer`, with the final
    WAV files and the closing log line."""
    replicas = run.strategy.num_replicas_in_sync
    wavs = [] if ctl.stopped else ctl.snapshots.write(ctl.step)
    divergence = replica_divergence(
        trainer.generator.trainable_variables
        + trainer.critic.trainable_variables
        + (trainer.generator_ema.variables if trainer.generator_ema is not None else [])
    )
    stop = run.stop
    if ctl.stopped:
        run.log(
            f"stopped by {stop.signal_name or 'a stop request'} at step {ctl.step}: "
            f"checkpoint {ctl.checkpointer.latest}; run the same command again to resume"
        )
    else:
        run.log(
            f"done at step {ctl.step}: {replicas} replica(s) in sync "
            f"(max weight difference between replicas {divergence:.3g})"
        )
    return TrainResult(
        step=ctl.step,
        start_step=start,
        metrics=ctl.metrics,
        replica_divergence=divergence,
        wavs=wavs,
        num_replicas=replicas,
        stopped=ctl.stopped,
        rollbacks=ctl.rollbacks,
        stop_signal=stop.signal_name if ctl.stopped else "",
    )
