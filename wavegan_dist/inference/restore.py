"""A trained run's generator: read the run's config, restore the weights, draw audio.

TensorFlow is imported inside the functions that need it, so reading and checking a
run's config.json stays fast enough for a command line to refuse bad input at once.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os

from wavegan_dist import inference
from wavegan_dist.errors import UserError, first_line
from wavegan_dist.run_folder import CHECKPOINT_FOLDER, CONFIG_FILE, GENERATOR_EMA

# The sample rate of every dataset this project builds; runs recorded before the
# sample rate was written to config.json were trained on such data.
DEFAULT_SAMPLE_RATE = 16000
# Generator batch for drawing audio: bounds memory for the full-size model.
GENERATE_BATCH = 64
# Which of a checkpoint's generator weights draw audio (load_generator's `weights`).
WEIGHTS = ("ema", "raw")
WEIGHTS_HELP = (
    "Generator weights to draw audio with: 'ema' (the moving average of the "
    "weights kept with --generator_ema) or 'raw' (the trained weights themselves). "
    "Default: ema if the checkpoint has it, else raw."
)


def read_run_config(model_dir: str):
    """Reads and checks the configuration a training run recorded.

    Args:
      model_dir: the run's folder (local or a tf.io.gfile URL).
    Returns:
      (cfg, sample_rate, notes): the run's Config, its sample rate in Hz, and
      one-line notes for the user (e.g. that the sample rate was not recorded).
      Raises UserError if the folder is not a usable training run.
    """
    from wavegan_dist.config import Config

    if not model_dir:
        raise UserError("--model_dir is required: the folder of a training run")
    if not inference.path_exists(model_dir):
        raise UserError(
            f"--model_dir={model_dir} does not exist: pass the folder a training "
            "run wrote (its --model_dir)"
        )
    if not inference.is_folder(model_dir):
        raise UserError(f"--model_dir={model_dir} is a file, not a training run's folder")
    path = os.path.join(model_dir, CONFIG_FILE)
    if not inference.path_exists(path):
        raise UserError(
            f"--model_dir={model_dir} has no {CONFIG_FILE}, so it is not the folder "
            "of a training run"
        )
    try:
        values = json.loads(inference.read_text(path))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        reason = first_line(err)
        raise UserError(f"{path} is not readable JSON ({reason})") from err
    if not isinstance(values, dict):
        raise UserError(f"{path} does not hold a run configuration (a JSON object)")
    try:
        cfg = Config.from_dict(values)
    except UserError as err:
        raise UserError(f"{path} holds an unusable configuration: {err}") from err
    except (TypeError, ValueError) as err:
        reason = first_line(err)
        raise UserError(f"{path} holds an unusable configuration: {reason}") from err
    notes = []
    sample_rate = values.get("sample_rate")
    if sample_rate is None:
        sample_rate = DEFAULT_SAMPLE_RATE
        notes.append(f"note: {path} records no sample_rate; using {DEFAULT_SAMPLE_RATE} Hz")
    elif isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or sample_rate < 1:
        raise UserError(f"{path} has sample_rate={sample_rate!r}; expected a positive integer (Hz)")
    return cfg, sample_rate, notes


def trained_labels(model_dir: str) -> list[int] | None:
    """The labels a conditional run trained on (the classes with training rows), as
    its config.json records them; None for an unconditional run or one recorded
    before the labels were. Call after read_run_config has checked the file."""
    values = json.loads(inference.read_text(os.path.join(model_dir, CONFIG_FILE)))
    labels = values.get("trained_labels")
    if (
        not isinstance(labels, list)
        or not labels
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in labels)
    ):
        return None
    return sorted(labels)


def find_checkpoint(model_dir: str, checkpoint: str | None = None) -> str:
    """The checkpoint to restore: `checkpoint` if given, else the run's newest one.

    Args:
      model_dir: the run's folder; its checkpoints are in <model_dir>/checkpoints.
      checkpoint: a checkpoint path prefix (e.g. <model_dir>/checkpoints/ckpt-4) or a
        folder of checkpoints (its newest is used); None or "" for the run's newest.
    Returns:
      The checkpoint path prefix. Raises UserError if there is none.
    """
    from wavegan_dist.run_folder.checkpoint_files import latest_in

    if checkpoint:
        if inference.is_folder(checkpoint):
            found = latest_in(checkpoint, hint=", or pass --checkpoint=<that folder>/ckpt-N")
            if not found:
                raise UserError(f"--checkpoint={checkpoint} is a folder without checkpoints")
            return found
        if not inference.path_exists(checkpoint + ".index"):
            raise UserError(
                f"--checkpoint={checkpoint} is not a checkpoint: expected a path "
                f"prefix such as {os.path.join(model_dir, CHECKPOINT_FOLDER, 'ckpt-2')} "
                "(with a .index file next to it)"
            )
        return checkpoint
    folder = os.path.join(model_dir, CHECKPOINT_FOLDER)
    found = (
        latest_in(folder, hint=", or pass --checkpoint=" + os.path.join(folder, "ckpt-N"))
        if inference.is_folder(folder)
        else None
    )
    if not found:
        raise UserError(
            f"--model_dir={model_dir} has no checkpoint in {folder}: training saves "
            "one every --ckpt_every steps and at the end"
        )
    return found


def load_generator(
    model_dir: str, checkpoint: str | None = None, log=None, weights: str | None = None
):
    """Rebuilds a run's generator and restores its weights.

    Args:
      model_dir: the run's folder (config.json, checkpoints/).
      checkpoint: a checkpoint path prefix to restore instead of the run's newest.
      log: receives one-line messages (notes, the checkpoint restored); None = silent.
      weights: "ema" (the generator's moving average, --generator_ema), "raw" (the
        trained weights), or None: ema if the checkpoint has it, else raw.
    Returns:
      (generator, cfg, sample_rate, step, weights): the Keras generator, called as
      generator(z float32 [B, latent_dim], labels int32 [B] or None, training=False)
      -> float32 [B, slice_len, 1]; the run's Config; its sample rate in Hz; the
      training step the checkpoint was saved at; "ema" or "raw", the weights
      restored. Raises UserError for a folder that is not a run, a missing
      checkpoint, one that does not fit the run's config, or weights="ema" for a
      checkpoint without an EMA.
    """
    import tensorflow as tf

    from wavegan_dist.models import build_generator
    from wavegan_dist.run_folder.checkpoint_files import damage_of, has_node

    if weights not in (None, *WEIGHTS):
        raise ValueError(f"weights={weights!r} is not one of None, {', '.join(WEIGHTS)}")
    log = log or (lambda _: None)
    cfg, sample_rate, notes = read_run_config(model_dir)
    for note in notes:
        log(note)
    path = find_checkpoint(model_dir, checkpoint)
    try:
        has_ema = has_node(path, GENERATOR_EMA)
    except tf.errors.OpError as err:  # an unreadable .index file
        raise UserError(_damaged(path, damage_of(path) or first_line(err, 160))) from err
    if weights == "ema" and not has_ema:
        raise UserError(
            f"--weights=ema: {path} has no generator EMA (its run was trained with "
            "--generator_ema=0 or before the EMA existed); pass --weights=raw"
        )
    weights = weights or ("ema" if has_ema else "raw")
    generator = build_generator(cfg.model_spec())
    step = tf.Variable(0, dtype=tf.int64, trainable=False)
    # Same object paths as training.checkpoints.Checkpointer, minus what inference
    # does not need (critic, optimizers, the other generator): hence expect_partial.
    node = (
        {GENERATOR_EMA: generator}
        if weights == "ema"
        else {"models": tf.train.Checkpoint(generator=generator)}
    )
    wanted = tf.train.Checkpoint(step=step, **node)
    failure = None
    # A restore that raises half-way never gets expect_partial(), and freeing it logs
    # a warning per checkpoint value it left unused; the user needs only the error.
    with _partial_restore_warnings_off():
        try:
            status = wanted.restore(path)
            status.expect_partial()
            # Fails when a generator variable has no value in the checkpoint, so a
            # checkpoint of another model is refused instead of leaving random weights.
            status.assert_existing_objects_matched()
        except (tf.errors.OpError, AssertionError, ValueError, IndexError) as err:
            failure = first_line(err, 300).rstrip(".")
        if failure:
            del wanted, generator
            gc.collect()
    if failure:
        # A damaged file is named as such, with the newest intact checkpoint to use
        # instead; a checkpoint that reads back whole but does not fit is another run's.
        damage = damage_of(path)
        if damage:
            raise UserError(_damaged(path, damage))
        raise UserError(
            f"cannot restore the generator from {path}: {failure}; is it a "
            f"checkpoint of the run in {model_dir}?"
        )
    log(f"restored generator ({weights} weights) from {path} (step {int(step.numpy())})")
    return generator, cfg, sample_rate, int(step.numpy()), weights


def _damaged(path: str, damage: str) -> str:
    """One line for a checkpoint whose files do not read back, with what to use instead."""
    from wavegan_dist.run_folder.checkpoint_files import damaged_advice

    return (
        f"cannot restore the generator from {path}: the checkpoint is damaged ({damage}); "
        f"{damaged_advice(path, '--checkpoint', in_run=False)}"
    )


@contextlib.contextmanager
def _partial_restore_warnings_off():
    """Drops only tf.train.Checkpoint's unused-value warnings while the block runs."""
    import tensorflow as tf

    from wavegan_dist.run_folder.checkpoint_files import DropPartialRestoreWarnings

    logger, drop = tf.get_logger(), DropPartialRestoreWarnings()
    logger.addFilter(drop)
    try:
        yield
    finally:
        logger.removeFilter(drop)


