"""The outer training loop: builds everything from a Config, runs steps, logs, checkpoints.

This is the only place that ties strategy, data, models, the compiled step,
checkpoints and summaries together; each of those lives in its own module and
takes plain arguments.
"""

from __future__ import annotations

import dataclasses
import gc
import math
import shutil
import tempfile
import time

import numpy as np
import tensorflow as tf

from wavegan_dist import models, strategy as strategies
from wavegan_dist.kernels import resolve_kernels, strategy_device_type
from wavegan_dist.config import Config
from wavegan_dist.data import pipeline
from wavegan_dist.data.labels import attach_labels, label_counts
from wavegan_dist.data.prepared.manifest import is_prepared
from wavegan_dist.data.prepared.reader import PreparedSource, open_prepared
from wavegan_dist.data.source import load_source
from wavegan_dist.errors import UserError
from wavegan_dist.training import (checkpoints, consensus, faults, preemption, run_lock,
                                   summaries, tpu_input)
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


def _format_eta(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def _real_clips(source, count: int, slice_len: int, normalize: str) -> np.ndarray:
    """The first `count` selected notes' first slices, as the critic sees them: [K, T, 1]."""
    notes = np.asarray(source.dataset["audio"][source.rows[:count].tolist()])
    pcm, scale = pipeline.examples_from_notes(notes, np.zeros(len(notes), np.int64),
                                              slice_len, normalize)
    return (pcm.astype(np.float32) * scale[:, None])[..., None]


def run_training(cfg: Config, strategy: tf.distribute.Strategy | None = None,
                 log=print, exit_at_once: bool = False) -> TrainResult:
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
        cfg.strategy, cfg.tpu, cfg.cpu_replicas, log,
        check_tpu_input=lambda hosts, remote: tpu_input.check_tpu_input(hosts, remote,
                                                                        prepared, cfg))
    if isinstance(strategy, tf.distribute.TPUStrategy):
        tpu_input.check_tpu_strategy(strategy, prepared, cfg)
    with run_lock.RunLock(cfg.model_dir, enabled=is_chief(strategy)) as lock, \
            faults.StopRequest(on_abort=lock.release, exit_at_once=exit_at_once) as stop, \
            preemption.watch(cfg.preemption_watch,
                             lambda why: stop.request(f"a preemption notice ({why})"), log):
        log(f"strategy {strategies.describe(strategy)}")
        return _train_locked(cfg, strategy, changes, prepared, stop, log)


def _train_locked(cfg: Config, strategy: tf.distribute.Strategy, changes: list[str],
                  prepared: bool, stop: faults.StopRequest, log) -> TrainResult:
    """run_training's work once the run lock is held: data, models, restore, training.

    Args:
      changes: check_config's notes on flags changed since the run started.
      prepared: cfg.data is prepared data (TFRecord shards), not a deeplake dataset.
      stop: the active stop request (signals), passed on to the training loop.
    """
    replicas = strategy.num_replicas_in_sync
    pipeline.global_batch_size_check(cfg.batch_size, replicas)
    check_jit_compile(strategy, cfg.jit_compile, cfg.gen_batchnorm)  # before the data loads
    if prepared:
        source = open_prepared(cfg.data, cfg, log)
        counts, labels = source.label_counts, None
    else:
        source = load_source(cfg.data, cfg.split, cfg.row_filter(), cfg.data_cache, log)
        source, labels = attach_labels(source, cfg.condition, log)
        classes = "" if labels is None else f", {len(np.unique(labels))} {cfg.condition} classes"
        log(f"data {source.path}: {len(source.rows)} rows, {source.sample_rate} Hz, "
            f"slice {cfg.slice_len} samples{classes}")
        pipeline.BatchPlan(len(source.rows), cfg.batch_size, cfg.seed)  # enough rows for a batch?
        counts = None if labels is None else label_counts(labels, cfg.condition)

    # Non-chief workers must still save (the save is collective) but somewhere throwaway:
    # a local temporary folder (a copy of the model per save, not worth a bucket's
    # traffic); every worker restores from the run's own checkpoints.
    scratch = None if is_chief(strategy) else tempfile.mkdtemp(
        prefix=f"wavegan_dist_{strategy.cluster_resolver.task_type}-"
        f"{strategy.cluster_resolver.task_id}_")
    try:
        return _train_from_checkpoint(cfg, strategy, changes, source, labels, counts, scratch,
                                      stop, log)
    finally:
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)


