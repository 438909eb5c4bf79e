"""The outer training loop: builds everything from a Config, runs steps, logs, checkpoints.

This is the only place that ties strategy, data, models, the compiled step,
checkpoints and summaries together; each of those lives in its own module and
takes plain arguments.
"""

from __future__ import annotations

import dataclasses
import gc
import math
import os
import time

import numpy as np
import tensorflow as tf

from wavegan_dist import models, strategy as strategies
from wavegan_dist.config import Config
from wavegan_dist.data import pipeline
from wavegan_dist.data.labels import attach_labels, label_counts
from wavegan_dist.data.source import load_source
from wavegan_dist.errors import UserError
from wavegan_dist.training import checkpoints, summaries
from wavegan_dist.training.steps import StepConfig, WganGpTrainer, build_trainer

SAMPLE_SEED = 20190101  # fixed z for audio summaries, so clips are comparable over steps


@dataclasses.dataclass
class TrainResult:
    """What a run ended with.

    Attributes:
      step: generator steps done (total, including resumed ones).
      start_step: the step the run started (or resumed) at.
      metrics: the last logged scalars (floats), empty if no step ran.
      replica_divergence: max |weight on replica r - weight on replica 0| at the end.
      wavs: WAV files written from the final generator.
      num_replicas: replicas in sync.
    """

    step: int
    start_step: int
    metrics: dict
    replica_divergence: float
    wavs: list
    num_replicas: int


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
                 log=print) -> TrainResult:
    """Trains WaveGAN with WGAN-GP as `cfg` says, resuming from cfg.model_dir if it has a checkpoint.

    Args:
      cfg: the run's configuration.
      strategy: a strategy to use instead of building one from cfg (tests, notebooks).
      log: receives one-line progress messages.
    Returns:
      A TrainResult. Raises UserError for problems the user can fix.
    """
    if not cfg.model_dir:
        raise UserError("--model_dir is required: the folder for checkpoints, logs and samples")
    # Everything that can be checked without a strategy is checked before anything is written.
    models.check_slice_len(cfg.model_spec())
    changes = checkpoints.check_config(cfg.model_dir, cfg.to_dict())
    strategy = strategy or strategies.make_strategy(cfg.strategy, cfg.tpu, cfg.cpu_replicas, log)
    replicas = strategy.num_replicas_in_sync
    log(f"strategy {strategies.describe(strategy)}")
    if strategies.is_remote_tpu(strategy):
        raise UserError("the deeplake input pipeline runs Python on the host, which a TPU Node "
                        "(a remote TPU reached by name or grpc://) cannot do; run on a Cloud TPU "
                        "VM (--strategy=tpu there, no --tpu needed)")
    pipeline.global_batch_size_check(cfg.batch_size, replicas)
    source = load_source(cfg.data, cfg.split, cfg.row_filter(), cfg.data_cache, log)
    source, labels = attach_labels(source, cfg.condition, log)
    classes = "" if labels is None else f", {len(np.unique(labels))} {cfg.condition} classes"
    log(f"data {source.path}: {len(source.rows)} rows, {source.sample_rate} Hz, "
        f"slice {cfg.slice_len} samples{classes}")
    pipeline.BatchPlan(len(source.rows), cfg.batch_size, cfg.seed)  # enough rows for a batch?

    chief = is_chief(strategy)
    # Non-chief workers must still save (the save is collective) but somewhere throwaway;
    # every worker restores from the run's own checkpoints.
    scratch = None if chief else os.path.join(
        cfg.model_dir, ".workers", f"{strategy.cluster_resolver.task_type}-"
        f"{strategy.cluster_resolver.task_id}")

    trainer = build_trainer(
        strategy, lambda: models.build_models(cfg.model_spec()),
        StepConfig(cfg.batch_size, cfg.n_critic, cfg.gp_weight, cfg.latent_dim,
                   cfg.phase_shuffle, cfg.seed, cfg.jit_compile),
        cfg.learning_rate, cfg.beta1, cfg.beta2,
        None if labels is None else label_counts(labels, cfg.condition))
    ckpt = checkpoints.Checkpointer(
        cfg.model_dir, cfg.keep_checkpoints, trainer.step,
        models={"generator": trainer.generator, "critic": trainer.critic},
        optimizers={"generator": trainer.g_opt, "critic": trainer.d_opt}, save_dir=scratch)
    restored = ckpt.restore_latest()
    start = int(trainer.step.numpy())
    if restored is None:
        log("no checkpoint found: starting at step 0")
    else:
        log(f"resumed from step {restored} ({ckpt.latest})")
        # The optimizers keep their learning rate as a variable, so a restore would
        # silently bring back the old one; the flags of this run win.
        for opt in (trainer.g_opt, trainer.d_opt):
            opt.learning_rate.assign(cfg.learning_rate)
        for note in changes:
            log(f"note: {note} since the run started; training continues with the new "
                "value, so it no longer repeats an uninterrupted run exactly")
    if chief:
        # The sample rate is recorded with the config so `generate` can write files
        # at the dataset's rate without opening the dataset.
        checkpoints.record_config(cfg.model_dir, {**cfg.to_dict(),
                                                  "sample_rate": source.sample_rate})

    result = _train_loop(cfg, strategy, trainer, ckpt, source, labels, start, chief, log)
    if scratch:
        tf.io.gfile.rmtree(scratch)
    return result