def latent_vectors(n: int, latent_dim: int, seed: int = 0):
    """Draws n latent vectors uniform in [-1, 1), the same for the same seed.

    Args:
      n: how many.
      latent_dim: length of each.
      seed: int in [0, 2^63).
    Returns:
      float32 [n, latent_dim].
    """
    import tensorflow as tf

    return tf.random.stateless_uniform(
        [n, latent_dim],
        seed=tf.constant([seed, 0], tf.int64),
        minval=-1.0,
        maxval=1.0,
        dtype=tf.float32,
    )


def generate_waves(generator, z, labels=None, batch_size: int = GENERATE_BATCH):
    """Runs the generator in inference mode, a batch at a time.

    Args:
      generator: a generator from load_generator.
      z: float32 [n, latent_dim].
      labels: int32 [n] (conditional generators) or None.
      batch_size: examples per generator call.
    Returns:
      numpy float32 [n, slice_len, 1].
    """
    import numpy as np
    import tensorflow as tf

    z = tf.convert_to_tensor(z, tf.float32)
    if labels is not None:
        labels = tf.convert_to_tensor(labels, tf.int32)
    parts = []
    for start in range(0, int(z.shape[0]), batch_size):
        batch_labels = None if labels is None else labels[start : start + batch_size]
        parts.append(generator(z[start : start + batch_size], batch_labels, training=False).numpy())
    return np.concatenate(parts, axis=0)