def _train_from_checkpoint(cfg: Config, strategy, changes, source, labels, counts,
                           scratch: str | None, stop: faults.StopRequest, log) -> TrainResult:
    """_train_locked's models, restore and training, once the data is open.

    Args:
      source, labels, counts: the training data, its labels and rows per class.
      scratch: where a non-chief worker saves, or None (the chief saves in the run).
    """
    chief = is_chief(strategy)
    workers = consensus.Workers(strategy)
    device_type = strategy_device_type(strategy)
    log(f"kernels {resolve_kernels(cfg.kernels, device_type)} (--kernels={cfg.kernels} on "
        f"{device_type})")
    trainer = make_trainer(cfg, strategy, counts)
    ckpt = make_checkpointer(cfg, trainer, save_dir=scratch)
    workers.check_same_checkpoint(ckpt.to_resume(cfg.resume_from), cfg.model_dir)
    restored = ckpt.resume(cfg.resume_from, log)
    start = int(trainer.step.numpy())
    if restored is None:
        log("no checkpoint found: starting at step 0")
    else:
        log(f"resumed from step {restored} ({ckpt.restored})")
        _after_restore(cfg, trainer, ckpt, log)
        if any(note.startswith("--seed changed") for note in changes):
            trainer.noise_seed.assign(cfg.seed)  # a new --seed wins over the saved one
        for note in changes:
            log(f"note: {note}")
    workers.check_same_state(start, state_variables(trainer), cfg.model_dir)
    if chief:
        # The sample rate is recorded with the config so `generate` can write files
        # at the dataset's rate without opening the dataset; the labels the run trained
        # on, so it can refuse labels whose one-hot input the networks never saw.
        trained = None if counts is None else np.flatnonzero(counts).tolist()
        checkpoints.record_config(cfg.model_dir, {**cfg.to_dict(),
                                                  "sample_rate": source.sample_rate,
                                                  "trained_labels": trained})

    evaluator = None
    if cfg.eval_every:
        from wavegan_dist.training.evaluator import TrainingEvaluator
        evaluator = TrainingEvaluator(cfg, log)
    return _train_loop(cfg, strategy, trainer, ckpt, source, labels, start, chief, log,
                       evaluator, stop, workers)


def make_trainer(cfg: Config, strategy: tf.distribute.Strategy,
                 counts: np.ndarray | None = None) -> WganGpTrainer:
    """The run's WganGpTrainer (models, optimizers, EMA copy) under `strategy`.

    Args:
      counts: rows per class of the training set, for a conditional run.
    """
    spec = cfg.model_spec(strategy_device_type(strategy))
    return build_trainer(
        strategy, lambda: models.build_models(spec),
        StepConfig(cfg.batch_size, cfg.n_critic, cfg.gp_weight, cfg.latent_dim,
                   cfg.phase_shuffle, cfg.seed, cfg.jit_compile, cfg.debug_nan_at_step,
                   cfg.generator_ema),
        cfg.learning_rate, cfg.beta1, cfg.beta2, counts,
        generator_fn=lambda: models.build_generator(spec), epsilon=cfg.adam_epsilon,
        kernels=spec.kernels)


def make_checkpointer(cfg: Config, trainer: WganGpTrainer,
                      save_dir: str | None = None) -> checkpoints.Checkpointer:
    """The Checkpointer of the run in cfg.model_dir for `trainer`'s state.

    The noise seed and the generator EMA are optional: checkpoints written before
    they existed (or with --generator_ema=0) still restore (see _after_restore).
    """
    optional = {"noise_seed": trainer.noise_seed}
    if trainer.generator_ema is not None:
        optional[checkpoints.GENERATOR_EMA] = trainer.generator_ema
    return checkpoints.Checkpointer(
        cfg.model_dir, cfg.keep_checkpoints, trainer.step,
        models={"generator": trainer.generator, "critic": trainer.critic},
        optimizers={"generator": trainer.g_opt, "critic": trainer.d_opt}, save_dir=save_dir,
        optional=optional)