def _sample_labels(labels: np.ndarray | None, count: int) -> np.ndarray | None:
    """Labels for `count` generated clips: those of the first selected rows, repeated."""
    return None if labels is None else np.resize(labels, count).astype(np.int32)


def _train_loop(cfg: Config, strategy, trainer: WganGpTrainer, ckpt, source, labels,
                start: int, chief: bool, log) -> TrainResult:
    writer = summaries.RunSummaries(cfg.model_dir, source.sample_rate, enabled=chief)
    writer.config(start, cfg.to_dict())
    num_clips = max(1, min(cfg.num_wavs or 4, 8))
    real_clips = _real_clips(source, num_clips, cfg.slice_len, cfg.normalize)
    # Generated clips take the real clips' labels, so the two rows of audio compare.
    sample_z = tf.random.stateless_uniform([num_clips, cfg.latent_dim], [SAMPLE_SEED, cfg.seed],
                                           -1.0, 1.0)
    sample_labels = _sample_labels(labels, num_clips)
    step, metrics = start, {}
    if start < cfg.train_steps:
        dataset = strategy.distribute_datasets_from_function(pipeline.make_dataset_fn(
            source, cfg.slice_len, cfg.batch_size, cfg.seed, cfg.shuffle,
            start_batch=start * cfg.n_critic, read_rows=cfg.read_rows,
            shuffle_window=cfg.shuffle_window,
            slice_offset=cfg.slice_offset, normalize=cfg.normalize, labels=labels))
        iterator = iter(dataset)
        try:
            step, metrics = _run_steps(cfg, trainer, ckpt, writer, iterator, start,
                                       (sample_z, sample_labels), real_clips, log)
        finally:
            # A live from_generator iterator at interpreter exit can hang the process
            # (seen with deeplake reads in flight), so it is released here, now.
            del iterator, dataset
            gc.collect()
        writer.flush()
    else:
        log(f"already at step {start} >= --train_steps={cfg.train_steps}: nothing to train")

    wavs = []
    if chief and cfg.num_wavs:
        z = tf.random.stateless_uniform([cfg.num_wavs, cfg.latent_dim], [SAMPLE_SEED, cfg.seed],
                                        -1.0, 1.0)
        wavs = summaries.write_wavs(
            os.path.join(cfg.model_dir, "samples", f"step_{step:07d}"),
            trainer.generate(z, _sample_labels(labels, cfg.num_wavs)).numpy(),
            source.sample_rate)
        log(f"wrote {len(wavs)} WAV files to {os.path.dirname(wavs[0])}")
    divergence = replica_divergence(trainer.generator.trainable_variables
                                    + trainer.critic.trainable_variables)
    log(f"done at step {step}: {strategy.num_replicas_in_sync} replica(s) in sync "
        f"(max weight difference between replicas {divergence:.3g})")
    return TrainResult(step=step, start_step=start, metrics=metrics,
                       replica_divergence=divergence, wavs=wavs,
                       num_replicas=strategy.num_replicas_in_sync)


def _run_steps(cfg: Config, trainer: WganGpTrainer, ckpt, writer, iterator, start: int,
               sample_inputs, real_clips, log) -> tuple[int, dict]:
    """Runs steps start+1..train_steps; returns (step, last fetched metrics)."""
    examples_per_step = cfg.n_critic * cfg.batch_size
    step, metrics = start, {}
    mark_time, mark_step, rate = time.perf_counter(), step, None
    while step < cfg.train_steps:
        out = trainer.train_step(iterator)
        step += 1
        first = step == start + 1
        logs = first or step % cfg.log_every == 0 or step == cfg.train_steps
        saves = step % cfg.ckpt_every == 0 or step == cfg.train_steps
        if logs or saves:
            metrics = {k: float(v) for k, v in out.items()}
            if not all(math.isfinite(v) for v in metrics.values()):
                # Checked before any save, so no checkpoint ever holds diverged weights.
                kept = ckpt.latest or "none (no checkpoint was written)"
                raise UserError(f"training diverged at step {step}: losses {metrics}; the "
                                f"last checkpoint is intact: {kept}")
        if logs:
            now = time.perf_counter()
            if first:
                log(f"step {step}: first step (tracing and compiling) took {now - mark_time:.1f} s")
            else:
                rate = (step - mark_step) * examples_per_step / (now - mark_time)
            mark_time, mark_step = now, step
            writer.scalars(step, metrics, rate)
            speed = ""
            if rate:
                eta = (cfg.train_steps - step) * examples_per_step / rate
                speed = f"  {rate:.1f} examples/s  ETA {_format_eta(eta)}"
            log(f"step {step}/{cfg.train_steps}  critic {metrics['critic']:+.4f}  "
                f"generator {metrics['generator']:+.4f}  gp {metrics['gradient_penalty']:.4f}  "
                f"wasserstein {metrics['wasserstein']:+.4f}{speed}")
        if step % cfg.sample_every == 0 or step == cfg.train_steps:
            writer.audio(step, trainer.generate(*sample_inputs).numpy(), real_clips)
        if saves:
            log(f"checkpoint {ckpt.save()}")
    return step, metrics