def state_variables(trainer: WganGpTrainer) -> list:
    """The trained state a restore brings back, in a fixed order: the models', the
    optimizers' and the generator EMA's variables."""
    parts = [trainer.generator, trainer.critic, trainer.g_opt, trainer.d_opt]
    if trainer.generator_ema is not None:
        parts.append(trainer.generator_ema)
    return [v for part in parts for v in part.variables]


def _after_restore(cfg: Config, trainer: WganGpTrainer, ckpt, log) -> None:
    # The optimizers keep their learning rate as a variable, so a restore would
    # silently bring back the old one; the flags of this run win.
    for opt in (trainer.g_opt, trainer.d_opt):
        opt.learning_rate.assign(cfg.learning_rate)
    if trainer.generator_ema is not None and checkpoints.GENERATOR_EMA in ckpt.missing:
        # Otherwise the EMA would keep the new run's random initial weights.
        trainer.reset_ema()
        log(f"note: {ckpt.latest} has no generator EMA (saved with --generator_ema=0 or "
            "before it existed): the EMA starts from the restored generator weights")


def _sample_labels(labels: np.ndarray | None, count: int) -> np.ndarray | None:
    """Labels for `count` generated clips: those of the first selected rows, repeated."""
    return None if labels is None else np.resize(labels, count).astype(np.int32)


def _train_loop(cfg: Config, strategy, trainer: WganGpTrainer, ckpt, source, labels,
                start: int, chief: bool, log, evaluator, stop: faults.StopRequest,
                workers: consensus.Workers) -> TrainResult:
    writer = summaries.RunSummaries(cfg.model_dir, source.sample_rate, enabled=chief)
    writer.config(start, cfg.to_dict())
    num_clips = max(1, min(cfg.num_wavs or 4, 8))
    if isinstance(source, PreparedSource):
        real_clips, head_labels = source.head(num_clips)
        labels = None if source.label_counts is None else head_labels
    else:
        real_clips = _real_clips(source, num_clips, cfg.slice_len, cfg.normalize)
    # Generated clips take the real clips' labels, so the two rows of audio compare.
    sample_z = tf.random.stateless_uniform([num_clips, cfg.latent_dim], [SAMPLE_SEED, cfg.seed],
                                           -1.0, 1.0)
    sample_inputs = (sample_z, _sample_labels(labels, num_clips))
    wav_z = tf.random.stateless_uniform([cfg.num_wavs, cfg.latent_dim], [SAMPLE_SEED, cfg.seed],
                                        -1.0, 1.0)
    snapshots = summaries.WavSnapshots(
        cfg.model_dir, lambda: trainer.generate(wav_z, _sample_labels(labels, cfg.num_wavs)).numpy(),
        source.sample_rate, enabled=chief and cfg.num_wavs > 0, log=log)
    step, metrics, rollbacks, stopped = start, {}, 0, False
    if start >= cfg.train_steps:
        log(f"already at step {start} >= --train_steps={cfg.train_steps}: nothing to train")
    else:
        # Nothing is printed while the first host call traces, compiles and runs, so the
        # wait is announced. First calls measured on a 2-core CPU: 9.5 s (tests' tiny
        # flags), 22 s (--preset=tiny), 19.5 s (paper model at batch 8, 1 critic update);
        # with the paper's batch 64 and 5 critic updates that step alone takes minutes.
        log(f"building and compiling the training step: step {start + 1} follows in roughly "
            "10 s to 3 min on a CPU (longer with --jit_compile, several replicas or "
            "--steps_per_loop > 1)")
    while step < cfg.train_steps and not stopped:
        # A fresh input pipeline per segment: after a rollback the data must restart
        # at the restored step, exactly where an uninterrupted run would be.
        dataset = strategy.distribute_datasets_from_function(
            source.make_dataset_fn(cfg.batch_size, cfg.seed, step * cfg.n_critic)
            if isinstance(source, PreparedSource) else pipeline.make_dataset_fn(
                source, cfg.slice_len, cfg.batch_size, cfg.seed, cfg.shuffle,
                start_batch=step * cfg.n_critic, read_rows=cfg.read_rows,
                shuffle_window=cfg.shuffle_window,
                slice_offset=cfg.slice_offset, normalize=cfg.normalize, labels=labels))
        iterator = iter(dataset)
        try:
            step, metrics, stopped = _run_steps(cfg, strategy, trainer, ckpt, writer, iterator,
                                                step, sample_inputs, real_clips, stop, log,
                                                evaluator, chief, snapshots, workers)
        except faults.Diverged as bad:
            rollbacks += 1
            step = _roll_back(cfg, trainer, ckpt, bad, rollbacks, log)
            workers.check_same_state(step, state_variables(trainer), cfg.model_dir)
        finally:
            # A live from_generator iterator at interpreter exit can hang the process
            # (seen with deeplake reads in flight), so it is released here, now.
            del iterator, dataset
            gc.collect()
    stop.graceful = False  # the last checkpoint is written: a signal now ends the run at once
    writer.flush()

    wavs = [] if stopped else snapshots.write(step)
    divergence = replica_divergence(trainer.generator.trainable_variables
                                    + trainer.critic.trainable_variables
                                    + (trainer.generator_ema.variables
                                       if trainer.generator_ema is not None else []))
    if stopped:
        log(f"stopped by {stop.signal_name or 'a stop request'} at step {step}: checkpoint "
            f"{ckpt.latest}; run the same command again to resume")
    else:
        log(f"done at step {step}: {strategy.num_replicas_in_sync} replica(s) in sync "
            f"(max weight difference between replicas {divergence:.3g})")
    return TrainResult(step=step, start_step=start, metrics=metrics,
                       replica_divergence=divergence, wavs=wavs,
                       num_replicas=strategy.num_replicas_in_sync, stopped=stopped,
                       rollbacks=rollbacks, stop_signal=stop.signal_name if stopped else "")


def _roll_back(cfg: Config, trainer: WganGpTrainer, ckpt, bad: faults.Diverged,
               rollbacks: int, log) -> int:
    """Restores the last checkpoint with a new noise seed; returns its step. Raises
    UserError instead when --on_nan=stop, the rollbacks are used up, or there is no
    checkpoint to go back to."""
    losses = faults.describe_metrics(bad.metrics)
    kept = ckpt.latest
    if cfg.on_nan != "rollback" or rollbacks > cfg.max_rollbacks or kept is None:
        if cfg.on_nan == "rollback" and kept is None:
            why = "; no checkpoint to roll back to yet"
        elif cfg.on_nan == "rollback":
            why = f"; --max_rollbacks={cfg.max_rollbacks} used up"
        else:
            why = "; --on_nan=rollback would restore it and continue with a fresh noise seed"
        raise UserError(f"training diverged at step {bad.step} ({losses}); the last checkpoint "
                        f"is intact: {kept or 'none (no checkpoint was written)'}{why}")
    step = ckpt.restore_latest()  # the generator EMA too: it rolls back with the rest
    _after_restore(cfg, trainer, ckpt, log)
    seed = faults.rollback_seed(cfg.seed, rollbacks)
    trainer.noise_seed.assign(seed)
    log(f"rollback {rollbacks}/{cfg.max_rollbacks}: non-finite loss at step {bad.step} "
        f"({losses}); restored {kept} (step {step}), continuing with noise seed {seed}")
    return step


def _evaluate(cfg: Config, evaluator, trainer, ckpt, writer, step: int, saved: str | None,
              chief: bool, log, workers: consensus.Workers) -> None:
    """Scores the generator, logs and writes eval/ scalars, keeps the best checkpoint.

    Only the chief tracks the best score, so it decides, and every worker follows (a
    save is collective): all save at the same steps.
    """
    started = time.perf_counter()
    values = evaluator(trainer)
    writer.evaluation(step, values)
    shown = "  ".join(f"{k} {v:.4g}" for k, v in values.items() if v is not None)
    log(f"eval at step {step}: {shown}  ({time.perf_counter() - started:.1f} s)")
    better = (evaluator.best is None
              or values["frechet_distance"] < evaluator.best["frechet_distance"])
    if workers.chief_says(better):
        # The best is kept as a checkpoint, so one is written here if the step had none.
        path = saved or ckpt.save()
        if chief and evaluator.keep_if_best(step, values, path):
            log(f"best Frechet distance so far: kept {path} in {cfg.model_dir}/best")


def _loop_length(cfg: Config, step: int) -> int:
    """Steps of the next host call: --steps_per_loop, cut at the next checkpoint,
    audio summary, evaluation or the end, which happen between calls."""
    cuts = [cfg.ckpt_every, cfg.sample_every] + ([cfg.eval_every] if cfg.eval_every else [])
    return min([cfg.steps_per_loop, cfg.train_steps - step] + [c - step % c for c in cuts])


def _run_steps(cfg: Config, strategy, trainer: WganGpTrainer, ckpt, writer, iterator,
               start: int, sample_inputs, real_clips, stop: faults.StopRequest,
               log, evaluator, chief: bool,
               snapshots: summaries.WavSnapshots | None,
               workers: consensus.Workers) -> tuple[int, dict, bool]:
    """Runs steps start+1..train_steps in host calls of up to --steps_per_loop steps.

    Writes audio summaries, and WAV files through `snapshots`, every --sample_every steps.
    `workers` agree on stopping and on keeping the best.

    Returns (step reached, last fetched metrics, stopped by a stop request). Raises
    faults.Diverged (before anything is saved) when a fetched loss is not finite.
    """
    examples_per_step = cfg.n_critic * cfg.batch_size
    step, metrics = start, {}
    mark_time, mark_step, rate = time.perf_counter(), step, None
    while step < cfg.train_steps:
        n = _loop_length(cfg, step)
        out = trainer.train_steps(iterator, tf.constant(n, tf.int32))
        stop.graceful = True  # from now on a stop saves the steps trained
        first, end = step == start, step + n
        logged = [s for s in range(step + 1, end + 1)
                  if s == start + 1 or s % cfg.log_every == 0 or s == cfg.train_steps]
        stopping = stop.agreed(workers, step, end)
        saves = end % cfg.ckpt_every == 0 or end == cfg.train_steps or stopping
        if logged or saves:
            # Fetching waits for the device; it happens only when a value is needed, and
            # always before a save, so no checkpoint ever holds diverged weights.
            values = {k: v.numpy() for k, v in out.items()}
            bad = faults.first_non_finite(values)
            if bad is not None:
                raise faults.Diverged(step + bad + 1, {k: float(v[bad]) for k, v in values.items()})
            metrics = {k: float(v[-1]) for k, v in values.items()}
        if logged:
            now = time.perf_counter()
            if first:
                log(f"step {start + 1}: first call of {n} step(s) (tracing and compiling) took "
                    f"{now - mark_time:.1f} s")
            else:
                rate = (end - mark_step) * examples_per_step / (now - mark_time)
            mark_time, mark_step = now, end
            for s in logged:
                at = {k: float(v[s - step - 1]) for k, v in values.items()}
                writer.scalars(s, at, rate)
                speed = ""
                if rate:
                    eta = (cfg.train_steps - s) * examples_per_step / rate
                    speed = f"  {rate:.1f} examples/s  ETA {_format_eta(eta)}"
                log(f"step {s}/{cfg.train_steps}  critic {at['critic']:+.4f}  "
                    f"generator {at['generator']:+.4f}  gp {at['gradient_penalty']:.4f}  "
                    f"wasserstein {at['wasserstein']:+.4f}{speed}")
        step = end
        sampling = step % cfg.sample_every == 0 or step == cfg.train_steps
        if sampling:
            writer.audio(step, trainer.generate(*sample_inputs).numpy(), real_clips,
                         sample_inputs[1] if cfg.condition == "pitch" else None)
        saved = None
        if saves:
            saved = ckpt.save()
            log(f"checkpoint {saved}")
        if sampling and snapshots is not None:
            snapshots.write(step)  # after the checkpoint, which matters more
        if evaluator is not None and step % cfg.eval_every == 0:
            _evaluate(cfg, evaluator, trainer, ckpt, writer, step, saved, chief, log, workers)
        if stopping:
            return step, metrics, True
    return step, metrics, False
